//! Issue 27: storage that misbehaves. Through the fault proxy, a quarter of the S3 requests meet
//! a 503 SlowDown, a 500, a connection reset after the server executed the request, or a delay —
//! and one `sync` still lands an exact lake, as plain Parquet and as Delta, with no multipart
//! upload left open and nothing left in staging.

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::*;
use crate::fault_proxy::{Fault, FaultPlan, FaultProxy};

/// `cxlake sync saltedcx --from 2024-03-01 EXTRA` into `dest` through `proxy`.
async fn sync_through(
    proxy: &FaultProxy,
    emulator: &cxlake::sources::saltedcx::emulator::Emulator,
    dest: &str,
    extra: &[&str],
) -> Output {
    let mut env = proxy.s3_env(&s3());
    env.extend(api_env(emulator).into_iter().map(|(k, v)| (k.to_string(), v)));
    let mut args =
        vec!["sync", "saltedcx", "--dest", dest, "--from", "2024-03-01", "--poll-interval", "10ms"];
    args.extend_from_slice(extra);
    run_cxlake(&args, &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_through_a_quarter_of_storage_faults_lands_an_exact_lake() {
    let s3 = s3();
    let emulator = emulator(emulator_config()).await;
    let windows = days("2024-03-01", 2);
    let store = s3.store();
    for (format, seed) in [("parquet", 11), ("delta", 23)] {
        let plan = FaultPlan {
            rate: 0.25,
            ops: Vec::new(),
            faults: vec![
                Fault::SlowDown,
                Fault::InternalError,
                Fault::ResetAfterExecution,
                Fault::ResetAfterExecution,
                Fault::Delay,
            ],
            seed,
            delay: std::time::Duration::from_millis(300),
            retry_after: None,
        };
        let proxy = FaultProxy::start(&s3.endpoint, plan).await;
        let prefix = format!("faults/{}-{format}", cxlake::cli::new_run_id());
        let dest = format!("s3://{}/{prefix}", s3.bucket);
        let started = std::time::Instant::now();
        let out = sync_through(&proxy, &emulator, &dest, &["--to", "2024-03-03", "--format", format]).await;
        let counts = format!("{:?} in {:?}", proxy.counts.lock().unwrap(), started.elapsed());
        eprintln!("{format}: {counts}");
        assert_eq!(
            out.code, 0,
            "{format}: one run converges through {counts}\n{}\n{}",
            out.stdout, out.stderr
        );
        let resets = proxy
            .counts
            .lock()
            .unwrap()
            .injected
            .keys()
            .filter(|(_, f)| *f == Fault::ResetAfterExecution)
            .count();
        assert!(proxy.injected() >= 10 && resets >= 2, "{format}: faults were injected: {counts}");

        // Every row of every window exactly once, read straight from SeaweedFS.
        for schema in all_schemas() {
            let dir = ObjectPath::from(format!("{prefix}/saltedcx/{}", schema.dataset));
            let keys: Vec<ObjectPath> = store
                .list(Some(&dir))
                .map_ok(|m| m.location)
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .into_iter()
                .filter(|k| k.as_ref().ends_with(".parquet"))
                .collect();
            let mut landed = Vec::new();
            for key in &keys {
                landed.extend(batch_rows(&read_parquet_bytes(
                    store.get(key).await.unwrap().bytes().await.unwrap(),
                )));
            }
            let mut expected: Vec<Vec<Cell>> = windows
                .iter()
                .flat_map(|w| expected_rows(&emulator.config().synth, &schema, w.date))
                .collect();
            let (mut landed, key) =
                (landed.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>(), schema.dataset.clone());
            let mut want: Vec<String> = expected.drain(..).map(|r| format!("{r:?}")).collect();
            landed.sort();
            want.sort();
            if format == "delta" {
                // A Delta table's files: only those its log references count (a commit retried
                // after a lost answer leaves no second copy in the table, only unreferenced files).
                let table = delta_rows_on_s3(&store, &prefix, "saltedcx", &schema.dataset).await;
                assert_eq!(table, want, "{format}: {key}: every row once");
            } else {
                assert_eq!(landed, want, "{format}: {key}: every row once");
            }
        }
        // Nothing left half-done: no open multipart upload, an empty staging area.
        s3.assert_nothing_left(&prefix, format).await;
    }
}

/// A store that answers SlowDown with `Retry-After` is not asked again sooner than it said
/// (object_store's own backoff starts at 100 ms and never reads the header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_down_with_retry_after_is_waited_out() {
    let s3 = s3();
    let emulator = emulator(emulator_config()).await;
    let plan = FaultPlan {
        rate: 0.25,
        ops: vec![crate::fault_proxy::Op::CreateOnlyPut, crate::fault_proxy::Op::List],
        faults: vec![Fault::SlowDown],
        seed: 3,
        delay: std::time::Duration::ZERO,
        retry_after: Some(1),
    };
    let proxy = FaultProxy::start(&s3.endpoint, plan).await;
    let dest = format!("s3://{}/retry-after/{}", s3.bucket, cxlake::cli::new_run_id());
    let out = sync_through(&proxy, &emulator, &dest, &["--to", "2024-03-02"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let counts = proxy.counts.lock().unwrap();
    let gaps = &counts.came_back_after;
    assert!(gaps.len() >= 3, "SlowDowns answered and retried: {counts:?}");
    assert!(
        gaps.iter().all(|gap| *gap >= std::time::Duration::from_secs(1)),
        "every retry waited the second the store asked for: {gaps:?}"
    );
}

/// A file large enough to go up in parts (two 5 MiB parts of turns): its part uploads meet
/// faults, and every completion loses its answer after the store executed it — each resolved by
/// a HEAD, with the file landed exactly once and no upload left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_survive_faulty_parts_and_lost_completions() {
    use crate::fault_proxy::Op;
    let s3 = s3();
    let tenant =
        cxlake::sources::saltedcx::synth::SynthConfig { engagements_per_day: 6_000, ..small_tenant() };
    let emulator =
        emulator(cxlake::sources::saltedcx::emulator::EmulatorConfig { synth: tenant, ..emulator_config() })
            .await;
    let schema = all_schemas().into_iter().find(|s| s.dataset == "turn").unwrap();
    let want = expected_rows(&emulator.config().synth, &schema, date("2024-03-01"));
    for (name, ops, rate, faults) in [
        ("lost completions", vec![Op::CompleteMultipart], 1.0, vec![Fault::ResetAfterExecution]),
        (
            "faulty parts",
            vec![Op::PartUpload, Op::CreateMultipart],
            0.4,
            vec![Fault::SlowDown, Fault::InternalError, Fault::ResetAfterExecution],
        ),
    ] {
        let target = ops[0];
        let plan =
            FaultPlan { rate, ops, faults, seed: 7, delay: std::time::Duration::ZERO, retry_after: None };
        let proxy = FaultProxy::start(&s3.endpoint, plan).await;
        let prefix = format!("multipart-faults/{}", cxlake::cli::new_run_id());
        let dest = format!("s3://{}/{prefix}", s3.bucket);
        let extra = ["--to", "2024-03-02", "--datasets", "turn", "--upload-chunk-bytes", "5242880"];
        let out = sync_through(&proxy, &emulator, &dest, &extra).await;
        let counts = format!("{:?}", proxy.counts.lock().unwrap());
        assert_eq!(out.code, 0, "{name}: {counts}\n{}\n{}", out.stdout, out.stderr);
        let hit = proxy.counts.lock().unwrap().injected.keys().any(|(op, _)| *op == target);
        assert!(hit, "{name}: {target:?} met faults: {counts}");

        let store = s3.store();
        let key = ObjectPath::from(format!("{prefix}/saltedcx/turn/date=2024-03-01/part-00000.parquet"));
        let bytes = store.get(&key).await.unwrap().bytes().await.unwrap();
        assert!(bytes.len() > 5 << 20, "{name}: the file went up in parts ({} bytes)", bytes.len());
        assert_eq!(batch_rows(&read_parquet_bytes(bytes)), want, "{name}: every row once");
        s3.assert_nothing_left(&prefix, name).await;
    }
}
