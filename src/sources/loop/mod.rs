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

use self::client::{LoopClient, LoopJob};
use super::export_source::{ExportPlatform, ExportSource};
use super::SourceError;

/// Loop as a [`Source`](super::Source): one report export per window.
pub type Loop = ExportSource<LoopClient>;

impl ExportPlatform for LoopClient {
    const NAME: &'static str = "loop";
    const DATASETS: &'static [&'static str] = &["report"];

    fn base_url(&self) -> &url::Url {
        &self.config().base_url
    }

    fn file_name(&self, _dataset: &str) -> String {
        self.config().request.format.file_name().to_string()
    }

    fn timezone(&self) -> Option<chrono_tz::Tz> {
        self.config().request.timezone
    }

    fn export_id(&self, job: &LoopJob) -> String {
        job.id.clone()
    }

    async fn download(
        &self,
        job: &LoopJob,
        url: &url::Url,
        _dataset: &str,
        path: &Path,
    ) -> Result<u64, SourceError> {
        LoopClient::download(self, job, url.clone(), path).await
    }

    async fn probe(&self) -> Result<String, SourceError> {
        // The status of an export that does not exist: checked for the token first, then 404.
        match self.status(&LoopJob { id: "cxlake-check".into() }).await {
            Ok(_) | Err(SourceError::Gone(_)) => Ok("API token accepted".into()),
            Err(e) => Err(e),
        }
    }
}
