//! Dixa end to end: the client against its emulator, through the JSON decoder, into the lake;
//! every value compared with the generator's own records, nested values and `_extra` included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use cxlake::pipeline::{run_sync, SyncPlan};
use cxlake::report::WindowOutcome;
use cxlake::schema::{Column, ColumnType, DatasetSchema, Encoding, SchemaRegistry, EXTRA_COLUMN};
use cxlake::sources::dixa::client::{DixaClient, DixaConfig};
use cxlake::sources::dixa::emulator::{
    DixaEmulator, DixaEmulatorConfig, DixaEndpoint, DixaFault, DixaFaultKind,
};
use cxlake::sources::dixa::synth::{self, ConversationFilter, DixaSynthConfig};
use cxlake::sources::dixa::Dixa;
use cxlake::sources::http::Secret;
use cxlake::state::StateStore;
use cxlake::window::Window;
use serde_json::{Map, Value};

use crate::common::*;

pub fn dixa_emulator_config() -> DixaEmulatorConfig {
    DixaEmulatorConfig {
        synth: DixaSynthConfig { conversations_per_day: 30, ..DixaSynthConfig::default() },
        rate_limit_per_minute: None,
        chunk_bytes: 4096,
        ..DixaEmulatorConfig::default()
    }
}

pub async fn dixa_emulator(config: DixaEmulatorConfig) -> DixaEmulator {
    DixaEmulator::start(config, 0).await.expect("emulator starts on loopback")
}

pub fn dixa_client_config(emulator: &DixaEmulator) -> DixaConfig {
    let mut config = DixaConfig::new(emulator.base_url(), Secret::new(emulator.config().api_token.clone()));
    config.http.requests_per_minute = None;
    fast_transport(&mut config.http, None);
    config
}

pub fn dixa_source(config: DixaConfig) -> Dixa {
    Dixa::new(DixaClient::new(config).expect("client builds"))
}

pub fn dixa_schemas() -> Vec<Arc<DatasetSchema>> {
    let registry = SchemaRegistry::embedded().unwrap();
    ["conversation", "message"].iter().map(|d| registry.dataset("dixa", d).unwrap()).collect()
}

pub fn dixa_plan(emulator: &DixaEmulator, lake: &std::path::Path, windows: Vec<Window>) -> SyncPlan<Dixa> {
    plan_with(dixa_source(dixa_client_config(emulator)), lake, dixa_schemas(), windows)
}

/// A JSON value rendered with sorted keys, so texts compare whatever the map order.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&map[*k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// What the lake must hold for one value of the generator, by the schema's declaration and the
/// README's rules for values of another shape: a whole-valued number lands as the integer; a
/// value a struct cannot hold is null there and kept in `_extra` under its path.
fn expected_cell(column: &Column, value: Option<&Value>, path: &str, extra: &mut Map<String, Value>) -> Cell {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Cell::Null };
    match (&column.column_type, column.encoding) {
        (ColumnType::Utf8, Encoding::JsonText) => Cell::Text(canonical(value)),
        (ColumnType::Utf8, _) => Cell::Text(value.as_str().expect("a string").to_string()),
        (ColumnType::Int64, _) => Cell::Int(value.as_i64().unwrap_or_else(|| {
            let whole = value.as_f64().expect("a number");
            assert_eq!(whole.fract(), 0.0, "the generator sends whole numbers");
            whole as i64
        })),
        (ColumnType::Boolean, _) => Cell::Bool(value.as_bool().expect("a boolean")),
        (ColumnType::TimestampUtc, Encoding::EpochMs) => Cell::Int(value.as_i64().expect("ms") * 1000),
        (ColumnType::List(item), _) => {
            let items = match value {
                Value::Array(items) => items.clone(),
                scalar => vec![scalar.clone()],
            };
            Cell::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| expected_cell(item, Some(v), &format!("{path}[{i}]"), extra))
                    .collect(),
            )
        }
        (ColumnType::Struct(_), _) if !value.is_object() => {
            extra.insert(path.to_string(), value.clone());
            Cell::Null
        }
        (ColumnType::Struct(members), _) => {
            let object = value.as_object().expect("an object");
            for (name, v) in object {
                if !members.iter().any(|m| &m.name == name) {
                    extra.insert(format!("{path}.{name}"), v.clone());
                }
            }
            Cell::Struct(
                members
                    .iter()
                    .map(|m| expected_cell(m, object.get(&m.name), &format!("{path}.{}", m.name), extra))
                    .collect(),
            )
        }
        other => panic!("no Dixa column is {other:?}"),
    }
}

