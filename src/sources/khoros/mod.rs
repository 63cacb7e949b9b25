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

use self::client::{KhorosClient, KhorosFormat};
use super::export_job::{self, ExportPolicy};
use super::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// Khoros as a [`Source`]: one user export per window.
#[derive(Debug, Clone)]
pub struct Khoros {
    client: KhorosClient,
    policy: ExportPolicy,
}

impl Khoros {
    pub fn new(client: KhorosClient, policy: ExportPolicy) -> Khoros {
        Khoros { client, policy }
    }
}

impl Source for Khoros {
    async fn probe(&self) -> Result<String, SourceError> {
        // The status of an export that does not exist: checked for credentials first, then 404.
        let job = client::KhorosJob {
            workflow_id: "cxlake-check".into(),
            status_url: self.client.api_url("reports/report/cxlake-check/cxlake-check/status")?,
        };
        match self.client.status(&job).await {
            Ok(_) | Err(SourceError::Gone(_)) => Ok("username, password and company key accepted".into()),
            Err(e) => Err(e),
        }
    }

    fn name(&self) -> &str {
        "khoros"
    }

    fn timezone(&self) -> Option<chrono_tz::Tz> {
        self.client.config().request.timezone
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        if let Some(other) = datasets.iter().find(|d| *d != "user") {
            return Err(SourceError::Rejected(format!(
                "Khoros has no dataset `{other}`; valid: khoros.user"
            )));
        }
        let file_name = match self.client.config().request.format {
            KhorosFormat::Json => "user.json",
            KhorosFormat::Csv => "user.csv",
        };
        let path = spool.join(format!("{window}-{file_name}"));
        let download = |job, url| {
            let path = path.clone();
            async move { self.client.download(&job, &url, &path).await }
        };
        let (job, bytes) =
            export_job::download_completed(&self.client, &self.policy, window, datasets, journal, download)
                .await?;
        tracing::debug!(window = %window, bytes, "Downloaded");
        let file = FetchedFile::new("user", file_name, path, bytes);
        Ok(FetchedWindow::new(Some(job.workflow_id), vec![file]))
    }
}
