//! Issue 21: real tenants differ from our declarations. Tenants of the emulators that send what
//! our declarations do not expect — a Loop report with `tags` as a list, Dixa's reference shapes,
//! Khoros metrics under other names, a Khoros CSV with a value of the wrong type — land with no
//! window failing, every value compared with the generator; the drift is recorded, shown and
//! fixed by redrawing the declaration from the lake and replaying; a lake of two declarations
//! reads as one table, and a run that would narrow it is refused with the fix.

use std::path::Path;

use cxlake::decode::drift::Coercions;
use cxlake::pipeline::run_sync;
use cxlake::schema::SchemaRegistry;
use cxlake::sources::dixa::synth::DixaSynthConfig;
use cxlake::sources::khoros::client::KhorosFormat;
use cxlake::sources::khoros::emulator::KhorosEmulatorConfig;
use cxlake::sources::khoros::synth::{self as khoros_synth, KhorosSynthConfig, KhorosTenant};
use cxlake::sources::r#loop::client::LoopFormat;
use cxlake::sources::r#loop::emulator::LoopEmulatorConfig;
use cxlake::sources::r#loop::synth::{self as loop_synth, LoopSynthConfig, LoopTenant};
use cxlake::state::{StateStore, WindowRecord};

use crate::common::*;

async fn records(lake: &Path, source: &str) -> Vec<WindowRecord> {
    StateStore::new(cxlake::sink::Destination::parse(lake.to_str().unwrap()).unwrap())
        .load_windows(source)
        .await
        .unwrap()
}

fn loop_config(tenant: LoopTenant) -> LoopEmulatorConfig {
    LoopEmulatorConfig {
        synth: LoopSynthConfig { conversations_per_day: 25, tenant, ..LoopSynthConfig::default() },
        chunk_bytes: 2000,
        ..LoopEmulatorConfig::default()
    }
}

fn loop_env(emulator: &cxlake::sources::r#loop::emulator::LoopEmulator) -> Vec<(String, String)> {
    vec![
        ("LOOP_API_URL".into(), emulator.base_url().to_string()),
        ("LOOP_API_TOKEN".into(), emulator.config().api_token.clone()),
    ]
}

/// `tags` as a JSON list where our declaration says `Utf8`: every row lands, the column holds the
/// list's JSON text exactly as sent, in JSON and in XLSX; in JSON each is a counted coercion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_report_with_tags_as_a_list_lands_every_row_in_json_and_xlsx() {
    let emulator = crate::loop_report::loop_emulator(loop_config(LoopTenant::TagsAsList)).await;
    let synth = emulator.config().synth;
    let windows = days("2024-03-01", 2);
    let tags = crate::loop_report::report_schema().column_index("tags").unwrap();
    for (format, xlsx) in [(LoopFormat::Json, false), (LoopFormat::Xlsx, true)] {
        let lake = tempfile::tempdir().unwrap();
        let source = crate::loop_report::loop_source(&emulator, format);
        let plan = plan_with(source, lake.path(), vec![crate::loop_report::report_schema()], windows.clone());
        let report = run_sync(&plan).await.unwrap();
        assert_eq!(report.exit_code(), 0, "no window fails on a value's shape: {}", report.render());
        let mut rows = 0;
        for w in &windows {
            let mut expected = crate::loop_report::expected_for_day(synth, w.date, xlsx);
            for (row, truth) in expected.iter_mut().zip(loop_synth::day_rows(synth, w.date)) {
                row[tags] = Cell::Text(serde_json::to_string(&truth.tags).unwrap());
            }
            let landed = batch_rows(&read_source_partition(lake.path(), "loop", "report", w.date));
            assert_eq!(landed, expected, "{format:?} {}: every value", w.date);
            rows += landed.len() as u64;
        }
        let coerced: u64 = records(lake.path(), "loop")
            .await
            .iter()
            .map(|r| r.datasets["report"].drift.coerced.get("tags").map_or(0, |c| c.json_as_text))
            .sum();
        // A workbook's cell is text already: nothing to convert.
        assert_eq!(coerced, if xlsx { 0 } else { rows }, "{format:?}");
    }
}

