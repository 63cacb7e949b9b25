//! Exports that are not what the schema expects, through the whole pipeline: a source that
//! serves fixed files stands in for the platform, so every byte of the input is chosen here.

use std::collections::BTreeMap;

use cxlake::pipeline::{run_sync, NewColumnPolicy, RejectLimit, SyncPlan};
use cxlake::report::WindowOutcome;
use cxlake::sources::saltedcx::api;
use cxlake::sources::{ExportJournal, FetchedFile, FetchedWindow, Source, SourceError};
use cxlake::window::Window;

use crate::common::*;

/// Serves the same bytes per dataset for every window.
struct FixedFiles(BTreeMap<&'static str, Vec<u8>>);

impl Source for FixedFiles {
    fn name(&self) -> &'static str {
        "saltedcx"
    }

    async fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &std::path::Path,
        _journal: &J,
    ) -> Result<FetchedWindow, SourceError> {
        let mut files = Vec::new();
        for dataset in datasets {
            let file_name = api::file_name(dataset).unwrap().to_string();
            let path = spool.join(format!("{window}-{file_name}"));
            let bytes = self.0.get(dataset.as_str()).cloned().unwrap_or_default();
            std::fs::write(&path, &bytes).unwrap();
            files.push(FetchedFile::new(dataset.clone(), file_name, path, bytes.len() as u64));
        }
        Ok(FetchedWindow::new(None, files))
    }
}

fn fixed_plan(lake: &std::path::Path, agents: &[u8]) -> SyncPlan<FixedFiles> {
    let schema = all_schemas().into_iter().find(|s| s.dataset == "agent").unwrap();
    plan_with(FixedFiles([("agent", agents.to_vec())].into()), lake, vec![schema], days("2024-03-01", 1))
}

fn column(lake: &std::path::Path, name: &str) -> Vec<Cell> {
    let batches = read_partition(lake, "agent", date("2024-03-01"));
    let index = batches[0].schema().index_of(name).unwrap();
    batch_rows(&batches).into_iter().map(|row| row[index].clone()).collect()
}