/// The rows the lake must hold for these generator records, in order.
pub fn expected_rows(schema: &DatasetSchema, records: &[Value]) -> Vec<Vec<Cell>> {
    records
        .iter()
        .map(|record| {
            let object = record.as_object().expect("records are objects");
            let mut extra = Map::new();
            let mut row: Vec<Cell> = schema
                .columns
                .iter()
                .filter(|c| c.name != EXTRA_COLUMN)
                .map(|c| expected_cell(c, object.get(&c.name), &c.name, &mut extra))
                .collect();
            for (name, v) in object {
                if schema.column_index(name).is_none() {
                    extra.insert(name.clone(), v.clone());
                }
            }
            row.push(if extra.is_empty() {
                Cell::Null
            } else {
                Cell::Text(canonical(&Value::Object(extra)))
            });
            row
        })
        .collect()
}

/// Rows with their JSON-text cells (`_extra`, `json_text` columns) rendered canonically.
fn canonical_json_cells(schema: &DatasetSchema, mut rows: Vec<Vec<Cell>>) -> Vec<Vec<Cell>> {
    let json_columns: Vec<usize> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name == EXTRA_COLUMN || c.encoding == Encoding::JsonText)
        .map(|(i, _)| i)
        .collect();
    for row in &mut rows {
        for &i in &json_columns {
            if let Cell::Text(text) = &row[i] {
                row[i] = Cell::Text(canonical(&serde_json::from_str(text).expect("JSON text")));
            }
        }
    }
    rows
}

/// The lake's rows of one day, with JSON-text cells rendered canonically.
pub fn landed_rows(lake: &std::path::Path, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
    canonical_json_cells(schema, batch_rows(&read_source_partition(lake, "dixa", &schema.dataset, day)))
}

/// The generator's records of one dataset for one UTC day, asked as the client asks.
fn generator_records(config: DixaSynthConfig, dataset: &str, day: NaiveDate) -> Vec<Value> {
    match dataset {
        "conversation" => synth::conversations(
            config,
            ConversationFilter { updated: Some(synth::day_range(day)), ..Default::default() },
        )
        .collect(),
        "message" => synth::messages(config, synth::day_range(day)).collect(),
        other => panic!("no dataset {other}"),
    }
}

/// What one dataset of one day must hold, from the generator.
pub fn expected_for_day(config: DixaSynthConfig, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
    expected_rows(schema, &generator_records(config, &schema.dataset, day))
}