/// Dixa's own reference: `tags_info` as tag names (we declare objects) and durations as `5400.0`.
/// No conversation is quarantined: the durations land as integers (counted), the names are kept
/// exactly in `_extra` under `tags_info[i]` with the struct null (counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dixa_reference_shapes_land_with_whole_numbers_as_integers_and_names_kept_in_extra() {
    let mut config = crate::dixa::dixa_emulator_config();
    config.synth = DixaSynthConfig { reference_shapes: true, ..config.synth };
    let emulator = crate::dixa::dixa_emulator(config).await;
    let windows = days("2024-03-01", 2);
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&crate::dixa::dixa_plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    crate::dixa::assert_lake_matches_generator(lake.path(), emulator.config().synth, &windows);
    let mut whole = 0;
    let mut names = 0;
    let mut rows = 0;
    for record in records(lake.path(), "dixa").await {
        let landed = &record.datasets["conversation"];
        assert_eq!(landed.stats.rows_rejected, 0);
        rows += landed.stats.rows_written;
        let drift = &landed.drift;
        whole += drift.coerced.get("exports_handling_duration").map_or(0, |c| c.whole_number);
        names += drift.kept_in_extra.get("tags_info[]").map_or(0, |c| c.values);
    }
    assert_eq!(whole, rows, "every conversation's exports_handling_duration was 5400.0-shaped");
    assert!(names > 0, "tag names were kept");
}

/// Two days of a Khoros tenant synced in one format, with no window failing.
async fn khoros_tenant_lake(
    tenant: KhorosTenant,
    format: KhorosFormat,
) -> (KhorosSynthConfig, tempfile::TempDir) {
    let config = KhorosEmulatorConfig {
        synth: KhorosSynthConfig { tenant, ..KhorosSynthConfig::default() },
        ..crate::khoros::khoros_emulator_config()
    };
    let emulator = crate::khoros::khoros_emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let password = emulator.config().password.clone();
    let source = crate::khoros::khoros_source(&emulator, format, &password);
    let plan = plan_with(source, lake.path(), vec![crate::khoros::user_schema()], days("2024-03-01", 2));
    let report = run_sync(&plan).await.unwrap();
    assert_eq!(report.exit_code(), 0, "no window fails on a value's shape: {}", report.render());
    (emulator.config().synth, lake)
}

/// A Khoros tenant whose metrics come under other names: their values land in `_extra`, the
/// declared columns stay empty, and the drift (in the record, `cxlake drift`, `status` and the
/// metrics file) names both and says how to fix the declaration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn khoros_metrics_under_other_names_land_in_extra_and_the_drift_names_them() {
    let tenant = KhorosTenant::RenamedMetrics;
    let (synth, lake) = khoros_tenant_lake(tenant, KhorosFormat::Json).await;
    let schema = crate::khoros::user_schema();
    let windows = days("2024-03-01", 2);
    // The declared columns of the renamed metrics, and their values as the tenant names them.
    let renamed: Vec<(usize, &str, &str)> = khoros_synth::RENAMED
        .iter()
        .map(|(ours, theirs)| (schema.column_for_field(ours).unwrap(), *ours, *theirs))
        .collect();
    let extra = schema.column_index("_extra").unwrap();
    for w in &windows {
        let mut expected = crate::khoros::expected_for_day(synth, w.date, true);
        let rows = khoros_synth::day_rows(synth, w.date, true);
        for (row, truth) in expected.iter_mut().zip(&rows) {
            let fields: std::collections::BTreeMap<&str, String> = truth.fields(true).into_iter().collect();
            let mut kept = serde_json::Map::new();
            for (column, _, theirs) in &renamed {
                row[*column] = Cell::Null;
                kept.insert(theirs.to_string(), fields[theirs].clone().into());
            }
            kept.insert("CUSTOM_SURVEY_RESPONSES".into(), fields["CUSTOM_SURVEY_RESPONSES"].clone().into());
            // The export's keys come sorted; `_extra` keeps the record's order.
            row[extra] = Cell::Text(serde_json::Value::Object(kept).to_string());
        }
        let landed = batch_rows(&read_source_partition(lake.path(), "khoros", "user", w.date));
        assert_eq!(landed, expected, "{}: every value", w.date);
    }
    let record = &records(lake.path(), "khoros").await[0];
    let drift = &record.datasets["user"].drift;
    let absent: Vec<&str> = drift.absent.iter().map(String::as_str).collect();
    let mut declared: Vec<&str> = renamed.iter().map(|(c, _, _)| schema.columns[*c].name.as_str()).collect();
    declared.sort();
    assert_eq!(absent, declared, "the declared columns no row had");
    for (_, _, theirs) in &renamed {
        assert_eq!(drift.undeclared[*theirs].values, synth.agents as u64, "{theirs}");
    }

    let lake_arg = lake.path().to_str().unwrap();
    let out = run_cxlake(&["drift", "--dest", lake_arg, "--source", "khoros"], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (_, _, theirs) in &renamed {
        assert!(out.stdout.contains(&format!("undeclared  {theirs}:")), "{theirs}: {}", out.stdout);
    }
    assert!(out.stdout.contains("absent      avg_handle_time_ms"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("cxlake schema draft khoros.user --from-lake {lake_arg}")),
        "the fix: {}",
        out.stdout
    );
    let json = run_cxlake(&["drift", "--dest", lake_arg, "--json"], NO_ENV).await;
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed[0]["undeclared"].as_object().unwrap().len(), renamed.len() + 1);
    let status = run_cxlake(&["status", "--dest", lake_arg], NO_ENV).await;
    assert!(status.stdout.contains("9 new, 8 absent"), "{}", status.stdout);
}

