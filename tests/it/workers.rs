//! Many workers, one lake: four processes sync overlapping ranges of twelve days into one lake
//! on SeaweedFS, two of them are killed mid-run and restarted, and the lake ends up exactly as
//! the generator describes it — every window once, exported once, one set of files each.

use std::collections::BTreeMap;
use std::time::Duration;

use cxlake::sink::{layout, Destination};
use cxlake::sources::saltedcx::emulator::EmulatorConfig;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::common::*;

/// The rows of one dataset's day as the lake serves them (through the Delta log for Delta).
async fn lake_rows(
    dest: &Destination,
    dataset: &str,
    day: chrono::NaiveDate,
    delta: bool,
) -> (Vec<Vec<Cell>>, usize) {
    let partition = layout::partition_dir("saltedcx", dataset, day);
    let mut files: Vec<String> = if delta {
        let table = cxlake::sink::delta::open_table(dest, &layout::dataset_dir("saltedcx", dataset))
            .await
            .unwrap()
            .expect("a Delta table");
        let root = dest.path("").to_string();
        table
            .get_file_uris()
            .unwrap()
            .filter(|uri| uri.contains(&format!("/date={day}/")))
            .map(|uri| {
                let key = uri
                    .split_once("://")
                    .map(|(_, rest)| rest.split_once('/').unwrap().1.to_string())
                    .unwrap();
                key.strip_prefix(&format!("{root}/")).unwrap_or(&key).to_string()
            })
            .collect()
    } else {
        dest.store
            .list(Some(&dest.path(&partition)))
            .map_ok(|m| m.location.to_string())
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .map(|key| key.strip_prefix(&format!("{}/", dest.path(""))).unwrap().to_string())
            .collect()
    };
    files.sort();
    let mut rows = Vec::new();
    for file in &files {
        let bytes = dest.store.get(&dest.path(file)).await.unwrap().bytes().await.unwrap();
        rows.extend(batch_rows(&read_parquet_bytes(bytes)));
    }
    (rows, files.len())
}

