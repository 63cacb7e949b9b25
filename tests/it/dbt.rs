//! Issue 26: real dbt (dbt-core and dbt-duckdb from PyPI) over the demo lake through the sources
//! file `cxlake dbt sources` writes: freshness on `_cxlake_loaded_at` passes, a model selecting
//! from every source table builds, the key tests pass — and fail once a current table holds a
//! key twice.

use cxlake::schema::{DatasetKind, SchemaRegistry};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbt_reads_every_source_table_checks_freshness_and_catches_a_duplicated_key() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let demo = run_cxlake(&["demo", "--dest", lake_arg, "--days", "2"], NO_ENV).await;
    assert_eq!(demo.code, 0, "{}\n{}", demo.stdout, demo.stderr);
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("models")).unwrap();
    let sources_yml = project.join("models/cxlake_sources.yml");
    let out =
        run_cxlake(&["dbt", "sources", "--dest", lake_arg, "--out", sources_yml.to_str().unwrap()], NO_ENV)
            .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&sources_yml).unwrap();
    assert!(text.contains("loaded_at_field: _cxlake_loaded_at"), "{text}");
    assert!(text.contains("meta: {pii: true}") && text.contains("data_tests: [unique, not_null]"));

    // Every dataset of every platform, and its current table: from the declarations, not dbt.
    let registry = SchemaRegistry::embedded().unwrap();
    let expected_tables: usize =
        cxlake::cli::source_names().iter().map(|source| registry.of_source(source).count() * 2).sum();
    let project_arg = project.to_str().unwrap();
    let seen = python_json("dbt_project.py", &[project_arg, "freshness", "run", "test"]).await;
    for command in ["freshness", "run", "test"] {
        assert_eq!(seen[command]["success"], true, "dbt {command}: {}", seen[command]);
    }
    assert_eq!(seen["tables"], expected_tables);
    let rows = seen["rows"].as_object().unwrap();
    assert_eq!(rows.len(), expected_tables, "{rows:?}");
    assert!(rows.values().all(|n| n.as_u64().unwrap() > 0), "every table has rows: {rows:?}");
    let freshness = seen["freshness"]["results"].as_array().unwrap();
    assert_eq!(freshness.len(), expected_tables);
    assert!(freshness.iter().all(|r| r["status"] == "pass"), "{freshness:?}");

    // A current table holding one key twice: dbt test says so.
    let customer = registry.dataset("saltedcx", "customer").unwrap();
    assert_eq!(customer.kind, DatasetKind::Entities);
    let current = lake.join("saltedcx_current/customer");
    let file = files_under(&current).into_iter().find(|f| f.ends_with(".parquet")).unwrap();
    std::fs::copy(current.join(&file), current.join("part-99999-duplicate.parquet")).unwrap();
    let seen = python_json("dbt_project.py", &[project_arg, "test"]).await;
    assert_eq!(seen["test"]["success"], false, "{}", seen["test"]);
    let failed: Vec<&str> = seen["test"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "fail")
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("unique_saltedcx_customer_current"), "{failed:?}");
}
