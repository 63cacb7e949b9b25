//! Khoros Care end to end: the user export's lifecycle against its emulator (FAILED exports,
//! `result` as object and as array, credentials), and every value of three days compared with
//! the generator's typed rows, in both formats.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use cxlake::pipeline::{run_sync, SyncPlan};
use cxlake::report::WindowOutcome;
use cxlake::schema::{DatasetSchema, SchemaRegistry};
use cxlake::sources::export_job::ExportPolicy;
use cxlake::sources::http::Secret;
use cxlake::sources::khoros::client::{KhorosClient, KhorosConfig, KhorosFormat};
use cxlake::sources::khoros::emulator::{
    KhorosEmulator, KhorosEmulatorConfig, KhorosEndpoint, KhorosFault, KhorosFaultKind,
};
use cxlake::sources::khoros::synth::{self, KhorosSynthConfig};
use cxlake::sources::khoros::Khoros;
use cxlake::window::Window;

use crate::common::*;

pub fn khoros_emulator_config() -> KhorosEmulatorConfig {
    KhorosEmulatorConfig { chunk_bytes: 700, ..KhorosEmulatorConfig::default() }
}

pub async fn khoros_emulator(config: KhorosEmulatorConfig) -> KhorosEmulator {
    KhorosEmulator::start(config, 0).await.expect("emulator starts on loopback")
}

pub fn khoros_source(emulator: &KhorosEmulator, format: KhorosFormat, password: &str) -> Khoros {
    let c = emulator.config();
    let mut config = KhorosConfig::new(
        emulator.base_url(),
        c.username.clone(),
        Secret::new(password),
        Secret::new(c.company_key.clone()),
    );
    config.request.format = format;
    fast_transport(&mut config.http, Some(&mut config.poll));
    let policy = ExportPolicy { failed_cooldown: Duration::from_millis(10), ..ExportPolicy::default() };
    Khoros::new(KhorosClient::new(config).expect("client builds"), policy)
}

/// The environment that points `cxlake sync khoros` at `emulator` with its credentials.
fn khoros_env(emulator: &KhorosEmulator) -> Vec<(String, String)> {
    let c = emulator.config();
    vec![
        ("KHOROS_API_URL".into(), emulator.base_url().to_string()),
        ("KHOROS_USERNAME".into(), c.username.clone()),
        ("KHOROS_PASSWORD".into(), c.password.clone()),
        ("KHOROS_COMPANY_KEY".into(), c.company_key.clone()),
    ]
}

pub fn user_schema() -> Arc<DatasetSchema> {
    SchemaRegistry::embedded().unwrap().dataset("khoros", "user").unwrap()
}

fn plan(source: Khoros, lake: &std::path::Path, windows: Vec<Window>) -> SyncPlan<Khoros> {
    plan_with(source, lake, vec![user_schema()], windows)
}