async fn four_workers_two_killed(format: &str) {
    let s3 = s3();
    let tenant = small_tenant();
    let emulator = emulator(EmulatorConfig { synth: tenant, processing_polls: 3, ..emulator_config() }).await;
    let mut env: Vec<(&str, String)> = s3.env();
    env.extend(api_env(&emulator));
    let prefix = format!("workers-{format}/{}", cxlake::cli::new_run_id());
    let dest_url = format!("s3://{}/{prefix}", s3.bucket);
    // Overlapping ranges over 2024-03-01..2024-03-13, as four workers of a sloppy fan-out would have.
    let ranges = [
        ("2024-03-01", "2024-03-07"),
        ("2024-03-04", "2024-03-10"),
        ("2024-03-07", "2024-03-13"),
        ("2024-03-01", "2024-03-13"),
    ];
    let args = |(from, to): (&str, &str)| -> Vec<String> {
        [
            "sync",
            "saltedcx",
            "--dest",
            &dest_url,
            "--from",
            from,
            "--to",
            to,
            "--poll-interval",
            "20ms",
            "--format",
            format,
            "--skip-done",
            "--lock-ttl",
            "3s",
            "--log",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let spawn = |range: (&str, &str)| {
        cxlake_command()
            .args(args(range))
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut workers: Vec<std::process::Child> = ranges.iter().map(|r| spawn(*r)).collect();
    // Two of them die mid-run (kill -9: no cleanup) at different moments, and are started again.
    for (i, at) in [(1, 600), (3, 1500)] {
        tokio::time::sleep(Duration::from_millis(at)).await;
        workers[i].kill().unwrap();
        let _ = workers[i].wait();
    }
    let restarted: Vec<std::process::Child> = [1, 3].iter().map(|&i| spawn(ranges[i])).collect();
    let survivors: Vec<std::process::Child> =
        workers.into_iter().enumerate().filter(|(i, _)| *i == 0 || *i == 2).map(|(_, c)| c).collect();
    let outputs = tokio::task::spawn_blocking(move || {
        survivors.into_iter().chain(restarted).map(|c| c.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for out in &outputs {
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The lake equals what the generator describes: every dataset, every day, one set of files.
    // This process has no AWS_* variables: the lake is opened with the test server's settings.
    let store = std::sync::Arc::new(s3.store());
    let dest = Destination {
        store: store.clone(),
        root: object_store::path::Path::parse(&prefix).unwrap(),
        display: dest_url.clone(),
        local_dir: None,
        s3: Some(cxlake::sink::s3_uploads::S3Bucket {
            store,
            bucket: s3.bucket.clone(),
            region: "us-east-1".into(),
            endpoint: Some(s3.endpoint.clone()),
        }),
    };
    let windows = days("2024-03-01", 12);
    for schema in all_schemas() {
        for window in &windows {
            let (rows, files) = lake_rows(&dest, &schema.dataset, window.date, format == "delta").await;
            assert_eq!(files, 1, "{} {}: one file per window", schema.dataset, window.date);
            assert_eq!(
                rows,
                expected_rows(&tenant, &schema, window.date),
                "{} {}",
                schema.dataset,
                window.date
            );
        }
    }
    // No window twice: each was committed by exactly one finished run, or by a killed one
    // (whose commit the restarted run then found done), and exported at most once more than
    // that for each kill that may have caught an export before it was journalled.
    let report_paths: Vec<object_store::path::Path> = dest
        .store
        .list(Some(&dest.path(&layout::runs_dir())))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    let mut reports: Vec<serde_json::Value> = Vec::new();
    for path in &report_paths {
        let bytes = dest.store.get(path).await.unwrap().bytes().await.unwrap();
        reports.push(serde_json::from_slice(&bytes).unwrap());
    }
    let mut committed: BTreeMap<String, usize> = BTreeMap::new();
    for report in &reports {
        for window in report["windows"].as_array().unwrap() {
            if window["outcome"] == "committed" {
                *committed.entry(window["date"].as_str().unwrap().to_string()).or_default() += 1;
            }
        }
    }
    assert!(committed.values().all(|n| *n == 1), "a window committed twice: {committed:?}");
    let exports = emulator.stats().exports_created;
    assert!((12..=14).contains(&exports), "{exports} exports for 12 windows and 2 kills");
    let records = cxlake::state::StateStore::new(dest.clone()).load_windows("saltedcx").await.unwrap();
    assert_eq!(records.len(), 12);
    assert!(records.iter().all(|r| r.status == cxlake::state::WindowStatus::Done));
    let by_finished_runs: usize = committed.values().sum();
    println!(
        "{format}: {} run report(s), {exports} exports, {by_finished_runs} windows committed by finished runs, {} by killed ones",
        reports.len(),
        12 - by_finished_runs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_on_overlapping_ranges_two_killed_and_restarted_leave_the_exact_parquet_lake() {
    four_workers_two_killed("parquet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_on_overlapping_ranges_two_killed_and_restarted_leave_the_exact_delta_lake() {
    four_workers_two_killed("delta").await;
}

/// Four shard workers share one creation cap through the lake: as the platform saw it, never
/// more than two exports created in any second nor more than one in flight (created and not
/// yet downloaded), and every window landed with exactly one export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_set_of_four_workers_never_exceeds_the_creation_cap() {
    let emulator = emulator(EmulatorConfig { processing_polls: 2, ..emulator_config() }).await;
    let env: Vec<(&str, String)> = api_env(&emulator);
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap().to_string();
    let spawn = |index: usize| {
        let shard = format!("{index}/4");
        cxlake_command()
            .args([
                "sync",
                "saltedcx",
                "--dest",
                &dest,
                "--from",
                "2024-03-01",
                "--to",
                "2024-03-09",
                "--shard",
                &shard,
                "--poll-interval",
                "20ms",
                "--max-export-rate",
                "2/1s",
                "--max-exports-in-flight",
                "1",
                "--log",
                "warn",
            ])
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let workers: Vec<std::process::Child> = (0..4).map(spawn).collect();
    let outputs = tokio::task::spawn_blocking(move || {
        workers.into_iter().map(|c| c.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for out in &outputs {
        assert_eq!(out.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let stats = emulator.stats();
    assert_eq!(stats.exports_created, 8, "one export per window");
    let mut created: Vec<_> = stats.lifetimes.values().map(|(c, _)| *c).collect();
    created.sort();
    // Timestamps are the platform's, a few milliseconds after the lake logged each creation.
    let slack = chrono::Duration::milliseconds(150);
    for three in created.windows(3) {
        assert!(
            three[2] - three[0] >= chrono::Duration::seconds(1) - slack,
            "three creations within 1 s: {created:?}"
        );
    }
    let mut events: Vec<(chrono::DateTime<chrono::Utc>, i32)> = Vec::new();
    for (start, end) in stats.lifetimes.values() {
        events.push((*start, 1));
        events.push((end.expect("every export was downloaded"), -1));
    }
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, change) in events {
        now += change;
        most = most.max(now);
    }
    assert!(most <= 1, "{most} exports in flight at once");
    for day in 1..=8 {
        let date = date(&format!("2024-03-{day:02}"));
        let rows = batch_rows(&read_partition(lake.path(), "agent", date));
        assert!(!rows.is_empty(), "{date} landed");
    }
}
