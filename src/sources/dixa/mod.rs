//! Dixa: the Exports API client, its emulator, and the synthetic tenant behind the emulator.
//!
//! Two datasets, one synchronous request each per UTC-day window: `dixa.conversation` from
//! `GET /v1/conversation_export` by `updated_*` (a conversation that changed is exported again,
//! and its current table keeps the latest version), `dixa.message` from `GET /v1/message_export`
//! by `created_*`. The answers are JSON arrays decoded by the shared JSON decoder against
//! `schemas/dixa/`.

pub mod client;
pub mod emulator;
pub mod platform;
pub mod synth;

use std::path::Path;

use self::client::{DixaClient, ExportRequest};
use super::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// The API's request for one dataset of one window, with bounds chosen for strict filters.
pub fn request_for(dataset: &str, window: Window) -> Option<ExportRequest> {
    let (endpoint, filter) = match dataset {
        "conversation" => ("conversation_export", "updated"),
        "message" => ("message_export", "created"),
        _ => return None,
    };
    Some(ExportRequest {
        endpoint,
        filter,
        // `after` is strict: one millisecond before the window, so its first instant is in.
        after_ms: window.start().timestamp_millis() - 1,
        // `before` is strict: the next window's first instant is out.
        before_ms: window.end().timestamp_millis(),
    })
}

/// Dixa as a [`Source`]: each dataset of a window is one request, paced.
#[derive(Debug, Clone)]
pub struct Dixa {
    client: DixaClient,
}

impl Dixa {
    pub fn new(client: DixaClient) -> Dixa {
        Dixa { client }
    }
}

impl Source for Dixa {
    async fn probe(&self) -> Result<String, SourceError> {
        // The smallest export there is: one millisecond, a minute ago.
        let now = chrono::Utc::now().timestamp_millis();
        let request = client::ExportRequest {
            endpoint: "conversation_export",
            filter: "updated",
            after_ms: now - 60_001,
            before_ms: now - 60_000,
        };
        let scratch = tempfile::NamedTempFile::new()
            .map_err(|e| SourceError::Transfer(format!("creating a scratch file: {e}")))?;
        let bytes = self.client.export(&request, scratch.path()).await?;
        Ok(format!("API token accepted; a one-millisecond export answered {bytes} bytes"))
    }

    fn name(&self) -> &str {
        "dixa"
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        _journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let mut files = Vec::with_capacity(datasets.len());
        for dataset in datasets {
            let request = request_for(dataset, window)
                .ok_or_else(|| SourceError::Rejected(format!("Dixa has no dataset `{dataset}`")))?;
            let file_name = format!("{dataset}s.json");
            let path = spool.join(format!("{window}-{file_name}"));
            let bytes = self.client.export(&request, &path).await?;
            tracing::debug!(window = %window, dataset, bytes, "Downloaded");
            files.push(FetchedFile::new(dataset.clone(), file_name, path, bytes));
        }
        Ok(FetchedWindow::new(None, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_asked_with_strict_bounds_that_include_midnight_once() {
        let window = Window::new(chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        let r = request_for("conversation", window).unwrap();
        assert_eq!((r.endpoint, r.filter), ("conversation_export", "updated"));
        assert_eq!(r.after_ms, 1_709_251_200_000 - 1);
        assert_eq!(r.before_ms, 1_709_337_600_000);
        let next = request_for("conversation", Window::new(window.date.succ_opt().unwrap())).unwrap();
        assert_eq!(next.after_ms + 1, r.before_ms, "windows tile: no gap, no overlap");
        assert_eq!(request_for("message", window).unwrap().filter, "created");
        assert!(request_for("ticket", window).is_none());
    }
}
