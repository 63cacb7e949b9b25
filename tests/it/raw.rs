//! The raw archive and replay: every fetched file kept (zstd) byte for byte with its window,
//! `--raw off` keeping none, and `cxlake replay` rebuilding windows from the archive alone —
//! after a schema change (a column added, a type changed), with the API emulator stopped, the
//! lake equals a fresh sync with the new schema.

use cxlake::sources::saltedcx::synth;

use crate::common::*;

fn sync_args<'a>(lake: &'a std::path::Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "saltedcx",
        "--dest",
        lake.to_str().unwrap(),
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-03",
    ];
    args.extend(extra);
    args.extend(["--poll-interval", "10ms"]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_files_are_the_downloaded_bytes_and_raw_off_keeps_none() {
    let emulator = emulator(emulator_config()).await;
    let env = api_env(&emulator);
    let lake = tempfile::tempdir().unwrap();
    let out = run_cxlake(&sync_args(lake.path(), &[]), &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let archived = archived_files(lake.path(), "saltedcx");
    for w in days("2024-03-01", 2) {
        for dataset in DATASETS {
            let files = &archived[&format!("{dataset}/{}", w.date)];
            assert_eq!(files.len(), 1, "{dataset} {}", w.date);
            let (served, _) = synth::dataset_csv(&emulator.config().synth, dataset, w.date, None).unwrap();
            assert!(
                files[0].1 == served,
                "{dataset} {}: the archive holds exactly what was downloaded",
                w.date
            );
        }
    }

    let status = run_cxlake(&["status", "--dest", lake.path().to_str().unwrap()], NO_ENV).await;
    assert!(status.stdout.contains("raw archive: 10 file(s) of 2 window(s)"), "{}", status.stdout);

    // Pruning: a dry run says what would go, then the archive of those windows goes, and their
    // records no longer list it.
    let dest = lake.path().to_str().unwrap();
    let dry = run_cxlake(&["vacuum", "--dest", dest, "--raw-older-than", "1d", "--dry-run"], NO_ENV).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("would delete 10 raw file(s)") && dry.stdout.contains("of 2 window(s)"),
        "{}",
        dry.stdout
    );
    assert_eq!(archived_files(lake.path(), "saltedcx").len(), 10, "a dry run deletes nothing");
    let data_before = data_files(lake.path());
    let pruned = run_cxlake(&["vacuum", "--dest", dest, "--raw-older-than", "1d"], NO_ENV).await;
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    assert!(pruned.stdout.contains("deleted 10 raw file(s)"), "{}", pruned.stdout);
    assert!(archived_files(lake.path(), "saltedcx").is_empty());
    assert!(files_under(&lake.path().join("_cxlake/raw")).is_empty());
    assert_eq!(data_files(lake.path()), data_before, "the data stays");
    let status = run_cxlake(&["status", "--dest", dest], NO_ENV).await;
    assert!(status.stdout.contains("raw archive: none"), "{}", status.stdout);

    let without = tempfile::tempdir().unwrap();
    let out = run_cxlake(&sync_args(without.path(), &["--raw", "off"]), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!without.path().join("_cxlake/raw").exists());
    assert!(archived_files(without.path(), "saltedcx").is_empty());
    let replay =
        run_cxlake(&["replay", "saltedcx", "--dest", without.path().to_str().unwrap()], NO_ENV).await;
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    assert!(replay.stdout.contains("2024-03-01: has no raw files"), "{}", replay.stdout);
    assert!(replay.stdout.contains("nothing to replay"), "{}", replay.stdout);
}

/// The review schema as an older cxlake had it: `score` as text, no `comment_language`.
fn older_review_schema() -> String {
    let current =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/saltedcx/review.toml"))
            .unwrap();
    let blocks: Vec<&str> = current.split("\n[[columns]]\n").collect();
    let mut older = vec![blocks[0].to_string()];
    for block in &blocks[1..] {
        if block.starts_with("name = \"comment_language\"") {
            continue;
        }
        if block.starts_with("name = \"score\"") {
            older.push(block.replace("type = \"Float64\"", "type = \"Utf8\""));
        } else {
            older.push(block.to_string());
        }
    }
    older.join("\n[[columns]]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_a_schema_change_equals_a_fresh_sync_with_the_api_gone() {
    let old = tempfile::tempdir().unwrap();
    std::fs::create_dir(old.path().join("saltedcx")).unwrap();
    let older = older_review_schema();
    assert!(older.contains("name = \"score\"") && !older.contains("name = \"comment_language\""));
    std::fs::write(old.path().join("saltedcx/review.toml"), older).unwrap();

    let emulator = emulator(emulator_config()).await;
    let env = api_env(&emulator);
    let (replayed, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out =
        run_cxlake(&sync_args(replayed.path(), &["--schemas", old.path().to_str().unwrap()]), &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let out = run_cxlake(&sync_args(fresh.path(), &[]), &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first_run =
        std::fs::read_to_string(replayed.path().join("_cxlake/state/saltedcx/date=2024-03-01.json")).unwrap();
    let first_run: serde_json::Value = serde_json::from_str(&first_run).unwrap();
    emulator.shutdown().await;

    // The API is gone: a replay with today's schemas needs nothing but the archive.
    let out = run_cxlake(&["replay", "saltedcx", "--dest", replayed.path().to_str().unwrap()], NO_ENV).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for w in days("2024-03-01", 2) {
        for dataset in DATASETS {
            let got = batch_rows(&read_partition(replayed.path(), dataset, w.date));
            let want = batch_rows(&read_partition(fresh.path(), dataset, w.date));
            assert!(!want.is_empty());
            assert!(got == want, "{dataset} {}: the replayed lake equals a fresh sync", w.date);
        }
    }
    let review = read_partition(replayed.path(), "review", date("2024-03-01"));
    let schema = review[0].schema();
    assert_eq!(schema.field_with_name("score").unwrap().data_type(), &arrow::datatypes::DataType::Float64);
    assert!(schema.field_with_name("comment_language").is_ok());
    let record =
        std::fs::read_to_string(replayed.path().join("_cxlake/state/saltedcx/date=2024-03-01.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        record["replayed_from"], first_run["run_id"],
        "the record says it was replayed, and from which run"
    );
    assert_eq!(
        record["datasets"]["turn"]["raw"], first_run["datasets"]["turn"]["raw"],
        "from the same raw files"
    );
    assert_eq!(record["export_id"], first_run["export_id"]);
}
