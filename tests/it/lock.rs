//! One writer per destination: concurrent runs, expired and orphaned locks, a lost lock.

use std::time::Duration;

use chrono::Utc;
use cxlake::pipeline::run_sync;
use cxlake::sink::lock::{hostname, DestLock, LockError, LockRecord};
use cxlake::sink::Destination;
use cxlake::sources::saltedcx::emulator::{Emulator, EmulatorConfig};

use crate::common::*;

/// An emulator whose exports take a while, so a run holds its lock long enough to collide with.
async fn slow_emulator() -> Emulator {
    emulator(EmulatorConfig { processing_polls: 8, ..emulator_config() }).await
}

async fn run_cli(dest: &str, from: &str, to: &str, env: &[(&'static str, String)]) -> Output {
    run_cxlake(
        &["sync", "saltedcx", "--dest", dest, "--from", from, "--to", to, "--poll-interval", "10ms"],
        env,
    )
    .await
}

async fn wait_for_lock(lake: &std::path::Path) {
    for _ in 0..200 {
        if lake.join("_cxlake/locks").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the first run never took the lock");
}

fn write_lock(lake: &std::path::Path, record: &LockRecord) {
    let dir = lake.join("_cxlake/locks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("lock-{:012}.json", record.generation)),
        serde_json::to_vec(record).unwrap(),
    )
    .unwrap();
}

fn foreign_lock(heartbeat_ago: chrono::Duration, host: &str, pid: u32) -> LockRecord {
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
async fn a_second_run_on_a_locked_destination_exits_3_and_names_the_holder() {
    let emulator = slow_emulator().await;
    let lake = tempfile::tempdir().unwrap();
    let first = plan(&emulator, lake.path(), days("2024-03-01", 2));
    let first_run_id = first.run_id.clone();
    let holder = tokio::spawn(async move { run_sync(&first).await.map(|r| r.exit_code()) });
    wait_for_lock(lake.path()).await;

    let dest = lake.path().to_str().unwrap();
    let env = api_env(&emulator);
    let second = run_cli(dest, "2024-03-01", "2024-03-03", &env).await;
    assert_eq!(second.code, 3, "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!("locked by run {first_run_id}")) && second.stderr.contains("since"),
        "{}",
        second.stderr
    );

    assert_eq!(holder.await.unwrap().unwrap(), 0, "the first run was not disturbed");
    let after = run_cli(dest, "2024-03-01", "2024-03-02", &env).await;
    assert_eq!(after.code, 0, "a released lock is free: {}", after.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_dead_run_is_taken_over() {
    let emulator = emulator(emulator_config()).await;
    let env = api_env(&emulator);

    // Another host, heartbeat long past its TTL: expired.
    let lake = tempfile::tempdir().unwrap();
    write_lock(lake.path(), &foreign_lock(chrono::Duration::hours(1), "another-host", 1));
    let out = run_cli(lake.path().to_str().unwrap(), "2024-03-01", "2024-03-02", &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("Taking over a lock"), "{}", out.stderr);

    // This host, fresh heartbeat, but the process is gone (kill -9): no need to wait.
    let lake = tempfile::tempdir().unwrap();
    write_lock(lake.path(), &foreign_lock(chrono::Duration::zero(), &hostname(), u32::MAX - 7));
    let out = run_cli(lake.path().to_str().unwrap(), "2024-03-01", "2024-03-02", &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Another host, fresh heartbeat: it is alive as far as we can tell.
    let lake = tempfile::tempdir().unwrap();
    write_lock(lake.path(), &foreign_lock(chrono::Duration::zero(), "another-host", 1));
    let out = run_cli(lake.path().to_str().unwrap(), "2024-03-01", "2024-03-02", &env).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("another-host"), "{}", out.stderr);
    assert!(data_files(lake.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lock_notices_before_publishing() {
    let lake = tempfile::tempdir().unwrap();
    let dest = Destination::parse(lake.path().to_str().unwrap()).unwrap();
    let lock = DestLock::acquire(&dest, "run-a", Duration::from_secs(60)).await.unwrap();
    assert!(lock.ensure_held().await.is_ok());
    // A newer generation appears: someone took over (as after a stall past the TTL).
    let mut usurper = lock.record().clone();
    usurper.generation += 1;
    usurper.run_id = "run-b".into();
    write_lock(lake.path(), &usurper);
    match lock.ensure_held().await {
        Err(LockError::Lost { by, .. }) => assert_eq!(by, "run-b"),
        other => panic!("expected a lost lock, got {other:?}"),
    }
    let err = DestLock::acquire(&dest, "run-c", Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, LockError::Locked(ref l) if l.run_id == "run-b"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_on_s3_are_arbitrated_by_conditional_writes() {
    let s3 = crate::s3::s3();
    let emulator = slow_emulator().await;
    let dest = format!("s3://{}/locks/{}", s3.bucket, cxlake::cli::new_run_id());
    let mut env = s3.env();
    env.extend(api_env(&emulator));
    // Two runs started together: exactly one takes the lock, the other is told who has it.
    let (a, b) = tokio::join!(
        run_cli(&dest, "2024-03-01", "2024-03-03", &env),
        run_cli(&dest, "2024-03-01", "2024-03-03", &env)
    );
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [0, 3], "a: {}\nb: {}", a.stderr, b.stderr);
    let loser = if a.code == 3 { &a } else { &b };
    assert!(loser.stderr.contains("locked by run"), "{}", loser.stderr);
    // And afterwards the lock is free again.
    let again = run_cli(&dest, "2024-03-01", "2024-03-02", &env).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
}
