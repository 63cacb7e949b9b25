//! `cxlake status`: what a destination holds, read from its bookkeeping only (no data file is
//! listed or opened), per source and dataset: windows done, first and last day, gaps, rows,
//! files, bytes, and the last run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use futures::TryStreamExt;
use serde::Serialize;

use crate::report::RunReport;
use crate::sink::layout;
use crate::sink::{Destination, SinkError};
use crate::state::{StateStore, WindowRecord, WindowStatus};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DatasetStatus {
    pub windows_done: usize,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// Days between the first and last done day that are not done, as inclusive ranges.
    pub gaps: Vec<(NaiveDate, NaiveDate)>,
    pub rows: u64,
    pub rows_rejected: u64,
    pub files: usize,
    pub bytes: u64,
    /// The end of the newest done window: the data is complete up to here.
    pub complete_until: Option<chrono::DateTime<chrono::Utc>>,
    /// When a window of it was last committed.
    pub last_committed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How its data differs from its declaration (see `cxlake drift`).
    pub drift: DriftCounts,
}

/// A dataset's drift since its declaration, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriftCounts {
    pub undeclared_fields: usize,
    pub absent_columns: usize,
    pub kept_in_extra: u64,
    pub coerced: u64,
    pub duplicate_keys: u64,
    /// `none`, or e.g. `8 new, 2 absent, 280 kept`.
    pub summary: String,
}

impl DriftCounts {
    pub fn of(drift: &crate::drift::DatasetDrift) -> DriftCounts {
        DriftCounts {
            undeclared_fields: drift.undeclared.len(),
            absent_columns: drift.absent.len(),
            kept_in_extra: drift.kept_values(),
            coerced: drift.coerced_values(),
            duplicate_keys: drift.duplicate_rows(),
            summary: drift.short(),
        }
    }
}