/// A Khoros CSV with a column the declaration lacks and a value of the wrong type: the row lands,
/// the column is null, the text is kept in `_extra` in header order, each counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_with_an_extra_column_and_a_wrong_typed_value_lands_every_value() {
    let tenant = KhorosTenant::WrongTypes;
    let (synth, lake) = khoros_tenant_lake(tenant, KhorosFormat::Csv).await;
    let schema = crate::khoros::user_schema();
    let windows = days("2024-03-01", 2);
    let replies = schema.column_index("total_replies").unwrap();
    let extra = schema.column_index("_extra").unwrap();
    let mut odd = 0;
    for w in &windows {
        let mut expected = crate::khoros::expected_for_day(synth, w.date, false);
        for (row, truth) in expected.iter_mut().zip(khoros_synth::day_rows(synth, w.date, true)) {
            if tenant.replies_not_a_number(truth.agent.id) {
                odd += 1;
                row[replies] = Cell::Null;
                row[extra] = Cell::Text(format!(
                    r#"{{"TOTAL_REPLIES":"{}","CUSTOM_SURVEY_RESPONSES":"{}"}}"#,
                    khoros_synth::NOT_A_NUMBER,
                    truth.custom_survey_responses
                ));
            }
        }
        let landed = batch_rows(&read_source_partition(lake.path(), "khoros", "user", w.date));
        assert_eq!(landed, expected, "{}: every value, `_extra` byte for byte", w.date);
    }
    let kept: u64 = records(lake.path(), "khoros")
        .await
        .iter()
        .map(|r| r.datasets["user"].drift.kept_in_extra.get("TOTAL_REPLIES").map_or(0, |c| c.values))
        .sum();
    assert_eq!(kept, odd);
    assert!(odd > 0);
}

