//! Salted CX: the export API client, its emulator, and the synthetic tenant behind the emulator.

pub mod api;
pub mod client;
pub mod emulator;
pub mod platform;
pub mod synth;

use std::path::Path;

use self::api::CreatedExport;
use self::api::ExportStatus;
use self::client::{ClientError, SaltedCxJobs};
use super::export_source::{ExportPlatform, ExportSource};
use super::SourceError;

pub use crate::sources::export_job::ExportPolicy;

/// Salted CX as a [`Source`](super::Source): one async export per window, every dataset
/// downloaded in parallel.
pub type SaltedCx = ExportSource<SaltedCxJobs>;

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

impl ExportPlatform for SaltedCxJobs {
    const NAME: &'static str = "saltedcx";
    const DATASETS: &'static [&'static str] = &api::DATASETS;

    fn base_url(&self) -> &url::Url {
        &self.client.config().base_url
    }

    fn file_name(&self, dataset: &str) -> String {
        api::file_name(dataset).unwrap_or("unknown.csv").to_string()
    }

    fn export_id(&self, job: &CreatedExport) -> String {
        job.export_id.clone()
    }

    async fn download(
        &self,
        job: &CreatedExport,
        ready: &ExportStatus,
        dataset: &str,
        path: &Path,
    ) -> Result<u64, ClientError> {
        self.client.download_dataset(job, ready.clone(), dataset, path).await
    }

    async fn probe(&self) -> Result<String, SourceError> {
        let exports = self.client.history().await?;
        Ok(format!("API key accepted; {} recent export(s) listed", exports.len()))
    }
}
