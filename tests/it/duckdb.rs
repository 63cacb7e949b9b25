//! DuckDB (the real one, from PyPI in the Makefile's venv) reads the lake back with
//! `hive_partitioning=true` and sees the right row counts and column types.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_lake_with_hive_partitioning() {
    let python = required_env("CXLAKE_TEST_PYTHON");
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 3);
    let report = cxlake::pipeline::run_sync(&plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    assert_eq!(report.exit_code(), 0);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readback/duckdb_read.py");
    let lake_path = lake.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(script).arg(lake_path).output()
    })
    .await
    .unwrap()
    .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let expected = expected_counts(&emulator.config().synth, &windows);
    for schema in all_schemas() {
        let got = &seen[&schema.dataset];
        assert_eq!(got["rows"].as_u64(), Some(expected[&schema.dataset]), "{}", schema.dataset);
        let dates: Vec<&str> = got["dates"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
        assert_eq!(dates, ["2024-03-01", "2024-03-02", "2024-03-03"], "{}", schema.dataset);
        let types = got["types"].as_object().unwrap();
        for column in &schema.columns {
            assert_eq!(
                types[&column.name].as_str(),
                Some(crate::readers::reader_type("duckdb", Some(&column.column_type))),
                "{}.{}",
                schema.dataset,
                column.name
            );
        }
        assert_eq!(types["date"].as_str(), Some("DATE"), "the partition column is typed");
        assert_eq!(types.len(), schema.columns.len() + 3, "declared, load columns, date");
        crate::readers::assert_load_column_types(types, "duckdb", &schema.dataset);
    }
    // Bookkeeping under _cxlake is never picked up by a glob over the dataset.
    assert_eq!(seen["turn"]["distinct_pids"].as_u64(), Some(expected["turn"]));
}

/// `cxlake demo` lands a day of every registered source from its emulator, and each query it
/// prints for a source answers with rows in DuckDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lands_every_source_and_every_query_it_prints_answers() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let run = run_cxlake(&["demo", "--dest", lake, "--days", "1"], NO_ENV).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let queries: Vec<(&str, String)> = cxlake::cli::source_demo_queries()
        .into_iter()
        .map(|(name, query)| (name, query.replace("{lake}", lake)))
        .collect();
    for (name, query) in &queries {
        assert!(query.contains(&format!("{lake}/{name}/")), "{name}: its query reads another source");
        let first_line = query.lines().nth(1).unwrap();
        assert!(run.stdout.contains(first_line), "{name}: the demo does not print its query");
    }
    for (name, query) in &queries {
        // After the views file the demo points to: it must load too.
        let rows = python_json("sql.py", &[lake, query]).await;
        assert!(!rows.as_array().unwrap().is_empty(), "{name}: its demo query finds no rows");
    }
}