/// The workflow end to end, as a user runs it: a tenant with 8 undeclared fields and one type
/// change → `cxlake drift` lists them → `cxlake schema draft --from-lake` → `cxlake replay` with
/// the drafted declaration → typed columns, nothing left in `_extra`, every value as generated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_listed_redrawn_from_the_lake_and_replayed_into_typed_columns() {
    let emulator = crate::loop_report::loop_emulator(loop_config(LoopTenant::Drifted)).await;
    let synth = emulator.config().synth;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let metrics = dir.path().join("cxlake.prom");
    let sync = [
        "sync",
        "loop",
        "--dest",
        lake_arg,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
        "--poll-interval",
        "10ms",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ];
    let out = run_cxlake(&sync, &loop_env(&emulator)).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stderr.matches("loop.report differs from its declaration").count(),
        1,
        "one summary line per dataset per run: {}",
        out.stderr
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains(r#"cxlake_undeclared_fields{source="loop",dataset="report"} 8"#), "{prom}");

    // 1. What differs.
    let out = run_cxlake(&["drift", "--dest", lake_arg, "--json"], NO_ENV).await;
    let drift: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let report = &drift[0];
    let undeclared: Vec<&str> =
        report["undeclared"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected_new: Vec<&str> = loop_synth::DRIFTED_COLUMNS.iter().map(|(k, _)| *k).collect();
    expected_new.push("customRegion");
    expected_new.sort();
    assert_eq!(undeclared, expected_new);
    assert!(report["kept_in_extra"]["messageCount"]["values"].as_u64().unwrap() > 0, "{report}");

    // 2. The declaration redrawn from the raw archive.
    let out = run_cxlake(&["schema", "draft", "loop.report", "--from-lake", lake_arg], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let drafted =
        cxlake::schema::parse_schema("draft", &out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.stdout));
    let type_of = |name: &str| {
        drafted
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .column_type
            .to_string()
    };
    for (name, t) in [
        ("custom_region", "Utf8"),
        ("priority", "Utf8"),
        ("language", "Utf8"),
        ("nps_score", "Int64"),
        ("sla_breached", "Boolean"),
        ("queue_time_seconds", "Float64"),
        ("csat_comment", "Utf8"),
        ("reopened_at", "Timestamp(Microsecond, \"UTC\")"),
        ("message_count", "Float64"),
        ("subject", "Utf8"),
    ] {
        assert_eq!(type_of(name), t, "{name}:\n{}", out.stdout);
    }
    let declared = crate::loop_report::report_schema();
    let subject = drafted.columns.iter().find(|c| c.name == "subject").unwrap();
    assert_eq!(
        subject.description, declared.columns[1].description,
        "declared columns keep their descriptions"
    );
    assert!(out.stdout.contains("# was Int64"), "the type change is marked:\n{}", out.stdout);

    // 3. Review (a person writes the descriptions), then replay: no call to the platform.
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("loop")).unwrap();
    std::fs::write(schemas.join("loop/report.toml"), &out.stdout).unwrap();
    let downloads = emulator.stats().downloads;
    // From the config file, as a scheduled job would: `schemas_dir`, relative to the file.
    let config = dir.path().join("cxlake.toml");
    std::fs::write(
        &config,
        format!("[destination]\nurl = {lake_arg:?}\n[output]\nschemas_dir = \"schemas\"\n"),
    )
    .unwrap();
    let out = run_cxlake(&["--config", config.to_str().unwrap(), "replay", "loop"], NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(emulator.stats().downloads, downloads, "replayed from the archive alone");

    // 4. Typed columns, every value as generated, nothing in `_extra`.
    let names: Vec<String> = drafted.columns.iter().map(|c| c.name.clone()).collect();
    let at = |name: &str| names.iter().position(|n| n == name).unwrap();
    for day in ["2024-03-01", "2024-03-02", "2024-03-03"] {
        let landed = batch_rows(&read_source_partition(&lake, "loop", "report", date(day)));
        let truth = loop_synth::day_rows(synth, date(day));
        assert_eq!(landed.len(), truth.len(), "{day}");
        for (row, t) in landed.iter().zip(&truth) {
            let d = t.drifted.as_ref().unwrap();
            assert_eq!(row[at("conversation_id")], Cell::Text(t.conversation_id.clone()));
            assert_eq!(row[at("message_count")], Cell::Float(d.message_count_sent.to_bits()));
            assert_eq!(row[at("custom_region")], Cell::Text(t.custom_region.into()));
            assert_eq!(row[at("priority")], Cell::Text(d.priority.into()));
            assert_eq!(row[at("language")], Cell::Text(d.language.into()));
            assert_eq!(row[at("nps_score")], d.nps_score.map_or(Cell::Null, Cell::Int));
            assert_eq!(row[at("sla_breached")], Cell::Bool(d.sla_breached));
            assert_eq!(row[at("queue_time_seconds")], Cell::Float(d.queue_time_seconds.to_bits()));
            assert_eq!(row[at("csat_comment")], d.csat_comment.clone().map_or(Cell::Null, Cell::Text));
            assert_eq!(
                row[at("reopened_at")],
                d.reopened_at.map_or(Cell::Null, |t| Cell::Int(t.timestamp_micros()))
            );
            assert_eq!(row[at("_extra")], Cell::Null, "nothing left undeclared");
        }
    }
    let out = run_cxlake(&["drift", "--dest", lake_arg], NO_ENV).await;
    assert!(
        out.stdout.contains("loop.report — declaration") && out.stdout.contains(": matches"),
        "{}",
        out.stdout
    );
    let rows = python_json(
        "sql.py",
        &[lake_arg, "SELECT count(*), count(priority), count(_extra) FROM loop_report"],
    )
    .await;
    assert_eq!(rows[0][1], rows[0][0], "the view reads the typed columns");
    assert_eq!(rows[0][2], 0);
}

const SLA_POLICY: &str = r#"
[[columns]]
name = "sla_policy"
type = "Struct"
nullable = true
description = "The SLA policy the conversation fell under (this tenant's field)."
[[columns.fields]]
name = "name"
type = "Utf8"
nullable = true
description = "The policy's name."
[[columns.fields]]
name = "breached"
type = "Boolean"
nullable = true
description = "Whether the conversation breached it."
"#;

/// A lake of two declarations: windows replayed with a declaration that adds a column read
/// together with older ones (DuckDB's views, the current table, python deltalake); a plain sync
/// that would narrow the table is refused with the fix, touching nothing; `forget` without
/// `--schemas` erases across both and keeps the added column's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_declarations_read_as_one_table_and_a_narrowing_run_is_refused() {
    for format in ["parquet", "delta"] {
        two_declarations(format).await;
    }
}

