//! Sparkcentral as a [`Source`]: a window is a local day of the drop folder, its files those
//! whose `from` (or snapshot stamp) falls on it, one part file each. Days are planned from the
//! listing: a day whose files are the ones the lake recorded is skipped, a day with a file
//! changed within `--settle` waits for the next run, and an export type with no file that day
//! keeps whatever the lake had.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;

use super::drop::{DropFile, Listing};
use crate::sources::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::window::Window;

#[derive(Debug, Clone)]
pub struct Sparkcentral {
    /// A local mirror of the `/export` tree.
    root: PathBuf,
    /// The zone the exports were configured with: their times are local to it.
    zone: chrono_tz::Tz,
    settle: Duration,
    /// The files of each day planned, as listed (and found settled) when planning: the window
    /// fetches exactly those, and the tree is listed once per run, not once per day.
    planned: Arc<Mutex<BTreeMap<NaiveDate, Vec<DropFile>>>>,
}

impl Sparkcentral {
    pub fn new(root: PathBuf, zone: chrono_tz::Tz, settle: Duration) -> Sparkcentral {
        Sparkcentral { root, zone, settle, planned: Arc::default() }
    }

    fn list(&self, datasets: &[String]) -> Result<Listing, SourceError> {
        let listing = Listing::read(&self.root, datasets)
            .map_err(|e| SourceError::Local(format!("cannot list {}: {e}", self.root.display())))?;
        for refused in &listing.refused {
            tracing::warn!(file = %refused, "Not an export file cxlake can place; left alone");
        }
        Ok(listing)
    }
}

impl Source for Sparkcentral {
    fn name(&self) -> &str {
        "sparkcentral"
    }

    fn timezone(&self) -> Option<chrono_tz::Tz> {
        Some(self.zone)
    }

    async fn plan_windows(
        &self,
        from: Option<NaiveDate>,
        to: NaiveDate,
        datasets: &[String],
        done: &BTreeMap<NaiveDate, String>,
    ) -> Result<Option<Vec<Window>>, SourceError> {
        let listing = self.list(datasets)?;
        let mut windows = Vec::new();
        let mut planned = self.planned.lock().expect("planned files lock");
        planned.clear();
        for (day, files) in listing.days {
            if from.is_some_and(|from| day < from) || day >= to {
                continue;
            }
            if done.get(&day) == Some(&Listing::fingerprint(&files)) {
                continue;
            }
            if let Some(file) = Listing::unsettled(&files, self.settle) {
                tracing::info!(day = %day, file = %file.name, "A file changed moments ago (still being written?); its day waits for the next run");
                continue;
            }
            windows.push(Window::new(day));
            planned.insert(day, files);
        }
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
            None => self.list(datasets)?.days.remove(&window.date).unwrap_or_default(),
        };
        let export_id = Listing::fingerprint(&files);
        let mut fetched = Vec::with_capacity(files.len());
        for file in &files {
            let path = spool.join(&file.name);
            let bytes = std::fs::copy(&file.path, &path)
                .map_err(|e| SourceError::Local(format!("cannot copy {}: {e}", file.path.display())))?;
            fetched.push(FetchedFile {
                dataset: file.parsed.dataset.to_string(),
                file_name: file.name.clone(),
                path,
                bytes,
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
