//! `cxlake replay`: windows rebuilt from the raw archive, with no call to the platform. A
//! [`Replay`] is a [`Source`] whose files are each window's archived ones, restored into the
//! spool and checked against the SHA-256 their record holds, so decoding, staging, commit, lock,
//! quarantine, report and current tables are exactly a sync's: after a schema change or a fix,
//! the lake becomes what a fresh sync with the new schema would have made of the same files.
//! Also the archive's pruning (`cxlake vacuum --raw-older-than`), which keeps the window records
//! true to what is left.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;

use crate::sink::raw::{self, RawFile};
use crate::sink::{commit, Destination, SinkError};
use crate::sources::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use crate::state::{StateStore, WindowRecord, WindowStatus};
use crate::window::Window;

/// The archived files of a source's windows, as a source.
#[derive(Debug)]
pub struct Replay {
    source: String,
    dest: Destination,
    records: BTreeMap<NaiveDate, WindowRecord>,
    timezone: Option<chrono_tz::Tz>,
}

/// What a replay will do: the windows it rebuilds, and those it cannot, with the reason.
#[derive(Debug)]
pub struct ReplayPlan {
    pub replay: Replay,
    pub windows: Vec<Window>,
    pub skipped: Vec<(NaiveDate, String)>,
}

impl Replay {
    /// Plans the replay of `source`'s done windows within `[from, to)` for `datasets`, from
    /// its window `records`. `timezone` overrides the zone each window was read in.
    pub fn plan(
        source: &str,
        dest: Destination,
        records: Vec<WindowRecord>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        datasets: &[String],
        timezone: Option<chrono_tz::Tz>,
    ) -> Result<ReplayPlan, String> {
        let mut windows = Vec::new();
        let mut skipped = Vec::new();
        let mut kept = BTreeMap::new();
        let mut zones = std::collections::BTreeSet::new();
        for record in records {
            if from.is_some_and(|from| record.date < from) || to.is_some_and(|to| record.date >= to) {
                continue;
            }
            if record.status != WindowStatus::Done {
                skipped.push((record.date, "not done (a run began it and did not finish): sync it".into()));
                continue;
            }
            if record.filter.is_some() {
                skipped.push((record.date, "holds a filtered export (a contact, agents, tags…)".into()));
                continue;
            }
            let without: Vec<&str> = datasets
                .iter()
                .filter(|d| record.datasets.get(*d).is_some_and(|r| r.raw.is_empty()))
                .map(String::as_str)
                .collect();
            let with = datasets
                .iter()
                .filter(|d| record.datasets.get(*d).is_some_and(|r| !r.raw.is_empty()))
                .count();
            if with == 0 {
                skipped.push((
                    record.date,
                    "has no raw files (fetched with --raw off, or pruned by vacuum)".into(),
                ));
                continue;
            }
            if !without.is_empty() {
                skipped.push((record.date, format!("{} kept as they are: no raw files", without.join(", "))));
            }
            if let Some(zone) = &record.timezone {
                zones.insert(zone.clone());
            }
            windows.push(Window::new(record.date));
            kept.insert(record.date, record);
        }
        let timezone = match timezone {
            Some(zone) => Some(zone),
            None if zones.len() > 1 => {
                return Err(format!(
                    "the windows were read in different zones ({}); pass --timezone",
                    zones.into_iter().collect::<Vec<_>>().join(", ")
                ))
            }
            None => match zones.into_iter().next() {
                Some(name) => Some(name.parse().map_err(|_| format!("recorded zone `{name}` is unknown"))?),
                None => None,
            },
        };
        let replay = Replay { source: source.to_string(), dest, records: kept, timezone };
        Ok(ReplayPlan { replay, windows, skipped })
    }
}

impl Source for Replay {
    fn name(&self) -> &str {
        &self.source
    }

    fn timezone(&self) -> Option<chrono_tz::Tz> {
        self.timezone
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &Path,
        _journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let record = self
            .records
            .get(&window.date)
            .ok_or_else(|| SourceError::Local(format!("window {} has no record to replay", window.date)))?;
        let mut files = Vec::new();
        let mut absent = Vec::new();
        for dataset in datasets {
            let archived: &[RawFile] =
                record.datasets.get(dataset).map(|d| d.raw.as_slice()).unwrap_or_default();
            if archived.is_empty() {
                absent.push(dataset.clone());
                continue;
            }
            for (index, file) in archived.iter().enumerate() {
                let local = spool.join(format!("{dataset}-{index:05}"));
                raw::restore(&self.dest, file, &local)
                    .await
                    .map_err(|e| SourceError::Local(format!("restoring {}: {e}", file.path)))?;
                files.push(FetchedFile {
                    fold: file.fold,
                    facts: file.facts.clone(),
                    ..FetchedFile::new(dataset.clone(), file.file_name.clone(), local, file.bytes)
                });
            }
        }
        Ok(FetchedWindow { export_id: record.export_id.clone(), files, absent })
    }
}

/// What pruning the archive removed (or would remove).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub windows: usize,
    pub files: usize,
    pub stored_bytes: u64,
}

/// Removes the raw files of `source`'s windows dated before `before`. Each window's record is
/// saved without them first, then the files are deleted: a crash in between leaves unlisted
/// files (deleted by the next prune), never a record that lists missing ones. The caller holds
/// the lake lease.
pub async fn prune_archive(
    dest: &Destination,
    source: &str,
    before: NaiveDate,
    dry_run: bool,
) -> Result<Pruned, SinkError> {
    let state = StateStore::new(dest.clone());
    let mut pruned = Pruned::default();
    for mut record in state.load_windows(source).await? {
        if record.date >= before {
            continue;
        }
        let listed: Vec<&RawFile> = record.datasets.values().flat_map(|d| &d.raw).collect();
        let dirs: Vec<String> =
            record.datasets.keys().map(|d| raw::raw_dir(source, d, record.date)).collect();
        let mut leftovers = 0;
        for dir in &dirs {
            leftovers += commit::list_files(dest, dir).await?.len();
        }
        if listed.is_empty() && leftovers == 0 {
            continue;
        }
        pruned.windows += 1;
        pruned.files += listed.len().max(leftovers);
        pruned.stored_bytes += listed.iter().map(|f| f.stored_bytes).sum::<u64>();
        if dry_run {
            continue;
        }
        if !listed.is_empty() {
            for dataset in record.datasets.values_mut() {
                dataset.raw.clear();
            }
            state.save_window(&record).await?;
        }
        for dir in &dirs {
            commit::delete_dir(dest, dir).await?;
        }
    }
    Ok(pruned)
}