async fn two_declarations(format: &str) {
    let emulator = crate::dixa::dixa_emulator(crate::dixa::dixa_emulator_config()).await;
    let synth = emulator.config().synth;
    let env = vec![
        ("DIXA_API_URL".to_string(), emulator.base_url().to_string()),
        ("DIXA_API_TOKEN".to_string(), emulator.config().api_token.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let sync = |from: &'static str, to: &'static str| {
        vec![
            "sync",
            "dixa",
            "--dest",
            lake_arg,
            "--from",
            from,
            "--to",
            to,
            "--format",
            format,
            "--requests-per-minute",
            "60000",
        ]
    };
    let out = run_cxlake(&sync("2024-03-01", "2024-03-04"), &env).await;
    assert_eq!(out.code, 0, "{format}: {}", out.stderr);

    // The user's declaration: the built-in one and the tenant's `sla_policy`.
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("dixa")).unwrap();
    let builtin = SchemaRegistry::embedded().unwrap().dataset("dixa", "conversation").unwrap();
    std::fs::write(
        schemas.join("dixa/conversation.toml"),
        format!("{}{SLA_POLICY}", builtin.declaration.text),
    )
    .unwrap();
    let schemas_arg = schemas.to_str().unwrap();
    let replay = [
        "replay",
        "dixa",
        "--dest",
        lake_arg,
        "--from",
        "2024-03-02",
        "--schemas",
        schemas_arg,
        "--format",
        format,
    ];
    let out = run_cxlake(&replay, NO_ENV).await;
    assert_eq!(out.code, 0, "{format}: additive, so a part of the history may go first: {}", out.stderr);

    // Every conversation with an SLA policy in the replayed windows has it as a typed column.
    let conversations = |day: &str| {
        cxlake::sources::dixa::synth::conversations(
            synth,
            cxlake::sources::dixa::synth::ConversationFilter {
                updated: Some(cxlake::sources::dixa::synth::day_range(date(day))),
                ..Default::default()
            },
        )
        .collect::<Vec<_>>()
    };
    let all: Vec<serde_json::Value> =
        ["2024-03-01", "2024-03-02", "2024-03-03"].iter().flat_map(|d| conversations(d)).collect();
    let with_sla = ["2024-03-02", "2024-03-03"]
        .iter()
        .flat_map(|d| conversations(d))
        .filter(|c| c.get("sla_policy").is_some())
        .count() as u64;
    assert!(with_sla > 0);
    check_table(format, &lake, all.len() as u64, with_sla).await;

    // A plain sync would write the next window without `sla_policy`: refused, nothing touched.
    let before = std::fs::read(lake.join("_cxlake/state/dixa/date=2024-03-03.json")).unwrap();
    let out = run_cxlake(&sync("2024-03-03", "2024-03-04"), &env).await;
    assert_eq!(out.code, 2, "{format}: {}\n{}", out.stdout, out.stderr);
    let rewrite = if format == "delta" { "a new --dest" } else { "cxlake replay dixa" };
    for needed in
        ["drops column `sla_policy`", "--schemas DIR", "_cxlake/declarations/dixa/conversation/", rewrite]
    {
        assert!(out.stderr.contains(needed), "{format}: `{needed}` in {}", out.stderr);
    }
    assert_eq!(std::fs::read(lake.join("_cxlake/state/dixa/date=2024-03-03.json")).unwrap(), before);
    let mut with_schemas = sync("2024-03-03", "2024-03-04");
    with_schemas.extend(["--schemas", schemas_arg]);
    let out = run_cxlake(&with_schemas, &env).await;
    assert_eq!(out.code, 0, "{format}: {}", out.stderr);

    // Erasure without --schemas: the person leaves every window, the added column stays.
    let person = all
        .iter()
        .find(|c| c.get("sla_policy").is_none())
        .and_then(|c| c["requester_email"].as_str())
        .unwrap()
        .to_string();
    let out = run_cxlake(&["forget", "--dest", lake_arg, "--email", &person], NO_ENV).await;
    assert_eq!(out.code, 0, "{format}: {}\n{}", out.stdout, out.stderr);
    let gone = all.iter().filter(|c| c["requester_email"] == person.as_str()).count() as u64;
    assert!(gone > 0);
    check_table(format, &lake, all.len() as u64 - gone, with_sla).await;
    if format == "parquet" {
        let query =
            format!("SELECT count(*) FROM dixa_conversation_current WHERE requester_email = '{person}'");
        assert_eq!(python_json("sql.py", &[lake_arg, &query]).await[0][0], 0);
    }
}

/// The history table read by a real reader across both declarations: every row, the added
/// column present and set exactly where the generator sent it.
async fn check_table(format: &str, lake: &Path, rows: u64, with_sla: u64) {
    let lake_arg = lake.to_str().unwrap();
    if format == "parquet" {
        let query = "SELECT count(*), count(sla_policy), count(DISTINCT id) = (SELECT count(*) FROM dixa_conversation_current), \
                     (SELECT count(*) FROM (DESCRIBE dixa_conversation_current) WHERE column_name = 'sla_policy') \
                     FROM dixa_conversation";
        let seen = python_json("sql.py", &[lake_arg, query]).await;
        assert_eq!(seen[0][0].as_u64(), Some(rows), "{seen}");
        assert_eq!(seen[0][1].as_u64(), Some(with_sla), "{seen}");
        assert_eq!(seen[0][2], true, "the current table: one row per conversation, {seen}");
        assert_eq!(seen[0][3], 1, "the current table has the added column, {seen}");
    } else {
        let table = lake.join("dixa/conversation");
        let seen = python_json("delta_table.py", &[table.to_str().unwrap()]).await;
        assert_eq!(seen["rows"].as_u64(), Some(rows), "{seen}");
        assert_eq!(seen["non_null"]["sla_policy"].as_u64(), Some(with_sla), "{seen}");
        let current =
            python_json("delta_table.py", &[lake.join("dixa_current/conversation").to_str().unwrap()]).await;
        assert!(current["columns"].as_array().unwrap().iter().any(|c| c == "sla_policy"), "{current}");
    }
}

/// Rows of one window sharing a key and a version: counted with an example key (report, drift,
/// status), and the current table keeps the last of them in file order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_sharing_a_key_and_version_are_counted_shown_and_the_last_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let row = |id: &str, subject: &str| {
        format!(
            r#"{{"conversationId": "{id}", "subject": "{subject}", "createdAt": "2024-03-01T08:00:00Z", "updatedAt": "2024-03-01T09:00:00Z"}}"#
        )
    };
    let rows = [row("c-1", "first"), row("c-2", "other"), row("c-1", "second"), row("c-1", "third")];
    std::fs::write(&file, format!("[{}]", rows.join(",\n"))).unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let out = run_cxlake(
        &["convert", "loop.report", "--date", "2024-03-01", "--dest", lake_arg, file.to_str().unwrap()],
        NO_ENV,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("2 history row(s) repeat a key and version"), "{}", out.stdout);
    let current = read_dir_rows(&lake.join("loop_current/report"));
    let schema = crate::loop_report::report_schema();
    let subject = schema.column_index("subject").unwrap();
    let mut subjects: Vec<&Cell> = current.iter().map(|r| &r[subject]).collect();
    subjects.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        subjects,
        [&Cell::Text("other".into()), &Cell::Text("third".into())],
        "the last in file order"
    );
    let drift = run_cxlake(&["drift", "--dest", lake_arg], NO_ENV).await;
    assert!(
        drift.stdout.contains("duplicate   2024-03-01: 2 row(s)") && drift.stdout.contains("key (c-1)"),
        "{}",
        drift.stdout
    );
    let status = run_cxlake(&["status", "--dest", lake_arg], NO_ENV).await;
    assert!(status.stdout.contains("2 dup"), "{}", status.stdout);
}

