//! Salted CX: the export API client, its emulator, and the synthetic tenant behind the emulator.

pub mod api;
pub mod client;
pub mod emulator;
pub mod platform;
pub mod synth;

use std::path::Path;

use futures::future::try_join_all;

use self::client::{ClientError, SaltedCxClient, SaltedCxJobs};
use super::export_job;
use super::{CreationCap, ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

pub use crate::sources::export_job::ExportPolicy;

/// Salted CX as a [`Source`]: one async export per window, every dataset downloaded in parallel.
#[derive(Debug, Clone)]
pub struct SaltedCx {
    client: SaltedCxClient,
    /// `--contact`: export one customer profile only.
    contact: Option<String>,
    policy: ExportPolicy,
    /// The cap on creating exports, kept across the lake's workers.
    cap: Option<CreationCap>,
}

impl SaltedCx {
    pub fn new(client: SaltedCxClient, contact: Option<String>) -> SaltedCx {
        SaltedCx { client, contact, policy: ExportPolicy::default(), cap: None }
    }

    /// Creates exports under `cap` (shared through the lake by every worker syncing it).
    pub fn with_cap(mut self, cap: Option<CreationCap>) -> SaltedCx {
        self.cap = cap;
        self
    }

    pub fn with_policy(mut self, policy: ExportPolicy) -> SaltedCx {
        self.policy = policy;
        self
    }
}

impl From<ClientError> for SourceError {
    fn from(error: ClientError) -> SourceError {
        let message = error.to_string();
        match error {
            ClientError::Unauthorized => SourceError::Unauthorized(message),
            e if e.affects_whole_run() => SourceError::Rejected(message),
            ClientError::RateLimited { .. } => SourceError::RateLimited(message),
            ClientError::BadRequest { .. }
            | ClientError::NotFound { .. }
            | ClientError::ExportFailed { .. }
            | ClientError::Timeout { .. } => SourceError::Export(message),
            _ => SourceError::Transfer(message),
        }
    }
}

impl Source for SaltedCx {
    async fn probe(&self) -> Result<String, SourceError> {
        let exports = self.client.history().await?;
        Ok(format!("API key accepted; {} recent export(s) listed", exports.len()))
    }

    fn name(&self) -> &str {
        "saltedcx"
    }

    fn creation_cap(&self) -> Option<CreationCap> {
        self.cap
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let jobs = SaltedCxJobs { client: &self.client, contact: self.contact.as_deref(), cap: self.cap };
        let (created, status) = export_job::completed(&jobs, &self.policy, window, datasets, journal).await?;
        let downloads = datasets.iter().map(|dataset| {
            let file_name = api::file_name(dataset).unwrap_or("unknown.csv").to_string();
            let path = spool.join(format!("{window}-{file_name}"));
            let (created, status) = (&created, status.clone());
            async move {
                let bytes = self.client.download_dataset(created, status, dataset, &path).await?;
                tracing::debug!(window = %window, dataset, bytes, "Downloaded");
                Ok::<_, ClientError>(FetchedFile::new(dataset.clone(), file_name, path, bytes))
            }
        });
        let files = try_join_all(downloads).await?;
        Ok(FetchedWindow::new(Some(created.export_id), files))
    }
}
