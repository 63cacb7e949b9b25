//! The README's consumer recipes for the plain Parquet lake, run for real: DuckDB
//! (`read_parquet(…, hive_partitioning = true)`), Spark (`spark.read.parquet` with partition
//! discovery, local mode) and Polars (`scan_parquet(…, hive_partitioning=True)`) each read the
//! history and the current tables and see the same rows, dates, keys and column types; so do the
//! DuckDB views of the generated `_cxlake/views.sql`.

use cxlake::schema::ColumnType;

use crate::common::*;

/// The type each reader reports for a column of a declared type (and for the `date` column).
pub fn reader_type(reader: &str, column: Option<&ColumnType>) -> &'static str {
    use ColumnType::*;
    match (reader, column) {
        ("duckdb", Some(Utf8)) => "VARCHAR",
        ("duckdb", Some(Int64)) => "BIGINT",
        ("duckdb", Some(Float64)) => "DOUBLE",
        ("duckdb", Some(Boolean)) => "BOOLEAN",
        ("duckdb", Some(Date32) | None) => "DATE",
        ("duckdb", Some(TimestampUtc)) => "TIMESTAMP WITH TIME ZONE",
        ("spark", Some(Utf8)) => "string",
        ("spark", Some(Int64)) => "bigint",
        ("spark", Some(Float64)) => "double",
        ("spark", Some(Boolean)) => "boolean",
        ("spark", Some(Date32) | None) => "date",
        ("spark", Some(TimestampUtc)) => "timestamp",
        ("polars", Some(Utf8)) => "String",
        ("polars", Some(Int64)) => "Int64",
        ("polars", Some(Float64)) => "Float64",
        ("polars", Some(Boolean)) => "Boolean",
        ("polars", Some(Date32) | None) => "Date",
        ("polars", Some(TimestampUtc)) => "Datetime(time_unit='us', time_zone='UTC')",
        ("deltalake", Some(Utf8)) => "string",
        ("deltalake", Some(Int64)) => "int64",
        ("deltalake", Some(Float64)) => "double",
        ("deltalake", Some(Boolean)) => "bool",
        ("deltalake", Some(Date32) | None) => "date32[day]",
        ("deltalake", Some(TimestampUtc)) => "timestamp[us, tz=UTC]",
        other => panic!("no type mapping for {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_spark_and_polars_read_the_same_parquet_lake() {
    let emulator = emulator(emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap().to_string();
    let windows = days("2024-03-01", 3);
    let mut plan = plan(&emulator, lake.path(), windows.clone());
    plan.options.current_tables = true;
    let report = cxlake::pipeline::run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let expected = expected_counts(&emulator.config().synth, &windows);

    let duckdb = python_json("readers.py", &["duckdb", &lake_arg]).await;
    // `duckdb -init <lake>/_cxlake/views.sql` sees exactly what the direct queries see.
    let views = python_json("readers.py", &["duckdb_views", &lake_arg]).await;
    for (name, table) in duckdb.as_object().unwrap() {
        assert_eq!(&views[name], table, "the generated view of {name}");
    }
    for reader in ["duckdb", "spark", "polars"] {
        let seen = if reader == "duckdb" {
            duckdb.clone()
        } else {
            python_json("readers.py", &[reader, &lake_arg]).await
        };
        for schema in all_schemas() {
            let dataset = schema.dataset.as_str();
            let current_name = format!("{dataset}_current");
            let (history, current) = (&seen[dataset], &seen[&current_name]);
            assert_eq!(history["rows"].as_u64(), Some(expected[dataset]), "{reader}: {dataset}");
            let dates: Vec<&str> =
                history["dates"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
            assert_eq!(dates, ["2024-03-01", "2024-03-02", "2024-03-03"], "{reader}: {dataset}");
            let entities = schema.kind == cxlake::schema::DatasetKind::Entities;
            if !entities {
                // Events: no second copy; the view deduplicates a late re-export at query time.
                assert!(current.is_null(), "{reader}: {dataset} holds events");
                if reader == "duckdb" {
                    let view = &views[&current_name];
                    assert_eq!(
                        view["rows"], history["distinct_pids"],
                        "{current_name} view: one row per pid"
                    );
                    assert_eq!(
                        view["types"], views[dataset]["types"],
                        "{current_name} view: the history's columns"
                    );
                }
                continue;
            }
            for (name, table) in [(dataset, history), (current_name.as_str(), current)] {
                assert_eq!(table["rows"], duckdb[name]["rows"], "{reader} and DuckDB agree on {name}");
                assert_eq!(table["distinct_pids"], duckdb[name]["distinct_pids"], "{reader}: {name}");
                let types = table["types"].as_object().unwrap();
                assert_eq!(
                    types.len(),
                    schema.columns.len() + 3,
                    "{reader}: {name}: columns, load columns, date"
                );
                assert_load_column_types(types, reader, name);
                for column in &schema.columns {
                    assert_eq!(
                        types[&column.name].as_str(),
                        Some(reader_type(reader, Some(&column.column_type))),
                        "{reader}: {name}.{}",
                        column.name
                    );
                }
                assert_eq!(types["date"].as_str(), Some(reader_type(reader, None)), "{reader}: {name}.date");
            }
            assert_eq!(
                current["rows"], history["distinct_pids"],
                "{reader}: one current row per pid of {dataset}"
            );
        }
    }
    // Customers and agents repeat across windows, so their current tables are really smaller.
    assert!(duckdb["agent_current"]["rows"].as_u64() < duckdb["agent"]["rows"].as_u64());
}

/// Issue 22: every code block of the README's "Querying the lake" runs as written — DuckDB SQL
/// (Parquet through the views, Delta with the pinned extension), Polars, python deltalake and
/// PySpark — against a Parquet lake of Salted CX, Dixa and Loop and a Delta lake of Salted CX.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_query_recipe_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, delta) = (dir.path().join("parquet"), dir.path().join("delta"));
    let salted = emulator(emulator_config()).await;
    for (parent, format) in
        [(&parquet, cxlake::sink::OutputFormat::Parquet), (&delta, cxlake::sink::OutputFormat::Delta)]
    {
        let mut plan = plan(&salted, &parent.join("lake"), days("2024-03-01", 3));
        plan.options.current_tables = true;
        plan.options.format = format;
        assert_eq!(cxlake::pipeline::run_sync(&plan).await.unwrap().exit_code(), 0);
    }
    let dixa = crate::dixa::dixa_emulator(crate::dixa::dixa_emulator_config()).await;
    let mut plan = crate::dixa::dixa_plan(&dixa, &parquet.join("lake"), days("2024-03-01", 2));
    plan.options.current_tables = true;
    assert_eq!(cxlake::pipeline::run_sync(&plan).await.unwrap().exit_code(), 0);
    let looped = crate::loop_report::loop_emulator(crate::loop_report::loop_emulator_config()).await;
    let source = crate::loop_report::loop_source(&looped, cxlake::sources::r#loop::client::LoopFormat::Json);
    let mut plan = plan_with(
        source,
        &parquet.join("lake"),
        vec![crate::loop_report::report_schema()],
        days("2024-03-01", 2),
    );
    plan.options.current_tables = true;
    assert_eq!(cxlake::pipeline::run_sync(&plan).await.unwrap().exit_code(), 0);

    let readme = format!("{}/README.md", env!("CARGO_MANIFEST_DIR"));
    let results =
        python_json("recipes.py", &[&readme, parquet.to_str().unwrap(), delta.to_str().unwrap()]).await;
    let results = results.as_array().unwrap();
    let failed: Vec<&serde_json::Value> = results.iter().filter(|r| r["ok"] != true).collect();
    assert!(failed.is_empty(), "README recipes that fail: {failed:#?}");
    let kinds: std::collections::BTreeSet<&str> =
        results.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    for kind in ["sh", "sql", "sql-delta", "python", "python-delta", "spark"] {
        assert!(kinds.contains(kind), "no {kind} recipe ran: {results:?}");
    }
}

/// The load columns as a reader types them: an instant in UTC and a run id.
pub fn assert_load_column_types(
    types: &serde_json::Map<String, serde_json::Value>,
    reader: &str,
    table: &str,
) {
    use cxlake::schema::load::{LOADED_AT, RUN_ID};
    use cxlake::schema::ColumnType;
    for (column, column_type) in [(LOADED_AT, ColumnType::TimestampUtc), (RUN_ID, ColumnType::Utf8)] {
        assert_eq!(
            types[column].as_str(),
            Some(reader_type(reader, Some(&column_type))),
            "{reader}: {table}.{column}"
        );
    }
}

/// Issue 26: the declarations travel with the data. pyarrow finds each column's description and
/// PII flag in a Parquet file's Arrow schema and the dataset's description on it; python
/// deltalake finds them as a Delta table's column `comment`s and table description — the
/// declaration's own words, load columns included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptions_and_pii_flags_travel_in_parquet_and_delta() {
    let dir = tempfile::tempdir().unwrap();
    let salted = emulator(emulator_config()).await;
    for format in [cxlake::sink::OutputFormat::Parquet, cxlake::sink::OutputFormat::Delta] {
        let mut plan = plan(&salted, &dir.path().join(format!("{format:?}")), days("2024-03-01", 1));
        plan.options.format = format;
        assert_eq!(cxlake::pipeline::run_sync(&plan).await.unwrap().exit_code(), 0);
    }
    let schema = all_schemas().into_iter().find(|s| s.dataset == "customer").unwrap();
    let parquet_dir = dir.path().join("Parquet/saltedcx/customer/date=2024-03-01");
    let file = files_under(&parquet_dir).into_iter().next().unwrap();
    let delta = dir.path().join("Delta/saltedcx/customer");
    let seen =
        python_json("described.py", &[parquet_dir.join(file).to_str().unwrap(), delta.to_str().unwrap()])
            .await;
    let (parquet, delta) = (&seen["parquet"], &seen["delta"]);
    assert_eq!(parquet["description"], schema.description.as_str());
    assert!(delta["description"].as_str().unwrap().contains(&schema.description), "{delta}");
    assert!(schema.columns.iter().any(|c| c.pii) && schema.columns.iter().any(|c| !c.pii));
    for column in &schema.columns {
        let (file, table) = (&parquet["columns"][&column.name], &delta["columns"][&column.name]);
        assert_eq!(file["description"], column.description.as_str(), "{}", column.name);
        assert_eq!(file["pii"], column.pii.to_string().as_str(), "{}", column.name);
        if !column.description.is_empty() {
            assert_eq!(table["comment"], column.description.as_str(), "{}", column.name);
        }
        assert_eq!(table["pii"], column.pii, "{}", column.name);
    }
    for load in [cxlake::schema::load::LOADED_AT, cxlake::schema::load::RUN_ID] {
        assert!(parquet["columns"][load]["description"].as_str().is_some_and(|d| !d.is_empty()), "{load}");
        assert!(delta["columns"][load]["comment"].as_str().is_some_and(|d| !d.is_empty()), "{load}");
    }
}
