//! Two sources in one destination: the views file, `status` and `current` cover both, and
//! DuckDB, Polars and Spark read Dixa's nested columns back with the declared types.

use chrono::NaiveDate;
use cxlake::pipeline::run_sync;
use cxlake::schema::{ColumnType, EXTRA_COLUMN};
use cxlake::sources::dixa::synth::{self, ConversationFilter};

use crate::common::*;
use crate::dixa::{dixa_emulator, dixa_emulator_config, dixa_plan, dixa_schemas};

/// A declared type in a reader's own words, nested types included; built from the schema
/// declaration, not from what any reader said.
fn nested_type(reader: &str, column_type: &ColumnType) -> String {
    match column_type {
        ColumnType::List(item) => {
            let item = nested_type(reader, &item.column_type);
            match reader {
                "duckdb" => format!("{item}[]"),
                "polars" => format!("List({item})"),
                _ => format!("array<{item}>"),
            }
        }
        ColumnType::Struct(members) => {
            let parts: Vec<String> = members
                .iter()
                .map(|m| {
                    let t = nested_type(reader, &m.column_type);
                    match reader {
                        "duckdb" => format!("{} {t}", m.name),
                        "polars" => format!("'{}': {t}", m.name),
                        _ => format!("{}:{t}", m.name),
                    }
                })
                .collect();
            match reader {
                "duckdb" => format!("STRUCT({})", parts.join(", ")),
                "polars" => format!("Struct({{{}}})", parts.join(", ")),
                _ => format!("struct<{}>", parts.join(",")),
            }
        }
        scalar => crate::readers::reader_type(reader, Some(scalar)).to_string(),
    }
}

fn generator_counts(config: synth::DixaSynthConfig, days: &[NaiveDate]) -> (u64, u64, u64, u64) {
    let (mut conversations, mut ratings, mut extra, mut messages) = (0, 0, 0, 0);
    for day in days {
        for c in synth::conversations(
            config,
            ConversationFilter { updated: Some(synth::day_range(*day)), ..Default::default() },
        ) {
            conversations += 1;
            ratings += c["ratings"].as_array().map_or(0, |r| r.len() as u64);
            let nested_extra = c["ratings"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r.get("rating_comment_sentiment").is_some()));
            extra += u64::from(c.get("sla_policy").is_some() || nested_extra);
        }
        messages += synth::messages(config, synth::day_range(*day)).count() as u64;
    }
    (conversations, ratings, extra, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_share_one_lake_and_every_reader_sees_the_nested_types() {
    let lake = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap().to_string();
    let windows = days("2024-03-01", 2);

    let salted = emulator(emulator_config()).await;
    let mut plan = plan(&salted, lake.path(), windows.clone());
    plan.options.current_tables = true;
    assert_eq!(run_sync(&plan).await.unwrap().exit_code(), 0);
    let dixa = dixa_emulator(dixa_emulator_config()).await;
    let mut plan = dixa_plan(&dixa, lake.path(), windows.clone());
    plan.options.current_tables = true;
    let report = run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());

    let dates: Vec<NaiveDate> = windows.iter().map(|w| w.date).collect();
    let (conversations, ratings, extra, messages) = generator_counts(dixa.config().synth, &dates);
    let salted_counts = expected_counts(&salted.config().synth, &windows);
    let seen = python_json("nested.py", &[&lake_arg]).await;

    // One views file for the whole lake: the second source did not overwrite the first's.
    let views = seen["duckdb"]["views"].as_object().unwrap();
    for (dataset, rows) in &salted_counts {
        assert_eq!(views[&format!("saltedcx_{dataset}")].as_u64(), Some(*rows), "saltedcx_{dataset}");
        assert!(views.contains_key(&format!("saltedcx_{dataset}_current")), "saltedcx_{dataset}_current");
    }
    assert_eq!(views["dixa_conversation"].as_u64(), Some(conversations));
    assert_eq!(views["dixa_message"].as_u64(), Some(messages));
    assert!(views["dixa_conversation_current"].as_u64().unwrap() < conversations, "updated conversations");
    assert_eq!(views["dixa_message_current"].as_u64(), Some(messages));

    for reader in ["duckdb", "polars", "spark"] {
        for schema in dixa_schemas() {
            let table = &seen[reader][schema.dataset.as_str()];
            let expected_rows = if schema.dataset == "conversation" { conversations } else { messages };
            assert_eq!(table["rows"].as_u64(), Some(expected_rows), "{reader}: {}", schema.dataset);
            let types = table["types"].as_object().unwrap();
            for column in &schema.columns {
                let got = types[&column.name].as_str().unwrap().replace('"', "");
                assert_eq!(
                    got,
                    nested_type(reader, &column.column_type),
                    "{reader}: {}.{}",
                    schema.dataset,
                    column.name
                );
            }
        }
        let conversation = &seen[reader]["conversation"];
        assert_eq!(conversation["ratings"].as_u64(), Some(ratings), "{reader}: unnested ratings");
        assert_eq!(conversation["extra_rows"].as_u64(), Some(extra), "{reader}: rows with undeclared fields");
        let current = &seen[reader]["conversation_current"];
        assert_eq!(current["types"][EXTRA_COLUMN], conversation["types"][EXTRA_COLUMN]);
    }

    // `status` covers both sources, with the generator's row counts.
    let out = run_cxlake(&["status", "--dest", &lake_arg, "--json"], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let by_source: std::collections::BTreeMap<&str, &serde_json::Value> =
        status.as_array().unwrap().iter().map(|s| (s["source"].as_str().unwrap(), s)).collect();
    assert_eq!(by_source.keys().copied().collect::<Vec<_>>(), ["dixa", "saltedcx"]);
    assert_eq!(by_source["dixa"]["datasets"]["conversation"]["rows"].as_u64(), Some(conversations));
    assert_eq!(by_source["saltedcx"]["datasets"]["turn"]["rows"].as_u64(), Some(salted_counts["turn"]));

    // `current` without --source rebuilds every source's current tables.
    let out = run_cxlake(&["current", "--dest", &lake_arg], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for table in ["saltedcx_current/agent", "dixa_current/conversation"] {
        assert!(out.stdout.contains(table), "{table}: {}", out.stdout);
    }
    for events in ["saltedcx_current/turn", "dixa_current/message"] {
        assert!(!out.stdout.contains(events), "{events} holds events: no materialised copy");
        assert!(!lake.path().join(events).exists(), "{events}");
    }
}

/// Issue 22: `views.sql` names the lake's root once; a moved (or copied) lake's views load from
/// its new root and read its own files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_lakes_views_load_from_its_new_root() {
    let emulator = emulator(emulator_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let mut plan = plan(&emulator, &first, days("2024-03-01", 2));
    plan.options.current_tables = true;
    assert_eq!(run_sync(&plan).await.unwrap().exit_code(), 0);
    let rows: u64 = expected_counts(&emulator.config().synth, &days("2024-03-01", 2))["engagement"];
    let moved = dir.path().join("moved");
    std::fs::rename(&first, &moved).unwrap();
    let python = required_env("CXLAKE_TEST_PYTHON");
    let script = "import duckdb\ncon = duckdb.connect()\ncon.execute(open('_cxlake/views.sql').read())\n\
                  print(con.sql('SELECT count(*) FROM saltedcx_engagement').fetchone()[0], \
                  con.sql('SELECT count(*) FROM saltedcx_customer_current').fetchone()[0] > 0)";
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).current_dir(&moved).args(["-c", script]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.trim(), format!("{rows} True"));
}
