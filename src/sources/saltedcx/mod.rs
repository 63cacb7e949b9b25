//! Salted CX: the export API client, its emulator, and the synthetic tenant behind the emulator.

pub mod api;
pub mod client;
pub mod emulator;
pub mod synth;

use std::path::Path;

use futures::future::try_join_all;

use self::client::{ClientError, SaltedCxClient};
use super::{FailureScope, FetchedFile, FetchedWindow, FileFormat, Source, SourceError};
use crate::window::Window;

/// Salted CX as a [`Source`]: one async export per window, every dataset downloaded in parallel.
#[derive(Debug, Clone)]
pub struct SaltedCx {
    client: SaltedCxClient,
    /// `--contact`: export one customer profile only.
    contact: Option<String>,
}

impl SaltedCx {
    pub fn new(client: SaltedCxClient, contact: Option<String>) -> SaltedCx {
        SaltedCx { client, contact }
    }

    pub fn client(&self) -> &SaltedCxClient {
        &self.client
    }
}

impl From<ClientError> for SourceError {
    fn from(error: ClientError) -> SourceError {
        let scope = if error.affects_whole_run() { FailureScope::Run } else { FailureScope::Window };
        SourceError { scope, message: error.to_string() }
    }
}

impl Source for SaltedCx {
    fn name(&self) -> &'static str {
        "saltedcx"
    }

    async fn fetch_window(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
    ) -> Result<FetchedWindow, SourceError> {
        let created = self
            .client
            .create_export(window.start(), window.end(), datasets, self.contact.as_deref())
            .await?;
        tracing::info!(window = %window, export_id = %created.export_id, "Export created; waiting for it to complete");
        let status = self.client.wait_completed(&created).await?;
        let downloads = datasets.iter().map(|dataset| {
            let file_name = api::file_name(dataset).unwrap_or("unknown.csv").to_string();
            let path = spool.join(format!("{window}-{file_name}"));
            let (created, status) = (&created, status.clone());
            async move {
                let bytes = self.client.download_dataset(created, status, dataset, &path).await?;
                tracing::debug!(window = %window, dataset, bytes, "Downloaded");
                Ok::<_, ClientError>(FetchedFile {
                    dataset: dataset.clone(),
                    file_name,
                    path,
                    format: FileFormat::Csv,
                    bytes,
                })
            }
        });
        let files = try_join_all(downloads).await?;
        Ok(FetchedWindow { export_id: Some(created.export_id), files })
    }
}
