//! Loop end to end: the report export's lifecycle against its emulator (Failed and Expired
//! exports, expiring signed URLs downloaded without credentials, 451), and every value of three
//! days compared with the generator's typed rows, in JSON and in XLSX.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use cxlake::pipeline::{run_sync, SyncPlan};
use cxlake::report::WindowOutcome;
use cxlake::schema::{DatasetSchema, SchemaRegistry};
use cxlake::sources::export_job::ExportPolicy;
use cxlake::sources::http::Secret;
use cxlake::sources::r#loop::client::{LoopClient, LoopConfig, LoopFormat};
use cxlake::sources::r#loop::emulator::{
    LoopEmulator, LoopEmulatorConfig, LoopEndpoint, LoopFault, LoopFaultKind,
};
use cxlake::sources::r#loop::synth::{self, LoopSynthConfig};
use cxlake::sources::r#loop::Loop;
use cxlake::window::Window;

use crate::common::*;

pub fn loop_emulator_config() -> LoopEmulatorConfig {
    LoopEmulatorConfig {
        synth: LoopSynthConfig { conversations_per_day: 25, ..LoopSynthConfig::default() },
        chunk_bytes: 2000,
        ..LoopEmulatorConfig::default()
    }
}

pub async fn loop_emulator(config: LoopEmulatorConfig) -> LoopEmulator {
    LoopEmulator::start(config, 0).await.expect("emulator starts on loopback")
}

pub fn loop_source(emulator: &LoopEmulator, format: LoopFormat) -> Loop {
    loop_source_in(emulator, format, None)
}

/// A source whose reports are calculated in `zone`.
pub fn loop_source_in(emulator: &LoopEmulator, format: LoopFormat, zone: Option<chrono_tz::Tz>) -> Loop {
    let mut config = LoopConfig::new(emulator.base_url(), Secret::new(emulator.config().api_token.clone()));
    config.request.format = format;
    config.request.timezone = zone;
    fast_transport(&mut config.http, Some(&mut config.poll));
    let policy = ExportPolicy { failed_cooldown: Duration::from_millis(10), ..ExportPolicy::default() };
    Loop::new(LoopClient::new(config).expect("client builds"), policy)
}

pub fn report_schema() -> Arc<DatasetSchema> {
    SchemaRegistry::embedded().unwrap().dataset("loop", "report").unwrap()
}

fn plan(source: Loop, lake: &std::path::Path, windows: Vec<Window>) -> SyncPlan<Loop> {
    plan_with(source, lake, vec![report_schema()], windows)
}

/// What the lake must hold for one day, from the generator's typed rows. The tenant's custom
/// field is kept in `_extra` under the name the format gives it (`customRegion` in JSON, the
/// sheet's `Custom: Region` in XLSX).
pub fn expected_for_day(config: LoopSynthConfig, day: NaiveDate, xlsx: bool) -> Vec<Vec<Cell>> {
    expected_rows(synth::day_rows(config, day), xlsx)
}

