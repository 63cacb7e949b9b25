//! `--metrics-file`: the run's outcome in the Prometheus text format, written at the end of a
//! run for node_exporter's textfile collector (written to a temporary file beside it and
//! renamed, so the collector never reads half a file).
//!
//! Every series is a gauge describing the last run, labelled by source (and dataset); the
//! freshness series (`cxlake_last_success_timestamp_seconds`) come from the lake's window
//! records, so they hold even when this run had nothing to do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::report::{RunReport, WindowOutcome};

/// What a process observed, for the metrics file.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub reports: Vec<RunReport>,
    /// Sources that could not run at all (configuration, credentials).
    pub failed_sources: Vec<String>,
    /// Per (source, dataset): when its newest done window was committed.
    pub last_success: BTreeMap<(String, String), DateTime<Utc>>,
    /// Per (source, dataset): how its data differs from its declaration, from the lake.
    pub drift: BTreeMap<(String, String), crate::status::DriftCounts>,
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }
}

/// The metrics as Prometheus text.
pub fn render(observed: &Observed) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    // Per dataset: rows, rejects, bytes, seconds over the windows this run committed.
    let mut datasets: BTreeMap<(String, String), (u64, u64, u64, f64)> = BTreeMap::new();
    for report in &observed.reports {
        for window in report.windows.iter().filter(|w| w.outcome == WindowOutcome::Committed) {
            for (name, d) in &window.datasets {
                let entry = datasets.entry((report.source.clone(), name.clone())).or_default();
                entry.0 += d.stats.rows_written;
                entry.1 += d.stats.rows_rejected;
                entry.2 += d.bytes;
                entry.3 += d.seconds;
            }
        }
    }
    type Pick = fn(&(u64, u64, u64, f64)) -> f64;
    let per_dataset: [(&str, &str, Pick); 4] = [
        ("cxlake_rows_written", "Rows written by the last run.", |d| d.0 as f64),
        ("cxlake_rows_rejected", "Rows quarantined by the last run.", |d| d.1 as f64),
        ("cxlake_bytes_written", "Parquet bytes written by the last run.", |d| d.2 as f64),
        ("cxlake_dataset_seconds", "Seconds spent decoding and writing the dataset in the last run.", |d| {
            d.3
        }),
    ];
    for (name, help, pick) in per_dataset {
        f.header(name, help);
        for ((source, dataset), d) in &datasets {
            f.sample(name, &[("source", source), ("dataset", dataset)], pick(d));
        }
    }
    f.header("cxlake_windows", "Windows of the last run by outcome.");
    for report in &observed.reports {
        let mut counts: BTreeMap<&str, usize> =
            ["committed", "failed", "skipped", "done_by_other_run", "held"].iter().map(|o| (*o, 0)).collect();
        for window in &report.windows {
            let outcome = match window.outcome {
                WindowOutcome::Committed => "committed",
                WindowOutcome::Failed => "failed",
                WindowOutcome::Skipped => "skipped",
                WindowOutcome::DoneByOtherRun => "done_by_other_run",
                WindowOutcome::Held => "held",
            };
            *counts.entry(outcome).or_default() += 1;
        }
        for (outcome, n) in counts {
            f.sample("cxlake_windows", &[("source", &report.source), ("outcome", outcome)], n as f64);
        }
    }
    f.header("cxlake_run_seconds", "Wall time of the last run of the source.");
    for report in &observed.reports {
        let seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
        f.sample("cxlake_run_seconds", &[("source", &report.source)], seconds);
    }
    f.header("cxlake_run_success", "1 if the last run of the source did everything it was asked, else 0.");
    for report in &observed.reports {
        let ok = report.exit_code() == crate::report::exit_code::OK;
        f.sample("cxlake_run_success", &[("source", &report.source)], if ok { 1.0 } else { 0.0 });
    }
    for source in &observed.failed_sources {
        f.sample("cxlake_run_success", &[("source", source)], 0.0);
    }
    f.header("cxlake_run_timestamp_seconds", "When the last run of the source finished (Unix time).");
    for report in &observed.reports {
        f.sample("cxlake_run_timestamp_seconds", &[("source", &report.source)], unix(report.finished_at));
    }
    f.header(
        "cxlake_last_success_timestamp_seconds",
        "When the dataset's newest done window was committed (Unix time).",
    );
    for ((source, dataset), at) in &observed.last_success {
        f.sample(
            "cxlake_last_success_timestamp_seconds",
            &[("source", source), ("dataset", dataset)],
            unix(*at),
        );
    }
    type Drift = fn(&crate::status::DriftCounts) -> f64;
    let drift: [(&str, &str, Drift); 5] = [
        ("cxlake_undeclared_fields", "Fields in the data its declaration lacks (cxlake drift).", |d| {
            d.undeclared_fields as f64
        }),
        ("cxlake_absent_columns", "Declared columns no file since the declaration carried.", |d| {
            d.absent_columns as f64
        }),
        (
            "cxlake_values_kept_in_extra",
            "Values that did not fit their column, kept exactly in _extra.",
            |d| d.kept_in_extra as f64,
        ),
        ("cxlake_values_coerced", "Values converted without loss (a list as text, 5.0 as 5, …).", |d| {
            d.coerced as f64
        }),
        ("cxlake_duplicate_key_rows", "History rows sharing a key and version within their window.", |d| {
            d.duplicate_keys as f64
        }),
    ];
    for (name, help, pick) in drift {
        f.header(name, help);
        for ((source, dataset), d) in &observed.drift {
            f.sample(name, &[("source", source), ("dataset", dataset)], pick(d));
        }
    }
    out
}

fn unix(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, then a rename.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new().prefix(".cxlake-metrics-").suffix(".tmp").tempfile_in(dir)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.as_file().sync_all()?;
    // Readable by the collector, like any metrics file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_failed_source_reports_no_success() {
        let text = render(&Observed { failed_sources: vec!["dixa".into()], ..Observed::default() });
        assert!(text.contains("cxlake_run_success{source=\"dixa\"} 0"), "{text}");
        assert!(text.contains("# TYPE cxlake_run_success gauge"), "{text}");
    }
}
