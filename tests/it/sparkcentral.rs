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