fn text(s: &str) -> Cell {
    Cell::Text(s.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bom_crlf_quoted_newlines_and_reordered_columns_are_handled_silently() {
    let lake = tempfile::tempdir().unwrap();
    let csv = "\u{feff}name,hourly_cost,pid,manager\r\n\"Ada, \"\"the\"\" first\",12.5,a1,\"line one\r\nline two\"\r\nBob,,b2,\r\n";
    let report = run_sync(&fixed_plan(lake.path(), csv.as_bytes())).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(column(lake.path(), "pid"), [text("a1"), text("b2")]);
    assert_eq!(column(lake.path(), "name"), [text("Ada, \"the\" first"), text("Bob")]);
    assert_eq!(column(lake.path(), "manager"), [text("line one\r\nline two"), Cell::Null]);
    assert_eq!(column(lake.path(), "hourly_cost"), [Cell::Float(12.5f64.to_bits()), Cell::Null]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_and_header_only_files_commit_empty_windows_shown_as_0_rows() {
    for input in [&b""[..], &b"pid,name,team\r\n"[..]] {
        let lake = tempfile::tempdir().unwrap();
        let report = run_sync(&fixed_plan(lake.path(), input)).await.unwrap();
        assert_eq!(report.windows[0].outcome, WindowOutcome::Committed, "{}", report.render());
        assert_eq!(report.windows[0].datasets["agent"].stats.rows_read, 0);
        assert!(data_files(lake.path()).is_empty(), "no empty Parquet files");
        let status = run_cxlake(&["status", "--dest", lake.path().to_str().unwrap()], NO_ENV).await;
        assert!(status.stdout.contains("0 rows"), "{}", status.stdout);
        assert!(status.stdout.contains("agent") && status.stdout.contains("2024-03-01"), "{}", status.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_warns_or_fails_as_configured() {
    let csv = b"pid,name,shoe_size\r\na1,Ada,38\r\n";
    // Default: the new column is reported and skipped; the missing nullable ones load as nulls.
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&fixed_plan(lake.path(), csv)).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(column(lake.path(), "team"), [Cell::Null]);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lake.path().join("_cxlake/state/saltedcx/date=2024-03-01.json")).unwrap(),
    )
    .unwrap();
    // Recorded once per window as drift: the undeclared column (not loaded: Salted CX keeps no
    // `_extra`), the declared column absent from the file.
    let drift = &record["datasets"]["agent"]["drift"];
    assert_eq!(drift["undeclared"]["shoe_size"]["values"], 1, "{drift}");
    assert_eq!(drift["undeclared"]["shoe_size"]["kept"], false, "{drift}");
    assert!(drift["absent"].as_array().unwrap().iter().any(|c| c == "team"), "{drift}");

    // --on-new-column fail: nothing lands until the schema knows the column.
    let lake = tempfile::tempdir().unwrap();
    let mut strict = fixed_plan(lake.path(), csv);
    strict.options.on_new_column = NewColumnPolicy::Fail;
    let report = run_sync(&strict).await.unwrap();
    assert_eq!(report.windows[0].outcome, WindowOutcome::Failed);
    let error = report.windows[0].error.clone().unwrap();
    assert!(
        error.contains("agents.csv") && error.contains("`shoe_size`") && error.contains("--schemas"),
        "{error}"
    );
    assert!(data_files(lake.path()).is_empty());

    // A missing required column fails the window, naming the column and the file.
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&fixed_plan(lake.path(), b"name,team\r\nAda,Blue\r\n")).await.unwrap();
    let error = report.windows[0].error.clone().unwrap();
    assert!(error.contains("agents.csv") && error.contains("required column `pid`"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misfit_rows_are_quarantined_with_reason_and_counted() {
    let csv = b"pid,hourly_cost,name\r\na1,1.5,Ada\r\na2,cheap,Bob\r\na3,2\r\na4,3,\xff\xfe\r\na5,4,Eve\r\n";
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&fixed_plan(lake.path(), csv)).await.unwrap();
    let error = report.windows[0].error.clone().unwrap();
    assert!(
        error.contains("3 of 5 rows")
            && error.contains("line 3 column `hourly_cost`")
            && error.contains("line 4"),
        "{error}"
    );

    let lake = tempfile::tempdir().unwrap();
    let mut tolerant = fixed_plan(lake.path(), csv);
    tolerant.options.max_rejects = RejectLimit::Rows(3);
    let report = run_sync(&tolerant).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let stats = report.windows[0].datasets["agent"].stats;
    assert_eq!((stats.rows_read, stats.rows_written, stats.rows_rejected), (5, 2, 3));
    assert_eq!(column(lake.path(), "pid"), [text("a1"), text("a5")]);
    let rejects =
        lake.path().join(format!("_cxlake/rejects/saltedcx/agent/date=2024-03-01/{}.csv", report.run_id));
    let mut reader = csv::ReaderBuilder::new().from_path(&rejects).unwrap();
    let rows: Vec<csv::ByteRecord> = reader.byte_records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][1], b"3");
    assert_eq!(&rows[2][4], b"a4,3,\xff\xfe", "the raw record is kept byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rows_that_do_not_fit_are_quarantined_whole_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("messages.json");
    // A row without its required `id` cannot land; a value of the wrong type lands null and kept
    // in `_extra` (the default), or quarantines its row (`--on-type-mismatch quarantine`).
    let bad = r#"{"csid": 7, "created_at": 1709251200000}"#;
    let nested_bad = r#"{"id": "m-3", "to": [1, 2], "created_at": "soon"}"#;
    std::fs::write(
        &file,
        format!("[\n{{\"id\": \"m-1\", \"csid\": 7, \"text\": \"ok, \\\"quoted\\\"\"}},\n{bad},\n{nested_bad},\n{{\"id\": \"m-4\"}}\n]"),
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let file_arg = file.to_str().unwrap();
    let strict = ["convert", "dixa.message", "--date", "2024-03-01", "--dest", lake_arg, file_arg];
    let out = run_cxlake(&strict, NO_ENV).await;
    assert_eq!(out.code, 1, "one reject over the default limit of 0: {}", out.stdout);
    assert!(
        out.stdout.contains("1 of 4 rows") && out.stdout.contains("line 3 column `id`"),
        "{}",
        out.stdout
    );
    assert!(!lake.join("dixa/message/date=2024-03-01").exists(), "the window is not committed");

    let mut kept = strict.to_vec();
    kept.extend(["--max-rejects", "1"]);
    let out = run_cxlake(&kept, NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let landed = batch_rows(&read_source_partition(&lake, "dixa", "message", date("2024-03-01")));
    let ids: Vec<&Cell> = landed.iter().map(|row| &row[0]).collect();
    assert_eq!(ids, [&text("m-1"), &text("m-3"), &text("m-4")]);
    let extra = landed[1].last().unwrap();
    assert_eq!(extra, &text(r#"{"created_at":"soon"}"#), "kept exactly, under its field");

    let mut tolerant = strict.to_vec();
    tolerant.extend(["--max-rejects", "2", "--on-type-mismatch", "quarantine"]);
    let out = run_cxlake(&tolerant, NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let landed = batch_rows(&read_source_partition(&lake, "dixa", "message", date("2024-03-01")));
    let ids: Vec<&Cell> = landed.iter().map(|row| &row[0]).collect();
    assert_eq!(ids, [&text("m-1"), &text("m-4")], "rows read = written + rejected, in order");
    // This run's rejects (run ids sort by second only: earlier runs of this test share it).
    let run_id = out.stdout.split_whitespace().nth(1).unwrap();
    let rejects = lake.join(format!("_cxlake/rejects/dixa/message/date=2024-03-01/{run_id}.csv"));
    let mut reader = csv::Reader::from_path(rejects).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let described: Vec<(&str, &str, &str)> = rows.iter().map(|r| (&r[1], &r[2], &r[4])).collect();
    assert_eq!(
        described,
        [("3", "id", bad), ("4", "created_at", nested_bad)],
        "line, field path, the element verbatim"
    );
    assert!(rows[0][3].contains("required field `id` is missing"), "{:?}", &rows[0][3]);
    assert!(rows[1][3].contains("expected milliseconds since the epoch"), "{:?}", &rows[1][3]);
}
