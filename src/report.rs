//! The run report: what a run did to each window, kept in `<dest>/_cxlake/runs/<run-id>.json`,
//! printed as a table at the end, and turned into the process exit code.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::current::CurrentReport;
use crate::decode::DecodeStats;

/// Process exit codes, documented in the README.
pub mod exit_code {
    /// Every window committed.
    pub const OK: i32 = 0;
    /// Some windows failed (or exceeded --max-rejects); the others are committed.
    pub const PARTIAL: i32 = 1;
    /// Usage, configuration or authentication error: nothing was attempted.
    pub const USAGE: i32 = 2;
    /// Another run holds what this run needed (a window, a table, the lake) past `--lease-wait`.
    pub const LOCKED: i32 = 3;
    /// `status --max-age`: a dataset's newest done window is older than allowed.
    pub const STALE: i32 = 4;
    /// Stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it): the windows in flight
    /// finished, the others were not started.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowOutcome {
    Committed,
    Failed,
    /// Not attempted because the run stopped early (e.g. the API key was rejected).
    Skipped,
    /// Another run committed it while this run was running (or before, with `--skip-done`):
    /// left as it is, not done twice.
    DoneByOtherRun,
    /// Another live run still held it when `--lease-wait` ran out.
    Held,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetReport {
    #[serde(flatten)]
    pub stats: DecodeStats,
    pub files: usize,
    pub bytes: u64,
    /// Seconds spent decoding and staging it.
    #[serde(default)]
    pub seconds: f64,
    /// Fields the declaration lacks, declared columns the files lacked, values converted without
    /// loss and values kept in `_extra` because they did not fit.
    #[serde(default)]
    pub undeclared_fields: usize,
    #[serde(default)]
    pub absent_columns: usize,
    #[serde(default)]
    pub coerced: u64,
    #[serde(default)]
    pub kept_in_extra: u64,
}

impl DatasetReport {
    pub fn new(
        stats: DecodeStats,
        files: usize,
        bytes: u64,
        seconds: f64,
        drift: &crate::decode::Drift,
    ) -> Self {
        DatasetReport {
            stats,
            files,
            bytes,
            seconds,
            undeclared_fields: drift.undeclared.len(),
            absent_columns: drift.absent.len(),
            coerced: drift.coerced_values(),
            kept_in_extra: drift.kept_values(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub date: NaiveDate,
    pub outcome: WindowOutcome,
    pub export_id: Option<String>,
    pub seconds: f64,
    pub datasets: BTreeMap<String, DatasetReport>,
    pub error: Option<String>,
}

impl WindowReport {
    /// A window that was not attempted, or stopped by a failure that stops the whole run.
    pub fn skipped(date: NaiveDate, error: Option<String>) -> WindowReport {
        WindowReport {
            date,
            outcome: WindowOutcome::Skipped,
            export_id: None,
            seconds: 0.0,
            datasets: BTreeMap::new(),
            error,
        }
    }

    /// A window another run committed: nothing to do.
    pub fn done_by(date: NaiveDate, run_id: String) -> WindowReport {
        WindowReport {
            outcome: WindowOutcome::DoneByOtherRun,
            error: Some(format!("done by run {run_id}")),
            ..WindowReport::skipped(date, None)
        }
    }

    /// A window another run is working on.
    pub fn held(date: NaiveDate, holder: String) -> WindowReport {
        WindowReport { outcome: WindowOutcome::Held, ..WindowReport::skipped(date, Some(holder)) }
    }

    /// Whether the window is done in the lake after this run (by it or by another).
    pub fn is_done(&self) -> bool {
        matches!(self.outcome, WindowOutcome::Committed | WindowOutcome::DoneByOtherRun)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub source: String,
    pub dest: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub windows: Vec<WindowReport>,
    /// Set when the run stopped before trying every window.
    pub fatal_error: Option<String>,
    /// Current tables rebuilt after the windows were committed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current: Vec<CurrentReport>,
    /// Set when the current tables could not be rebuilt (the history is committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_error: Option<String>,
    /// Stopped by Ctrl-C or SIGTERM: the windows not started are `skipped`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// What the run was allowed to hold and what the process held, up to the report's writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
}

/// The memory budget against the process's use of memory (peaks since the process started, so
/// the second source of a `sync` of several reports the first one's peak if it was higher).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// `--memory-budget`.
    pub budget_mib: u32,
    /// The most the budget had handed out at one time.
    pub peak_reserved_mib: u32,
    /// The most bytes allocated at one time (the counting allocator; 0 if not installed).
    pub peak_heap_mib: u64,
    /// The process's peak resident set (`getrusage`).
    pub peak_rss_mib: u64,
}

impl MemoryReport {
    pub fn now(budget: &crate::budget::MemoryBudget) -> MemoryReport {
        MemoryReport {
            budget_mib: budget.total_mib(),
            peak_reserved_mib: budget.peak_reserved_mib(),
            peak_heap_mib: (crate::heap::peak() >> 20) as u64,
            peak_rss_mib: crate::heap::peak_rss() >> 20,
        }
    }
}

impl RunReport {
    pub fn committed(&self) -> usize {
        self.windows.iter().filter(|w| w.outcome == WindowOutcome::Committed).count()
    }

    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            exit_code::INTERRUPTED
        } else if self.fatal_error.is_some() && self.committed() == 0 {
            exit_code::USAGE
        } else if self.windows.iter().any(|w| !w.is_done() && w.outcome != WindowOutcome::Held)
            || self.fatal_error.is_some()
            || self.current_error.is_some()
        {
            exit_code::PARTIAL
        } else if self.windows.iter().any(|w| w.outcome == WindowOutcome::Held) {
            exit_code::LOCKED
        } else {
            exit_code::OK
        }
    }

    /// Rows written per dataset over all committed windows.
    pub fn rows_by_dataset(&self) -> BTreeMap<String, (u64, usize, u64)> {
        let mut totals: BTreeMap<String, (u64, usize, u64)> = BTreeMap::new();
        for window in self.windows.iter().filter(|w| w.outcome == WindowOutcome::Committed) {
            for (name, d) in &window.datasets {
                let t = totals.entry(name.clone()).or_default();
                t.0 += d.stats.rows_written;
                t.1 += d.files;
                t.2 += d.bytes;
            }
        }
        totals
    }

    /// A plain-text summary for the terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("run {} → {}\n", self.run_id, self.dest));
        out.push_str(&format!(
            "{:<12} {:<10} {:>9} {:>9} {:>7}  {}\n",
            "window", "outcome", "rows", "rejected", "secs", "detail"
        ));
        for w in &self.windows {
            let rows: u64 = w.datasets.values().map(|d| d.stats.rows_written).sum();
            let rejected: u64 = w.datasets.values().map(|d| d.stats.rows_rejected).sum();
            let outcome = match w.outcome {
                WindowOutcome::Committed => "committed",
                WindowOutcome::Failed => "FAILED",
                WindowOutcome::Skipped => "skipped",
                WindowOutcome::DoneByOtherRun => "done",
                WindowOutcome::Held => "HELD",
            };
            let mut detail = w
                .error
                .clone()
                .unwrap_or_else(|| w.export_id.clone().map(|e| format!("export {e}")).unwrap_or_default());
            // Values that did not fit their column landed null, kept exactly in `_extra`.
            let kept: u64 = w.datasets.values().map(|d| d.kept_in_extra).sum();
            if kept > 0 {
                detail.push_str(&format!(
                    "{}{kept} value(s) kept in _extra",
                    if detail.is_empty() { "" } else { "; " }
                ));
            }
            out.push_str(&format!(
                "{:<12} {:<10} {:>9} {:>9} {:>7.1}  {}\n",
                w.date.to_string(),
                outcome,
                rows,
                rejected,
                w.seconds,
                detail
            ));
        }
        if let Some(error) = &self.fatal_error {
            out.push_str(&format!("run stopped: {error}\n"));
        }
        for table in &self.current {
            out.push_str(&table.summary());
            out.push('\n');
        }
        if let Some(error) = &self.current_error {
            out.push_str(&format!("current tables NOT refreshed: {error}\n"));
        }
        let elsewhere = self.windows.iter().filter(|w| w.outcome == WindowOutcome::DoneByOtherRun).count();
        let failed = self.windows.len() - self.committed() - elsewhere;
        let by_others =
            if elsewhere > 0 { format!(", {elsewhere} done by other runs") } else { String::new() };
        out.push_str(&format!("{} window(s) committed{by_others}, {} not\n", self.committed(), failed));
        if self.interrupted {
            let waiting: Vec<NaiveDate> = self
                .windows
                .iter()
                .filter(|w| w.outcome == WindowOutcome::Skipped || w.outcome == WindowOutcome::Failed)
                .map(|w| w.date)
                .collect();
            out.push_str("interrupted: the windows in flight finished; no other was started.");
            if let (Some(first), Some(last)) = (waiting.first(), waiting.last()) {
                let end = last.succ_opt().unwrap_or(*last);
                out.push_str(&format!(
                    " Resume without redoing what is done: cxlake sync {} --dest {} --from {first} --to {end} --skip-done",
                    self.source, self.dest
                ));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(outcome: WindowOutcome) -> WindowReport {
        WindowReport {
            date: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            outcome,
            export_id: None,
            seconds: 0.0,
            datasets: BTreeMap::new(),
            error: None,
        }
    }

    fn report(windows: Vec<WindowReport>, fatal: Option<&str>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            source: "saltedcx".into(),
            dest: "d".into(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            windows,
            fatal_error: fatal.map(str::to_string),
            current: Vec::new(),
            current_error: None,
            interrupted: false,
            memory: None,
        }
    }

    #[test]
    fn exit_code_says_what_happened() {
        assert_eq!(report(vec![window(WindowOutcome::Committed)], None).exit_code(), 0);
        assert_eq!(report(vec![], None).exit_code(), 0);
        let partial = vec![window(WindowOutcome::Committed), window(WindowOutcome::Failed)];
        assert_eq!(report(partial, None).exit_code(), 1);
        assert_eq!(report(vec![window(WindowOutcome::Skipped)], Some("401")).exit_code(), 2);
        let late_fatal = vec![window(WindowOutcome::Committed), window(WindowOutcome::Skipped)];
        assert_eq!(report(late_fatal, Some("401")).exit_code(), 1);
        let shared = vec![window(WindowOutcome::Committed), window(WindowOutcome::DoneByOtherRun)];
        assert_eq!(report(shared, None).exit_code(), 0, "another run's window is done");
        let held = vec![window(WindowOutcome::Committed), window(WindowOutcome::Held)];
        assert_eq!(report(held, None).exit_code(), 3);
    }
}
