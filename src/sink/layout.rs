//! The lake's directory layout. Consumers depend on it, so it is defined here once:
//!
//! ```text
//! <dest>/<source>/<dataset>/date=YYYY-MM-DD/part-NNNNN.parquet     data (Hive partitioned; --format parquet)
//! <dest>/<source>/<dataset>/_delta_log/…                            the table's log (--format delta)
//! <dest>/<source>/<dataset>/date=YYYY-MM-DD/part-NNNNN-<run-id>.parquet   data files of a Delta table
//! <dest>/<source>_current/<dataset>/part-NNNNN-<run-id>.parquet       current tables: one row per primary key
//! <dest>/_cxlake/views.sql                                          DuckDB views over history and current tables
//! <dest>/_cxlake/current/<source>/<dataset>/manifest.json          what a current table holds: windows, segments
//! <dest>/_cxlake/current/<source>/<dataset>/<segment>.keys         a segment's key filter (which keys its files hold)
//! <dest>/_cxlake/state/<source>/date=YYYY-MM-DD.json                  one record per window
//! <dest>/_cxlake/runs/<run-id>.json                                   one report per run
//! <dest>/_cxlake/rejects/<source>/<dataset>/date=YYYY-MM-DD/<run-id>.csv   quarantined rows
//! <dest>/_cxlake/staging/<run-id>/…                                   files not yet committed
//! <dest>/_cxlake/exports/<source>/date=YYYY-MM-DD.json                export created for a window not yet committed
//! <dest>/_cxlake/leases/<name>/lease-<generation>.json                who holds a window, a table, the lake
//! ```
//!
//! Names starting with `_` are skipped by Spark, Hive and DuckDB globs over `<dest>/<source>/…`,
//! so bookkeeping never shows up as data. Every component is validated before it gets here:
//! sources and datasets are lowercase identifiers, dates are `NaiveDate`s, run ids are UUIDs.

use chrono::NaiveDate;

pub const BOOKKEEPING_DIR: &str = "_cxlake";

/// True for names that are safe as one path component: `[a-z0-9_]+`, not starting with `_`.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('_')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A dataset's history: its partitions, or its Delta table.
pub fn dataset_dir(source: &str, dataset: &str) -> String {
    debug_assert!(is_identifier(source) && is_identifier(dataset));
    format!("{source}/{dataset}")
}

/// A dataset's current table: the latest row per primary key.
pub fn current_dir(source: &str, dataset: &str) -> String {
    debug_assert!(is_identifier(source) && is_identifier(dataset));
    format!("{source}_current/{dataset}")
}

/// A current table's bookkeeping: its manifest and its segments' key filters.
pub fn current_state_dir(source: &str, dataset: &str) -> String {
    debug_assert!(is_identifier(source) && is_identifier(dataset));
    format!("{BOOKKEEPING_DIR}/current/{source}/{dataset}")
}

pub fn current_manifest_file(source: &str, dataset: &str) -> String {
    format!("{}/manifest.json", current_state_dir(source, dataset))
}

/// `segment` is `<date>-<run-id>`: unique per refresh and date.
pub fn current_key_filter_file(source: &str, dataset: &str, segment: &str) -> String {
    format!("{}/{segment}.keys", current_state_dir(source, dataset))
}

/// The DuckDB views file.
/// A copy of a declaration a window of the lake was written with, by its fingerprint.
pub fn declaration_file(source: &str, dataset: &str, fingerprint: &str) -> String {
    format!("{BOOKKEEPING_DIR}/declarations/{source}/{dataset}/{fingerprint}.toml")
}

/// Set while a source's current tables are out of date because their refresh failed.
pub fn current_refresh_failure_file(source: &str) -> String {
    format!("{BOOKKEEPING_DIR}/current/{source}/refresh-failed.json")
}

pub fn views_file() -> String {
    format!("{BOOKKEEPING_DIR}/views.sql")
}

pub fn partition_dir(source: &str, dataset: &str, date: NaiveDate) -> String {
    debug_assert!(is_identifier(source) && is_identifier(dataset));
    format!("{source}/{dataset}/date={date}")
}

pub fn part_file_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

/// A part file name no other run uses: Delta tables keep older versions' files until vacuum.
pub fn unique_part_file_name(index: usize, run_id: &str) -> String {
    format!("part-{index:05}-{run_id}.parquet")
}

pub fn staging_dir(run_id: &str, source: &str, dataset: &str, date: NaiveDate) -> String {
    format!("{BOOKKEEPING_DIR}/staging/{run_id}/{}", partition_dir(source, dataset, date))
}

pub fn staging_root() -> String {
    format!("{BOOKKEEPING_DIR}/staging")
}

pub fn window_state_dir(source: &str) -> String {
    format!("{BOOKKEEPING_DIR}/state/{source}")
}

pub fn window_state_file(source: &str, date: NaiveDate) -> String {
    format!("{}/date={date}.json", window_state_dir(source))
}

pub fn export_intent_file(source: &str, date: NaiveDate) -> String {
    format!("{BOOKKEEPING_DIR}/exports/{source}/date={date}.json")
}

pub fn runs_dir() -> String {
    format!("{BOOKKEEPING_DIR}/runs")
}

pub fn run_report_file(run_id: &str) -> String {
    format!("{}/{run_id}.json", runs_dir())
}

pub fn rejects_file(source: &str, dataset: &str, date: NaiveDate, run_id: &str) -> String {
    format!("{BOOKKEEPING_DIR}/rejects/{}/{run_id}.csv", partition_dir(source, dataset, date))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_exactly_as_documented() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 9).unwrap();
        assert_eq!(
            format!("{}/{}", partition_dir("saltedcx", "turn", d), part_file_name(7)),
            "saltedcx/turn/date=2024-03-09/part-00007.parquet"
        );
        assert_eq!(window_state_file("saltedcx", d), "_cxlake/state/saltedcx/date=2024-03-09.json");
        assert_eq!(
            rejects_file("saltedcx", "turn", d, "r1"),
            "_cxlake/rejects/saltedcx/turn/date=2024-03-09/r1.csv"
        );
    }

    #[test]
    fn identifiers_cannot_escape_the_destination() {
        for bad in ["", "..", "a/b", "_cxlake", "Turn", "a.b", "a b"] {
            assert!(!is_identifier(bad), "{bad}");
        }
        assert!(is_identifier("engagement_fact"));
    }
}
