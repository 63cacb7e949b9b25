//! Sparkcentral as a [`Source`]: a window is a local day of the drop folder, its files those
//! whose `from` (or snapshot stamp) falls on it — each in its own export's zone — one part file
//! each, every row carrying its export and period (`export_id`, `period_from`, `period_to`,
//! `export_frequency`). Days are planned from the
//! listing: a day whose files are the ones the lake recorded is skipped, a day with a file
//! still being written (changed within `--settle`, or different in a second listing
//! `--recheck-after` later) waits for the next run, and an export type with no file that day
//! keeps whatever the lake had.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;

use super::drop::{DropFile, DropStore, Listing, TreeConfig};
use crate::sources::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

/// When a day's files count as complete.
#[derive(Debug, Clone, Copy)]
pub struct Settling {
    /// A file modified more recently than this is still being written.
    pub settle: Duration,
    /// The tree is listed again after this: a file whose size or time changed in between is
    /// still being written (this holds whatever the server's clock says). Zero: listed once.
    pub recheck_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Sparkcentral {
    /// The `/export` tree: on the SFTP server or a local mirror.
    store: Arc<DropStore>,
    /// The exports' zones (a default and per folder or series) and folder types.
    tree: TreeConfig,
    settling: Settling,
    /// The files of each day planned, as listed (and found settled) when planning: the window
    /// fetches exactly those, and the tree is listed once per run, not once per day.
    planned: Arc<Mutex<BTreeMap<NaiveDate, Vec<DropFile>>>>,
}

impl Sparkcentral {
    pub fn new(store: DropStore, tree: TreeConfig, settling: Settling) -> Sparkcentral {
        Sparkcentral { store: Arc::new(store), tree, settling, planned: Arc::default() }
    }

    async fn list(&self, datasets: &[String]) -> Result<Listing, SourceError> {
        let listing = self.store.list(datasets, &self.tree).await?;
        for refused in &listing.refused {
            tracing::warn!(file = %refused, "Not an export file cxlake can place; left alone");
        }
        Ok(listing)
    }
}

impl Source for Sparkcentral {
    async fn probe(&self) -> Result<String, SourceError> {
        let folders = self.store.folders().await?;
        Ok(format!("logged in and listed the export root ({} folder(s))", folders.len()))
    }

    fn name(&self) -> &str {
        "sparkcentral"
    }

    /// The SFTP server (`sftp://host:port`) and the tree's path on it, or the local tree.
    fn lineage_input(&self) -> Option<(String, String)> {
        Some(match self.store.as_ref() {
            DropStore::Sftp(sftp) => {
                let target = sftp.target();
                (format!("sftp://{}:{}", target.host, target.port), target.root.clone())
            }
            DropStore::Local(root) => ("file".to_string(), root.display().to_string()),
        })
    }

    fn timezone(&self) -> Option<chrono_tz::Tz> {
        Some(self.tree.default_zone)
    }

    async fn plan_windows(
        &self,
        from: Option<NaiveDate>,
        to: NaiveDate,
        datasets: &[String],
        done: &BTreeMap<NaiveDate, String>,
    ) -> Result<Option<Vec<Window>>, SourceError> {
        let listing = self.list(datasets).await?;
        let mut candidates = BTreeMap::new();
        for (day, files) in listing.days {
            if from.is_some_and(|from| day < from) || day >= to {
                continue;
            }
            if done.get(&day) == Some(&Listing::fingerprint(&files)) {
                continue;
            }
            if let Some(file) = Listing::unsettled(&files, self.settling.settle) {
                tracing::info!(day = %day, file = %file.relative(), "A file changed moments ago (still being written?); its day waits for the next run");
                continue;
            }
            candidates.insert(day, files);
        }
        if !candidates.is_empty() && !self.settling.recheck_after.is_zero() {
            tokio::time::sleep(self.settling.recheck_after).await;
            let again = self.list(datasets).await?;
            candidates.retain(|day, files| match Listing::changed_since(files, &again) {
                Some(file) => {
                    tracing::info!(day = %day, file = %file.relative(), "A file changed between two listings (still being written); its day waits for the next run");
                    false
                }
                None => true,
            });
        }
        let windows = candidates.keys().map(|day| Window::new(*day)).collect();
        *self.planned.lock().expect("planned files lock") = candidates;
        Ok(Some(windows))
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        _journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let planned = self.planned.lock().expect("planned files lock").remove(&window.date);
        let files = match planned {
            Some(files) => files,
            None => self.list(datasets).await?.days.remove(&window.date).unwrap_or_default(),
        };
        let export_id = Listing::fingerprint(&files);
        let mut fetched = Vec::with_capacity(files.len());
        for (index, file) in files.iter().enumerate() {
            // Two folders may hold files of one name: each gets its own spool path.
            let path = spool.join(format!("{index:05}-{}", file.name));
            let bytes = self.store.fetch(file, &path).await?;
            fetched.push(FetchedFile {
                fold: file.fold,
                facts: Some(file.facts(self.tree.default_zone)),
                ..FetchedFile::new(file.parsed.dataset, file.name.clone(), path, bytes)
            });
        }
        let absent = datasets
            .iter()
            .filter(|d| !files.iter().any(|f| f.parsed.dataset == d.as_str()))
            .cloned()
            .collect();
        Ok(FetchedWindow { export_id: Some(export_id), files: fetched, absent })
    }
}
