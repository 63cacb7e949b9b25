//! End-to-end syncs from the emulator into a local lake, read back with the parquet crate.

use cxlake::pipeline::{run_sync, RejectLimit};
use cxlake::report::WindowOutcome;
use cxlake::schema::SchemaRegistry;
use cxlake::sink::parquet::PartWriterConfig;
use cxlake::sources::saltedcx::emulator::EmulatorConfig;
use cxlake::state::{StateStore, WindowStatus};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_lands_every_emulator_row_exactly_once_with_exact_values() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 3);
    let report = run_sync(&plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(report.committed(), 3);

    let synth = emulator.config().synth;
    for schema in all_schemas() {
        for w in &windows {
            let landed = batch_rows(&read_partition(lake.path(), &schema.dataset, w.date));
            let expected = expected_rows(&synth, &schema, w.date);
            assert!(!expected.is_empty());
            assert_eq!(landed.len(), expected.len(), "{} {}", schema.dataset, w.date);
            assert_eq!(landed, expected, "{} {}: every value, in order", schema.dataset, w.date);
        }
    }
    // The report's counts are the emulator's counts.
    let expected = expected_counts(&synth, &windows);
    for (dataset, (rows, files, bytes)) in report.rows_by_dataset() {
        assert_eq!(rows, expected[&dataset], "{dataset}");
        assert_eq!(files, 3);
        assert!(bytes > 0);
    }
    // Exactly the documented layout, nothing else visible to readers; staging is gone.
    let mut expected_files = std::collections::BTreeSet::new();
    for dataset in DATASETS {
        for w in &windows {
            expected_files.insert(format!("saltedcx/{dataset}/date={}/part-00000.parquet", w.date));
        }
    }
    assert_eq!(data_files(lake.path()), expected_files);
    assert!(!lake.path().join("_cxlake/staging").join(&report.run_id).exists());
    assert_eq!(emulator.stats().downloads_with_authorization, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_content_is_byte_identical_to_the_export() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-04", 1);
    run_sync(&plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    let (csv_bytes, _) = cxlake::sources::saltedcx::synth::dataset_csv(
        &emulator.config().synth,
        "turn",
        windows[0].date,
        None,
    )
    .unwrap();
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    let content_at = reader.headers().unwrap().iter().position(|h| h == "content").unwrap();
    let expected: Vec<Vec<u8>> = reader.byte_records().map(|r| r.unwrap()[content_at].to_vec()).collect();
    let batches = read_partition(lake.path(), "turn", windows[0].date);
    let mut landed = Vec::new();
    for batch in &batches {
        use arrow::array::{Array, AsArray};
        let column = batch.column_by_name("content").unwrap().as_string::<i32>();
        for i in 0..column.len() {
            landed.push(if column.is_null(i) { Vec::new() } else { column.value(i).as_bytes().to_vec() });
        }
    }
    assert_eq!(landed, expected);
    let all: Vec<u8> = landed.concat();
    for needle in ["\r\n".as_bytes(), "\"".as_bytes(), "👩‍💻".as_bytes(), "こんにちは".as_bytes()]
    {
        assert!(all.windows(needle.len()).any(|w| w == needle), "{:?}", String::from_utf8_lossy(needle));
    }
}

/// Issue 26: a rerun whose fetched files are the ones the window landed (same SHA-256, same
/// settings) leaves the window exactly as it was — files, rows, record and load columns — though
/// the platform made a new export; with nothing to compare with (`--raw off`) it is rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_an_unchanged_window_rewrites_nothing() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 3);
    run_sync(&plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    let files_before = data_files(lake.path());
    let rows_before: Vec<_> =
        DATASETS.iter().map(|d| batch_rows(&read_partition(lake.path(), d, windows[1].date))).collect();
    let state = StateStore::new(cxlake::sink::Destination::parse(lake.path().to_str().unwrap()).unwrap());
    let record_before = state.load_window("saltedcx", windows[1].date).await.unwrap().unwrap();
    let created_before = emulator.stats().exports_created;

    let rerun = run_sync(&plan(&emulator, lake.path(), vec![windows[1]])).await.unwrap();
    assert_eq!(rerun.exit_code(), 0);
    assert_eq!(emulator.stats().exports_created, created_before + 1, "the window was exported again");
    assert_eq!(data_files(lake.path()), files_before);
    let rows_after: Vec<_> =
        DATASETS.iter().map(|d| batch_rows(&read_partition(lake.path(), d, windows[1].date))).collect();
    assert_eq!(rows_after, rows_before);
    let record_after = state.load_window("saltedcx", windows[1].date).await.unwrap().unwrap();
    assert_eq!(record_after, record_before, "the window's record is untouched");

    // Landed without the raw archive, a window has no digests to compare with: it is rewritten.
    let other = tempfile::tempdir().unwrap();
    let mut no_raw = plan(&emulator, other.path(), vec![windows[1]]);
    no_raw.options.raw = cxlake::sink::raw::RawPolicy::Off;
    assert_eq!(run_sync(&no_raw).await.unwrap().exit_code(), 0);
    let state = StateStore::new(cxlake::sink::Destination::parse(other.path().to_str().unwrap()).unwrap());
    let first = state.load_window("saltedcx", windows[1].date).await.unwrap().unwrap();
    let mut again = plan(&emulator, other.path(), vec![windows[1]]);
    again.options.raw = cxlake::sink::raw::RawPolicy::Off;
    assert_eq!(run_sync(&again).await.unwrap().exit_code(), 0);
    let rewritten = state.load_window("saltedcx", windows[1].date).await.unwrap().unwrap();
    assert_eq!(rewritten.status, WindowStatus::Done);
    assert_ne!(rewritten.run_id, first.run_id);
    for (dataset, d) in &rewritten.datasets {
        assert_eq!(d.stats, first.datasets[dataset].stats);
        assert_ne!(d.loaded_at, first.datasets[dataset].loaded_at, "{dataset}: loaded again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_that_writes_fewer_parts_removes_the_stale_ones() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 1);
    let mut many_parts = plan(&emulator, lake.path(), windows.clone());
    // No raw digests to find the rerun's files unchanged by: the window is written again.
    many_parts.options.raw = cxlake::sink::raw::RawPolicy::Off;
    many_parts.options.writer =
        PartWriterConfig { target_file_bytes: 1, row_group_rows: 200, ..PartWriterConfig::default() };
    run_sync(&many_parts).await.unwrap();
    let turn_dir = lake.path().join(format!("saltedcx/turn/date={}", windows[0].date));
    let parts_before = files_under(&turn_dir);
    assert!(parts_before.len() > 3, "{parts_before:?}");
    let rows_before = batch_rows(&read_partition(lake.path(), "turn", windows[0].date));

    run_sync(&plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    assert_eq!(files_under(&turn_dir), ["part-00000.parquet".to_string()].into());
    assert_eq!(batch_rows(&read_partition(lake.path(), "turn", windows[0].date)), rows_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_window_is_left_out_and_the_others_are_committed() {
    let windows = days("2024-03-01", 3);
    let config = EmulatorConfig { fail_dates: [windows[1].date].into(), ..emulator_config() };
    let emulator = emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    let outcomes: Vec<_> = report.windows.iter().map(|w| w.outcome).collect();
    assert_eq!(outcomes, [WindowOutcome::Committed, WindowOutcome::Failed, WindowOutcome::Committed]);
    assert_eq!(report.exit_code(), 1);
    assert!(report.windows[1].error.as_deref().unwrap().contains("FAILED"));
    assert!(data_files(lake.path()).iter().all(|f| !f.contains(&windows[1].date.to_string())));
    let state = StateStore::new(cxlake::sink::Destination::parse(lake.path().to_str().unwrap()).unwrap());
    assert!(state.load_window("saltedcx", windows[1].date).await.unwrap().is_none());
    // The run report is kept in the lake for `cxlake status`.
    assert!(lake.path().join(format!("_cxlake/runs/{}.json", report.run_id)).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_do_not_fit_are_quarantined_and_block_the_window_by_default() {
    // A schema that declares turn.duration as Boolean: every turn with a duration is a misfit.
    let schemas = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(schemas.path().join("saltedcx")).unwrap();
    let turn = include_str!("../../schemas/saltedcx/turn.toml")
        .replace("name = \"duration\"\ntype = \"Int64\"", "name = \"duration\"\ntype = \"Boolean\"");
    std::fs::write(schemas.path().join("saltedcx/turn.toml"), turn).unwrap();
    let registry = SchemaRegistry::with_overrides(schemas.path()).unwrap();

    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 1);
    let mut strict = plan(&emulator, lake.path(), windows.clone());
    strict.datasets = vec![registry.dataset("saltedcx", "turn").unwrap()];
    let report = run_sync(&strict).await.unwrap();
    assert_eq!(report.windows[0].outcome, WindowOutcome::Failed);
    let error = report.windows[0].error.clone().unwrap();
    assert!(
        error.contains("turns.csv") && error.contains("column `duration`") && error.contains("line "),
        "{error}"
    );
    assert!(data_files(lake.path()).is_empty(), "nothing of a failed window is visible");
    let rejects = lake
        .path()
        .join(format!("_cxlake/rejects/saltedcx/turn/date={}/{}.csv", windows[0].date, report.run_id));
    let mut reader = csv::Reader::from_path(&rejects).unwrap();
    assert_eq!(reader.headers().unwrap(), vec!["file", "line", "column", "reason", "raw_record"]);
    let quarantined: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert!(!quarantined.is_empty());
    assert!(quarantined.iter().all(|r| &r[2] == "duration" && r[3].contains("boolean")));

    // With a tolerance, the window commits; every row is either written or quarantined.
    let mut tolerant = plan(&emulator, lake.path(), windows.clone());
    tolerant.datasets = strict.datasets.clone();
    tolerant.options.max_rejects = RejectLimit::Percent(100.0);
    let report = run_sync(&tolerant).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let stats = report.windows[0].datasets["turn"].stats;
    let (_, emulated) = cxlake::sources::saltedcx::synth::dataset_csv(
        &emulator.config().synth,
        "turn",
        windows[0].date,
        None,
    )
    .unwrap();
    assert_eq!(stats.rows_read, emulated);
    assert_eq!(stats.rows_read, stats.rows_written + stats.rows_rejected);
    assert_eq!(
        batch_rows(&read_partition(lake.path(), "turn", windows[0].date)).len() as u64,
        stats.rows_written
    );
    let rejects = lake
        .path()
        .join(format!("_cxlake/rejects/saltedcx/turn/date={}/{}.csv", windows[0].date, report.run_id));
    assert_eq!(csv::Reader::from_path(&rejects).unwrap().records().count() as u64, stats.rows_rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_in_flight_together_land_every_row_within_the_memory_budget() {
    let emulator = emulator(EmulatorConfig { processing_polls: 3, ..emulator_config() }).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 5);
    let mut plan = plan(&emulator, lake.path(), windows.clone());
    plan.options.parallel_windows = 4;
    // Room for two small conversions at a time, out of up to 20 that could start.
    plan.options.memory = cxlake::budget::MemoryBudget::new(40 << 20);
    let report = run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let reported: Vec<_> = report.windows.iter().map(|w| w.date).collect();
    assert_eq!(reported, windows.iter().map(|w| w.date).collect::<Vec<_>>(), "reported oldest first");
    // Each small file reserves 16–18 MiB: two at once fit in 40, a third never does.
    let peak = plan.options.memory.peak_reserved_mib();
    assert!((32..=40).contains(&peak), "two conversions at once, never a third: peak {peak} MiB");

    let synth = emulator.config().synth;
    for schema in all_schemas() {
        for w in &windows {
            let landed = batch_rows(&read_partition(lake.path(), &schema.dataset, w.date));
            assert_eq!(landed, expected_rows(&synth, &schema, w.date), "{} {}", schema.dataset, w.date);
        }
    }
}

/// Issue 26: a lake written before the load columns keeps working. Its older window's files
/// (rewritten here without the columns, and its record without the load stamp, as an older
/// cxlake left them) read as null load columns beside the newer window's, in DuckDB's views and
/// in a current table rebuilt from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_from_before_the_load_columns_read_them_as_null() {
    use parquet::arrow::ArrowWriter;
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 2);
    let mut first = plan(&emulator, lake.path(), windows.clone());
    first.options.current_tables = true;
    assert_eq!(run_sync(&first).await.unwrap().exit_code(), 0);
    let record_path = lake.path().join("_cxlake/state/saltedcx/date=2024-03-01.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    for (_, landed) in record["datasets"].as_object_mut().unwrap() {
        let landed = landed.as_object_mut().unwrap();
        for key in ["loaded_at", "loaded_by", "settings"] {
            landed.remove(key);
        }
        for file in landed["files"].as_array().unwrap() {
            let path = lake.path().join(file["path"].as_str().unwrap());
            let batches = read_parquet_file(&path);
            let mut writer =
                ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batches[0].schema(), None)
                    .unwrap();
            for batch in &batches {
                writer.write(batch).unwrap();
            }
            writer.close().unwrap();
        }
    }
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();

    let dest = lake.path().to_str().unwrap();
    let full = run_cxlake(&["current", "--dest", dest, "--source", "saltedcx", "--full"], NO_ENV).await;
    assert_eq!(full.code, 0, "{}", full.stderr);
    let query = "SELECT date::VARCHAR, count(*), count(_cxlake_loaded_at), count(_cxlake_run_id) \
                 FROM saltedcx_customer GROUP BY ALL ORDER BY 1";
    let history = python_json("sql.py", &[dest, query]).await;
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0][2], 0, "the older window's rows: no load columns, read as null");
    assert_eq!(history[1][1], history[1][2], "the newer window's rows: every one stamped");
    let current = python_json(
        "sql.py",
        &[dest, "SELECT count(*), count(_cxlake_loaded_at) FROM saltedcx_customer_current"],
    )
    .await;
    let (rows, stamped) = (current[0][0].as_u64().unwrap(), current[0][1].as_u64().unwrap());
    assert!(stamped > 0 && stamped < rows, "current rows from both windows: {rows} rows, {stamped} stamped");
}
