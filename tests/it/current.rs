//! Current tables: one row per pid, the one from the latest window (within a window, the last
//! row), rebuilt after every run and on demand — in both formats.

use std::path::Path;

use crate::common::*;

const HEADER: &str = "pid,external_id,name,link,type,category,segment,organization,region,country,state";

fn customer(pid: &str, segment: &str) -> String {
    format!("{pid},,Name {pid},https://app.salted.cx/customers/{pid},PERSON,,{segment},,EMEA,CZ,")
}

/// Three days of customers: B changes on day 2, A on day 3, and E appears twice on day 3.
fn write_days(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let days = [
        ("2024-03-01", vec![customer("A", "Bronze"), customer("B", "Bronze"), customer("C", "Bronze")]),
        ("2024-03-02", vec![customer("B", "Gold"), customer("D", "Bronze")]),
        ("2024-03-03", vec![customer("E", "first"), customer("A", "Silver"), customer("E", "second")]),
    ];
    days.iter()
        .map(|(date, rows)| {
            let path = dir.join(format!("customers-{date}.csv"));
            std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
            (date.to_string(), path)
        })
        .collect()
}

/// (pid, segment, date) of every row, sorted by pid.
fn keyed(rows: Vec<Vec<Cell>>) -> Vec<(String, String, i64)> {
    let mut keyed: Vec<_> = rows
        .into_iter()
        .map(|row| {
            let text = |cell: &Cell| match cell {
                Cell::Text(t) => t.clone(),
                other => panic!("{other:?}"),
            };
            let Cell::Int(days) = row[11] else { panic!("date column") };
            (text(&row[0]), text(&row[6]), days)
        })
        .collect();
    keyed.sort();
    keyed
}

