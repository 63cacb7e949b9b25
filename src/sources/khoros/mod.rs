//! Khoros Care: the Analytics user export (an async export job, JSON or CSV), its client, its
//! emulator and the synthetic tenant behind the emulator.
//!
//! One dataset, `khoros.user`: an aggregate per agent for each day window (UTC days, or the
//! company's days with `--timezone`), one export per window through the shared
//! [`export_job`](super::export_job) lifecycle. The report does not say which day it covers, so
//! its `report_date` column is filled from the window.

pub mod client;
pub mod emulator;
pub mod platform;
pub mod synth;

use std::path::Path;

use self::client::{KhorosClient, KhorosFormat, KhorosJob};
use super::export_source::{ExportPlatform, ExportSource};
use super::SourceError;

/// Khoros as a [`Source`](super::Source): one user export per window.
pub type Khoros = ExportSource<KhorosClient>;

impl ExportPlatform for KhorosClient {
    const NAME: &'static str = "khoros";
    const DATASETS: &'static [&'static str] = &["user"];

    fn base_url(&self) -> &url::Url {
        &self.config().base_url
    }

    fn file_name(&self, _dataset: &str) -> String {
        match self.config().request.format {
            KhorosFormat::Json => "user.json".into(),
            KhorosFormat::Csv => "user.csv".into(),
        }
    }

    fn timezone(&self) -> Option<chrono_tz::Tz> {
        self.config().request.timezone
    }

    fn export_id(&self, job: &KhorosJob) -> String {
        job.workflow_id.clone()
    }

    async fn download(
        &self,
        job: &KhorosJob,
        url: &url::Url,
        _dataset: &str,
        path: &Path,
    ) -> Result<u64, SourceError> {
        KhorosClient::download(self, job, url, path).await
    }

    async fn probe(&self) -> Result<String, SourceError> {
        // The status of an export that does not exist: checked for credentials first, then 404.
        let job = KhorosJob {
            workflow_id: "cxlake-check".into(),
            status_url: self.api_url("reports/report/cxlake-check/cxlake-check/status")?,
        };
        match self.status(&job).await {
            Ok(_) | Err(SourceError::Gone(_)) => Ok("username, password and company key accepted".into()),
            Err(e) => Err(e),
        }
    }
}
