//! What is done: one JSON record per (source, window) under `<dest>/_cxlake/state/`, plus one
//! report per run under `<dest>/_cxlake/runs/`.
//!
//! The record is the commit marker of the Parquet layout. A window is written `publishing`
//! before its files move into place and `done` after, so a crash in between leaves a window
//! that every later run and `cxlake status` see as not done, and the next run redoes it. The
//! record lists every file with its size, row count and SHA-256, so `status` never has to
//! list or open data files.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::decode::{DecodeStats, Drift};
use crate::sink::layout;
use crate::sink::parquet::WrittenFile;
use crate::sink::raw::RawFile;
use crate::sink::{Destination, SinkError};

pub const STATE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    /// Files are being moved into place; the window's data may be a mix until `done`.
    Publishing,
    Done,
}

/// One dataset of one committed window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub stats: DecodeStats,
    pub bytes: u64,
    pub files: Vec<WrittenFile>,
    /// Schema drift seen in the file (unknown or missing columns), for the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// With `--format delta`: the table version whose commit landed this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<u64>,
    /// The fetched files behind the data, in the raw archive (none with `--raw off`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raw: Vec<RawFile>,
    /// What the PII policy did to personal columns (`email=hash,…,key=<fingerprint>`); absent:
    /// every column as fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<String>,
    /// Seconds spent decoding and staging the dataset's files (wall time, in parallel with the
    /// window's other datasets).
    #[serde(default)]
    pub seconds: f64,
    /// What the files showed about the declaration: undeclared fields, absent columns, values
    /// coerced or kept in `_extra` (by field path, counted).
    #[serde(default, skip_serializing_if = "Drift::is_empty")]
    pub drift: Drift,
    /// The fingerprint of the declaration the files were written with (its text is kept under
    /// `_cxlake/declarations/`); absent in records from before cxlake recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration: Option<String>,
    /// What the rows' load columns say: when the window was loaded (`_cxlake_loaded_at`) and
    /// by which run (`_cxlake_run_id`); absent in records from before cxlake wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_by: Option<String>,
    /// A fingerprint of what, besides the files, decided the rows (cxlake's version, the
    /// declaration, filter, zone, PII and decoding policies): a rerun with equal settings and
    /// byte-identical files rewrites nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub format_version: u32,
    pub source: String,
    pub date: NaiveDate,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: WindowStatus,
    /// The platform's id for the export that produced the data, when it has one.
    pub export_id: Option<String>,
    pub run_id: String,
    /// Set when the export was filtered (e.g. to one contact): a fingerprint, never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub datasets: BTreeMap<String, DatasetRecord>,
    /// The zone the files' local times were read in (`--timezone`), for a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Set when the window was rebuilt from the raw archive: the run that fetched the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_from: Option<String>,
}

impl WindowRecord {
    pub fn is_done_for(&self, dataset: &str) -> bool {
        self.status == WindowStatus::Done && self.datasets.contains_key(dataset)
    }
}

/// An export created for a window that is not committed yet; a later run may adopt it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportIntent {
    pub source: String,
    pub date: NaiveDate,
    pub export_id: String,
    pub created_at: DateTime<Utc>,
    pub run_id: String,
    pub datasets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Reads and writes bookkeeping records in a destination.
#[derive(Debug, Clone)]
pub struct StateStore {
    dest: Destination,
}

impl StateStore {
    pub fn new(dest: Destination) -> StateStore {
        StateStore { dest }
    }

    pub async fn load_window(
        &self,
        source: &str,
        date: NaiveDate,
    ) -> Result<Option<WindowRecord>, SinkError> {
        self.get_json(&layout::window_state_file(source, date)).await
    }

    /// Every window record of `source`, sorted by date.
    pub async fn load_windows(&self, source: &str) -> Result<Vec<WindowRecord>, SinkError> {
        let dir = self.dest.path(&layout::window_state_dir(source));
        let metas: Vec<_> =
            self.dest.store.list(Some(&dir)).try_collect().await.map_err(|e| SinkError::store(&dir, e))?;
        let mut records: Vec<WindowRecord> = futures::stream::iter(metas)
            .filter(|m| futures::future::ready(m.location.as_ref().ends_with(".json")))
            .map(|m| async move {
                let relative = self.dest.relative(&m.location);
                self.get_json::<WindowRecord>(&relative).await
            })
            .buffer_unordered(16)
            .try_filter_map(|r| futures::future::ready(Ok(r)))
            .try_collect()
            .await?;
        records.sort_by_key(|r| r.date);
        Ok(records)
    }

    pub async fn save_window(&self, record: &WindowRecord) -> Result<(), SinkError> {
        self.put_json(&layout::window_state_file(&record.source, record.date), record).await
    }

    pub async fn load_export_intent(
        &self,
        source: &str,
        date: NaiveDate,
    ) -> Result<Option<ExportIntent>, SinkError> {
        self.get_json(&layout::export_intent_file(source, date)).await
    }

    pub async fn save_export_intent(&self, intent: &ExportIntent) -> Result<(), SinkError> {
        self.put_json(&layout::export_intent_file(&intent.source, intent.date), intent).await
    }

    pub async fn clear_export_intent(&self, source: &str, date: NaiveDate) -> Result<(), SinkError> {
        self.delete(&layout::export_intent_file(source, date)).await
    }

    /// Deletes a bookkeeping object; one that is not there is already deleted.
    pub async fn delete(&self, relative: &str) -> Result<(), SinkError> {
        let path = self.dest.path(relative);
        match self.dest.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(SinkError::store(&path, e)),
        }
    }

    /// Deletes a marker whose work is done (a failed refresh that has since succeeded): cleanup,
    /// so a failure is a warning — the marker left asks the next run for work it would do anyway.
    pub async fn clear(&self, relative: &str) {
        if let Err(e) = self.delete(relative).await {
            tracing::warn!(error = %e, "Could not clear a marker of work since done; the next run looks at it again");
        }
    }

    /// Sources that have bookkeeping in this destination.
    pub async fn sources(&self) -> Result<Vec<String>, SinkError> {
        let dir = self.dest.path(&format!("{}/state", layout::BOOKKEEPING_DIR));
        let listing =
            self.dest.store.list_with_delimiter(Some(&dir)).await.map_err(|e| SinkError::store(&dir, e))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|n| layout::is_identifier(n))
            .collect();
        names.sort();
        Ok(names)
    }

    pub async fn put_json<T: Serialize>(&self, relative: &str, value: &T) -> Result<(), SinkError> {
        let path = self.dest.path(relative);
        let mut bytes = serde_json::to_vec_pretty(value).expect("bookkeeping records serialize");
        bytes.push(b'\n');
        self.dest.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| SinkError::store(&path, e))?;
        Ok(())
    }

    pub async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        relative: &str,
    ) -> Result<Option<T>, SinkError> {
        let path = self.dest.path(relative);
        let bytes = match self.dest.store.get(&path).await {
            Ok(result) => result.bytes().await.map_err(|e| SinkError::store(&path, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(SinkError::store(&path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SinkError::CorruptState { path: path.to_string(), message: e.to_string() })
    }
}