impl DatasetStatus {
    /// How far behind the data is: from the end of its newest done window to `now`.
    pub fn age(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::Duration> {
        self.complete_until.map(|until| now - until)
    }
}

/// Renders an age as hours (or days past 72 h), e.g. `27h`, `5d`.
pub fn human_age(age: chrono::Duration) -> String {
    let hours = age.num_hours();
    if age < chrono::Duration::zero() {
        "0h".into()
    } else if hours > 72 {
        format!("{}d", age.num_days())
    } else {
        format!("{hours}h")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub datasets: BTreeMap<String, DatasetStatus>,
    /// Windows whose publishing was interrupted; the next run redoes them.
    pub interrupted: Vec<NaiveDate>,
    pub last_run: Option<RunSummary>,
    /// The raw archive behind the done windows.
    pub raw: RawSummary,
    /// Set while the current tables lag behind the history: a refresh failed.
    pub current_refresh_failed: Option<crate::current::RefreshFailure>,
    /// The zones the windows' days are counted in (`UTC` unless the source has `--timezone`).
    pub timezones: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawSummary {
    pub windows: usize,
    pub files: usize,
    /// Sizes as fetched and as stored (zstd).
    pub bytes: u64,
    pub stored_bytes: u64,
    /// Windows whose data landed under a PII policy while their raw files hold the personal
    /// data as fetched.
    pub personal_windows: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub committed: usize,
    pub not_committed: usize,
    /// Stopped by Ctrl-C or SIGTERM.
    pub interrupted: bool,
}

/// Collapses a set of missing days into inclusive ranges.
pub fn gap_ranges(done: &BTreeSet<NaiveDate>) -> Vec<(NaiveDate, NaiveDate)> {
    let mut gaps = Vec::new();
    let mut previous: Option<NaiveDate> = None;
    for &day in done {
        if let Some(prev) = previous {
            let after = prev + Days::new(1);
            if after < day {
                gaps.push((after, day - Days::new(1)));
            }
        }
        previous = Some(day);
    }
    gaps
}

pub async fn lake_status(dest: &Destination) -> Result<Vec<SourceStatus>, SinkError> {
    let state = StateStore::new(dest.clone());
    let runs = latest_runs(dest).await?;
    let mut out = Vec::new();
    for source in state.sources().await? {
        let records = state.load_windows(&source).await?;
        let last_run = runs.get(&source).map(|r| RunSummary {
            run_id: r.run_id.clone(),
            finished_at: r.finished_at,
            committed: r.committed(),
            not_committed: r.windows.len() - r.committed(),
            interrupted: r.interrupted,
        });
        let mut status = source_status(source.clone(), &records, last_run);
        for (dataset, d) in status.datasets.iter_mut() {
            let mut drift = crate::drift::dataset_drift(&source, dataset, &records);
            crate::drift::add_duplicate_keys(dest, &records, &mut drift).await?;
            d.drift = DriftCounts::of(&drift);
        }
        status.current_refresh_failed =
            state.get_json(&layout::current_refresh_failure_file(&source)).await?;
        out.push(status);
    }
    Ok(out)
}

/// One source's status from its window records.
pub fn source_status(source: String, records: &[WindowRecord], last_run: Option<RunSummary>) -> SourceStatus {
    let mut done_days: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
    let mut datasets: BTreeMap<String, DatasetStatus> = BTreeMap::new();
    let mut interrupted = Vec::new();
    let mut raw = RawSummary::default();
    let timezones = records.iter().map(|r| r.timezone.clone().unwrap_or_else(|| "UTC".into())).collect();
    for record in records {
        if record.status != WindowStatus::Done {
            interrupted.push(record.date);
            continue;
        }
        let archived: Vec<_> = record.datasets.values().flat_map(|d| &d.raw).collect();
        if !archived.is_empty() {
            raw.windows += 1;
            raw.files += archived.len();
            raw.bytes += archived.iter().map(|f| f.bytes).sum::<u64>();
            raw.stored_bytes += archived.iter().map(|f| f.stored_bytes).sum::<u64>();
            if record.datasets.values().any(|d| d.pii.is_some() && !d.raw.is_empty()) {
                raw.personal_windows += 1;
            }
        }
        for (name, d) in &record.datasets {
            done_days.entry(name.clone()).or_default().insert(record.date);
            let s = datasets.entry(name.clone()).or_default();
            s.windows_done += 1;
            s.rows += d.stats.rows_written;
            s.rows_rejected += d.stats.rows_rejected;
            s.files += d.files.len();
            s.bytes += d.bytes;
            s.complete_until = s.complete_until.max(Some(record.window_end));
            s.last_committed_at = s.last_committed_at.max(record.finished_at);
        }
    }
    for (name, days) in &done_days {
        let s = datasets.get_mut(name).expect("inserted together");
        s.first_day = days.first().copied();
        s.last_day = days.last().copied();
        s.gaps = gap_ranges(days);
        s.drift = DriftCounts::of(&crate::drift::dataset_drift(&source, name, records));
    }
    SourceStatus { source, datasets, interrupted, last_run, raw, current_refresh_failed: None, timezones }
}

/// The latest run report per source that did something. Run ids start with a UTC timestamp, so
/// they sort by time.
/// The newest `limit` run reports of the lake, newest first (run ids sort by start time).
pub async fn recent_runs(dest: &Destination, limit: usize) -> Result<Vec<RunReport>, SinkError> {
    let state = StateStore::new(dest.clone());
    let dir = dest.path(&layout::runs_dir());
    let mut names: Vec<String> = dest
        .store
        .list(Some(&dir))
        .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
        .try_collect()
        .await
        .map_err(|e| SinkError::store(&dir, e))?;
    names.sort();
    let mut reports = Vec::new();
    for name in names.iter().rev().take(limit) {
        let Some(run_id) = name.strip_suffix(".json") else { continue };
        if let Some(report) = state.get_json::<RunReport>(&layout::run_report_file(run_id)).await? {
            reports.push(report);
        }
    }
    Ok(reports)
}

async fn latest_runs(dest: &Destination) -> Result<BTreeMap<String, RunReport>, SinkError> {
    let mut latest = BTreeMap::new();
    // The newest 50: every source's latest run, with bounded work on old lakes.
    for report in recent_runs(dest, 50).await? {
        // A run that found nothing to do (a nightly run after the day was done) is not "the
        // last run" an operator looks for: the last one that did work is.
        let idle = report.windows.is_empty()
            && report.current.iter().all(|t| t.mode == crate::current::RefreshMode::Unchanged)
            && report.current_error.is_none()
            && report.fatal_error.is_none();
        if !idle {
            latest.entry(report.source.clone()).or_insert(report);
        }
    }
    Ok(latest)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn render(dest: &str, sources: &[SourceStatus]) -> String {
    if sources.is_empty() {
        return format!("{dest}: no cxlake data yet (nothing under _cxlake/state)\n");
    }
    let mut out = String::new();
    for s in sources {
        out.push_str(&format!("{dest} · {}\n", s.source));
        out.push_str(&format!(
            "  {:<11} {:>7} {:<10} {:<10} {:>5} {:>11} {:>8} {:>6} {:>10}  {:<22} {}\n",
            "dataset",
            "windows",
            "first",
            "last",
            "age",
            "rows",
            "rejected",
            "files",
            "bytes",
            "drift",
            "gaps"
        ));
        for (name, d) in &s.datasets {
            let gaps = if d.gaps.is_empty() {
                "none".to_string()
            } else {
                d.gaps
                    .iter()
                    .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}..{b}") })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let day = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
            let rows = if d.rows == 0 { "0 rows".to_string() } else { d.rows.to_string() };
            let age = d.age(chrono::Utc::now()).map(human_age).unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "  {:<11} {:>7} {:<10} {:<10} {:>5} {:>11} {:>8} {:>6} {:>10}  {:<22} {}\n",
                name,
                d.windows_done,
                day(d.first_day),
                day(d.last_day),
                age,
                rows,
                d.rows_rejected,
                d.files,
                human_bytes(d.bytes),
                d.drift.summary,
                gaps
            ));
        }
        if s.timezones.iter().any(|z| z != "UTC") {
            let zones: Vec<&str> = s.timezones.iter().map(String::as_str).collect();
            out.push_str(&format!(
                "  days: local days of {} (each window and date=D partition is that zone's day)\n",
                zones.join(", ")
            ));
        }
        if s.datasets.values().any(|d| d.drift.summary != "none") {
            out.push_str(&format!(
                "  drift: the data differs from its declaration (nothing lost); `cxlake drift --dest {dest} --source {}` lists it and the fix\n",
                s.source
            ));
        }
        if let Some(failure) = &s.current_refresh_failed {
            out.push_str(&format!(
                "  current tables: NOT up to date — the refresh of run {} failed at {} ({}); the next run (or `cxlake current`) refreshes them\n",
                failure.run_id,
                failure.failed_at.format("%Y-%m-%d %H:%M:%S UTC"),
                failure.error
            ));
        }
        if s.raw.files == 0 {
            out.push_str("  raw archive: none (windows cannot be replayed)\n");
        } else {
            out.push_str(&format!(
                "  raw archive: {} file(s) of {} window(s), {} stored ({} as fetched); `cxlake replay {}` rebuilds from it\n",
                s.raw.files,
                s.raw.windows,
                human_bytes(s.raw.stored_bytes),
                human_bytes(s.raw.bytes),
                s.source
            ));
            if s.raw.personal_windows > 0 {
                out.push_str(&format!(
                    "  raw files of {} window(s) hold personal data as fetched, though their data landed hashed or dropped: prune them with `cxlake vacuum --raw-older-than`\n",
                    s.raw.personal_windows
                ));
            }
        }
        if !s.interrupted.is_empty() {
            let days: Vec<String> = s.interrupted.iter().map(|d| d.to_string()).collect();
            out.push_str(&format!(
                "  interrupted while publishing (redone by the next run): {}\n",
                days.join(", ")
            ));
        }
        match &s.last_run {
            Some(r) => out.push_str(&format!(
                "  last run: {} {} {} — {} window(s) committed, {} not\n",
                r.run_id,
                if r.interrupted { "INTERRUPTED at" } else { "finished" },
                r.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
                r.committed,
                r.not_committed
            )),
            None => out.push_str("  last run: none recorded\n"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn gaps_are_collapsed_into_ranges() {
        let done: BTreeSet<_> =
            ["2024-01-01", "2024-01-02", "2024-01-05", "2024-01-07"].iter().map(|s| d(s)).collect();
        assert_eq!(
            gap_ranges(&done),
            vec![(d("2024-01-03"), d("2024-01-04")), (d("2024-01-06"), d("2024-01-06"))]
        );
        assert!(gap_ranges(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn bytes_read_like_a_human_wrote_them() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
