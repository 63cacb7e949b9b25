//! Dixa: the Exports API client, its emulator, and the synthetic tenant behind the emulator.
//!
//! Two datasets, one synchronous request each per UTC-day window: `dixa.conversation` from
//! `GET /v1/conversation_export` by `updated_*` (a conversation that changed is exported again,
//! and its current table keeps the latest version) — or by `created_*`, `closed_*` or
//! `last_message_created_*` (`--window-by`), and for named conversations only (`--csids`) —
//! `dixa.message` from `GET /v1/message_export` by `created_*` (the document's own words say it
//! filters "conversations created", but its example and its only filter pair are the messages'
//! own creation time, which is what the emulator serves and what cxlake windows by). The answers are JSON arrays decoded by the shared JSON decoder against
//! `schemas/dixa/`.

pub mod client;
pub mod emulator;
pub mod platform;
pub mod synth;

use std::path::Path;

use self::client::{DixaClient, ExportRequest};
use super::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// Which of a conversation's times puts it in a window (`--window-by`): the Exports API filters
/// conversations by any of them. Messages are always windowed by their creation (the message
/// export has no other filter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WindowBy {
    /// When it last changed: a conversation is exported again on each day it changes (the default;
    /// the current table keeps its latest version).
    #[default]
    Updated,
    /// When it was created: each conversation once, in its state at the end of that day.
    Created,
    /// When it was closed: only closed conversations, on their closing day.
    Closed,
    /// When its last message was created.
    LastMessageCreated,
}

impl WindowBy {
    /// The API's name for the filter (`<name>_after` / `<name>_before`).
    pub fn filter(self) -> &'static str {
        match self {
            WindowBy::Updated => "updated",
            WindowBy::Created => "created",
            WindowBy::Closed => "closed",
            WindowBy::LastMessageCreated => "last_message_created",
        }
    }
}

/// What a Dixa sync asks for beyond the window: the conversations' window field, and named
/// conversations only (`--csids`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DixaRequest {
    pub window_by: WindowBy,
    pub csids: Option<Vec<i64>>,
}

/// The API's request for one dataset of one window, with bounds chosen for strict filters.
pub fn request_for(dataset: &str, window: Window) -> Option<ExportRequest> {
    request_with(dataset, window, &DixaRequest::default())
}

/// Like [`request_for`], with the sync's window field and conversation ids.
pub fn request_with(dataset: &str, window: Window, request: &DixaRequest) -> Option<ExportRequest> {
    let (endpoint, filter, csids) = match dataset {
        "conversation" => ("conversation_export", request.window_by.filter(), request.csids.clone()),
        "message" => ("message_export", "created", None),
        _ => return None,
    };
    Some(ExportRequest {
        endpoint,
        filter,
        // `after` is strict: one millisecond before the window, so its first instant is in.
        after_ms: window.start().timestamp_millis() - 1,
        // `before` is strict: the next window's first instant is out.
        before_ms: window.end().timestamp_millis(),
        csids,
    })
}

/// Dixa as a [`Source`]: each dataset of a window is one request, paced.
#[derive(Debug, Clone)]
pub struct Dixa {
    client: DixaClient,
    request: DixaRequest,
}

impl Dixa {
    pub fn new(client: DixaClient) -> Dixa {
        Dixa { client, request: DixaRequest::default() }
    }

    /// Asks for windows by another field, or for named conversations only.
    pub fn with_request(self, request: DixaRequest) -> Dixa {
        Dixa { request, ..self }
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
            csids: None,
        };
        let scratch = tempfile::NamedTempFile::new()
            .map_err(|e| SourceError::Transfer(format!("creating a scratch file: {e}")))?;
        let bytes = self.client.export(&request, scratch.path()).await?;
        Ok(format!("API token accepted; a one-millisecond export answered {bytes} bytes"))
    }

    fn name(&self) -> &str {
        "dixa"
    }

    fn lineage_input(&self) -> Option<(String, String)> {
        Some((super::origin(self.client.base_url()), "dixa".to_string()))
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        _journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let mut files = Vec::with_capacity(datasets.len());
        if self.request.csids.is_some() && datasets.iter().any(|d| d == "message") {
            return Err(SourceError::Rejected(
                "--csids names conversations, and Dixa's message export takes no conversation ids: pass --datasets conversation".into(),
            ));
        }
        for dataset in datasets {
            let request = request_with(dataset, window, &self.request)
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