/// `json_text` and `_extra` hold the input's bytes: key order, a 30-digit integer, `1E400`,
/// escapes and raw UTF-8 as sent, through Parquet; a form feed between tokens is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_are_kept_byte_for_byte_and_a_form_feed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let form = r#"{"name": "Jo", "email": "jo@example.com", "n": -123123123123123123123123123123, "big": 1E400, "esc": "caf\u00e9 \"q\"\n", "raw": "café 😀"}"#;
    let file = dir.path().join("messages.json");
    std::fs::write(&file, format!(r#"[{{"id": "m-1", "form_submission": {form}, "custom": {form}}}]"#))
        .unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let convert = |file: &Path| {
        vec![
            "convert".to_string(),
            "dixa.message".into(),
            "--date".into(),
            "2024-03-01".into(),
            "--dest".into(),
            lake_arg.to_string(),
            file.to_str().unwrap().to_string(),
        ]
    };
    let out = run_cxlake(&convert(&file), NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let schema = SchemaRegistry::embedded().unwrap().dataset("dixa", "message").unwrap();
    let landed = batch_rows(&read_source_partition(&lake, "dixa", "message", date("2024-03-01")));
    assert_eq!(landed[0][schema.column_index("form_submission").unwrap()], Cell::Text(form.to_string()));
    assert_eq!(
        landed[0][schema.column_index("_extra").unwrap()],
        Cell::Text(format!(r#"{{"custom":{form}}}"#))
    );

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "[\u{c}]").unwrap();
    let out = run_cxlake(&convert(&broken), NO_ENV).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("form feed") || out.stderr.contains("form feed"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let _ = Coercions::default();
}

/// A current-table refresh that fails shows in `status`, and the next run refreshes the tables
/// even with no window to commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_current_table_refresh_shows_in_status_and_the_next_run_retries_it() {
    let emulator = crate::loop_report::loop_emulator(loop_config(LoopTenant::Documented)).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    // A file where the current tables' directory goes: the refresh cannot publish.
    std::fs::write(lake.join("loop_current"), b"in the way").unwrap();
    let lake_arg = lake.to_str().unwrap();
    let sync = [
        "sync",
        "loop",
        "--dest",
        lake_arg,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
        "--poll-interval",
        "10ms",
    ];
    let out = run_cxlake(&sync, &loop_env(&emulator)).await;
    assert_eq!(out.code, 1, "history committed, current tables not: partial: {}", out.stdout);
    let status = run_cxlake(&["status", "--dest", lake_arg], NO_ENV).await;
    assert!(status.stdout.contains("current tables: NOT up to date"), "{}", status.stdout);

    std::fs::remove_file(lake.join("loop_current")).unwrap();
    let mut again = sync.to_vec();
    again.push("--skip-done");
    let exports = emulator.stats().exports_created;
    let out = run_cxlake(&again, &loop_env(&emulator)).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(emulator.stats().exports_created, exports, "nothing exported again");
    assert!(!read_dir_rows(&lake.join("loop_current/report")).is_empty(), "refreshed by the next run");
    let status = run_cxlake(&["status", "--dest", lake_arg], NO_ENV).await;
    assert!(!status.stdout.contains("NOT up to date"), "{}", status.stdout);
}

/// The declaration drafted from the lake (Loop's tenant adds `customRegion`) replayed over a part
/// of the history: old and new windows read as one table in DuckDB's views and the current table,
/// a plain sync is refused with the fix, and `forget` erases across both declarations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drafted_declaration_replayed_over_part_of_the_history_reads_with_the_rest() {
    let emulator = crate::loop_report::loop_emulator(loop_config(LoopTenant::Documented)).await;
    let synth = emulator.config().synth;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let sync = |from: &'static str, to: &'static str| {
        vec!["sync", "loop", "--dest", lake_arg, "--from", from, "--to", to, "--poll-interval", "10ms"]
    };
    assert_eq!(run_cxlake(&sync("2024-03-01", "2024-03-04"), &loop_env(&emulator)).await.code, 0);
    let out = run_cxlake(&["schema", "draft", "loop.report", "--from-lake", lake_arg], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("name = \"custom_region\""), "{}", out.stdout);
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("loop")).unwrap();
    std::fs::write(schemas.join("loop/report.toml"), &out.stdout).unwrap();
    let schemas_arg = schemas.to_str().unwrap();
    let out = run_cxlake(
        &["replay", "loop", "--dest", lake_arg, "--from", "2024-03-02", "--schemas", schemas_arg],
        NO_ENV,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    let refused = run_cxlake(&sync("2024-03-04", "2024-03-05"), &loop_env(&emulator)).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("drops column `custom_region`"), "{}", refused.stderr);
    assert!(!lake.join("_cxlake/state/loop/date=2024-03-04.json").exists(), "nothing written");
    let mut with_schemas = sync("2024-03-04", "2024-03-05");
    with_schemas.extend(["--schemas", schemas_arg]);
    assert_eq!(run_cxlake(&with_schemas, &loop_env(&emulator)).await.code, 0);

    let rows =
        |days: &[&str]| days.iter().map(|d| loop_synth::day_rows(synth, date(d)).len() as u64).sum::<u64>();
    let all = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"];
    let query = "SELECT count(*), count(custom_region), \
                 (SELECT count(*) FROM loop_report_current) = (SELECT count(DISTINCT conversation_id) FROM loop_report) \
                 FROM loop_report";
    let seen = python_json("sql.py", &[lake_arg, query]).await;
    assert_eq!(seen[0][0].as_u64(), Some(rows(&all)), "{seen}");
    assert_eq!(
        seen[0][1].as_u64(),
        Some(rows(&all[1..])),
        "the old window reads the new column as null: {seen}"
    );
    assert_eq!(seen[0][2], true, "{seen}");
    let table = lake.join("loop/report");
    let polars = python_json("polars_union.py", &[table.to_str().unwrap(), "custom_region"]).await;
    assert_eq!(polars["rows"].as_u64(), Some(rows(&all)), "the README's Polars recipe: {polars}");
    assert_eq!(polars["non_null"].as_u64(), Some(rows(&all[1..])), "{polars}");

    let person = loop_synth::day_rows(synth, date("2024-03-01"))[0].customer_email.clone();
    let out = run_cxlake(&["forget", "--dest", lake_arg, "--email", &person], NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let query = format!(
        "SELECT (SELECT count(*) FROM loop_report WHERE customer_email = '{person}'), \
                (SELECT count(*) FROM loop_report_current WHERE customer_email = '{person}'), \
                (SELECT count(custom_region) FROM loop_report_current)"
    );
    let seen = python_json("sql.py", &[lake_arg, &query]).await;
    assert_eq!((seen[0][0].as_u64(), seen[0][1].as_u64()), (Some(0), Some(0)), "{seen}");
    assert!(seen[0][2].as_u64().unwrap() > 0, "the drafted column survives the erasure: {seen}");
}

/// Issue 22's scenario: a lake written with a drafted declaration (an added column), a person in
/// the history, the current table, the raw archive and the quarantine; `forget` without
/// `--schemas` killed after its first publish, then run again: `forget --verify` finds no trace
/// anywhere, and no column of the user's declaration is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_on_a_custom_declaration_killed_then_rerun_verifies_clean_and_keeps_every_column() {
    let emulator = crate::loop_report::loop_emulator(loop_config(LoopTenant::Documented)).await;
    let synth = emulator.config().synth;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let sync = [
        "sync",
        "loop",
        "--dest",
        lake_arg,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
        "--poll-interval",
        "10ms",
    ];
    assert_eq!(run_cxlake(&sync, &loop_env(&emulator)).await.code, 0);
    let drafted = run_cxlake(&["schema", "draft", "loop.report", "--from-lake", lake_arg], NO_ENV).await;
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("loop")).unwrap();
    std::fs::write(schemas.join("loop/report.toml"), &drafted.stdout).unwrap();
    let schemas_arg = schemas.to_str().unwrap();
    let out = run_cxlake(&["replay", "loop", "--dest", lake_arg, "--schemas", schemas_arg], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The person in the quarantine too: a record of theirs without its required id.
    let person = loop_synth::day_rows(synth, date("2024-03-01"))[0].customer_email.clone();
    let file = dir.path().join("report.json");
    std::fs::write(&file, format!(r#"[{{"subject": "no id", "customerEmail": "{person}"}}]"#)).unwrap();
    let convert = [
        "convert",
        "loop.report",
        "--date",
        "2024-03-03",
        "--dest",
        lake_arg,
        file.to_str().unwrap(),
        "--schemas",
        schemas_arg,
        "--max-rejects",
        "1",
    ];
    assert_eq!(run_cxlake(&convert, NO_ENV).await.code, 0);

    let forget = ["forget", "--dest", lake_arg, "--email", &person];
    let killed = run_cxlake(&forget, &[("CXLAKE_FAILPOINT", "forget-published")]).await;
    assert_ne!(killed.code, 0, "the failpoint aborted it: {}", killed.stderr);
    // Until the erasure completes, no sync publishes a window it covers.
    let mut resync = sync.to_vec();
    resync.extend(["--schemas", schemas_arg]);
    let refused = run_cxlake(&resync, &loop_env(&emulator)).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("run that forget again"), "{}", refused.stderr);
    let out = run_cxlake(&forget, NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("verified: no trace left"), "{}", out.stdout);
    assert_eq!(run_cxlake(&resync, &loop_env(&emulator)).await.code, 0, "the erasure is complete");
    let out = run_cxlake(&forget, NO_ENV).await;
    assert_eq!(out.code, 0, "the sync fetched the person again from the platform: erased again");
    let verify = run_cxlake(&["forget", "--dest", lake_arg, "--email", &person, "--verify"], NO_ENV).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("verified: no trace left") && verify.stdout.contains("1 quarantine file(s)"),
        "{}",
        verify.stdout
    );
    for (path, text) in files_under(&lake)
        .iter()
        .filter(|f| f.contains("rejects"))
        .map(|f| (f.clone(), std::fs::read_to_string(lake.join(f)).unwrap()))
    {
        assert!(!text.contains(&person), "{path} still holds the person");
    }
    let seen = python_json(
        "sql.py",
        &[lake_arg, "SELECT count(custom_region), (SELECT count(custom_region) FROM loop_report_current) FROM loop_report"],
    )
    .await;
    let rows: u64 =
        ["2024-03-01", "2024-03-02"].iter().map(|d| loop_synth::day_rows(synth, date(d)).len() as u64).sum();
    assert!(seen[0][0].as_u64().unwrap() + 5 >= rows, "the added column keeps its data: {seen}");
    assert!(seen[0][1].as_u64().unwrap() > 0, "{seen}");
}