/// The lake's rows for `rows` of the generator.
pub fn expected_rows(rows: Vec<synth::ReportRow>, xlsx: bool) -> Vec<Vec<Cell>> {
    let names: Vec<String> = report_schema().columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        names,
        [
            "conversation_id",
            "subject",
            "shared_inbox",
            "channel",
            "status",
            "assignee_email",
            "customer_email",
            "customer_name",
            "tags",
            "created_at",
            "updated_at",
            "first_response_at",
            "resolved_at",
            "first_response_time_seconds",
            "resolution_time_seconds",
            "message_count",
            "comment_count",
            "satisfaction_score",
            "spam",
            "last_message",
            "_extra",
        ],
        "the columns this test describes"
    );
    let micros = |t: chrono::DateTime<chrono::Utc>| Cell::Int(t.timestamp_micros());
    let text = |s: &str| Cell::Text(s.to_string());
    rows.into_iter()
        .map(|r| {
            let since_created = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or(Cell::Null, |t| Cell::Int((t - r.created_at).num_seconds()))
            };
            let extra_key = if xlsx { "Custom: Region" } else { "customRegion" };
            vec![
                text(&r.conversation_id),
                text(&r.subject),
                text(r.shared_inbox),
                text(r.channel),
                text(r.status),
                r.assignee_email.as_deref().map_or(Cell::Null, text),
                text(&r.customer_email),
                text(&r.customer_name),
                text(&r.tags.join(", ")),
                micros(r.created_at),
                micros(r.updated_at),
                r.first_response_at.map_or(Cell::Null, micros),
                r.resolved_at.map_or(Cell::Null, micros),
                since_created(r.first_response_at),
                since_created(r.resolved_at),
                Cell::Int(r.message_count),
                Cell::Int(r.comment_count),
                r.satisfaction_score.map_or(Cell::Null, |f| Cell::Float(f.to_bits())),
                Cell::Bool(r.spam),
                text(&r.last_message),
                Cell::Text(serde_json::json!({ extra_key: r.custom_region }).to_string()),
            ]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_days_land_exactly_in_json_and_in_xlsx() {
    let emulator = loop_emulator(loop_emulator_config()).await;
    let windows = days("2024-03-01", 3);
    let mut declared_by_format = Vec::new();
    for (format, xlsx) in [(LoopFormat::Json, false), (LoopFormat::Xlsx, true)] {
        let lake = tempfile::tempdir().unwrap();
        let report =
            run_sync(&plan(loop_source(&emulator, format), lake.path(), windows.clone())).await.unwrap();
        assert!(
            report.windows.iter().all(|w| w.outcome == WindowOutcome::Committed),
            "{format:?}: {report:?}"
        );
        let mut declared = Vec::new();
        for w in &windows {
            let rows = batch_rows(&read_source_partition(lake.path(), "loop", "report", w.date));
            let expected = expected_for_day(emulator.config().synth, w.date, xlsx);
            assert_eq!(rows.len(), expected.len(), "{format:?} {}", w.date);
            for (got, want) in rows.iter().zip(&expected) {
                assert!(got == want, "{format:?} {}: {got:?}\n!=\n{want:?}", w.date);
            }
            declared.extend(rows.into_iter().map(|mut row| {
                row.pop();
                row
            }));
        }
        declared_by_format.push(declared);
    }
    assert!(declared_by_format[0] == declared_by_format[1], "JSON and XLSX land the same rows");
    let stats = emulator.stats();
    assert_eq!(stats.downloads_with_credentials, 0, "signed URLs never get the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_expired_exports_and_expired_urls_are_recovered() {
    let f = |endpoint, kind| LoopFault { endpoint, kind, times: 1 };
    let config = LoopEmulatorConfig {
        faults: vec![
            f(LoopEndpoint::Status, LoopFaultKind::FailExport),
            f(LoopEndpoint::Status, LoopFaultKind::ExpireExport),
            f(LoopEndpoint::Download, LoopFaultKind::ExpireUrl),
            f(LoopEndpoint::Create, LoopFaultKind::RateLimit { seconds: 1 }),
        ],
        ..loop_emulator_config()
    };
    let emulator = loop_emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let report =
        run_sync(&plan(loop_source(&emulator, LoopFormat::Xlsx), lake.path(), days("2024-03-01", 1)))
            .await
            .unwrap();
    assert_eq!(report.windows[0].outcome, WindowOutcome::Committed, "{report:?}");
    let stats = emulator.stats();
    assert_eq!(stats.exports_created, 3, "a new export after Failed and after Expired: {stats:?}");
    assert_eq!(stats.expired_urls_refused, 1, "{stats:?}");
    assert_eq!(stats.downloads, 1, "the fresh URL was used: {stats:?}");
    assert_eq!(stats.downloads_with_credentials, 0);
    let rows = batch_rows(&read_source_partition(lake.path(), "loop", "report", date("2024-03-01")));
    assert!(rows == expected_for_day(emulator.config().synth, date("2024-03-01"), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_account_stops_the_run_with_exit_2() {
    let emulator = loop_emulator(LoopEmulatorConfig { unverified: true, ..loop_emulator_config() }).await;
    let lake = tempfile::tempdir().unwrap();
    let env = [
        ("LOOP_API_URL", emulator.base_url().to_string()),
        ("LOOP_API_TOKEN", emulator.config().api_token.clone()),
    ];
    let dest = lake.path().to_str().unwrap();
    let out =
        run_cxlake(&["sync", "loop", "--dest", dest, "--from", "2024-03-01", "--to", "2024-03-03"], &env)
            .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.contains("451") && out.stdout.contains("not verified"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(emulator.stats().exports_created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_table_keeps_each_conversation_latest_report() {
    let emulator = loop_emulator(loop_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let env = [
        ("LOOP_API_URL", emulator.base_url().to_string()),
        ("LOOP_API_TOKEN", emulator.config().api_token.clone()),
    ];
    let dest = lake.path().to_str().unwrap();
    let args = [
        "sync",
        "loop",
        "--dest",
        dest,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
        "--poll-interval",
        "10ms",
    ];
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let config = emulator.config().synth;
    let mut latest = std::collections::BTreeMap::new();
    for day in ["2024-03-01", "2024-03-02"] {
        for row in synth::day_rows(config, date(day)) {
            latest.insert(row.conversation_id.clone(), row.status.to_string());
        }
    }
    let current = read_dir_rows(&lake.path().join("loop_current/report"));
    let schema = report_schema();
    let (id, status) =
        (schema.column_index("conversation_id").unwrap(), schema.column_index("status").unwrap());
    let got: std::collections::BTreeMap<String, String> = current
        .into_iter()
        .map(|row| match (&row[id], &row[status]) {
            (Cell::Text(id), Cell::Text(status)) => (id.clone(), status.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, latest);
    assert!(got.values().any(|s| s == "Resolved"), "a conversation updated on the next day shows its update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_drafted_from_a_workbook_loads_and_types_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let rows = synth::day_rows(LoopSynthConfig::default(), date("2024-03-01"));
    let header: Vec<&str> = synth::COLUMNS.iter().map(|(_, h)| *h).collect();
    let workbook =
        cxlake::sources::r#loop::xlsx::workbook(&header, rows.iter().map(|r| r.cells()), chrono_tz::Tz::UTC)
            .unwrap();
    let sample = dir.path().join("report.xlsx");
    std::fs::write(&sample, workbook).unwrap();
    let out = run_cxlake(&["schema", "draft", "acme.report", sample.to_str().unwrap()], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("acme")).unwrap();
    std::fs::write(schemas.join("acme/report.toml"), &out.stdout).unwrap();
    let registry = SchemaRegistry::with_overrides(&schemas).expect("the draft loads as a schema");
    let draft = registry.dataset("acme", "report").unwrap();
    let type_of = |name: &str| draft.columns[draft.column_index(name).unwrap()].column_type.to_string();
    assert_eq!(type_of("created_at"), "Timestamp(Microsecond, \"UTC\")");
    assert_eq!(type_of("spam"), "Boolean");
    assert_eq!(type_of("message_count"), "Int64");
    assert_eq!(type_of("satisfaction_score"), "Float64");
    assert_eq!(type_of("custom_region"), "Utf8");
    assert_eq!(type_of("first_response_time_seconds"), "Int64");
    assert!(out.stdout.contains(&format!("({} rows sampled)", rows.len())), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_filter_stops_the_run_and_a_missing_column_is_reported() {
    let emulator = loop_emulator(loop_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let env = [
        ("LOOP_API_URL", emulator.base_url().to_string()),
        ("LOOP_API_TOKEN", emulator.config().api_token.clone()),
    ];
    let dest = lake.path().to_str().unwrap();
    let args = [
        "sync",
        "loop",
        "--dest",
        dest,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
        "--teammate",
        "not-an-email",
    ];
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("(400)") && out.stdout.contains("e-mail"), "{}", out.stdout);

    // A workbook without the Subject column: loaded with nulls there, and said so.
    let rows = synth::day_rows(LoopSynthConfig::default(), date("2024-03-01"));
    let keep: Vec<usize> = (0..synth::COLUMNS.len()).filter(|i| synth::COLUMNS[*i].1 != "Subject").collect();
    let header: Vec<&str> = keep.iter().map(|i| synth::COLUMNS[*i].1).collect();
    let cells = rows.iter().map(|r| {
        let all = r.cells();
        keep.iter().map(|i| all[*i].clone()).collect::<Vec<_>>()
    });
    let inputs = tempfile::tempdir().unwrap();
    let file = inputs.path().join("report.xlsx");
    std::fs::write(
        &file,
        cxlake::sources::r#loop::xlsx::workbook(&header, cells, chrono_tz::Tz::UTC).unwrap(),
    )
    .unwrap();
    let out = run_cxlake(
        &[
            "convert",
            "loop.report",
            "--date",
            "2024-03-01",
            "--dest",
            dest,
            file.to_str().unwrap(),
            "--no-current-tables",
        ],
        NO_ENV,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("absent: subject"), "one line per dataset names it: {}", out.stderr);
    let landed = batch_rows(&read_source_partition(lake.path(), "loop", "report", date("2024-03-01")));
    let subject = report_schema().column_index("subject").unwrap();
    assert_eq!(landed.len(), rows.len());
    assert!(landed.iter().all(|row| row[subject] == Cell::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_url_stays_expired_is_created_again() {
    // The first URL and all three fresh ones are refused: the export is gone for this run.
    let fault = LoopFault { endpoint: LoopEndpoint::Download, kind: LoopFaultKind::ExpireUrl, times: 4 };
    let emulator = loop_emulator(LoopEmulatorConfig { faults: vec![fault], ..loop_emulator_config() }).await;
    let lake = tempfile::tempdir().unwrap();
    let report =
        run_sync(&plan(loop_source(&emulator, LoopFormat::Json), lake.path(), days("2024-03-01", 1)))
            .await
            .unwrap();
    assert_eq!(report.windows[0].outcome, WindowOutcome::Committed, "{report:?}");
    let stats = emulator.stats();
    assert_eq!((stats.exports_created, stats.expired_urls_refused, stats.downloads), (2, 4, 1), "{stats:?}");
    let rows = batch_rows(&read_source_partition(lake.path(), "loop", "report", date("2024-03-01")));
    assert!(rows == expected_for_day(emulator.config().synth, date("2024-03-01"), false));
}

/// A tenant reporting in New York time: each window is New York's day — 23 hours on the spring
/// change — asked for with `timezone`, its times written as New York wall-clock times (with the
/// offset in JSON, without any in XLSX), landing exactly the generator's rows for those local
/// bounds, in UTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_in_a_time_zone_land_on_its_local_days_across_a_daylight_saving_change() {
    let new_york: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let emulator = loop_emulator(loop_emulator_config()).await;
    let windows = days("2024-03-09", 3);
    for (format, xlsx) in [(LoopFormat::Json, false), (LoopFormat::Xlsx, true)] {
        let lake = tempfile::tempdir().unwrap();
        let source = loop_source_in(&emulator, format, Some(new_york));
        let report = run_sync(&plan(source, lake.path(), windows.clone())).await.unwrap();
        assert!(report.windows.iter().all(|w| w.outcome == WindowOutcome::Committed), "{report:?}");
        let mut shifted = 0;
        for w in &windows {
            let (start, end) = (w.start_in(new_york), w.end_in(new_york));
            let want = synth::report_rows(emulator.config().synth, start, end);
            assert!(!want.is_empty());
            shifted += want.iter().filter(|r| r.created_at.date_naive() != w.date).count();
            let rows = batch_rows(&read_source_partition(lake.path(), "loop", "report", w.date));
            let expected = expected_rows(want, xlsx);
            assert_eq!(rows.len(), expected.len(), "{format:?} {}", w.date);
            for (got, want) in rows.iter().zip(&expected) {
                assert!(got == want, "{format:?} {}: {got:?}\n!=\n{want:?}", w.date);
            }
        }
        assert!(shifted > 0, "some conversations of a New York day were created on another UTC date");
        assert_eq!((windows[1].end_in(new_york) - windows[1].start_in(new_york)).num_hours(), 23);
    }
}