pub fn assert_lake_matches_generator(lake: &std::path::Path, config: DixaSynthConfig, windows: &[Window]) {
    for schema in dixa_schemas() {
        for w in windows {
            let expected = expected_rows(&schema, &generator_records(config, &schema.dataset, w.date));
            assert!(!expected.is_empty(), "{} {}", schema.dataset, w.date);
            let landed = landed_rows(lake, &schema, w.date);
            assert_eq!(landed.len(), expected.len(), "{} {}", schema.dataset, w.date);
            for (i, (l, e)) in landed.iter().zip(&expected).enumerate() {
                assert_eq!(l, e, "{} {} row {i}: every value, nested ones included", schema.dataset, w.date);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_days_of_dixa_land_exactly_with_nested_values_and_extra_fields() {
    let emulator = dixa_emulator(dixa_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 3);
    let report = run_sync(&dixa_plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(report.committed(), 3);
    let config = emulator.config().synth;
    assert_lake_matches_generator(lake.path(), config, &windows);

    // Undeclared fields, top-level and inside ratings, are kept and reported once per file.
    let records = StateStore::new(cxlake::sink::Destination::parse(lake.path().to_str().unwrap()).unwrap())
        .load_windows("dixa")
        .await
        .unwrap();
    let undeclared: Vec<String> =
        records.iter().flat_map(|r| r.datasets["conversation"].drift.undeclared.keys().cloned()).collect();
    assert!(undeclared.iter().any(|p| p == "sla_policy"), "{undeclared:?}");
    assert!(undeclared.iter().any(|p| p == "ratings[].rating_comment_sentiment"), "{undeclared:?}");
    let schema = &dixa_schemas()[0];
    let extra_index = schema.column_index(EXTRA_COLUMN).unwrap();
    let extras: Vec<String> = windows
        .iter()
        .flat_map(|w| landed_rows(lake.path(), schema, w.date))
        .filter_map(|row| match &row[extra_index] {
            Cell::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(extras.iter().any(|e| e.contains("\"sla_policy\":{\"breached\"")), "{extras:?}");

    // Two requests per window, each with the token, none refused.
    let stats = emulator.stats();
    assert_eq!((stats.answers, stats.unauthorized, stats.bad_requests), (6, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stamped_exactly_at_midnight_land_in_exactly_one_window() {
    let emulator = dixa_emulator(dixa_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 3);
    run_sync(&dixa_plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    let config = emulator.config().synth;
    let schemas = dixa_schemas();
    let (conversation, message) = (&schemas[0], &schemas[1]);
    let id = |row: &Vec<Cell>, i: usize| row[i].clone();
    let (c_id, c_updated) =
        (conversation.column_index("id").unwrap(), conversation.column_index("updated_at").unwrap());
    let m_created = message.column_index("created_at").unwrap();
    // Day 2's first conversation is created at 00:00:00.000 and so is its first message; its
    // third conversation is last updated exactly at the midnight that ends day 2.
    let day2 = &synth::day_plan(&config, windows[1].date);
    let midnight_us = day2[0].created_ms * 1000;
    let messages_at_midnight: Vec<NaiveDate> = windows
        .iter()
        .filter(|w| {
            landed_rows(lake.path(), message, w.date).iter().any(|r| r[m_created] == Cell::Int(midnight_us))
        })
        .map(|w| w.date)
        .collect();
    assert_eq!(messages_at_midnight, [windows[1].date]);
    let updated_at_midnight = Cell::Int(day2[2].versions[0] * 1000);
    let found: Vec<NaiveDate> = windows
        .iter()
        .filter(|w| {
            landed_rows(lake.path(), conversation, w.date)
                .iter()
                .any(|r| id(r, c_id) == Cell::Int(day2[2].id) && r[c_updated] == updated_at_midnight)
        })
        .map(|w| w.date)
        .collect();
    assert_eq!(found, [windows[2].date], "updated at the midnight ending day 2: day 3's window only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_array_or_a_reset_body_is_fetched_again() {
    let config = DixaEmulatorConfig {
        faults: vec![
            DixaFault {
                endpoint: DixaEndpoint::Conversations,
                kind: DixaFaultKind::Truncate { bytes: 5000 },
                times: 1,
            },
            DixaFault {
                endpoint: DixaEndpoint::Messages,
                kind: DixaFaultKind::Reset { bytes: 3000 },
                times: 1,
            },
        ],
        ..dixa_emulator_config()
    };
    let emulator = dixa_emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-05", 1);
    let report = run_sync(&dixa_plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert_eq!(emulator.stats().faults_injected, 2);
    assert_eq!(emulator.stats().answers, 2, "each dataset answered whole once");
    assert_lake_matches_generator(lake.path(), emulator.config().synth, &windows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_waits_what_the_server_says() {
    let config = DixaEmulatorConfig {
        faults: vec![DixaFault {
            endpoint: DixaEndpoint::Conversations,
            kind: DixaFaultKind::Status { code: 503, retry_after: Some(1) },
            times: 1,
        }],
        ..dixa_emulator_config()
    };
    let emulator = dixa_emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let mut plan = dixa_plan(&emulator, lake.path(), days("2024-03-05", 1));
    plan.datasets.truncate(1);
    let started = Instant::now();
    let report = run_sync(&plan).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    // The client's own backoff is 10-50 ms here: only the header explains a whole second.
    assert!(elapsed >= Duration::from_millis(1000), "waited only {elapsed:?}");
    assert_eq!(emulator.stats().faults_injected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_paced_and_429s_without_retry_after_are_survived() {
    let config = DixaEmulatorConfig {
        rate_limit_per_minute: Some(600),
        faults: vec![DixaFault {
            endpoint: DixaEndpoint::Messages,
            kind: DixaFaultKind::RateLimit { seconds: None },
            times: 2,
        }],
        ..dixa_emulator_config()
    };
    let emulator = dixa_emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let mut client = dixa_client_config(&emulator);
    client.http.requests_per_minute = Some(600);
    let windows = days("2024-03-01", 2);
    let plan = plan_with(dixa_source(client), lake.path(), dixa_schemas(), windows.clone());
    let report = run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let stats = emulator.stats();
    assert_eq!(stats.rate_limited, 0, "paced under the emulator's limit");
    assert_eq!(stats.faults_injected, 2);
    assert!(stats.min_gap_ms.unwrap() >= 90, "requests 100 ms apart: {:?}", stats.min_gap_ms);
    assert_lake_matches_generator(lake.path(), emulator.config().synth, &windows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_stops_the_run_and_never_reaches_the_lake() {
    let emulator = dixa_emulator(dixa_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let mut config = dixa_client_config(&emulator);
    config.token = Secret::new("wrong-token");
    let plan = plan_with(dixa_source(config), lake.path(), dixa_schemas(), days("2024-03-01", 3));
    let report = run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 2, "authentication: nothing was committed");
    assert_eq!(report.committed(), 0);
    assert!(
        report.fatal_error.as_deref().unwrap_or_default().contains("DIXA_API_TOKEN"),
        "{:?}",
        report.fatal_error
    );
    assert!(report.windows.iter().all(|w| w.outcome != WindowOutcome::Committed));
    assert!(
        emulator.stats().unauthorized >= 1 && emulator.stats().unauthorized <= 2,
        "not retried per window"
    );
    assert!(!lake.path().join("dixa").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_current_table_keeps_each_conversation_latest_update() {
    let emulator = dixa_emulator(dixa_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 3);
    let mut plan = dixa_plan(&emulator, lake.path(), windows.clone());
    plan.options.current_tables = true;
    let report = run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let config = emulator.config().synth;
    // Independent answer: every version the windows hold, the latest updated_at per id.
    let mut latest: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut history_rows = 0;
    for w in &windows {
        for c in generator_records(config, "conversation", w.date) {
            history_rows += 1;
            let (id, updated) = (c["id"].as_i64().unwrap(), c["updated_at"].as_i64().unwrap());
            let entry = latest.entry(id).or_insert(updated);
            *entry = (*entry).max(updated);
        }
    }
    assert!(history_rows > latest.len(), "some conversations were exported twice");
    let schema = &dixa_schemas()[0];
    let rows = read_dir_rows(&lake.path().join("dixa_current/conversation"));
    let (id, updated) = (schema.column_index("id").unwrap(), schema.column_index("updated_at").unwrap());
    let current: std::collections::BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| match (&r[id], &r[updated]) {
            (Cell::Int(i), Cell::Int(u)) => (*i, *u / 1000),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(current.len(), rows.len(), "one row per id");
    assert_eq!(current, latest);
    let views = std::fs::read_to_string(lake.path().join("_cxlake/views.sql")).unwrap();
    assert!(views.contains("CREATE OR REPLACE VIEW dixa_conversation_current"), "{views}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_columns_land_in_delta_tables_too() {
    let emulator = dixa_emulator(dixa_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 2);
    let mut plan = dixa_plan(&emulator, lake.path(), windows.clone());
    plan.options.format = cxlake::sink::OutputFormat::Delta;
    plan.options.current_tables = true;
    let report = run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    let config = emulator.config().synth;
    for schema in dixa_schemas() {
        let landed = canonical_json_cells(
            &schema,
            read_delta_rows(lake.path(), &format!("dixa/{}", schema.dataset)).await,
        );
        let expected: Vec<Vec<Cell>> =
            windows.iter().flat_map(|w| expected_for_day(config, &schema, w.date)).collect();
        assert_eq!(landed.len(), expected.len(), "{}", schema.dataset);
        assert!(landed == expected, "{}: every value through the Delta table", schema.dataset);
    }
    let current = read_delta_rows(lake.path(), "dixa_current/conversation").await;
    assert!(!current.is_empty());
}

/// Issue 23: `--csids` exports exactly the named conversations — a filtered window that never
/// replaces a full one (refused in a lake of full windows, which stays untouched) — and
/// `--window-by created` lands each conversation on its creation day; both as the generator says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_conversations_and_windows_by_creation_land_as_the_api_filters_them() {
    let emulator = dixa_emulator(dixa_emulator_config()).await;
    let config = emulator.config().synth;
    let env = vec![
        ("DIXA_API_URL".to_string(), emulator.base_url().to_string()),
        ("DIXA_API_TOKEN".to_string(), emulator.config().api_token.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (full, named, created) =
        (dir.path().join("full"), dir.path().join("named"), dir.path().join("created"));
    let sync = |lake: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<String> = [
            "sync",
            "dixa",
            "--dest",
            lake.to_str().unwrap(),
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-03",
            "--requests-per-minute",
            "60000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    assert_eq!(run_cxlake(&sync(&full, &[]), &env).await.code, 0);
    let updated = |day: &str| {
        synth::conversations(
            config,
            ConversationFilter { updated: Some(synth::day_range(date(day))), ..Default::default() },
        )
        .collect::<Vec<_>>()
    };
    let ids: Vec<i64> = updated("2024-03-01")
        .iter()
        .chain(&updated("2024-03-02"))
        .step_by(4)
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let csids = ["--csids", list.as_str(), "--datasets", "conversation"];

    // In the lake of full windows: refused, nothing touched.
    let before = files_under(&full);
    let out = run_cxlake(&sync(&full, &csids), &env).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("separate --dest"), "{}", out.stderr);
    assert_eq!(files_under(&full), before);
    // With messages: the message export takes no conversation ids.
    let out = run_cxlake(&sync(&named, &["--csids", list.as_str()]), &env).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("--datasets conversation") || out.stderr.contains("--datasets conversation"),
        "{}",
        out.stderr
    );

    let out = run_cxlake(&sync(&named, &csids), &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let out = run_cxlake(&sync(&created, &["--window-by", "created"]), &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let schema = &dixa_schemas()[0];
    for day in ["2024-03-01", "2024-03-02"] {
        let wanted: Vec<serde_json::Value> = synth::conversations(
            config,
            ConversationFilter {
                updated: Some(synth::day_range(date(day))),
                csids: Some(ids.clone()),
                ..Default::default()
            },
        )
        .collect();
        let landed = landed_rows(&named, schema, date(day));
        assert_eq!(landed, expected_rows(schema, &wanted), "{day}: exactly the named conversations");
        let by_creation: Vec<serde_json::Value> = synth::conversations(
            config,
            ConversationFilter { created: Some(synth::day_range(date(day))), ..Default::default() },
        )
        .collect();
        assert_eq!(
            landed_rows(&created, schema, date(day)),
            expected_rows(schema, &by_creation),
            "{day}: by creation"
        );
    }
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(named.join("_cxlake/state/dixa/date=2024-03-01.json")).unwrap(),
    )
    .unwrap();
    assert!(record["filter"].is_string(), "the window records its filter: {record}");
}
