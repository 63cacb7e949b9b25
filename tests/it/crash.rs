//! kill -9 at random moments of a multi-day sync, again and again, then one more run: the lake
//! must equal an uninterrupted run's — same files, same rows, nothing stray — and at every
//! moment in between, every file a reader can see must be a complete Parquet file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cxlake::pipeline::run_sync;
use cxlake::sources::saltedcx::synth::Rng;

use crate::common::*;

const KILLS: usize = 24;

/// Every visible data file, and the rows of every partition.
fn snapshot(lake: &std::path::Path) -> (BTreeSet<String>, BTreeMap<String, Vec<Vec<Cell>>>) {
    let files = data_files(lake);
    let mut partitions = BTreeMap::new();
    for dataset in DATASETS {
        for w in days("2024-03-01", 3) {
            partitions
                .insert(format!("{dataset}/{}", w.date), batch_rows(&read_partition(lake, dataset, w.date)));
        }
    }
    (files, partitions)
}

/// What a reader globbing the lake could pick up must be whole, well-named Parquet.
fn assert_readers_see_only_complete_files(lake: &std::path::Path, context: &str) {
    for file in data_files(lake) {
        let name = file.rsplit('/').next().unwrap();
        assert!(
            name.starts_with("part-") && name.ends_with(".parquet") && !name.contains('#'),
            "{context}: stray file {file}"
        );
        let opened = std::panic::catch_unwind(|| read_parquet_file(&lake.join(&file)));
        assert!(opened.is_ok(), "{context}: {file} is not a complete Parquet file");
    }
}

/// A window recorded `done` must hold exactly its data, whatever happened after.
fn assert_done_windows_are_complete(
    lake: &std::path::Path,
    expected: &BTreeMap<String, Vec<Vec<Cell>>>,
    context: &str,
) {
    for w in days("2024-03-01", 3) {
        let record = lake.join(format!("_cxlake/state/saltedcx/date={}.json", w.date));
        let Ok(bytes) = std::fs::read(&record) else { continue };
        let record: serde_json::Value =
            serde_json::from_slice(&bytes).expect("state records are written whole");
        if record["status"] != "done" {
            continue;
        }
        for dataset in DATASETS {
            let key = format!("{dataset}/{}", w.date);
            let rows = batch_rows(&read_partition(lake, dataset, w.date));
            assert_eq!(&rows, &expected[&key], "{context}: {key} is recorded done");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_then_rerun_converges_to_an_uninterrupted_run() {
    let emulator = emulator(emulator_config()).await;
    let env = api_env(&emulator);

    let reference = tempfile::tempdir().unwrap();
    let report = run_sync(&plan(&emulator, reference.path(), days("2024-03-01", 3))).await.unwrap();
    assert_eq!(report.exit_code(), 0);
    let expected = snapshot(reference.path());

    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap().to_string();
    let args = [
        "sync",
        "saltedcx",
        "--dest",
        &dest,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
        "--poll-interval",
        "5ms",
    ];
    // How long an uninterrupted CLI run takes here, to spread the kills over all of it.
    let scratch = tempfile::tempdir().unwrap();
    let scratch_dest = scratch.path().to_str().unwrap().to_string();
    let mut timing_args = args;
    timing_args[3] = &scratch_dest;
    let started = Instant::now();
    assert_eq!(run_cxlake(&timing_args, &env).await.code, 0);
    let full_run = started.elapsed();

    let mut rng = Rng::new(0x6b_1190);
    let mut delays = Vec::new();
    for kill in 0..KILLS {
        // Stratified: each kill lands in its own slice of the run, jittered within it.
        let slice = full_run.as_micros() as u64 / KILLS as u64;
        let delay = Duration::from_micros(slice * kill as u64 + rng.below(slice.max(1)));
        delays.push(delay.as_millis());
        kill_after(&args, &env, delay).await;
        let context = format!("after kill {kill} at {delay:?}");
        assert_readers_see_only_complete_files(lake.path(), &context);
        assert_done_windows_are_complete(lake.path(), &expected.1, &context);
    }

    // One more run, continuing from whatever the killed runs recorded as done.
    let resumed = ["sync", "saltedcx", "--dest", &dest, "--to", "2024-03-04", "--poll-interval", "5ms"];
    let out = run_cxlake(&resumed, &env).await;
    let out =
        if out.code == 2 && out.stderr.contains("give --from") { run_cxlake(&args, &env).await } else { out };
    assert_eq!(out.code, 0, "kills at {delays:?} ms: {}", out.stderr);

    let got = snapshot(lake.path());
    assert_eq!(got.0, expected.0, "same files (kills at {delays:?} ms)");
    for (partition, rows) in &expected.1 {
        assert_eq!(&got.1[partition], rows, "{partition} (kills at {delays:?} ms)");
    }
    assert!(
        files_under(&lake.path().join("_cxlake/staging")).is_empty(),
        "abandoned staging is swept: {:?}",
        files_under(&lake.path().join("_cxlake/staging"))
    );
    let status = run_cxlake(&["status", "--dest", &dest], NO_ENV).await;
    assert!(status.stdout.contains("gaps") && !status.stdout.contains("interrupted"), "{}", status.stdout);
    println!("full run {full_run:?}; kills at {delays:?} ms");
}
