//! Leases: overlapping runs wait for each other's windows instead of doing them twice; expired
//! and orphaned leases are taken over; a run that lost a lease notices before publishing.

use std::time::Duration;

use chrono::Utc;
use cxlake::pipeline::run_sync;
use cxlake::sink::lease::{hostname, Lease, LeaseName, LockError, LockRecord};
use cxlake::sink::Destination;
use cxlake::sources::saltedcx::emulator::{Emulator, EmulatorConfig};

use crate::common::*;

/// An emulator whose exports take a while, so a run holds its leases long enough to collide with.
async fn slow_emulator() -> Emulator {
    emulator(EmulatorConfig { processing_polls: 8, ..emulator_config() }).await
}

async fn run_cli(dest: &str, from: &str, to: &str, extra: &[&str], env: &[(&'static str, String)]) -> Output {
    let mut args =
        vec!["sync", "saltedcx", "--dest", dest, "--from", from, "--to", to, "--poll-interval", "10ms"];
    args.extend_from_slice(extra);
    run_cxlake(&args, env).await
}

fn window_lease_dir(lake: &std::path::Path, day: &str) -> std::path::PathBuf {
    lake.join(format!("_cxlake/leases/saltedcx/window/date={day}"))
}

async fn wait_for_lease(lake: &std::path::Path, day: &str) {
    for _ in 0..500 {
        if window_lease_dir(lake, day).read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the first run never took the window's lease");
}

fn write_lease(lake: &std::path::Path, day: &str, record: &LockRecord) {
    let dir = window_lease_dir(lake, day);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("lease-{:012}.json", record.generation)),
        serde_json::to_vec(record).unwrap(),
    )
    .unwrap();
}

fn foreign_lease(heartbeat_ago: chrono::Duration, host: &str, pid: u32) -> LockRecord {
    LockRecord {
        generation: 7,
        run_id: "20240101T000000Z-deadbeef".into(),
        host: host.into(),
        pid,
        acquired_at: Utc::now() - heartbeat_ago,
        heartbeat_at: Utc::now() - heartbeat_ago,
        ttl_secs: 120,
        released: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_run_waits_for_the_windows_another_run_holds_and_does_not_redo_them() {
    let emulator = slow_emulator().await;
    let lake = tempfile::tempdir().unwrap();
    // The first run polls slowly (8 polls of 300 ms a window): it holds its two windows for
    // seconds, long enough for the runs below to start while it does, however loaded the machine.
    let mut config = client_config(&emulator);
    config.poll.initial_interval = Duration::from_millis(300);
    config.poll.max_interval = Duration::from_millis(300);
    let client = cxlake::sources::saltedcx::client::SaltedCxClient::new(config).unwrap();
    let jobs = cxlake::sources::saltedcx::client::SaltedCxJobs::new(client, None);
    let source = cxlake::sources::saltedcx::SaltedCx::new(jobs, fast_policy());
    let first = plan_with(source, lake.path(), all_schemas(), days("2024-03-01", 2));
    let first_run_id = first.run_id.clone();
    let holder = tokio::spawn(async move { run_sync(&first).await.map(|r| r.exit_code()) });
    wait_for_lease(lake.path(), "2024-03-01").await;

    let dest = lake.path().to_str().unwrap();
    let env = api_env(&emulator);
    // Told not to wait, it leaves the held windows to their holder and says who that is.
    let impatient = run_cli(dest, "2024-03-01", "2024-03-02", &["--lease-wait", "0s"], &env).await;
    assert_eq!(impatient.code, 3, "{}", impatient.stderr);
    assert!(impatient.stdout.contains(&format!("held by run {first_run_id}")), "{}", impatient.stdout);

    // By default it waits, finds them done by the first run, and does only the third day.
    let second = run_cli(dest, "2024-03-01", "2024-03-04", &[], &env).await;
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stdout.contains(&format!("done by run {first_run_id}")), "{}", second.stdout);
    assert!(second.stdout.contains("1 window(s) committed, 2 done by other runs"), "{}", second.stdout);
    assert_eq!(holder.await.unwrap().unwrap(), 0, "the first run was not disturbed");
    assert_eq!(emulator.stats().exports_created, 3, "one export per window, none twice");

    // A later run asked for the same days re-exports them: a re-run window replaces itself...
    let again = run_cli(dest, "2024-03-01", "2024-03-02", &[], &env).await;
    assert!(again.code == 0 && again.stdout.contains("1 window(s) committed"), "{}", again.stdout);
    // ...unless told to leave done windows alone (a backfill's retry).
    let retry = run_cli(dest, "2024-03-01", "2024-03-04", &["--skip-done"], &env).await;
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    assert!(retry.stdout.contains("0 window(s) committed, 3 done by other runs"), "{}", retry.stdout);
    assert_eq!(emulator.stats().exports_created, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_left_by_a_dead_run_is_taken_over() {
    let emulator = emulator(emulator_config()).await;
    let env = api_env(&emulator);

    // Another host, heartbeat long past its TTL: expired.
    let lake = tempfile::tempdir().unwrap();
    write_lease(lake.path(), "2024-03-01", &foreign_lease(chrono::Duration::hours(1), "another-host", 1));
    let out = run_cli(lake.path().to_str().unwrap(), "2024-03-01", "2024-03-02", &[], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("Taking over a lease"), "{}", out.stderr);

    // This host, fresh heartbeat, but the process is gone (kill -9): no need to wait.
    let lake = tempfile::tempdir().unwrap();
    write_lease(
        lake.path(),
        "2024-03-01",
        &foreign_lease(chrono::Duration::zero(), &hostname(), u32::MAX - 7),
    );
    let out = run_cli(lake.path().to_str().unwrap(), "2024-03-01", "2024-03-02", &[], &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Another host, fresh heartbeat: it is alive as far as we can tell.
    let lake = tempfile::tempdir().unwrap();
    write_lease(lake.path(), "2024-03-01", &foreign_lease(chrono::Duration::zero(), "another-host", 1));
    let out =
        run_cli(lake.path().to_str().unwrap(), "2024-03-01", "2024-03-02", &["--lease-wait", "1s"], &env)
            .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.contains("another-host"), "{}", out.stdout);
    assert!(data_files(lake.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lease_notices_before_publishing() {
    let lake = tempfile::tempdir().unwrap();
    let dest = Destination::parse(lake.path().to_str().unwrap()).unwrap();
    let name = LeaseName::window("saltedcx", date("2024-03-01"));
    let lease = Lease::acquire(&dest, &name, "run-a", Duration::from_secs(60)).await.unwrap();
    assert!(lease.ensure_held().await.is_ok());
    // A newer generation appears: someone took over (as after a stall past the TTL).
    let mut usurper = lease.record().clone();
    usurper.generation += 1;
    usurper.run_id = "run-b".into();
    write_lease(lake.path(), "2024-03-01", &usurper);
    match lease.ensure_held().await {
        Err(LockError::Lost { by, .. }) => assert_eq!(by, "run-b"),
        other => panic!("expected a lost lease, got {other:?}"),
    }
    let err = Lease::acquire(&dest, &name, "run-c", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, LockError::Locked(ref l) if l.run_id == "run-b"), "{err:?}");
    // Another window's lease is independent.
    let other = LeaseName::window("saltedcx", date("2024-03-02"));
    assert!(Lease::acquire(&dest, &other, "run-c", Duration::from_secs(60)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_on_s3_share_the_windows_through_conditional_writes() {
    let s3 = s3();
    let emulator = slow_emulator().await;
    let dest = format!("s3://{}/locks/{}", s3.bucket, cxlake::cli::new_run_id());
    let mut env = s3.env();
    env.extend(api_env(&emulator));
    // Two runs started together on the same days: each window is exported and committed once.
    let (a, b) = tokio::join!(
        run_cli(&dest, "2024-03-01", "2024-03-04", &[], &env),
        run_cli(&dest, "2024-03-01", "2024-03-04", &[], &env)
    );
    assert_eq!((a.code, b.code), (0, 0), "a: {}\nb: {}", a.stderr, b.stderr);
    let committed = |o: &Output| o.stdout.lines().filter(|l| l.contains(" committed ")).count();
    assert_eq!(committed(&a) + committed(&b), 3, "a:\n{}\nb:\n{}", a.stdout, b.stdout);
    assert_eq!(emulator.stats().exports_created, 3);
}

/// A run killed in the middle of writing a file on disk leaves the store's temporary file
/// (`name#N`), which no listing shows: the next run's sweep removes it with the dead run's staging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_temporary_file_in_a_dead_runs_staging_is_swept() {
    let lake = tempfile::tempdir().unwrap();
    let dead = lake.path().join("_cxlake/staging/20240101T000000Z-deadbeef/saltedcx/turn/date=2024-03-01");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("part-00000.parquet#1"), b"half").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for dir in dead.ancestors().take(4) {
        std::fs::File::open(dir).unwrap().set_modified(an_hour_ago).unwrap();
    }
    let dest = cxlake::sink::Destination::parse(lake.path().to_str().unwrap()).unwrap();
    cxlake::sink::lease::sweep_dead_staging(&dest).await;
    assert!(files_under(&lake.path().join("_cxlake/staging")).is_empty());
    assert!(!lake.path().join("_cxlake/staging/20240101T000000Z-deadbeef").exists());
}
