//! Issue 27: storage that misbehaves. Through the fault proxy, a quarter of the S3 requests meet
//! a 503 SlowDown, a 500, a connection reset after the server executed the request, or a delay —
//! and one `sync` still lands an exact lake, as plain Parquet and as Delta, with no multipart
//! upload left open and nothing left in staging.

use std::sync::Arc;

use cxlake::sink::s3_uploads::S3Bucket;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::*;
use crate::fault_proxy::{Fault, FaultPlan, FaultProxy};

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
        };
        let proxy = FaultProxy::start(&s3.endpoint, plan).await;
        let prefix = format!("faults/{}-{format}", cxlake::cli::new_run_id());
        let dest = format!("s3://{}/{prefix}", s3.bucket);
        let mut env = proxy.s3_env(&s3);
        env.extend(api_env(&emulator).into_iter().map(|(k, v)| (k.to_string(), v)));
        let started = std::time::Instant::now();
        let out = run_cxlake(
            &[
                "sync",
                "saltedcx",
                "--dest",
                &dest,
                "--from",
                "2024-03-01",
                "--to",
                "2024-03-03",
                "--poll-interval",
                "10ms",
                "--format",
                format,
            ],
            &env,
        )
        .await;
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
        let bucket = S3Bucket {
            store: Arc::new(s3.store()),
            bucket: s3.bucket.clone(),
            region: "us-east-1".into(),
            endpoint: Some(s3.endpoint.clone()),
        };
        let open = bucket.incomplete_uploads(&prefix).await.unwrap();
        assert!(open.is_empty(), "{format}: uploads left open: {open:?}");
        let staging = ObjectPath::from(format!("{prefix}/_cxlake/staging"));
        let staged: Vec<_> = store.list(Some(&staging)).try_collect::<Vec<_>>().await.unwrap();
        assert!(
            staged.is_empty(),
            "{format}: staging left: {:?}",
            staged.iter().map(|m| m.location.to_string()).collect::<Vec<_>>()
        );
    }
}
