//! `--format delta`: every dataset a Delta table, every window one commit that replaces its
//! date. Read back by python deltalake, DuckDB's delta_scan and Polars' scan_delta; reruns make
//! a new version with the same rows; a crash between the data files and the commit leaves the
//! old version readable, and the rerun converges; vacuum then removes what no version needs.

use std::collections::BTreeMap;

use cxlake::pipeline::run_sync;
use cxlake::sink::OutputFormat;

use crate::common::*;

fn delta_plan(
    emulator: &cxlake::sources::saltedcx::emulator::Emulator,
    lake: &std::path::Path,
    windows: Vec<cxlake::window::Window>,
) -> cxlake::pipeline::SyncPlan<cxlake::sources::saltedcx::SaltedCx> {
    let mut plan = plan(emulator, lake, windows);
    plan.options.format = OutputFormat::Delta;
    plan.options.current_tables = true;
    plan
}

/// Table versions as python deltalake reports them.
fn versions(seen: &serde_json::Value) -> BTreeMap<String, u64> {
    seen.as_object().unwrap().iter().map(|(name, t)| (name.clone(), t["version"].as_u64().unwrap())).collect()
}

fn assert_rows(seen: &serde_json::Value, expected: &BTreeMap<String, u64>, reader: &str) {
    for (dataset, rows) in expected {
        let table = &seen[dataset];
        assert_eq!(table["rows"].as_u64(), Some(*rows), "{reader}: {dataset}");
        let dates: Vec<&str> =
            table["dates"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
        assert_eq!(dates, ["2024-03-01", "2024-03-02", "2024-03-03"], "{reader}: {dataset}");
        let schema = all_schemas().into_iter().find(|s| &s.dataset == dataset).unwrap();
        let current = &seen[format!("{dataset}_current")];
        let mut tables = vec![table];
        if schema.kind == cxlake::schema::DatasetKind::Entities {
            assert_eq!(
                current["rows"], table["distinct_pids"],
                "{reader}: {dataset}_current has one row per pid"
            );
            assert_eq!(current["distinct_pids"], current["rows"], "{reader}: {dataset}_current");
            tables.push(current);
        } else {
            assert!(current.is_null(), "{reader}: {dataset} holds events: no second copy");
        }
        // Column types in the reader's own words ("duckdb delta_scan" reads as duckdb).
        let reader_name = reader.split(' ').next().unwrap();
        for table in tables {
            let types = table["types"].as_object().unwrap();
            assert_eq!(
                types.len(),
                schema.columns.len() + 3,
                "{reader}: {dataset}: columns, load columns, date"
            );
            crate::readers::assert_load_column_types(types, reader_name, &schema.dataset);
            for column in &schema.columns {
                let expected = crate::readers::reader_type(reader_name, Some(&column.column_type));
                assert_eq!(
                    types[&column.name].as_str(),
                    Some(expected),
                    "{reader}: {dataset}.{}",
                    column.name
                );
            }
            let date = crate::readers::reader_type(reader_name, None);
            assert_eq!(types["date"].as_str(), Some(date), "{reader}: {dataset}.date");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_tables_are_read_by_deltalake_duckdb_and_polars_and_reruns_make_new_versions() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap().to_string();
    let windows = days("2024-03-01", 3);
    let mut first = delta_plan(&emulator, lake.path(), windows.clone());
    // No raw digests: the rerun below writes the window again (an unchanged one would be kept).
    first.options.raw = cxlake::sink::raw::RawPolicy::Off;
    let report = run_sync(&first).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let expected = expected_counts(&emulator.config().synth, &windows);

    let seen = python_json("readers.py", &["deltalake", &lake_arg]).await;
    assert_rows(&seen, &expected, "deltalake");
    let before = versions(&seen);
    for dataset in DATASETS {
        assert_eq!(before[dataset], 3, "{dataset}: create + one commit per window");
    }
    assert_rows(
        &python_json("readers.py", &["duckdb_delta", &lake_arg]).await,
        &expected,
        "duckdb delta_scan",
    );
    assert_rows(
        &python_json("readers.py", &["polars_delta", &lake_arg]).await,
        &expected,
        "polars scan_delta",
    );
    // Every value of the middle day, through the table's own file list.
    let turn = all_schemas().into_iter().find(|s| s.dataset == "turn").unwrap();
    let history = read_delta_rows(lake.path(), "saltedcx/turn").await;
    let all_days: Vec<_> =
        windows.iter().flat_map(|w| expected_rows(&emulator.config().synth, &turn, w.date)).collect();
    assert_eq!(history, all_days, "every value of every day, in date order");

    // Rerun the middle window: one new version per table, the same rows, no duplicates.
    let mut rerun = delta_plan(&emulator, lake.path(), vec![windows[1]]);
    rerun.options.raw = cxlake::sink::raw::RawPolicy::Off;
    let report = run_sync(&rerun).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let seen = python_json("readers.py", &["deltalake", &lake_arg]).await;
    assert_rows(&seen, &expected, "deltalake after a rerun");
    for dataset in DATASETS {
        assert_eq!(versions(&seen)[dataset], before[dataset] + 1, "{dataset}");
    }
    assert_eq!(seen["turn"]["distinct_pids"], seen["turn"]["rows"], "no turn twice");

    // Crash between writing the data files and committing them: readers keep the old version.
    let env = api_env(&emulator);
    let args = [
        "sync",
        "saltedcx",
        "--dest",
        &lake_arg,
        "--from",
        "2024-03-02",
        "--to",
        "2024-03-03",
        "--format",
        "delta",
        "--poll-interval",
        "5ms",
        // Without the raw archive's digests the window is written again, not found unchanged.
        "--raw",
        "off",
    ];
    let mut crash_env = env.clone();
    crash_env.push(("CXLAKE_FAILPOINT", "before-delta-commit".to_string()));
    let crashed = run_cxlake(&args, &crash_env).await;
    assert_ne!(crashed.code, 0, "the failpoint aborts the run");
    assert!(crashed.stderr.contains("aborting here"), "{}", crashed.stderr);
    let after_crash = python_json("readers.py", &["deltalake", &lake_arg]).await;
    assert_eq!(versions(&after_crash), versions(&seen), "no commit happened");
    assert_rows(&after_crash, &expected, "deltalake after a crash");
    // Datasets commit in name order (the schema files'), so the failpoint stops at the first.
    let partition = lake.path().join("saltedcx/agent/date=2024-03-02");
    let on_disk = std::fs::read_dir(&partition).unwrap().count();
    assert!(on_disk > 2, "old versions' files and the crashed run's files are on disk: {on_disk}");

    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let converged = python_json("readers.py", &["deltalake", &lake_arg]).await;
    assert_rows(&converged, &expected, "deltalake after the rerun");
    assert_eq!(converged["engagement"]["version"].as_u64(), Some(before["engagement"] + 2));

    // Vacuum: only the files the latest version references stay; the table reads the same.
    let out = run_cxlake(&["vacuum", "--dest", &lake_arg, "--older-than", "0s"], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("saltedcx/engagement: deleted"), "{}", out.stdout);
    assert_eq!(std::fs::read_dir(&partition).unwrap().count(), 1, "one part file per small window");
    assert_rows(
        &python_json("readers.py", &["deltalake", &lake_arg]).await,
        &expected,
        "deltalake after vacuum",
    );
    assert_eq!(read_delta_rows(lake.path(), "saltedcx/turn").await, history, "every value survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_format_is_never_written_over_the_other() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap().to_string();
    let report = run_sync(&plan(&emulator, lake.path(), days("2024-03-01", 1))).await.unwrap();
    assert_eq!(report.exit_code(), 0);
    let args = [
        "sync",
        "saltedcx",
        "--dest",
        &lake_arg,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
        "--format",
        "delta",
    ];
    let out = run_cxlake(&args, &api_env(&emulator)).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("holds parquet data; rerun with --format parquet"), "{}", out.stderr);
}

/// A destination on the test's S3 server, built the way `Destination::parse` builds one.
fn s3_destination(prefix: &str) -> cxlake::sink::Destination {
    let s3 = s3();
    let store = std::sync::Arc::new(s3.store());
    cxlake::sink::Destination {
        store: store.clone(),
        root: object_store::path::Path::from(prefix),
        display: format!("s3://{}/{prefix}", s3.bucket),
        local_dir: None,
        s3: Some(cxlake::sink::s3_uploads::S3Bucket {
            store,
            bucket: s3.bucket.clone(),
            region: "us-east-1".into(),
            endpoint: Some(s3.endpoint.clone()),
        }),
    }
}

fn decode_customers(
    schema: &std::sync::Arc<cxlake::schema::DatasetSchema>,
    date: chrono::NaiveDate,
) -> Vec<arrow::record_batch::RecordBatch> {
    let (csv, _) =
        cxlake::sources::saltedcx::synth::dataset_csv(&small_tenant(), "customer", date, None).unwrap();
    let mut decoder =
        cxlake::decode::csv::CsvDecoder::new(schema.clone(), "customers.csv", csv.as_slice()).unwrap();
    let mut batches = Vec::new();
    while let Some(decoded) = decoder.next_batch().unwrap() {
        batches.push(decoded.batch);
    }
    batches
}

/// One writer: stages each day's customers and commits it to the Delta table, like a sync does.
async fn write_days(
    dest: cxlake::sink::Destination,
    run_id: String,
    dates: Vec<chrono::NaiveDate>,
    rounds: std::sync::Arc<tokio::sync::Barrier>,
) -> Vec<(u64, u32)> {
    use cxlake::sink::delta::{self, TableSpec, WindowCommit};
    use cxlake::sink::parquet::{PartWriter, PartWriterConfig};
    let schema = all_schemas().into_iter().find(|s| s.dataset == "customer").unwrap();
    let mut versions = Vec::new();
    for date in dates {
        let batches = decode_customers(&schema, date);
        let staging = cxlake::sink::layout::staging_dir(&run_id, "saltedcx", "customer", date);
        let stamp = cxlake::schema::load::LoadStamp { loaded_at: chrono::Utc::now(), run_id: run_id.clone() };
        let mut writer =
            PartWriter::for_dataset(dest.clone(), staging, &schema, stamp, PartWriterConfig::default());
        for batch in &batches {
            writer.write(batch).await.unwrap();
        }
        let staged = writer.finish().await.unwrap();
        let commit = WindowCommit::window(date, &run_id);
        // Both writers commit each round at the same moment, against the same table version.
        rounds.wait().await;
        let committed =
            delta::publish(&dest, TableSpec::history("saltedcx", &schema), &commit, &staged).await.unwrap();
        versions.push((committed.table_version, committed.attempts));
    }
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_on_one_delta_table_on_s3_lose_no_window_and_duplicate_none() {
    let prefix = format!("lakes/{}", cxlake::cli::new_run_id());
    let day = |n: u64| date("2024-03-01") + chrono::Days::new(n);
    // Both create the table at once, then commit windows concurrently; days 3–5 are written by both.
    let rounds = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let first = tokio::spawn(write_days(
        s3_destination(&prefix),
        "writer-a".into(),
        (0..6).map(day).collect(),
        rounds.clone(),
    ));
    let second = tokio::spawn(write_days(
        s3_destination(&prefix),
        "writer-b".into(),
        (3..9).map(day).collect(),
        rounds,
    ));
    let (first, second) = (first.await.unwrap(), second.await.unwrap());

    let retries: u32 = first.iter().chain(&second).map(|(_, attempts)| attempts - 1).sum();
    println!("writer a (version, attempts): {first:?}; writer b: {second:?}; {retries} retries");
    assert!(retries >= 3, "the writers raced for most versions: {retries} retries");
    let mut all_versions: Vec<u64> = first.iter().chain(&second).map(|(version, _)| *version).collect();
    all_versions.sort();
    all_versions.dedup();
    assert_eq!(
        all_versions,
        (1..=12).collect::<Vec<_>>(),
        "12 commits, each its own version: {first:?} {second:?}"
    );

    let dest = s3_destination(&prefix);
    let table = cxlake::sink::delta::open_table(&dest, "saltedcx/customer").await.unwrap().unwrap();
    assert_eq!(table.version(), Some(12));
    let store = s3().store();
    for n in 0..9 {
        let date = day(n).to_string();
        let filter = [("date", deltalake::FilterOp::Eq, deltalake::FilterValue::Scalar(date.as_str()))];
        let files = table.get_files_by_partitions(&filter).await.unwrap();
        assert_eq!(files.len(), 1, "{date}: exactly one writer's file, never both: {files:?}");
        let key = object_store::path::Path::from(format!("{prefix}/saltedcx/customer/{}", files[0]));
        let bytes = object_store::ObjectStoreExt::get(&store, &key).await.unwrap().bytes().await.unwrap();
        let schema = all_schemas().into_iter().find(|s| s.dataset == "customer").unwrap();
        assert_eq!(
            batch_rows(&read_parquet_bytes(bytes)),
            expected_rows(&small_tenant(), &schema, day(n)),
            "{date}"
        );
    }
}

/// Issue 22: a Delta run is as quiet as a Parquet run at the default level: delta-rs's own INFO
/// lines (a snapshot with its schema per read) and its warning about a commit cxlake retries
/// itself stay out of stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_sync_at_the_default_level_writes_a_few_kilobytes_to_stderr() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap().to_string();
    let mut sizes = Vec::new();
    for format in ["parquet", "delta"] {
        let dest = format!("{lake_arg}/{format}");
        let args = [
            "sync",
            "saltedcx",
            "--dest",
            &dest,
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-04",
            "--format",
            format,
        ];
        let out = run_cxlake(&args, &api_env(&emulator)).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(!out.stderr.contains("max_retries"), "{}", out.stderr);
        sizes.push(out.stderr.len());
    }
    assert!(sizes[1] < 20_000, "Delta wrote {} bytes to stderr (Parquet {})", sizes[1], sizes[0]);
    assert!(sizes[1] < sizes[0] * 2, "Delta {} bytes, Parquet {}", sizes[1], sizes[0]);
}
