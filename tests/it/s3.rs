//! The same sync into a real S3-compatible server (SeaweedFS, started by `make test` on
//! 127.0.0.1), configured the way users configure it: the standard AWS_* variables.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::*;

async fn keys(store: &impl ObjectStore, prefix: &str) -> BTreeSet<String> {
    let prefix = ObjectPath::from(prefix);
    store
        .list(Some(&prefix))
        .map_ok(|m| m.location.as_ref().strip_prefix(&format!("{prefix}/")).unwrap().to_string())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_into_a_real_s3_server_lands_every_row_and_reruns_cleanly() {
    let s3 = s3();
    let emulator = emulator(emulator_config()).await;
    let prefix = format!("lakes/{}", cxlake::cli::new_run_id());
    let dest = format!("s3://{}/{prefix}", s3.bucket);
    let mut env = s3.env();
    env.extend(api_env(&emulator));
    let sync = [
        "sync",
        "saltedcx",
        "--dest",
        &dest,
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
        "--poll-interval",
        "10ms",
    ];

    let out = run_cxlake(&sync, &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    let store = s3.store();
    let windows = days("2024-03-01", 3);
    let all = keys(&store, &prefix).await;
    let history = |keys: &BTreeSet<String>| -> BTreeSet<String> {
        keys.iter().filter(|k| k.starts_with("saltedcx/")).cloned().collect()
    };
    // Current tables: one segment file per date, named for the run that wrote it.
    let current_tables = |keys: &BTreeSet<String>| -> BTreeSet<String> {
        keys.iter()
            .filter(|k| k.starts_with("saltedcx_current/"))
            .map(|k| {
                let (table, file) = k.rsplit_once('/').unwrap();
                assert!(file.starts_with("part-") && file.ends_with(".parquet"), "{k}");
                table.to_string()
            })
            .collect()
    };
    let mut expected = BTreeSet::new();
    for dataset in DATASETS {
        for w in &windows {
            expected.insert(format!("saltedcx/{dataset}/date={}/part-00000.parquet", w.date));
        }
    }
    let entities: BTreeSet<String> = all_schemas()
        .iter()
        .filter(|s| s.kind == cxlake::schema::DatasetKind::Entities)
        .map(|s| format!("saltedcx_current/{}", s.dataset))
        .collect();
    assert_eq!(history(&all), expected, "the history");
    assert_eq!(current_tables(&all), entities, "the entities' current tables, refreshed after the run");
    assert!(all.iter().all(|k| k.starts_with("saltedcx") || k.starts_with("_cxlake/")), "{all:?}");
    assert!(all.contains("_cxlake/views.sql"));
    assert!(all.iter().all(|k| !k.starts_with("_cxlake/staging/")), "staging is emptied: {all:?}");
    for w in &windows {
        assert!(all.contains(&format!("_cxlake/state/saltedcx/date={}.json", w.date)));
    }

    let synth = emulator.config().synth;
    for schema in all_schemas() {
        for w in &windows {
            let key = ObjectPath::from(format!(
                "{prefix}/saltedcx/{}/date={}/part-00000.parquet",
                schema.dataset, w.date
            ));
            let bytes = store.get(&key).await.unwrap().bytes().await.unwrap();
            assert_eq!(
                batch_rows(&read_parquet_bytes(bytes)),
                expected_rows(&synth, &schema, w.date),
                "{}",
                key
            );
        }
    }

    // Rerun the middle window: same objects, same rows.
    let rerun = [
        "sync",
        "saltedcx",
        "--dest",
        &dest,
        "--from",
        "2024-03-02",
        "--to",
        "2024-03-03",
        "--poll-interval",
        "10ms",
    ];
    let out = run_cxlake(&rerun, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = keys(&store, &prefix).await;
    assert_eq!(history(&after), expected);
    assert_eq!(current_tables(&after), entities);

    let status = run_cxlake(&["status", "--dest", &dest], &env).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("2024-03-01") && status.stdout.contains("2024-03-03"),
        "{}",
        status.stdout
    );
}