/// What the lake must hold for one day, from the generator's typed rows: durations the export
/// formats as HH:MM:SS are whole seconds, the exact `*_MILLIS` values come only with JSON, and
/// the tenant's undocumented metric is kept in `_extra`.
pub fn expected_for_day(config: KhorosSynthConfig, day: NaiveDate, json: bool) -> Vec<Vec<Cell>> {
    let schema = user_schema();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let mut declared = vec![
        "report_date",
        "agent_id",
        "agent_name",
        "agent_email",
        "agent_status",
        "team_names",
        "total_assigned",
        "total_handled",
        "total_closed",
        "total_replies",
        "avg_handle_time_ms",
        "avg_first_response_time_ms",
    ];
    let states = ["console_logged_in", "green_state", "yellow_state", "red_state", "mobile"];
    let formatted: Vec<String> = states.iter().map(|s| format!("total_{s}_time_ms")).collect();
    let exact: Vec<String> = states.iter().map(|s| format!("total_{s}_time_millis")).collect();
    declared.extend(formatted.iter().map(String::as_str));
    declared.extend(exact.iter().map(String::as_str));
    declared.push("_extra");
    assert_eq!(names, declared, "the columns this test describes");
    let days = (day - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days();
    synth::day_rows(config, day, true)
        .into_iter()
        .map(|r| {
            let seconds = |ms: i64| Cell::Int(ms / 1000 * 1000);
            let millis = |ms: i64| if json { Cell::Int(ms) } else { Cell::Null };
            let a = &r.agent;
            let state_ms = [r.console_logged_in_ms, r.green_ms, r.yellow_ms, r.red_ms, r.mobile_ms];
            let mut row = vec![
                Cell::Int(days),
                Cell::Int(a.id),
                Cell::Text(a.name.clone()),
                Cell::Text(a.email.clone()),
                Cell::Text(if a.enabled { "Enabled" } else { "Disabled" }.into()),
                Cell::Text(a.teams.join("; ")),
                Cell::Int(r.total_assigned),
                Cell::Int(r.total_handled),
                Cell::Int(r.total_closed),
                Cell::Int(r.total_replies),
                r.avg_handle_time_ms.map_or(Cell::Null, seconds),
                r.avg_first_response_time_ms.map_or(Cell::Null, seconds),
            ];
            row.extend(state_ms.iter().map(|ms| seconds(*ms)));
            row.extend(state_ms.iter().map(|ms| millis(*ms)));
            row.push(Cell::Text(
                serde_json::json!({"CUSTOM_SURVEY_RESPONSES": r.custom_survey_responses.to_string()})
                    .to_string(),
            ));
            row
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_days_land_exactly_in_json_and_in_csv() {
    let emulator = khoros_emulator(khoros_emulator_config()).await;
    let windows = days("2024-03-01", 3);
    let mut landed_by_format = Vec::new();
    for (format, json) in [(KhorosFormat::Json, true), (KhorosFormat::Csv, false)] {
        let lake = tempfile::tempdir().unwrap();
        let password = emulator.config().password.clone();
        let report =
            run_sync(&plan(khoros_source(&emulator, format, &password), lake.path(), windows.clone()))
                .await
                .unwrap();
        assert!(
            report.windows.iter().all(|w| w.outcome == WindowOutcome::Committed),
            "{format:?}: {report:?}"
        );
        let mut landed = Vec::new();
        for w in &windows {
            let rows = batch_rows(&read_source_partition(lake.path(), "khoros", "user", w.date));
            let expected = expected_for_day(emulator.config().synth, w.date, json);
            assert_eq!(rows.len(), expected.len(), "{format:?} {}", w.date);
            assert!(rows == expected, "{format:?} {}: every value", w.date);
            assert!(expected.iter().any(|r| r[4] == Cell::Text("Disabled".into())), "disabled agents are in");
            landed.push(rows);
        }
        landed_by_format.push(landed);
    }
    // The same rows either way, but for the exact milliseconds only JSON carries.
    let strip = |days: &Vec<Vec<Vec<Cell>>>| -> Vec<Vec<Cell>> {
        days.iter().flatten().map(|row| row[..17].iter().chain(&row[22..]).cloned().collect()).collect()
    };
    assert!(strip(&landed_by_format[0]) == strip(&landed_by_format[1]), "JSON and CSV land the same rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exports_are_created_again_and_both_result_shapes_are_read() {
    let config = KhorosEmulatorConfig {
        running_polls: 3,
        faults: vec![KhorosFault {
            endpoint: KhorosEndpoint::Status,
            kind: KhorosFaultKind::FailExport,
            times: 1,
        }],
        ..khoros_emulator_config()
    };
    let emulator = khoros_emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let password = emulator.config().password.clone();
    let windows = days("2024-03-01", 1);
    let report =
        run_sync(&plan(khoros_source(&emulator, KhorosFormat::Json, &password), lake.path(), windows))
            .await
            .unwrap();
    assert_eq!(report.windows[0].outcome, WindowOutcome::Committed, "{report:?}");
    let stats = emulator.stats();
    assert_eq!((stats.exports_created, stats.exports_failed, stats.downloads), (2, 1, 1), "{stats:?}");
    assert!(stats.array_results > 0, "a `result` array was answered and read: {stats:?}");
    let rows = batch_rows(&read_source_partition(lake.path(), "khoros", "user", date("2024-03-01")));
    assert!(rows == expected_for_day(emulator.config().synth, date("2024-03-01"), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_stop_the_run_without_echoing_them() {
    let emulator = khoros_emulator(khoros_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let report = run_sync(&plan(
        khoros_source(&emulator, KhorosFormat::Json, "not-the-password"),
        lake.path(),
        days("2024-03-01", 2),
    ))
    .await
    .unwrap();
    let text = format!("{report:?}");
    assert!(report.windows.iter().all(|w| w.outcome != WindowOutcome::Committed), "{text}");
    assert!(text.contains("KHOROS_PASSWORD"), "the message says what to check: {text}");
    assert!(!text.contains("not-the-password") && !text.contains(&emulator.config().company_key), "{text}");
    assert_eq!(emulator.stats().exports_created, 0);
    assert!(emulator.stats().unauthorized >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lands_khoros_and_reports_the_kept_metric() {
    let emulator = khoros_emulator(khoros_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let env = khoros_env(&emulator);
    let dest = lake.path().to_str().unwrap();
    let args = [
        "sync",
        "khoros",
        "--dest",
        dest,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
        "--poll-interval",
        "10ms",
        "--khoros-format",
        "csv",
    ];
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("CUSTOM_SURVEY_RESPONSES") && out.stderr.contains("_extra"),
        "{}",
        out.stderr
    );
    let rows = batch_rows(&read_source_partition(lake.path(), "khoros", "user", date("2024-03-01")));
    assert!(rows == expected_for_day(emulator.config().synth, date("2024-03-01"), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_drafted_from_a_json_export_reads_durations_and_stringly_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("user.json");
    let rows = synth::day_rows(KhorosSynthConfig::default(), date("2024-03-01"), true);
    std::fs::write(&sample, synth::render(&rows, true)).unwrap();
    let out = run_cxlake(&["schema", "draft", "khoros.user", sample.to_str().unwrap()], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("khoros")).unwrap();
    std::fs::write(schemas.join("khoros/user.toml"), &out.stdout).unwrap();
    let registry = SchemaRegistry::with_overrides(&schemas).expect("the draft loads as a schema");
    let draft = registry.dataset("khoros", "user").unwrap();
    let column = |name: &str| draft.columns[draft.column_index(name).unwrap()].clone();
    assert_eq!(column("agent_id").column_type.to_string(), "Int64", "numbers sent as strings");
    assert_eq!(column("total_green_state_time").encoding, cxlake::schema::Encoding::DurationHms);
    assert_eq!(column("total_green_state_time_millis").column_type.to_string(), "Int64");
    assert_eq!(column("custom_survey_responses").column_type.to_string(), "Int64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_filter_stops_the_run_with_the_platform_message() {
    let emulator = khoros_emulator(khoros_emulator_config()).await;
    let lake = tempfile::tempdir().unwrap();
    let env = khoros_env(&emulator);
    let dest = lake.path().to_str().unwrap();
    let args = [
        "sync",
        "khoros",
        "--dest",
        dest,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
        "--report-metric",
        "no_such_metric",
    ];
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("Unknown report metric: no_such_metric")
            && out.stdout.contains("--report-metric"),
        "{}",
        out.stdout
    );
    // Two windows are in flight at once; the run stops there, it never tries a third.
    assert!(emulator.stats().bad_requests <= 2, "{:?}", emulator.stats());
}

/// A company in Brisbane (UTC+10): with `--timezone` each window is Brisbane's day, asked for
/// from local midnight to local midnight, and lands exactly that day's rows under its date; the
/// window record and `status` say so; a sync counting days in another zone is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_in_utc_plus_10_lands_each_row_on_its_local_day() {
    let brisbane: chrono_tz::Tz = "Australia/Brisbane".parse().unwrap();
    let synth = KhorosSynthConfig { zone: brisbane, ..KhorosSynthConfig::default() };
    let emulator = khoros_emulator(KhorosEmulatorConfig { synth, ..khoros_emulator_config() }).await;
    let env = khoros_env(&emulator);
    let utc_lake = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    let sync = |dest: String, zone: Option<&'static str>| {
        let mut args: Vec<String> =
            ["sync", "khoros", "--dest", &dest, "--from", "2024-03-01", "--to", "2024-03-03"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(["--poll-interval".into(), "10ms".into()]);
        if let Some(zone) = zone {
            args.extend(["--timezone".into(), zone.into()]);
        }
        let env = env.clone();
        async move { run_cxlake(&args, &env).await }
    };
    let out = sync(dest.to_string(), Some("Australia/Brisbane")).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ten_hours = Some((10 * 3_600_000).to_string());
    assert_eq!(
        emulator.stats().created_in,
        vec![(Some("Australia/Brisbane".to_string()), ten_hours, Some("en".to_string())); 2],
        "each export asked in Brisbane time, offset in milliseconds"
    );
    for day in [date("2024-03-01"), date("2024-03-02")] {
        let rows = batch_rows(&read_source_partition(lake.path(), "khoros", "user", day));
        assert!(rows == expected_for_day(synth, day, true), "{day}: Brisbane's day, every value");
    }
    let state = cxlake::state::StateStore::new(cxlake::sink::Destination::parse(dest).unwrap());
    let records = state.load_windows("khoros").await.unwrap();
    assert_eq!(records.len(), 2);
    let first = records.iter().find(|r| r.date == date("2024-03-01")).unwrap();
    assert_eq!(first.timezone.as_deref(), Some("Australia/Brisbane"));
    assert_eq!(first.window_start.to_rfc3339(), "2024-02-29T14:00:00+00:00");
    assert_eq!(first.window_end.to_rfc3339(), "2024-03-01T14:00:00+00:00");
    let status = run_cxlake(&["status", "--dest", dest], NO_ENV).await;
    assert!(status.stdout.contains("local days of Australia/Brisbane"), "{}", status.stdout);

    // The same lake cannot take UTC days: they would overlap Brisbane's and land rows twice.
    let refused = sync(dest.to_string(), None).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Australia/Brisbane") && refused.stderr.contains("--timezone"),
        "{}",
        refused.stderr
    );

    // Without the zone the UTC day 1 March is 10:00 to 10:00 in Brisbane: not the company's day.
    let out = sync(utc_lake.path().to_str().unwrap().to_string(), None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let utc_rows = batch_rows(&read_source_partition(utc_lake.path(), "khoros", "user", date("2024-03-01")));
    assert!(utc_rows != expected_for_day(synth, date("2024-03-01"), true), "UTC days mix two local days");
}
