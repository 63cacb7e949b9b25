//! `cxlake convert`: files already on disk into the same layout, commit and bookkeeping as sync.

use cxlake::pipeline::run_sync;
use cxlake::sources::saltedcx::synth;

use crate::common::*;

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_lands_the_same_rows_as_sync_and_leaves_the_inputs_alone() {
    let emulator = emulator(emulator_config()).await;
    let synced = tempfile::tempdir().unwrap();
    let day = days("2024-03-01", 1);
    run_sync(&plan(&emulator, synced.path(), day.clone())).await.unwrap();

    // The same day's turns, as a manual export split into two files.
    let (csv, _) = synth::dataset_csv(&emulator.config().synth, "turn", day[0].date, None).unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    let mut records = csv::Reader::from_reader(csv.as_slice());
    let header = records.headers().unwrap().clone();
    let all: Vec<csv::StringRecord> = records.records().map(|r| r.unwrap()).collect();
    let split = |part: &[csv::StringRecord]| {
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        w.write_record(&header).unwrap();
        for r in part {
            w.write_record(r).unwrap();
        }
        w.into_inner().unwrap()
    };
    let inputs = tempfile::tempdir().unwrap();
    let first = write(inputs.path(), "turns-1.csv", &split(&all[..all.len() / 2]));
    let second = write(inputs.path(), "turns-2.csv", &split(&all[all.len() / 2..]));
    let before = (std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    assert!(text.contains('\r'));

    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    let out = run_cxlake(
        &["convert", "saltedcx.turn", "--date", "2024-03-01", "--dest", dest, &first, &second],
        NO_ENV,
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        batch_rows(&read_partition(lake.path(), "turn", day[0].date)),
        batch_rows(&read_partition(synced.path(), "turn", day[0].date)),
        "convert and sync land identical rows"
    );
    // One part file per input file (as for a drop folder's hourly files).
    assert_eq!(
        data_files(lake.path()),
        [
            "saltedcx/turn/date=2024-03-01/part-00000.parquet".to_string(),
            "saltedcx/turn/date=2024-03-01/part-00001.parquet".to_string()
        ]
        .into()
    );
    assert_eq!((std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap()), before, "inputs untouched");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lake.path().join("_cxlake/state/saltedcx/date=2024-03-01.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["status"], "done");
    assert_eq!(record["datasets"]["turn"]["stats"]["rows_read"].as_u64(), Some(all.len() as u64));

    // Converting the day again replaces it: now only the first half.
    let out =
        run_cxlake(&["convert", "saltedcx.turn", "--date", "2024-03-01", "--dest", dest, &first], NO_ENV)
            .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(batch_rows(&read_partition(lake.path(), "turn", day[0].date)).len(), all.len() / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_refuses_what_it_cannot_do_before_touching_the_lake() {
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    let missing = run_cxlake(
        &["convert", "saltedcx.turn", "--date", "2024-03-01", "--dest", dest, "/nonexistent.csv"],
        NO_ENV,
    )
    .await;
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("/nonexistent.csv"), "{}", missing.stderr);
    let unknown = run_cxlake(
        &["convert", "saltedcx.calls", "--date", "2024-03-01", "--dest", dest, "/etc/hostname"],
        NO_ENV,
    )
    .await;
    assert_eq!(unknown.code, 2);
    assert!(files_under(lake.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synth_writes_the_emulators_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("agents.csv");
    synth_file("saltedcx.agent", "--engagements-per-day", "60", &out).await;
    let (expected, _) = synth::dataset_csv(&small_tenant(), "agent", date("2024-03-01"), None).unwrap();
    assert_eq!(std::fs::read(out).unwrap(), expected);
}

/// The lake's Parquet files by path, and its reject files by directory (a reject file is named
/// by its run, which differs between two runs): their bytes.
/// Each data file's rows and row groups (its load columns say when and by which run: they differ
/// from run to run) and each reject file's bytes.
fn lake_bytes(lake: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    files_under(lake)
        .into_iter()
        .filter(|f| f.ends_with(".parquet") || f.contains("/rejects/"))
        .map(|f| {
            let bytes = if f.ends_with(".parquet") {
                let file = std::fs::File::open(lake.join(&f)).unwrap();
                let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
                let groups: Vec<i64> = parquet::file::reader::FileReader::metadata(&reader)
                    .row_groups()
                    .iter()
                    .map(|g| g.num_rows())
                    .collect();
                format!("{groups:?} {:?}", batch_rows(&read_parquet_file(&lake.join(&f)))).into_bytes()
            } else {
                std::fs::read(lake.join(&f)).unwrap()
            };
            // `…/rejects/…/<run>.csv`: the run id differs, the content must not.
            let key = if f.contains("/rejects/") { f.rsplit_once('/').unwrap().0.to_string() } else { f };
            (key, bytes)
        })
        .collect()
}

/// Converts `input` with `threads` workers into a new lake; returns the lake.
async fn convert_with(dataset: &str, input: &str, threads: &str) -> tempfile::TempDir {
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap();
    let out = run_cxlake(
        &[
            "convert",
            dataset,
            "--date",
            "2024-03-01",
            "--dest",
            dest,
            input,
            "--threads",
            threads,
            "--max-rejects",
            "100",
            "--raw",
            "off",
            "--log",
            "warn",
            "--no-current-tables",
        ],
        NO_ENV,
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    lake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_decoding_and_encoding_write_the_rows_and_row_groups_one_thread_writes() {
    let inputs = tempfile::tempdir().unwrap();
    // Turns: quoted chat text with commas, quotes and CR/LF inside fields, across many chunks
    // (a chunk is 8,192 records), with malformed rows spread over them.
    let turns = inputs.path().join("turns.csv");
    synth_file("saltedcx.turn", "--engagements-per-day", "2500", &turns).await;
    let text = std::fs::read(&turns).unwrap();
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_slice());
    let records: Vec<csv::ByteRecord> = reader.byte_records().map(|r| r.unwrap()).collect();
    assert!(records.len() > 4 * 8192, "{} records: too few chunks", records.len());
    let multi_line = records.iter().filter(|r| r.iter().any(|f| f.contains(&b'\n'))).count();
    assert!(multi_line > 100, "quoted line breaks in {multi_line} records only");
    let duration = records[0].iter().position(|f| f == b"duration").unwrap();
    let mut writer =
        csv::WriterBuilder::new().flexible(true).terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    let mut bad = 0;
    for (i, record) in records.iter().enumerate() {
        if i > 0 && i % 7919 == 0 {
            let mut broken = record.clone();
            broken = broken
                .iter()
                .enumerate()
                .map(|(j, f)| if j == duration { &b"12 minutes"[..] } else { f })
                .collect();
            writer.write_byte_record(&broken).unwrap();
            bad += 1;
        } else if i > 0 && i % 10007 == 0 {
            writer.write_byte_record(&csv::ByteRecord::from(vec!["only", "three", "fields"])).unwrap();
            bad += 1;
        } else {
            writer.write_byte_record(record).unwrap();
        }
    }
    std::fs::write(&turns, writer.into_inner().unwrap()).unwrap();
    let turns = turns.to_str().unwrap();
    let one = convert_with("saltedcx.turn", turns, "1").await;
    let three = convert_with("saltedcx.turn", turns, "3").await;
    let (one, three) = (lake_bytes(one.path()), lake_bytes(three.path()));
    assert_eq!(one.keys().collect::<Vec<_>>(), three.keys().collect::<Vec<_>>());
    for (path, bytes) in &one {
        assert!(bytes == &three[path], "{path} differs between 1 and 3 threads");
    }
    let rejects: Vec<&Vec<u8>> =
        one.iter().filter(|(p, _)| p.contains("/rejects/")).map(|(_, b)| b).collect();
    assert_eq!(rejects.len(), 1);
    let mut quarantined = csv::Reader::from_reader(rejects[0].as_slice());
    let lines: Vec<u64> = quarantined.records().map(|r| r.unwrap()[1].parse().unwrap()).collect();
    assert_eq!(lines.len(), bad, "every malformed row quarantined once");
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "rejects in file order: {lines:?}");

    // Dixa conversations: a JSON array cut into chunks of elements, with elements that cannot
    // land (not an object, not JSON) among them.
    let conversations = inputs.path().join("conversations.json");
    synth_file("dixa.conversation", "--per-day", "9000", &conversations).await;
    let array = std::fs::read_to_string(&conversations).unwrap();
    let elements: Vec<serde_json::Value> = serde_json::from_str(&array).unwrap();
    assert!(elements.len() > 8192, "{} elements: one chunk only", elements.len());
    let mut broken = String::from("[");
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            broken.push_str(",\n");
        }
        if i % 6007 == 5 {
            broken.push_str("42,\n");
        }
        broken.push_str(&serde_json::to_string(element).unwrap());
    }
    broken.push(']');
    std::fs::write(&conversations, broken).unwrap();
    let conversations = conversations.to_str().unwrap();
    let one = convert_with("dixa.conversation", conversations, "1").await;
    let three = convert_with("dixa.conversation", conversations, "3").await;
    let (one, three) = (lake_bytes(one.path()), lake_bytes(three.path()));
    assert!(one.keys().any(|p| p.contains("/rejects/")));
    assert_eq!(one.keys().collect::<Vec<_>>(), three.keys().collect::<Vec<_>>());
    for (path, bytes) in &one {
        assert!(bytes == &three[path], "{path} differs between 1 and 3 threads");
    }
}

/// The run report's `memory` after converting `input` with `extra` flags; the lake is dropped.
async fn convert_memory(input: &str, extra: &[&str]) -> (serde_json::Value, u64) {
    let lake = tempfile::tempdir().unwrap();
    let report = lake.path().join("report.json");
    let dest = lake.path().join("lake");
    let args = ["convert", "saltedcx.turn", "--date", "2024-03-01", "--dest", dest.to_str().unwrap(), input];
    let tail = ["--report-json", report.to_str().unwrap(), "--no-current-tables", "--threads", "3"];
    let out = run_cxlake(&[&args[..], &tail[..], extra].concat(), NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rows = report["windows"][0]["datasets"]["turn"]["rows_written"].as_u64().unwrap();
    (report["memory"].clone(), rows)
}

/// `--memory-budget` bounds what a conversion holds, not only how many run at once: the writer's
/// row groups and queue and the decoder's chunks in flight are sized to the reservation, so the
/// process's peak heap (counted by its allocator) stays within the budget plus what every run
/// holds whatever its input (measured on a one-row file), and the same rows land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_holds_no_more_than_its_memory_budget() {
    let inputs = tempfile::tempdir().unwrap();
    let turns = inputs.path().join("turns.csv");
    synth_file("saltedcx.turn", "--engagements-per-day", "8000", &turns).await;
    let text = std::fs::read_to_string(&turns).unwrap();
    assert!(text.len() > 50 << 20, "{} bytes: too small to need more than the budget", text.len());
    let one_row: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    let tiny = inputs.path().join("one.csv");
    std::fs::write(&tiny, one_row).unwrap();
    let mib = |memory: &serde_json::Value, key: &str| memory[key].as_u64().unwrap();

    let (baseline, _) = convert_memory(tiny.to_str().unwrap(), &[]).await;
    let (bounded, bounded_rows) =
        convert_memory(turns.to_str().unwrap(), &["--memory-budget", "64MiB"]).await;
    let (default, default_rows) = convert_memory(turns.to_str().unwrap(), &[]).await;
    // Below what one conversion holds whatever it is given, the budget is refused up front.
    let dest = inputs.path().join("refused");
    let args = ["convert", "saltedcx.turn", "--date", "2024-03-01", "--dest", dest.to_str().unwrap()];
    let refused =
        run_cxlake(&[&args[..], &[turns.to_str().unwrap(), "--memory-budget", "24MiB"]].concat(), NO_ENV)
            .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("at least 64 MiB"), "{}", refused.stderr);
    assert_eq!(bounded_rows, default_rows);
    assert_eq!(mib(&bounded, "budget_mib"), 64);
    assert!(mib(&bounded, "peak_reserved_mib") <= 64, "{bounded}");
    // What is not reserved (buffers of the raw archive, the runtime, a decoded batch being
    // handed over) is allowed 16 MiB on top.
    let allowed = 64 + mib(&baseline, "peak_heap_mib") + 16;
    assert!(mib(&bounded, "peak_heap_mib") <= allowed, "{bounded} (allowed {allowed} MiB)");
    assert!(mib(&default, "peak_heap_mib") > mib(&bounded, "peak_heap_mib"), "{default} vs {bounded}");
}