fn day(date: &str) -> i64 {
    (chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap()
        - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
    .num_days()
}

fn expected() -> Vec<(String, String, i64)> {
    [
        ("A", "Silver", "2024-03-03"),
        ("B", "Gold", "2024-03-02"),
        ("C", "Bronze", "2024-03-01"),
        ("D", "Bronze", "2024-03-02"),
        ("E", "second", "2024-03-03"),
    ]
    .iter()
    .map(|(pid, segment, date)| (pid.to_string(), segment.to_string(), day(date)))
    .collect()
}

async fn convert_days(lake: &Path, inputs: &Path, format: &str) {
    for (date, file) in write_days(inputs) {
        let out = run_cxlake(
            &[
                "convert",
                "saltedcx.customer",
                "--date",
                &date,
                "--dest",
                lake.to_str().unwrap(),
                "--format",
                format,
                file.to_str().unwrap(),
            ],
            NO_ENV,
        )
        .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("current table saltedcx_current/customer"), "{}", out.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_parquet_table_holds_the_latest_row_of_every_pid() {
    let (lake, inputs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    convert_days(lake.path(), inputs.path(), "parquet").await;
    let current = lake.path().join("saltedcx_current/customer");
    assert_eq!(keyed(read_dir_rows(&current)), expected());

    // Rerunning a window with a change moves the current row; `current` rebuilds on demand too.
    let file = inputs.path().join("fix.csv");
    std::fs::write(&file, format!("{HEADER}\n{}\n", customer("C", "Platinum"))).unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let out = run_cxlake(
        &[
            "convert",
            "saltedcx.customer",
            "--date",
            "2024-03-01",
            "--dest",
            lake_arg,
            "--no-current-tables",
            file.to_str().unwrap(),
        ],
        NO_ENV,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(keyed(read_dir_rows(&current)), expected(), "--no-current-tables leaves it alone");
    let out = run_cxlake(&["current", "--dest", lake_arg], NO_ENV).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = keyed(read_dir_rows(&current));
    assert_eq!(rows.len(), 5);
    assert!(rows.contains(&("C".into(), "Platinum".into(), day("2024-03-01"))), "{rows:?}");
    assert!(!rows.iter().any(|r| r.0 == "A" && r.1 != "Silver"), "{rows:?}");

    let views = std::fs::read_to_string(lake.path().join("_cxlake/views.sql")).unwrap();
    assert!(views.contains("CREATE OR REPLACE VIEW saltedcx_customer AS"), "{views}");
    assert!(views.contains("CREATE OR REPLACE VIEW saltedcx_customer_current AS"), "{views}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_delta_table_holds_the_latest_row_of_every_pid() {
    let (lake, inputs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    convert_days(lake.path(), inputs.path(), "delta").await;
    assert_eq!(keyed(read_delta_rows(lake.path(), "saltedcx_current/customer").await), expected());
    let history = read_delta_rows(lake.path(), "saltedcx/customer").await;
    assert_eq!(history.len(), 8, "the history keeps every version of every record");
    let views = std::fs::read_to_string(lake.path().join("_cxlake/views.sql")).unwrap();
    assert!(views.contains("delta_scan("), "{views}");
}

/// A user's JSON dataset with a composite key of typed columns (Int64 and Date32) and a version.
const COMPOSITE_SCHEMA: &str = r#"
source = "acme"
dataset = "agent_day"
file = "agent_days.json"
key = ["agent_id", "day"]
version = "updated_at"
description = "One row per agent per day, re-exported when it changes."

[[columns]]
name = "agent_id"
type = "Int64"
nullable = false
description = "Agent."

[[columns]]
name = "day"
type = "Date32"
nullable = false
description = "Day the figures are for."

[[columns]]
name = "handled"
type = "Int64"
nullable = true
description = "Conversations handled."

[[columns]]
name = "updated_at"
type = 'Timestamp(Microsecond, "UTC")'
encoding = "epoch_ms"
nullable = false
description = "When the row was computed."
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_typed_key_keeps_the_newest_window_and_within_it_the_greatest_version() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("acme")).unwrap();
    std::fs::write(schemas.join("acme/agent_day.toml"), COMPOSITE_SCHEMA).unwrap();
    let row = |agent: i64, day: &str, handled: i64, at: i64| {
        format!(r#"{{"agent_id": {agent}, "day": "{day}", "handled": {handled}, "updated_at": {at}}}"#)
    };
    let files = [
        // Agent 1 and 2 on the 1st; agent 1 and 2 are distinct keys although their days match.
        ("2024-03-01", vec![row(1, "2024-03-01", 10, 100), row(2, "2024-03-01", 20, 100)]),
        // A late re-export of (1, 1st) and a new key (1, 2nd): the newer window wins.
        ("2024-03-02", vec![row(1, "2024-03-01", 11, 50), row(1, "2024-03-02", 5, 200)]),
        // (2, 1st) twice in one window: the greater version wins although it comes first.
        ("2024-03-03", vec![row(2, "2024-03-01", 22, 300), row(2, "2024-03-01", 21, 250)]),
    ];
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    let schemas_arg = schemas.to_str().unwrap();
    for (date, rows) in &files {
        let path = dir.path().join(format!("{date}.json"));
        std::fs::write(&path, format!("[{}]", rows.join(",\n"))).unwrap();
        let args = [
            "convert",
            "acme.agent_day",
            "--date",
            date,
            "--dest",
            lake_arg,
            "--schemas",
            schemas_arg,
            path.to_str().unwrap(),
        ];
        let out = run_cxlake(&args, NO_ENV).await;
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    }
    let mut current: Vec<(i64, i64, i64)> = read_dir_rows(&lake.join("acme_current/agent_day"))
        .into_iter()
        .map(|r| match (&r[0], &r[1], &r[2]) {
            (Cell::Int(agent), Cell::Int(day), Cell::Int(handled)) => (*agent, *day, *handled),
            other => panic!("{other:?}"),
        })
        .collect();
    current.sort();
    assert_eq!(
        current,
        [(1, day("2024-03-01"), 11), (1, day("2024-03-02"), 5), (2, day("2024-03-01"), 22)],
        "one row per (agent_id, day)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_get_no_second_copy_and_their_view_shows_a_late_re_export_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_arg = lake.to_str().unwrap();
    // Day 1 of turns from the generator; day 2 re-exports day 1's first turn, edited.
    let day1 = dir.path().join("turns-1.csv");
    synth_file("saltedcx.turn", "--per-day", "3", &day1).await;
    let mut reader = csv::Reader::from_path(&day1).unwrap();
    let header = reader.headers().unwrap().clone();
    let mut first = reader.records().next().unwrap().unwrap().iter().map(str::to_string).collect::<Vec<_>>();
    let pid = first[header.iter().position(|h| h == "pid").unwrap()].clone();
    first[header.iter().position(|h| h == "content").unwrap()] = "edited, then exported again".into();
    let day2 = dir.path().join("turns-2.csv");
    let mut writer = csv::Writer::from_path(&day2).unwrap();
    writer.write_record(&header).unwrap();
    writer.write_record(&first).unwrap();
    writer.flush().unwrap();
    for (date, file) in [("2024-03-01", &day1), ("2024-03-02", &day2)] {
        let out = run_cxlake(
            &["convert", "saltedcx.turn", "--date", date, "--dest", lake_arg, file.to_str().unwrap()],
            NO_ENV,
        )
        .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    assert!(!lake.join("saltedcx_current/turn").exists(), "turns are events: no materialised copy");
    let query = format!(
        "SELECT (SELECT count(*) FROM saltedcx_turn), (SELECT count(DISTINCT pid) FROM saltedcx_turn), \
         (SELECT count(*) FROM saltedcx_turn_current), \
         (SELECT content || ' @ ' || date FROM saltedcx_turn_current WHERE pid = '{pid}')"
    );
    let rows = python_json("sql.py", &[lake_arg, &query]).await;
    let row = &rows[0];
    assert_eq!(row[0].as_u64(), Some(row[1].as_u64().unwrap() + 1), "the history holds the re-export too");
    assert_eq!(row[2], row[1], "the view: one row per pid");
    assert_eq!(row[3], "edited, then exported again @ 2024-03-02", "the newest window's row");
}

const THING_SCHEMA: &str = r#"
source = "acme"
dataset = "thing"
file = "things.json"
key = ["id"]
version = "updated_at"
description = "A record re-exported in every window where it changed."

[[columns]]
name = "id"
type = "Int64"
nullable = false
description = "The record."

[[columns]]
name = "value"
type = "Utf8"
nullable = false
description = "Unique per exported row, so the test can tell which row won."

[[columns]]
name = "updated_at"
type = 'Timestamp(Microsecond, "UTC")'
encoding = "epoch_ms"
nullable = false
description = "When the record changed."
"#;

/// One exported row: (id, version, value).
type ThingRow = (i64, i64, String);

/// The current table by its definition, from the windows themselves: per id, the newest window
/// that has it; within it the greatest version, and on equal versions the later row.
fn expected_things(windows: &std::collections::BTreeMap<String, Vec<ThingRow>>) -> Vec<(i64, String, i64)> {
    let mut best: std::collections::BTreeMap<i64, (String, i64, String)> = Default::default();
    for (date, rows) in windows {
        let mut in_window: std::collections::BTreeMap<i64, (i64, String)> = Default::default();
        for (id, version, value) in rows {
            if in_window.get(id).is_none_or(|(v, _)| version >= v) {
                in_window.insert(*id, (*version, value.clone()));
            }
        }
        for (id, (_, value)) in in_window {
            best.insert(id, (date.clone(), 0, value)); // later dates overwrite
        }
    }
    best.into_iter().map(|(id, (date, _, value))| (id, value, day(&date))).collect()
}

fn thing_rows(rows: Vec<Vec<Cell>>) -> Vec<(i64, String, i64)> {
    let mut rows: Vec<_> = rows
        .into_iter()
        // id, value, updated_at, _extra (JSON datasets keep what the schema does not know), date
        .map(|row| match (&row[0], &row[1], row.last().unwrap()) {
            (Cell::Int(id), Cell::Text(value), Cell::Int(date)) => (*id, value.clone(), *date),
            other => panic!("{other:?}"),
        })
        .collect();
    rows.sort();
    rows
}

/// A directory with the `acme.thing` declaration under `schemas/`, and where its lake goes.
fn thing_lake() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("acme")).unwrap();
    std::fs::write(schemas.join("acme/thing.toml"), THING_SCHEMA).unwrap();
    let lake = dir.path().join("lake");
    (dir, schemas, lake)
}

/// A xorshift generator of numbers below its argument: the same sequence on every run.
fn seeded(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |below| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    }
}

/// `rows` as the JSON array of things an export would hold.
fn write_things(path: &Path, rows: &[ThingRow]) {
    let json: Vec<String> = rows
        .iter()
        .map(|(id, version, value)| format!(r#"{{"id": {id}, "value": "{value}", "updated_at": {version}}}"#))
        .collect();
    std::fs::write(path, format!("[{}]", json.join(",\n"))).unwrap();
}

/// Nightly runs, late re-exports of old windows, reruns that drop records, and deleted windows,
/// in a seeded random order: after every step the incrementally maintained table equals the
/// definition, and at the end `cxlake current --full` rebuilds exactly the same table.
async fn incremental_equals_full_rebuild(format: &str) {
    let (dir, schemas, lake) = thing_lake();
    let (lake_arg, schemas_arg) = (lake.to_str().unwrap(), schemas.to_str().unwrap());
    let convert_args = |date: &str, file: &Path| -> Vec<String> {
        let file = file.to_str().unwrap();
        ["convert", "acme.thing", "--date", date, "--dest", lake_arg, "--format", format]
            .into_iter()
            .chain(["--schemas", schemas_arg, file])
            .map(str::to_string)
            .collect()
    };
    let read = |lake: std::path::PathBuf| async move {
        match format {
            "delta" => thing_rows(read_delta_rows(&lake, "acme_current/thing").await),
            _ => thing_rows(read_dir_rows(&lake.join("acme_current/thing"))),
        }
    };

    let mut next = seeded(0x2545_f491_4f6c_dd1d_u64);
    let mut windows: std::collections::BTreeMap<String, Vec<ThingRow>> = Default::default();
    let mut serial = 0;
    let mut incremental_runs = 0;
    for step in 0..16 {
        // Mostly the next night; sometimes a rerun of an older window, or (Parquet) a deletion.
        let day_index =
            if step < 6 || next(3) == 0 { step.min(9) } else { next(step.min(9) as u64) as usize };
        let date = format!("2024-03-{:02}", day_index + 1);
        let delete = format == "parquet" && step >= 6 && windows.contains_key(&date) && next(4) == 0;
        let out = if delete {
            windows.remove(&date);
            std::fs::remove_dir_all(lake.join(format!("acme/thing/date={date}"))).unwrap();
            std::fs::remove_file(lake.join(format!("_cxlake/state/acme/date={date}.json"))).unwrap();
            run_cxlake(&["current", "--dest", lake_arg, "--schemas", schemas_arg], NO_ENV).await
        } else {
            let rows: Vec<ThingRow> = (0..next(12))
                .map(|_| {
                    serial += 1;
                    (next(30) as i64, next(4) as i64, format!("row {serial}"))
                })
                .collect();
            let file = dir.path().join(format!("things-{step}.json"));
            write_things(&file, &rows);
            windows.insert(date.clone(), rows);
            run_cxlake(&convert_args(&date, &file), NO_ENV).await
        };
        assert_eq!(out.code, 0, "step {step}: {}\n{}", out.stdout, out.stderr);
        if out.stdout.contains("incremental refresh") {
            incremental_runs += 1;
        }
        assert_eq!(
            read(lake.clone()).await,
            expected_things(&windows),
            "step {step} ({} {date}): {}",
            if delete { "deleted" } else { "landed" },
            out.stdout
        );
    }
    assert!(incremental_runs >= 14, "only {incremental_runs} of 16 refreshes were incremental");

    let incremental = read(lake.clone()).await;
    let out = run_cxlake(&["current", "--dest", lake_arg, "--schemas", schemas_arg, "--full"], NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("full refresh"), "{}", out.stdout);
    assert_eq!(read(lake.clone()).await, incremental, "the full rebuild equals the incremental table");
    let out = run_cxlake(&["current", "--dest", lake_arg, "--schemas", schemas_arg], NO_ENV).await;
    assert!(out.stdout.contains("(unchanged)"), "nothing changed, nothing rewritten: {}", out.stdout);

    // A crash after the new segments are in place but before the manifest names them: the next
    // refresh removes them (Parquet) or finds the table ahead of its manifest (Delta).
    let file = dir.path().join("things-crash.json");
    std::fs::write(&file, r#"[{"id": 1, "value": "after the crash", "updated_at": 9}]"#).unwrap();
    windows.insert("2024-03-20".into(), vec![(1, 9, "after the crash".into())]);
    let out =
        run_cxlake(&convert_args("2024-03-20", &file), &[("CXLAKE_FAILPOINT", "before-current-manifest")])
            .await;
    assert_ne!(out.code, 0, "the failpoint aborts the run");
    let out = run_cxlake(&["current", "--dest", lake_arg, "--schemas", schemas_arg], NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(read(lake.clone()).await, expected_things(&windows), "{}", out.stdout);
}

/// A first build whose keys outgrow a quarter of its memory share spills them to disk by hash
/// partition and gives the same table as one that holds them all (and as the definition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_build_whose_keys_outgrow_its_memory_spills_them_and_gives_the_same_table() {
    let (dir, schemas, lake) = thing_lake();
    let (lake_arg, schemas_arg) = (lake.to_str().unwrap(), schemas.to_str().unwrap());
    let mut next = seeded(0x9e37_79b9_7f4a_7c15_u64);
    // Four windows of 120,000 rows over 200,000 ids, versions 0–4 (so repeats within a window).
    let mut windows: std::collections::BTreeMap<String, Vec<ThingRow>> = Default::default();
    for day in 1..=4 {
        let date = format!("2024-03-{day:02}");
        let rows: Vec<ThingRow> =
            (0..120_000).map(|i| (next(200_000) as i64, next(5) as i64, format!("d{day} r{i}"))).collect();
        let file = dir.path().join(format!("things-{day}.json"));
        write_things(&file, &rows);
        let args = ["convert", "acme.thing", "--date", &date, "--dest", lake_arg, "--schemas", schemas_arg];
        let out =
            run_cxlake(&[&args[..], &["--no-current-tables", file.to_str().unwrap()]].concat(), NO_ENV).await;
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        windows.insert(date, rows);
    }
    let expected = expected_things(&windows);
    let table = || thing_rows(read_dir_rows(&lake.join("acme_current/thing")));
    // 480,000 key records of 45 bytes (21.6 MB) against a quarter of the smallest budget, 64 MiB:
    // spilled.
    let spilled = run_cxlake(
        &["current", "--dest", lake_arg, "--schemas", schemas_arg, "--full", "--memory-budget", "64MiB"],
        NO_ENV,
    )
    .await;
    assert_eq!(spilled.code, 0, "{}\n{}", spilled.stdout, spilled.stderr);
    assert!(spilled.stdout.contains("MB of keys spilled to disk"), "{}", spilled.stdout);
    assert_eq!(table(), expected, "the spilled build is the table by definition");
    let held = run_cxlake(
        &["current", "--dest", lake_arg, "--schemas", schemas_arg, "--full", "--memory-budget", "1GiB"],
        NO_ENV,
    )
    .await;
    assert_eq!(held.code, 0, "{}\n{}", held.stdout, held.stderr);
    assert!(!held.stdout.contains("spilled"), "{}", held.stdout);
    assert_eq!(table(), expected, "the build that holds its keys is the same table");
    // Both count the rows that repeat an earlier row's key and version within their window.
    let repeats: usize = windows
        .values()
        .map(|rows| {
            rows.len() - rows.iter().map(|(id, v, _)| (id, v)).collect::<std::collections::HashSet<_>>().len()
        })
        .sum();
    let said = format!("; {repeats} history row(s) repeat a key and version");
    assert!(spilled.stdout.contains(&said), "{said}: {}", spilled.stdout);
    assert!(held.stdout.contains(&said), "{said}: {}", held.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incremental_parquet_current_table_equals_a_full_rebuild() {
    incremental_equals_full_rebuild("parquet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incremental_delta_current_table_equals_a_full_rebuild() {
    incremental_equals_full_rebuild("delta").await;
}
