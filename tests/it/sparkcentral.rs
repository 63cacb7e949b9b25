//! Sparkcentral files through `cxlake convert` (the on-demand export path, and the decoding the
//! SFTP source will use): local times without offset placed in the export's zone across a DST
//! change, Response Times' From/To resolved to instants, multi-valued cells as lists. Expected
//! instants are written out by hand from the zone's rules, not computed by the code under test.

use chrono::{DateTime, Utc};

use crate::common::*;

fn micros(rfc3339: &str) -> Cell {
    Cell::Int(DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc).timestamp_micros())
}

async fn convert(
    lake: &std::path::Path,
    dataset: &str,
    day: &str,
    file: &std::path::Path,
    zone: Option<&str>,
) -> Output {
    let mut args = vec![
        "convert",
        dataset,
        "--date",
        day,
        "--dest",
        lake.to_str().unwrap(),
        file.to_str().unwrap(),
        "--no-current-tables",
    ];
    if let Some(zone) = zone {
        args.extend(["--timezone", zone]);
    }
    run_cxlake(&args, NO_ENV).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_times_are_placed_across_midnight_and_the_autumn_dst_change() {
    let (lake, inputs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = inputs.path().join("77_response-times_27102024000000_28102024000000_abc.csv");
    let header = "Conversation ID,Medium,Sender Channel,Sender Channel Display Name,Contact Profile ID,Started By,Handover Reason,From,To,Agent Response Time (s),Replying Agent ID,Replying Agent Name,Replying Agent Reference,Inbound Message ID,Outbound Message ID,Conversation URL";
    let rows = [
        // Across midnight: From is on the 26th (summer time, UTC+2).
        "c1,whatsapp,wa,WA,p1,NEW_CONVERSATION,,23:59:00:000,00:01:00:000,120,a1,Ann,r1,i1,o1,https://x/c1",
        // In the repeated hour: 02:50 in summer time, answered at 02:10 in winter time.
        "c2,whatsapp,wa,WA,p2,INBOUND_MESSAGE,,02:50:00:000,02:10:00:000,1200,a1,Ann,r1,i2,o2,https://x/c2",
        // After the change: winter time, UTC+1; milliseconds kept.
        "c3,whatsapp,wa,WA,p3,VA_HANDED_OVER_CONVERSATION,USER_OFFLINE,10:00:00:000,10:00:30:500,30.5,a2,Bo,r2,i3,o3,https://x/c3",
    ];
    std::fs::write(&file, format!("{header}\r\n{}\r\n", rows.join("\r\n"))).unwrap();
    let out =
        convert(lake.path(), "sparkcentral.response_times", "2024-10-27", &file, Some("Europe/Brussels"))
            .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let landed =
        batch_rows(&read_source_partition(lake.path(), "sparkcentral", "response_times", date("2024-10-27")));
    let schema = cxlake::schema::SchemaRegistry::embedded()
        .unwrap()
        .dataset("sparkcentral", "response_times")
        .unwrap();
    let (from, to) = (schema.column_index("from").unwrap(), schema.column_index("to").unwrap());
    let got: Vec<(Cell, Cell)> = landed.iter().map(|r| (r[from].clone(), r[to].clone())).collect();
    assert_eq!(
        got,
        [
            (micros("2024-10-26T21:59:00Z"), micros("2024-10-26T22:01:00Z")),
            (micros("2024-10-27T00:50:00Z"), micros("2024-10-27T01:10:00Z")),
            (micros("2024-10-27T09:00:00Z"), micros("2024-10-27T09:00:30.500Z")),
        ]
    );
    let seconds = schema.column_index("agent_response_time_s").unwrap();
    assert_eq!(landed[2][seconds], Cell::Float(30.5f64.to_bits()));
    assert!(out.stderr.contains("repeated hour of a DST change"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_land_with_local_times_lists_and_exact_text_and_need_a_zone() {
    let (lake, inputs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = inputs.path().join("77_message_27102024000000_28102024000000_def.csv");
    // Reordered columns, a BOM, CRLF inside quotes, an ambiguous local time, a list cell.
    let csv = "\u{feff}Content,Message ID,Created at (Date / Time),Tag Names,Tag IDs,Direction,Deleted at\r\n\
               \"She said \"\"hi\"\",\r\nthen left\",m1,2024-10-27 02:30:00.250,\"refund, vip\",\"t1,t2\",Inbound,\r\n\
               ok,m2,2024-10-27 12:00:00,,,Outbound,2024-10-27 12:05:00\r\n";
    std::fs::write(&file, csv).unwrap();
    let no_zone = convert(lake.path(), "sparkcentral.message", "2024-10-27", &file, None).await;
    assert_eq!(no_zone.code, 2, "a usage error: nothing attempted");
    assert!(
        format!("{}{}", no_zone.stdout, no_zone.stderr).contains("--timezone"),
        "{}\n{}",
        no_zone.stdout,
        no_zone.stderr
    );
    let bad_zone =
        convert(lake.path(), "sparkcentral.message", "2024-10-27", &file, Some("Mars/Olympus")).await;
    assert_eq!(bad_zone.code, 2, "{}", bad_zone.stderr);
    let out =
        convert(lake.path(), "sparkcentral.message", "2024-10-27", &file, Some("Europe/Brussels")).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let schema =
        cxlake::schema::SchemaRegistry::embedded().unwrap().dataset("sparkcentral", "message").unwrap();
    let rows = batch_rows(&read_source_partition(lake.path(), "sparkcentral", "message", date("2024-10-27")));
    let get = |row: usize, name: &str| rows[row][schema.column_index(name).unwrap()].clone();
    assert_eq!(get(0, "message_id"), Cell::Text("m1".into()));
    assert_eq!(get(0, "content"), Cell::Text("She said \"hi\",\r\nthen left".into()));
    // 02:30 happens twice on 27 October in Brussels: the earlier, summer-time instant.
    assert_eq!(get(0, "created_at_date_time"), micros("2024-10-27T00:30:00.250Z"));
    assert_eq!(get(0, "tag_names"), Cell::List(vec![Cell::Text("refund".into()), Cell::Text("vip".into())]));
    assert_eq!(get(0, "tag_ids"), Cell::List(vec![Cell::Text("t1".into()), Cell::Text("t2".into())]));
    assert_eq!(get(0, "deleted_at"), Cell::Null);
    assert_eq!(get(1, "created_at_date_time"), micros("2024-10-27T11:00:00Z"));
    assert_eq!(get(1, "deleted_at"), micros("2024-10-27T11:05:00Z"));
    assert_eq!(get(1, "tag_names"), Cell::Null);
    assert!(out.stderr.contains("1 local time(s) in the repeated hour"), "{}", out.stderr);
}

/// The rows of one export type and local day of a drop tree written from `first`, as
/// (column, cell) from the generator's true values: local date-times read back as their instant
/// (the earlier one in the repeated hour, but in the hourly file of its second occurrence),
/// Response Times' intervals exactly, empty lists as null.
pub fn expected_named(
    dataset: &str,
    day: chrono::NaiveDate,
    first: chrono::NaiveDate,
    zone: chrono_tz::Tz,
) -> Vec<Vec<(String, Cell)>> {
    use cxlake::sources::sparkcentral::synth::{self, Kind, SparkcentralSynthConfig, Value};
    let export = synth::export_type(dataset).unwrap();
    let config = SparkcentralSynthConfig::default();
    synth::expected_rows(config, dataset, day, first, zone)
        .into_iter()
        .map(|row| {
            let whole = row.clone();
            // Which export and period the row's file is: filled into every row.
            let (export_id, frequency, from, to) = synth::row_period(config, dataset, day, &whole, zone);
            let facts = [
                ("export_id".to_string(), Cell::Text(export_id)),
                ("export_frequency".to_string(), Cell::Text(frequency.to_string())),
                ("period_from".to_string(), Cell::Int(from.timestamp_micros())),
                ("period_to".to_string(), Cell::Int(to.timestamp_micros())),
            ];
            export
                .columns
                .iter()
                .zip(row)
                .map(|((_, column, kind), value)| {
                    let cell = match value {
                        Value::Null => Cell::Null,
                        Value::Text(t) => Cell::Text(t),
                        Value::Int(i) => Cell::Int(i),
                        Value::Float(f) => Cell::Float(f.to_bits()),
                        Value::List(items) if items.is_empty() => Cell::Null,
                        Value::List(items) => Cell::List(items.into_iter().map(Cell::Text).collect()),
                        Value::Time(t) if *kind == Kind::LocalTime => Cell::Int(
                            synth::read_back_in_file(dataset, day, &whole, t, zone).timestamp_micros(),
                        ),
                        Value::Time(t) => Cell::Int(t.timestamp_micros()),
                    };
                    (column.to_string(), cell)
                })
                .chain(facts)
                .collect()
        })
        .collect()
}

/// What the lake holds for one export type and local day, as (column, cell), comparable with
/// [`expected_named`].
pub fn landed(lake: &std::path::Path, dataset: &str, day: chrono::NaiveDate) -> Vec<Vec<(String, Cell)>> {
    let schema =
        cxlake::schema::SchemaRegistry::embedded().unwrap().dataset("sparkcentral", dataset).unwrap();
    batch_rows(&read_source_partition(lake, "sparkcentral", dataset, day))
        .into_iter()
        .map(|row| schema.columns.iter().map(|c| c.name.clone()).zip(row).collect())
        .collect()
}

/// Whether every expected (column, cell) of every row is what landed.
pub fn assert_landed_as_expected(got: &[Vec<(String, Cell)>], want: &[Vec<(String, Cell)>], context: &str) {
    assert_eq!(got.len(), want.len(), "{context}: rows");
    for (g, w) in got.iter().zip(want) {
        for (column, cell) in w {
            let landed = &g.iter().find(|(c, _)| c == column).unwrap_or_else(|| panic!("{column}")).1;
            assert_eq!(landed, cell, "{context} {column}");
        }
    }
}

mod drop_tree {
    use super::*;
    use cxlake::sources::sparkcentral::synth::{self, SparkcentralSynthConfig, Value, TYPES};

    const FIRST: &str = "2024-10-26";

    fn zone() -> chrono_tz::Tz {
        "Europe/Brussels".parse().unwrap()
    }

    fn expected(dataset: &str, day: chrono::NaiveDate) -> Vec<Vec<(String, Cell)>> {
        super::expected_named(dataset, day, date(FIRST), zone())
    }

    async fn sync(tree: &std::path::Path, lake: &std::path::Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "sync",
            "sparkcentral",
            "--dest",
            lake.to_str().unwrap(),
            "--source",
            tree.to_str().unwrap(),
            "--timezone",
            "Europe/Brussels",
            "--from",
            FIRST,
            "--to",
            "2024-10-30",
            "--recheck-after",
            "0s",
        ];
        args.extend(extra);
        run_cxlake(&args, NO_ENV).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_local_days_of_every_type_land_exactly_across_the_autumn_change() {
        let (tree, lake) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        synth::write_drop_tree(SparkcentralSynthConfig::default(), tree.path(), date(FIRST), 4, zone())
            .unwrap();
        // A file whose name names no export type, in a folder of none: refused by name, left alone.
        std::fs::create_dir(tree.path().join("misc")).unwrap();
        std::fs::write(tree.path().join("misc/5512_26102024000000_27102024000000_v.csv"), "x\r\n").unwrap();
        let out = sync(tree.path(), lake.path(), &[]).await;
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("no export type in it") && out.stderr.contains("misc/5512_"),
            "{}",
            out.stderr
        );
        assert_eq!(TYPES.len(), 12, "every export type of the document");
        let mut rows = 0;
        for export in TYPES {
            for offset in 0..4 {
                let day = date(FIRST) + chrono::Days::new(offset);
                let want = expected(export.dataset, day);
                let got = landed(lake.path(), export.dataset, day);
                assert_landed_as_expected(&got, &want, &format!("{} {day}", export.dataset));
                rows += want.len();
            }
        }
        assert!(rows > 400, "{rows} rows compared");
        assert!(expected("user_presence", date("2024-10-29")).is_empty(), "the header-only file: 0 rows");
        // The replaced team file of the second day counts, not the older one.
        let older =
            synth::day_rows(SparkcentralSynthConfig::default(), "team", date("2024-10-27"), zone(), 0);
        let newer = synth::expected_rows(
            SparkcentralSynthConfig::default(),
            "team",
            date("2024-10-27"),
            date(FIRST),
            zone(),
        );
        assert_ne!(older, newer, "the replacing file differs");
        assert!(out.stderr.contains("repeated hour of a DST change"), "{}", out.stderr);
        assert!(
            !out.stderr.contains("upload.csv.part"),
            "a .part upload is not even looked at: {}",
            out.stderr
        );

        // Nothing changed: nothing is read again.
        let again = sync(tree.path(), lake.path(), &[]).await;
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_file_replaces_its_day_and_a_file_still_changing_waits() {
        let (tree, lake) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        synth::write_drop_tree(SparkcentralSynthConfig::default(), tree.path(), date(FIRST), 3, zone())
            .unwrap();
        assert_eq!(sync(tree.path(), lake.path(), &[]).await.code, 0);
        // A late, corrected file for the first day's tags, written just now.
        let day = date(FIRST);
        let config = SparkcentralSynthConfig { seed: 99, ..SparkcentralSynthConfig::default() };
        let rows = synth::day_rows(config, "tag", day, zone(), 0);
        // The same scheduled export (its uuid series), delivered again.
        let uuid = format!("{}-late", synth::export_uuid(SparkcentralSynthConfig::default(), "tag"));
        let name = synth::file_name(SparkcentralSynthConfig::default(), "tag", day, &uuid);
        std::fs::write(tree.path().join("tag").join(&name), synth::render("tag", &rows, zone())).unwrap();
        let waiting = sync(tree.path(), lake.path(), &[]).await;
        assert_eq!(waiting.code, 0, "{}", waiting.stderr);
        assert!(waiting.stderr.contains("waits for the next run"), "{}", waiting.stderr);
        assert_landed_as_expected(
            &landed(lake.path(), "tag", day),
            &expected("tag", day),
            "the old rows stay meanwhile",
        );
        let settled = sync(tree.path(), lake.path(), &["--settle", "0s"]).await;
        assert_eq!(settled.code, 0, "{}", settled.stderr);
        assert!(
            settled.stdout.contains(&day.to_string()) && !settled.stdout.contains("2024-10-27"),
            "{}",
            settled.stdout
        );
        let got = landed(lake.path(), "tag", day);
        assert_eq!(got.len(), rows.len());
        let tag_name =
            |row: &Vec<(String, Cell)>| row.iter().find(|(c, _)| c == "tag_name").unwrap().1.clone();
        let want: Vec<Cell> = rows
            .iter()
            .map(|r| match &r[1] {
                Value::Text(t) => Cell::Text(t.clone()),
                _ => Cell::Null,
            })
            .collect();
        assert_eq!(
            got.iter().map(tag_name).collect::<Vec<_>>(),
            want,
            "the newer file's rows replaced the day's"
        );
    }
}

/// The repeated autumn hour happens twice, and so does its hourly export: under the same local
/// name but for the uuid (both files count, neither replaces the other, the older is the first
/// occurrence), or with the first named by its real end (02:00 → 02:00, then 02:00 → 03:00).
/// Either way their local times land at their own instants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_hourly_files_of_the_repeated_autumn_hour_land_at_their_own_instants() {
    use cxlake::sources::sparkcentral::synth::{self, SparkcentralSynthConfig, Value};
    let zone: chrono_tz::Tz = "Europe/Brussels".parse().unwrap();
    let (tree, lake) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = tree.path().join("message");
    std::fs::create_dir_all(&dir).unwrap();
    let day = date("2024-10-27");
    let template = synth::day_rows(SparkcentralSynthConfig::default(), "message", day, zone, 0).remove(0);
    let created = synth::export_type("message")
        .unwrap()
        .columns
        .iter()
        .position(|(_, column, _)| *column == "created_at_date_time")
        .unwrap();
    // (file, the true instant of its one message, age in seconds): written as local times,
    // 01:15 (summer time), then 02:30 twice: 00:30Z before the clocks went back, 01:30Z after.
    // One hourly export: its uuid series in every name, a suffix per file.
    let files = [
        (
            "5512_message_27102024010000_27102024020000_9d3c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e-c1.csv",
            "2024-10-26T23:15:00Z",
            3000,
        ),
        (
            "5512_message_27102024020000_27102024030000_9d3c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e-b2.csv",
            "2024-10-27T00:30:00Z",
            2000,
        ),
        (
            "5512_message_27102024020000_27102024030000_9d3c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e-a3.csv",
            "2024-10-27T01:30:00Z",
            1000,
        ),
        (
            "5512_message_29102023020000_29102023020000_9d3c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e-x1.csv",
            "2023-10-29T00:30:00Z",
            1000,
        ),
        (
            "5512_message_29102023020000_29102023030000_9d3c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e-x2.csv",
            "2023-10-29T01:30:00Z",
            3000,
        ),
    ];
    for (name, instant, age) in files {
        let mut row = template.clone();
        row[created] = Value::Time(instant.parse().unwrap());
        let path = dir.join(name);
        std::fs::write(&path, synth::render("message", &[row], zone)).unwrap();
        let modified = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
    }
    let rendered = std::fs::read_to_string(dir.join(files[2].0)).unwrap();
    assert!(rendered.contains("2024-10-27 02:30:00.000"), "written as local time: {rendered}");
    let args = [
        "sync",
        "sparkcentral",
        "--dest",
        lake.path().to_str().unwrap(),
        "--source",
        tree.path().to_str().unwrap(),
        "--timezone",
        "Europe/Brussels",
        "--from",
        "2023-10-29",
        "--to",
        "2024-10-28",
        "--settle",
        "0s",
        "--recheck-after",
        "0s",
    ];
    let out = run_cxlake(&args, NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let created = |day| -> Vec<Cell> {
        landed(lake.path(), "message", day)
            .into_iter()
            .map(|row| row.into_iter().find(|(c, _)| c == "created_at_date_time").unwrap().1)
            .collect()
    };
    let want: Vec<Cell> = files.iter().map(|(_, instant, _)| micros(instant)).collect();
    assert_eq!(created(day), want[..3], "one row per file, each at its own instant");
    assert_eq!(created(date("2023-10-29")), want[3..], "named by their real ends");
    let parts = std::fs::read_dir(lake.path().join("sparkcentral/message/date=2024-10-27")).unwrap().count();
    assert_eq!(parts, 3, "one part per source file");
}

/// Many scheduled exports in one tree, as the document lets a tenant set them up: two exports of
/// one type and span (two channel sets) in the path table's folder, told apart by their uuid;
/// an hourly and a daily export of users, each in a subdirectory of its own; two exports of
/// resolved conversations in different zones; virtual agents in a folder whose names carry no
/// type (`--type-folder`); contact attributes in our folder for them. Every row lands once,
/// with its export and period, and a re-delivery of one export's span replaces only its rows.
mod scheduled_exports {
    use super::*;
    use cxlake::sources::sparkcentral::synth::{self, Kind, SparkcentralSynthConfig, Value};

    /// A row as (column, cell).
    type Named = Vec<(String, Cell)>;

    struct Export {
        folder: &'static str,
        dataset: &'static str,
        uuid: &'static str,
        zone: &'static str,
        hours: i64,
        /// Names without the export type (a folder configured for it).
        untyped: bool,
    }

    const EXPORTS: &[Export] = &[
        Export {
            folder: "team",
            dataset: "team",
            uuid: "a0000000-0000-4000-8000-00000000000a",
            zone: "Europe/Brussels",
            hours: 24,
            untyped: false,
        },
        Export {
            folder: "team",
            dataset: "team",
            uuid: "b0000000-0000-4000-8000-00000000000b",
            zone: "Europe/Brussels",
            hours: 24,
            untyped: false,
        },
        Export {
            folder: "users-hourly",
            dataset: "user",
            uuid: "c0000000-0000-4000-8000-00000000000c",
            zone: "Europe/Brussels",
            hours: 1,
            untyped: false,
        },
        Export {
            folder: "users-daily",
            dataset: "user",
            uuid: "d0000000-0000-4000-8000-00000000000d",
            zone: "Europe/Brussels",
            hours: 24,
            untyped: false,
        },
        Export {
            folder: "resolved-eu",
            dataset: "resolved_conversation",
            uuid: "e0000000-0000-4000-8000-00000000000e",
            zone: "Europe/Brussels",
            hours: 24,
            untyped: false,
        },
        Export {
            folder: "resolved-us",
            dataset: "resolved_conversation",
            uuid: "f0000000-0000-4000-8000-00000000000f",
            zone: "America/New_York",
            hours: 24,
            untyped: false,
        },
        Export {
            folder: "bots",
            dataset: "virtual_agent",
            uuid: "10000000-0000-4000-8000-000000000010",
            zone: "Europe/Brussels",
            hours: 24,
            untyped: true,
        },
        Export {
            folder: "contact-attribute",
            dataset: "contact_attribute",
            uuid: "11000000-0000-4000-8000-000000000011",
            zone: "Europe/Brussels",
            hours: 24,
            untyped: false,
        },
    ];

    fn config(index: usize) -> SparkcentralSynthConfig {
        SparkcentralSynthConfig {
            seed: 1000 + index as u64,
            rows_per_file: 4,
            ..SparkcentralSynthConfig::default()
        }
    }

    /// The export's id as the lake must carry it: its folder when it has one of its own, else
    /// folder/uuid (the path table's folders, ours, and configured ones are shared).
    fn export_id(export: &Export) -> String {
        match export.folder {
            "team" | "bots" | "contact-attribute" => format!("{}/{}", export.folder, export.uuid),
            own => own.to_string(),
        }
    }

    /// One file of `export`: its name, its rows, and the (column, cell)s the lake must hold.
    fn file(
        index: usize,
        export: &Export,
        day: chrono::NaiveDate,
        hour: i64,
        revision: u64,
    ) -> (String, Vec<u8>, Vec<Named>) {
        let zone: chrono_tz::Tz = export.zone.parse().unwrap();
        let start = synth::local_midnight(day, zone) + chrono::Duration::hours(hour);
        let end = start + chrono::Duration::hours(export.hours);
        let stream =
            chrono::Datelike::num_days_from_ce(&day) as u64 * 100 + hour as u64 + 1_000_000 * index as u64;
        let rows = synth::rows_between(config(index), export.dataset, start, end, stream, revision);
        let stamp =
            |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&zone).format("%d%m%Y%H%M%S").to_string();
        let kind = synth::export_type(export.dataset).unwrap().folder;
        let typed = if export.untyped { String::new() } else { format!("{kind}_") };
        let suffix = if revision > 0 { "-redelivered" } else { "" };
        let name =
            format!("5512_{typed}{}_{}_{}-h{hour:02}{suffix}.csv", stamp(start), stamp(end), export.uuid);
        let frequency = if export.hours == 1 { "hourly" } else { "daily" };
        let columns = synth::export_type(export.dataset).unwrap().columns;
        let expected = rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .zip(row)
                    .map(|((_, column, kind), value)| {
                        let cell = match value.clone() {
                            Value::Null => Cell::Null,
                            Value::Text(t) => Cell::Text(t),
                            Value::Int(i) => Cell::Int(i),
                            Value::Float(f) => Cell::Float(f.to_bits()),
                            Value::List(items) if items.is_empty() => Cell::Null,
                            Value::List(items) => Cell::List(items.into_iter().map(Cell::Text).collect()),
                            Value::Time(t) if *kind == Kind::LocalTime => {
                                Cell::Int(synth::as_read_back(t, zone).timestamp_micros())
                            }
                            Value::Time(t) => Cell::Int(t.timestamp_micros()),
                        };
                        (column.to_string(), cell)
                    })
                    .chain([
                        ("export_id".to_string(), Cell::Text(export_id(export))),
                        ("export_frequency".to_string(), Cell::Text(frequency.to_string())),
                        ("period_from".to_string(), Cell::Int(start.timestamp_micros())),
                        ("period_to".to_string(), Cell::Int(end.timestamp_micros())),
                    ])
                    .collect()
            })
            .collect();
        (name, synth::render(export.dataset, &rows, zone), expected)
    }

    /// Every row of `dataset` in the lake, all partitions, as (column, cell) for `columns`.
    fn all_landed(lake: &std::path::Path, dataset: &str, columns: &[String]) -> Vec<String> {
        let dir = lake.join(format!("sparkcentral/{dataset}"));
        let mut rows = Vec::new();
        for partition in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = partition.file_name().to_string_lossy().into_owned();
            let Some(day) = name.strip_prefix("date=") else { continue };
            for row in landed(lake, dataset, date(day)) {
                let kept: Vec<&(String, Cell)> = row.iter().filter(|(c, _)| columns.contains(c)).collect();
                rows.push(format!("{kept:?}"));
            }
        }
        rows.sort();
        rows
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_export_lands_as_its_own_stream_with_its_period_and_zone() {
        let (tree, lake) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let days = [date("2024-03-04"), date("2024-03-05")];
        let mut expected: std::collections::BTreeMap<&str, Vec<Vec<(String, Cell)>>> = Default::default();
        let write = |folder: &str, name: &str, bytes: &[u8], age: u64| {
            let dir = tree.path().join(folder);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let modified = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
        };
        for (index, export) in EXPORTS.iter().enumerate() {
            for day in days {
                for hour in (0..24).step_by(export.hours as usize) {
                    let (name, bytes, rows) = file(index, export, day, hour, 0);
                    write(export.folder, &name, &bytes, 600);
                    // The first team export's first day is delivered again, corrected: only its
                    // rows are replaced.
                    if index == 0 && day == days[0] {
                        let (name, bytes, rows) = file(index, export, day, hour, 1);
                        write(export.folder, &name, &bytes, 300);
                        expected.entry(export.dataset).or_default().extend(rows);
                        continue;
                    }
                    expected.entry(export.dataset).or_default().extend(rows);
                }
            }
        }
        let args = [
            "sync",
            "sparkcentral",
            "--dest",
            lake.path().to_str().unwrap(),
            "--source",
            tree.path().to_str().unwrap(),
            "--timezone",
            "Europe/Brussels",
            "--export-timezone",
            "resolved-us=America/New_York",
            "--type-folder",
            "virtual_agent=bots",
            "--from",
            "2024-03-04",
            "--to",
            "2024-03-06",
            "--settle",
            "0s",
            "--recheck-after",
            "0s",
        ];
        let out = run_cxlake(&args, NO_ENV).await;
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("Several scheduled exports of one type write into one folder"),
            "{}",
            out.stderr
        );
        for (dataset, rows) in &expected {
            let columns: Vec<String> = rows[0].iter().map(|(c, _)| c.clone()).collect();
            let mut want: Vec<String> =
                rows.iter().map(|row| format!("{:?}", row.iter().collect::<Vec<_>>())).collect();
            want.sort();
            let got = all_landed(lake.path(), dataset, &columns);
            assert_eq!(got.len(), want.len(), "{dataset}: every row once");
            assert!(got == want, "{dataset}: every value, export and period");
        }
        // Queried per frequency, the users of one day are the hourly export's 24 files or the
        // daily export's one, never both.
        let users = landed(lake.path(), "user", days[0]);
        let frequency =
            |row: &Vec<(String, Cell)>| row.iter().find(|(c, _)| c == "export_frequency").unwrap().1.clone();
        let hourly = users.iter().filter(|r| frequency(r) == Cell::Text("hourly".into())).count();
        let daily = users.iter().filter(|r| frequency(r) == Cell::Text("daily".into())).count();
        assert_eq!((hourly, daily), (24 * 4, 4));
        // New York's day 4 March starts at 05:00 UTC and sits in the date=2024-03-04 partition.
        let us: Vec<Cell> = landed(lake.path(), "resolved_conversation", days[0])
            .into_iter()
            .filter(|row| row.iter().any(|(c, v)| c == "export_id" && *v == Cell::Text("resolved-us".into())))
            .map(|row| row.into_iter().find(|(c, _)| c == "period_from").unwrap().1)
            .collect();
        assert_eq!(us, vec![micros("2024-03-04T05:00:00Z"); 4]);

        // A replay from the raw archive fills the same exports, periods and zones.
        let before: Vec<Vec<String>> = expected
            .iter()
            .map(|(dataset, rows)| {
                let columns: Vec<String> = rows[0].iter().map(|(c, _)| c.clone()).collect();
                all_landed(lake.path(), dataset, &columns)
            })
            .collect();
        let replay =
            run_cxlake(&["replay", "sparkcentral", "--dest", lake.path().to_str().unwrap()], NO_ENV).await;
        assert_eq!(replay.code, 0, "{}\n{}", replay.stdout, replay.stderr);
        let after: Vec<Vec<String>> = expected
            .iter()
            .map(|(dataset, rows)| {
                let columns: Vec<String> = rows[0].iter().map(|(c, _)| c.clone()).collect();
                all_landed(lake.path(), dataset, &columns)
            })
            .collect();
        assert!(before == after, "the replay lands the same rows, exports and periods");
    }
}
