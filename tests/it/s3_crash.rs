//! Crashes on S3: an upload a killed run left open is aborted by the next run, and kill -9 at
//! random moments of a sync whose files go up as multipart uploads leaves no upload behind.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cxlake::sink::s3_uploads::S3Bucket;
use cxlake::sources::saltedcx::emulator::EmulatorConfig;
use cxlake::sources::saltedcx::synth::{Rng, SynthConfig};
use futures::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::*;

fn bucket() -> S3Bucket {
    s3().bucket()
}

fn env_for(emulator: &cxlake::sources::saltedcx::emulator::Emulator) -> Vec<(&'static str, String)> {
    let mut env = s3().env();
    env.extend(api_env(emulator));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_left_open_under_staging_is_aborted_by_the_next_run() {
    let bucket = bucket();
    let emulator = emulator(emulator_config()).await;
    let prefix = format!("uploads/{}", cxlake::cli::new_run_id());
    let orphan = ObjectPath::from(format!(
        "{prefix}/_cxlake/staging/dead-run/saltedcx/turn/date=2024-03-01/part-00000.parquet"
    ));
    bucket.store.create_multipart(&orphan).await.unwrap();
    let before = bucket.incomplete_uploads(&format!("{prefix}/")).await.unwrap();
    assert_eq!(before.len(), 1, "{before:?}");

    let env = env_for(&emulator);
    let dest = format!("s3://{}/{prefix}", bucket.bucket);
    let out = run_cxlake(
        &[
            "sync",
            "saltedcx",
            "--dest",
            &dest,
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-02",
            "--poll-interval",
            "10ms",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        bucket.incomplete_uploads(&format!("{prefix}/")).await.unwrap().is_empty(),
        "the orphan was aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_multipart_uploads_leaves_no_upload_and_the_rerun_converges() {
    const KILLS: u64 = 8;
    let bucket = bucket();
    // Enough turns for a ~7 MiB Parquet file: two 5 MiB-chunk parts, the S3 minimum part size.
    let tenant = SynthConfig { engagements_per_day: 6_000, ..small_tenant() };
    let emulator = emulator(EmulatorConfig { synth: tenant, ..emulator_config() }).await;
    let env = env_for(&emulator);
    let prefix = format!("crash/{}", cxlake::cli::new_run_id());
    let dest = format!("s3://{}/{prefix}", bucket.bucket);
    let args = [
        "sync",
        "saltedcx",
        "--dest",
        &dest,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-02",
        "--poll-interval",
        "5ms",
        "--datasets",
        "turn",
        "--upload-chunk-bytes",
        "5242880",
    ];
    let started = Instant::now();
    let scratch_dest = format!("s3://{}/{prefix}-timing", bucket.bucket);
    let mut timing = args;
    timing[3] = &scratch_dest;
    assert_eq!(run_cxlake(&timing, &env).await.code, 0);
    let full_run = started.elapsed();

    let mut rng = Rng::new(0x53_c4a5);
    let mut open_after_kills = 0;
    for kill in 0..KILLS {
        let slice = full_run.as_micros() as u64 / KILLS;
        let delay = Duration::from_micros(slice * kill + rng.below(slice.max(1)));
        kill_after(&args, &env, delay).await;
        open_after_kills += bucket.incomplete_uploads(&format!("{prefix}/")).await.unwrap().len();
    }

    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let left = bucket.incomplete_uploads(&format!("{prefix}/")).await.unwrap();
    assert!(left.is_empty(), "uploads left open: {left:?}");
    let keys: BTreeSet<String> = bucket
        .store
        .list(Some(&ObjectPath::from(format!("{prefix}/saltedcx"))))
        .map_ok(|m| m.location.as_ref().strip_prefix(&format!("{prefix}/")).unwrap().to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys, BTreeSet::from(["saltedcx/turn/date=2024-03-01/part-00000.parquet".to_string()]));
    let key = ObjectPath::from(format!("{prefix}/saltedcx/turn/date=2024-03-01/part-00000.parquet"));
    let bytes = bucket.store.get(&key).await.unwrap().bytes().await.unwrap();
    assert!(bytes.len() > 5 << 20, "the file went up in more than one part ({} bytes)", bytes.len());
    let schema = all_schemas().into_iter().find(|s| s.dataset == "turn").unwrap();
    assert_eq!(
        batch_rows(&read_parquet_bytes(bytes)),
        expected_rows(&emulator.config().synth, &schema, date("2024-03-01"))
    );
    println!("full run {full_run:?}; uploads seen open after kills: {open_after_kills}");
}
