//! Loop (intheloop.io): the report export (an async export job, JSON or XLSX from a signed,
//! expiring URL), its client, its emulator and the synthetic tenant behind the emulator.
//!
//! One dataset, `loop.report`: one row per conversation with activity in the window's day (UTC,
//! or the `--timezone` zone's day, whose local times the export then writes); a
//! conversation that changes later is reported again, so its current table keeps the latest.
//! Both formats land the same rows: the XLSX decoder hands sheet rows to the JSON decoder.

pub mod client;
pub mod emulator;
pub mod platform;
pub mod synth;
pub mod xlsx;

use std::path::Path;

use self::client::LoopClient;
use super::export_job::{self, ExportPolicy};
use super::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// Loop as a [`Source`]: one report export per window.
#[derive(Debug, Clone)]
pub struct Loop {
    client: LoopClient,
    policy: ExportPolicy,
}

impl Loop {
    pub fn new(client: LoopClient, policy: ExportPolicy) -> Loop {
        Loop { client, policy }
    }
}

impl Source for Loop {
    async fn probe(&self) -> Result<String, SourceError> {
        // The status of an export that does not exist: checked for the token first, then 404.
        match self.client.status(&client::LoopJob { id: "cxlake-check".into() }).await {
            Ok(_) | Err(SourceError::Gone(_)) => Ok("API token accepted".into()),
            Err(e) => Err(e),
        }
    }

    fn name(&self) -> &str {
        "loop"
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
        if let Some(other) = datasets.iter().find(|d| *d != "report") {
            return Err(SourceError::Rejected(format!("Loop has no dataset `{other}`; valid: loop.report")));
        }
        let file_name = self.client.config().request.format.file_name();
        let path = spool.join(format!("{window}-{file_name}"));
        let download = |job, url| {
            let path = path.clone();
            async move { self.client.download(&job, url, &path).await }
        };
        let (job, bytes) =
            export_job::download_completed(&self.client, &self.policy, window, datasets, journal, download)
                .await?;
        tracing::debug!(window = %window, bytes, "Downloaded");
        let file = FetchedFile::new("report", file_name, path, bytes);
        Ok(FetchedWindow::new(Some(job.id), vec![file]))
    }
}
