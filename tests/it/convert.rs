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
    let run = run_cxlake(
        &[
            "synth",
            "saltedcx.agent",
            "--date",
            "2024-03-01",
            "--engagements-per-day",
            "60",
            "--out",
            out.to_str().unwrap(),
        ],
        NO_ENV,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (expected, _) = synth::dataset_csv(&small_tenant(), "agent", date("2024-03-01"), None).unwrap();
    assert_eq!(std::fs::read(out).unwrap(), expected);
}
