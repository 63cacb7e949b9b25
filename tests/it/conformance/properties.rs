//! The conformance properties: what every source must do, each one function generic over a
//! [`SourceUnderTest`], run through the `cxlake` binary (or a binary with a platform of its own:
//! [`crate::common::use_cli`]) against the source's emulator. Shared by the integration tests
//! (`tests/it/conformance/mod.rs`, the built-in sources) and by the test-only sixth source
//! (`tests/sixth_source/`), which proves that a platform is one registry entry.
//!
//!
//! Each source must: land a window exactly and completely (every value equal to its
//! generator's); replace a re-run window with identical files and rows; converge after kill -9
//! at random moments, with readers only ever seeing complete files; survive 429, 5xx,
//! connection resets and truncated bodies; never write its canary secret anywhere — not to
//! stdout, stderr, reports, state, rejects or data; land the same windows again from the raw
//! archive (`replay`, no credential given) and from the archived files (`convert`); land the same
//! rows as plain Parquet and as Delta, on local disk and on S3 (SeaweedFS), and through S3 storage
//! faults (the fault proxy); erase a person it
//! names with `forget`, leaving no trace; and keep current tables, window by window, equal to a
//! rebuild from the whole history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use cxlake::schema::{DatasetSchema, SchemaRegistry};
use cxlake::sources::synthetic::Rng;
use cxlake::window::Window;

use crate::common::*;

/// What the suite needs to drive one source through its emulator.
pub trait SourceUnderTest {
    const NAME: &'static str;
    type Emulator: Send;

    /// Starts the emulator; `faults` asks for one of each generic fault, `secret` for the
    /// credential it accepts.
    fn start(faults: bool, secret: &str) -> impl std::future::Future<Output = Self::Emulator> + Send;
    /// The environment pointing `cxlake sync <NAME>` at it with `secret`.
    fn env(emulator: &Self::Emulator, secret: &str) -> Vec<(String, String)>;
    /// Extra `sync` arguments that keep the test fast (poll intervals, pacing).
    fn fast_args() -> Vec<&'static str>;
    /// What one dataset of one day must hold, from the generator.
    fn expected(emulator: &Self::Emulator, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>>;
    /// What the lake holds for one dataset of one day, comparable with [`Self::expected`].
    fn landed(lake: &Path, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
        batch_rows(&read_source_partition(lake, Self::NAME, &schema.dataset, day))
    }
    fn faults_injected(emulator: &Self::Emulator) -> u64;
    /// The zone `convert` needs for this source's files (those with local times and no offset).
    fn convert_timezone() -> Option<&'static str> {
        None
    }
    /// The credential the emulator accepts in the ordinary checks.
    fn secret() -> String {
        format!("{}-secret", Self::NAME)
    }
    /// The credential that must never be written anywhere.
    fn canary() -> String {
        format!("canary-{}-5e1f0a9d7c", Self::NAME)
    }
}

pub const FIRST_DAY: &str = "2024-03-01";

pub fn schemas<S: SourceUnderTest>() -> Vec<std::sync::Arc<DatasetSchema>> {
    SchemaRegistry::embedded().unwrap().of_source(S::NAME).cloned().collect()
}

async fn sync<S: SourceUnderTest>(emulator: &S::Emulator, secret: &str, lake: &Path, days: u64) -> Output {
    sync_into::<S>(emulator, secret, lake.to_str().unwrap(), days, &[], Vec::new()).await
}

/// `sync` of the first `days` days into `dest` (a directory or an s3:// URL), with `extra`
/// arguments and `env` beside the source's own.
pub async fn sync_into<S: SourceUnderTest>(
    emulator: &S::Emulator,
    secret: &str,
    dest: &str,
    days: u64,
    extra: &[&str],
    env: Vec<(String, String)>,
) -> Output {
    let to = (date(FIRST_DAY) + chrono::Days::new(days)).to_string();
    let mut args = vec!["sync", S::NAME, "--dest", dest, "--from", FIRST_DAY, "--to", &to];
    args.extend(S::fast_args());
    args.extend(extra);
    let mut env_all = S::env(emulator, secret);
    env_all.extend(env);
    run_cxlake(&args, &env_all).await
}

/// A started emulator, its secret, and a local lake its first two days were synced into.
async fn synced_two_days<S: SourceUnderTest>() -> (S::Emulator, String, tempfile::TempDir) {
    let secret = S::secret();
    let emulator = S::start(false, &secret).await;
    let lake = tempfile::tempdir().unwrap();
    let out = sync::<S>(&emulator, &secret, lake.path(), 2).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    (emulator, secret, lake)
}

fn assert_exact<S: SourceUnderTest>(emulator: &S::Emulator, lake: &Path, windows: &[Window], context: &str) {
    for schema in schemas::<S>() {
        for w in windows {
            let expected = S::expected(emulator, &schema, w.date);
            assert!(!expected.is_empty(), "{context}: {} {} has rows", schema.dataset, w.date);
            let landed = S::landed(lake, &schema, w.date);
            assert_eq!(landed.len(), expected.len(), "{context}: {}.{} {}", S::NAME, schema.dataset, w.date);
            if let Some((got, want)) = landed.iter().zip(&expected).find(|(got, want)| got != want) {
                let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
                panic!(
                    "{context}: {}.{} {}: every value; first difference:\n{names:?}\nlanded   {got:?}\nexpected {want:?}",
                    S::NAME,
                    schema.dataset,
                    w.date
                );
            }
        }
    }
}

/// The visible data files of the source, each a complete, well-named Parquet file.
fn visible_files<S: SourceUnderTest>(lake: &Path, context: &str) -> BTreeSet<String> {
    let files: BTreeSet<String> =
        files_under(lake).into_iter().filter(|f| f.starts_with(&format!("{}/", S::NAME))).collect();
    for file in &files {
        let name = file.rsplit('/').next().unwrap();
        assert!(name.starts_with("part-") && name.ends_with(".parquet"), "{context}: stray file {file}");
        let opened = std::panic::catch_unwind(|| read_parquet_file(&lake.join(file)));
        assert!(opened.is_ok(), "{context}: {file} is not a complete Parquet file");
    }
    files
}

pub async fn window_is_exact_and_complete<S: SourceUnderTest>() {
    let (emulator, _secret, lake) = synced_two_days::<S>().await;
    assert_exact::<S>(&emulator, lake.path(), &days(FIRST_DAY, 2), "first sync");
    // Every file fetched is in the raw archive, as its record says.
    let archived = archived_files(lake.path(), S::NAME);
    for schema in schemas::<S>() {
        for w in days(FIRST_DAY, 2) {
            let key = format!("{}/{}", schema.dataset, w.date);
            assert!(
                archived.get(&key).is_some_and(|files| !files.is_empty()),
                "{}: no raw file for {key}",
                S::NAME
            );
        }
    }
    let status = run_cxlake(&["status", "--dest", lake.path().to_str().unwrap()], NO_ENV).await;
    assert!(status.stdout.contains(S::NAME), "{}", status.stdout);
    // Every window names the declaration it was written with, and the lake keeps its text.
    let records: Vec<serde_json::Value> = std::fs::read_dir(lake.path().join("_cxlake/state").join(S::NAME))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    for schema in schemas::<S>() {
        let fingerprint = &schema.declaration.fingerprint;
        for record in &records {
            assert_eq!(
                record["datasets"][&schema.dataset]["declaration"],
                fingerprint.as_str(),
                "{}",
                S::NAME
            );
        }
        let kept = lake.path().join(format!(
            "_cxlake/declarations/{}/{}/{fingerprint}.toml",
            S::NAME,
            schema.dataset
        ));
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), schema.declaration.text, "{}", S::NAME);
    }
    // Our own emulator's documented tenant fits our declarations: no value kept for not fitting.
    let drift = run_cxlake(&["drift", "--dest", lake.path().to_str().unwrap(), "--json"], NO_ENV).await;
    assert_eq!(drift.code, 0, "{}", drift.stderr);
    let drift: serde_json::Value = serde_json::from_str(&drift.stdout).unwrap();
    for dataset in drift.as_array().unwrap() {
        assert_eq!(dataset["kept_in_extra"], serde_json::json!({}), "{}: {dataset}", S::NAME);
    }
}

/// Every file of the lake's tables (history and current, not bookkeeping), with its bytes.
fn table_files(lake: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(lake)
        .into_iter()
        .filter(|f| !f.starts_with("_cxlake/"))
        .map(|f| {
            let bytes = std::fs::read(lake.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

/// Every row of the source's history files says when and by which run its window was loaded,
/// as the window's record does.
fn assert_load_columns<S: SourceUnderTest>(lake: &Path) {
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMicrosecondType;
    use cxlake::schema::load::{LOADED_AT, RUN_ID};
    let records = std::fs::read_dir(lake.join("_cxlake/state").join(S::NAME)).unwrap();
    for record in records {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record.unwrap().path()).unwrap()).unwrap();
        for (dataset, landed) in record["datasets"].as_object().unwrap() {
            let loaded_at =
                chrono::DateTime::parse_from_rfc3339(landed["loaded_at"].as_str().unwrap()).unwrap();
            for file in landed["files"].as_array().unwrap() {
                let path = file["path"].as_str().unwrap();
                for batch in read_parquet_file_whole(&lake.join(path)) {
                    let at =
                        batch.column_by_name(LOADED_AT).unwrap().as_primitive::<TimestampMicrosecondType>();
                    let run = batch.column_by_name(RUN_ID).unwrap().as_string::<i32>();
                    for row in 0..batch.num_rows() {
                        assert_eq!(
                            at.value(row),
                            loaded_at.timestamp_micros(),
                            "{}.{dataset}: {path}",
                            S::NAME
                        );
                        assert_eq!(
                            Some(run.value(row)),
                            landed["loaded_by"].as_str(),
                            "{}.{dataset}",
                            S::NAME
                        );
                    }
                }
            }
        }
    }
}

/// A rerun of unchanged windows rewrites nothing: every table file (history and current) keeps
/// its bytes, so `_cxlake_loaded_at` stays when the data did.
pub async fn rerun_is_idempotent<S: SourceUnderTest>() {
    let secret = S::secret();
    let emulator = S::start(false, &secret).await;
    let lake = tempfile::tempdir().unwrap();
    assert_eq!(sync::<S>(&emulator, &secret, lake.path(), 2).await.code, 0);
    assert_load_columns::<S>(lake.path());
    let first = visible_files::<S>(lake.path(), "first run");
    let before = table_files(lake.path());
    let out = sync::<S>(&emulator, &secret, lake.path(), 2).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(visible_files::<S>(lake.path(), "rerun"), first, "a rerun replaces, never adds");
    let after = table_files(lake.path());
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "{}: the same files",
        S::NAME
    );
    for (file, bytes) in &before {
        assert!(after[file] == *bytes, "{}: {file} was rewritten by a rerun of unchanged windows", S::NAME);
    }
    assert_exact::<S>(&emulator, lake.path(), &days(FIRST_DAY, 2), "rerun");
    assert_load_columns::<S>(lake.path());
}

pub async fn kill_9_then_rerun_converges<S: SourceUnderTest>() {
    let secret = S::secret();
    let emulator = S::start(false, &secret).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().to_str().unwrap().to_string();
    let env = S::env(&emulator, &secret);
    let mut args: Vec<&str> =
        vec!["sync", S::NAME, "--dest", &dest, "--from", FIRST_DAY, "--to", "2024-03-04"];
    args.extend(S::fast_args());
    let mut rng = Rng::new(S::NAME.bytes().map(u64::from).sum());
    for kill in 0..4 {
        let delay = Duration::from_millis(20 + rng.below(600));
        kill_after(&args, &env, delay).await;
        visible_files::<S>(lake.path(), &format!("after kill {kill} at {delay:?}"));
    }
    let out = run_cxlake(&args, &env).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_exact::<S>(&emulator, lake.path(), &days(FIRST_DAY, 3), "after the kills");
    assert!(
        !lake.path().join("_cxlake/staging").exists()
            || files_under(&lake.path().join("_cxlake/staging")).is_empty()
    );
}

pub async fn faults_are_survived<S: SourceUnderTest>() {
    let secret = S::secret();
    let emulator = S::start(true, &secret).await;
    let lake = tempfile::tempdir().unwrap();
    let out = sync::<S>(&emulator, &secret, lake.path(), 2).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(S::faults_injected(&emulator) >= 4, "429, 5xx, reset and truncation were all injected");
    assert_exact::<S>(&emulator, lake.path(), &days(FIRST_DAY, 2), "through faults");
}

pub async fn the_canary_secret_is_never_written<S: SourceUnderTest>() {
    let canary = S::canary();
    let emulator = S::start(true, &canary).await;
    let lake = tempfile::tempdir().unwrap();
    let mut outputs = BTreeMap::new();
    let sync_out = sync::<S>(&emulator, &canary, lake.path(), 2).await;
    assert_eq!(sync_out.code, 0, "{}", sync_out.stderr);
    outputs.insert("sync", sync_out);
    // A wrong credential's error must not echo either secret.
    outputs.insert("sync with a wrong secret", sync::<S>(&emulator, "wrong-secret", lake.path(), 1).await);
    outputs.insert("status", run_cxlake(&["status", "--dest", lake.path().to_str().unwrap()], NO_ENV).await);
    let check = |what: &str, bytes: &[u8]| {
        assert!(!bytes.windows(canary.len()).any(|w| w == canary.as_bytes()), "the canary is in {what}");
    };
    for (what, out) in &outputs {
        check(&format!("{what} stdout"), out.stdout.as_bytes());
        check(&format!("{what} stderr"), out.stderr.as_bytes());
    }
    for file in files_under(lake.path()) {
        check(&file, &std::fs::read(lake.path().join(&file)).unwrap());
    }
}

/// `replay` (from the raw archive, with no call to the platform: no credential given) and
/// `convert` (of the archived files, into a new lake) land exactly what `sync` landed.
pub async fn replay_and_convert_land_what_sync_landed<S: SourceUnderTest>() {
    let (emulator, _secret, lake) = synced_two_days::<S>().await;
    let dest = lake.path().to_str().unwrap();
    let replay = run_cxlake(&["replay", S::NAME, "--dest", dest], NO_ENV).await;
    assert_eq!(replay.code, 0, "{}: replay\n{}\n{}", S::NAME, replay.stdout, replay.stderr);
    assert_exact::<S>(&emulator, lake.path(), &days(FIRST_DAY, 2), "replayed");
    visible_files::<S>(lake.path(), "replayed");

    let (inputs, converted) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (key, files) in archived_files(lake.path(), S::NAME) {
        let (dataset, day) = key.split_once('/').unwrap();
        let mut paths = Vec::new();
        for (index, (name, bytes)) in files.iter().enumerate() {
            // One folder per file: a window may hold two files of the same name (a replaced one).
            let dir = inputs.path().join(format!("{dataset}/{day}/{index}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
            paths.push(dir.join(name).to_str().unwrap().to_string());
        }
        let qualified = format!("{}.{dataset}", S::NAME);
        let mut args =
            vec!["convert", &qualified, "--date", day, "--dest", converted.path().to_str().unwrap()];
        args.extend(paths.iter().map(String::as_str));
        if let Some(zone) = S::convert_timezone() {
            args.extend(["--timezone", zone]);
        }
        let out = run_cxlake(&args, NO_ENV).await;
        assert_eq!(out.code, 0, "{}: convert {key}\n{}\n{}", S::NAME, out.stdout, out.stderr);
    }
    // What a file holds, exactly; not the facts only the drop tree it was fetched from knows
    // (which scheduled export wrote it and for which period): `convert` is given bare files.
    use cxlake::schema::Fill;
    for schema in schemas::<S>() {
        let from_tree: Vec<usize> = (schema.columns.iter().enumerate())
            .filter(|(_, c)| {
                matches!(
                    c.fill,
                    Some(Fill::ExportId | Fill::ExportFrequency | Fill::PeriodFrom | Fill::PeriodTo)
                )
            })
            .map(|(i, _)| i)
            .collect();
        for w in days(FIRST_DAY, 2) {
            let mut expected = S::expected(&emulator, &schema, w.date);
            for row in &mut expected {
                for i in &from_tree {
                    row[*i] = Cell::Null;
                }
            }
            let landed = S::landed(converted.path(), &schema, w.date);
            assert!(landed == expected, "converted: {}.{} {}: every value", S::NAME, schema.dataset, w.date);
        }
    }
}

/// The rows of one dataset's data files (plain Parquet partitions, or a Delta table's files: a
/// first sync leaves none that a Delta version dropped), each rendered, in a stable order.
fn dataset_rows(files: Vec<Vec<RecordBatch>>) -> Vec<String> {
    let mut rows: Vec<String> = files.iter().flat_map(|b| batch_rows(b)).map(|r| format!("{r:?}")).collect();
    rows.sort();
    rows
}

pub fn local_rows(lake: &Path, source: &str, dataset: &str) -> Vec<String> {
    let files: Vec<Vec<RecordBatch>> = files_under(&lake.join(format!("{source}/{dataset}")))
        .into_iter()
        .filter(|f| f.ends_with(".parquet") && !f.contains("_delta_log"))
        .map(|f| read_parquet_file(&lake.join(format!("{source}/{dataset}")).join(f)))
        .collect();
    dataset_rows(files)
}

pub async fn s3_rows(
    store: &impl object_store::ObjectStore,
    prefix: &str,
    source: &str,
    dataset: &str,
) -> Vec<String> {
    use object_store::ObjectStoreExt;
    let mut files = Vec::new();
    for key in crate::common::parquet_keys_on_s3(store, &format!("{prefix}/{source}/{dataset}")).await {
        let key = object_store::path::Path::from(key);
        files.push(read_parquet_bytes(store.get(&key).await.unwrap().bytes().await.unwrap()));
    }
    dataset_rows(files)
}

/// The same windows land the same rows as plain Parquet and as a Delta table, on local disk and
/// on S3 (SeaweedFS).
pub async fn every_format_and_store_lands_the_same_rows<S: SourceUnderTest>() {
    let secret = S::secret();
    let emulator = S::start(false, &secret).await;
    let s3 = s3();
    let s3_env: Vec<(String, String)> = s3.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let store = s3.store();
    let run = Rng::new(std::process::id().into()).below(1 << 40);
    let (parquet, delta) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let prefixes =
        [format!("conformance-{}-{run}-parquet", S::NAME), format!("conformance-{}-{run}-delta", S::NAME)];
    let lakes = [
        (parquet.path().to_str().unwrap().to_string(), "parquet", Vec::new()),
        (delta.path().to_str().unwrap().to_string(), "delta", Vec::new()),
        (format!("s3://{}/{}", s3.bucket, prefixes[0]), "parquet", s3_env.clone()),
        (format!("s3://{}/{}", s3.bucket, prefixes[1]), "delta", s3_env.clone()),
    ];
    for (dest, format, env) in &lakes {
        let out = sync_into::<S>(&emulator, &secret, dest, 2, &["--format", format], env.clone()).await;
        assert_eq!(out.code, 0, "{}: {format} into {dest}\n{}\n{}", S::NAME, out.stdout, out.stderr);
    }
    assert_exact::<S>(&emulator, parquet.path(), &days(FIRST_DAY, 2), "the Parquet lake");
    for schema in schemas::<S>() {
        let reference = local_rows(parquet.path(), S::NAME, &schema.dataset);
        assert!(!reference.is_empty(), "{}.{}", S::NAME, schema.dataset);
        let context = |what: &str| format!("{}.{}: {what}", S::NAME, schema.dataset);
        assert!(
            local_rows(delta.path(), S::NAME, &schema.dataset) == reference,
            "{}",
            context("local Delta")
        );
        for prefix in &prefixes {
            let rows = s3_rows(&store, prefix, S::NAME, &schema.dataset).await;
            assert!(rows == reference, "{}", context(prefix));
        }
    }
    assert!(delta.path().join(format!("{}/{}/_delta_log", S::NAME, schemas::<S>()[0].dataset)).is_dir());
}

/// Storage that misbehaves never costs a window: through the fault proxy, a quarter of the S3
/// requests meet a 503 SlowDown, a 500, a connection reset after the server executed them, or a
/// delay, and one sync still lands, as plain Parquet and as Delta, exactly the rows a sync to
/// local disk lands, with no upload left open and nothing left in staging.
pub async fn storage_faults_are_survived<S: SourceUnderTest>() {
    use crate::fault_proxy::{Fault, FaultPlan, FaultProxy};
    let (emulator, secret, reference) = synced_two_days::<S>().await;
    let s3 = crate::common::s3();
    let store = s3.store();
    let run = Rng::new(std::process::id().into()).below(1 << 40);
    for (format, seed) in [("parquet", 5), ("delta", 9)] {
        let plan = FaultPlan {
            rate: 0.25,
            ops: Vec::new(),
            faults: vec![Fault::SlowDown, Fault::InternalError, Fault::ResetAfterExecution, Fault::Delay],
            seed: seed + S::NAME.len() as u64,
            delay: Duration::from_millis(200),
            retry_after: None,
        };
        let proxy = FaultProxy::start(&s3.endpoint, plan).await;
        let prefix = format!("storage-faults-{}-{run}-{format}", S::NAME);
        let env = proxy.s3_env(&s3);
        let dest = format!("s3://{}/{prefix}", s3.bucket);
        let out = sync_into::<S>(&emulator, &secret, &dest, 2, &["--format", format], env).await;
        let counts = format!("{:?}", proxy.counts.lock().unwrap());
        assert_eq!(out.code, 0, "{}: {format} through {counts}\n{}\n{}", S::NAME, out.stdout, out.stderr);
        assert!(proxy.injected() > 0, "{}: {format}: no fault injected", S::NAME);
        for schema in schemas::<S>() {
            let want = local_rows(reference.path(), S::NAME, &schema.dataset);
            let got = if format == "delta" {
                crate::common::delta_rows_on_s3(&store, &prefix, S::NAME, &schema.dataset).await
            } else {
                s3_rows(&store, &prefix, S::NAME, &schema.dataset).await
            };
            assert!(got == want, "{}.{}: {format} through storage faults {counts}", S::NAME, schema.dataset);
            if format == "delta" {
                // No stray object: every data file under the table is one its log references.
                let table = format!("{prefix}/{}/{}", S::NAME, schema.dataset);
                let referenced = crate::common::delta_files_on_s3(&store, &table).await;
                let present = crate::common::parquet_keys_on_s3(&store, &table).await;
                let strays: Vec<_> = present.difference(&referenced).collect();
                assert!(
                    strays.is_empty(),
                    "{}.{}: files no version references: {strays:?}",
                    S::NAME,
                    schema.dataset
                );
            }
        }
        s3.assert_nothing_left(&prefix, &format!("{}: {format}", S::NAME)).await;
    }
}

/// Cleanup never fails a window: against a store that refuses every delete (an append-only
/// bucket policy: 403 AccessDenied), one sync still lands exactly the rows a sync to local disk
/// lands, and the next run, once deletes are allowed, sweeps what the first left in staging.
pub async fn refused_cleanup_never_fails_a_window<S: SourceUnderTest>() {
    use crate::fault_proxy::{Fault, FaultPlan, FaultProxy, Op};
    let (emulator, secret, reference) = synced_two_days::<S>().await;
    let s3 = crate::common::s3();
    let plan = FaultPlan {
        rate: 1.0,
        ops: vec![Op::Delete, Op::BulkDelete],
        faults: vec![Fault::AccessDenied],
        seed: 1,
        delay: Duration::ZERO,
        retry_after: None,
    };
    let proxy = FaultProxy::start(&s3.endpoint, plan).await;
    let run = Rng::new(std::process::id().into()).below(1 << 40);
    let prefix = format!("refused-deletes-{}-{run}", S::NAME);
    let dest = format!("s3://{}/{prefix}", s3.bucket);
    let out = sync_into::<S>(&emulator, &secret, &dest, 2, &[], proxy.s3_env(&s3)).await;
    let counts = format!("{:?}", proxy.counts.lock().unwrap());
    assert_eq!(out.code, 0, "{}: deletes refused {counts}\n{}\n{}", S::NAME, out.stdout, out.stderr);
    assert!(proxy.injected() > 0, "{}: no delete was refused", S::NAME);
    let store = s3.store();
    for schema in schemas::<S>() {
        let want = local_rows(reference.path(), S::NAME, &schema.dataset);
        let got = s3_rows(&store, &prefix, S::NAME, &schema.dataset).await;
        assert!(got == want, "{}.{}: deletes refused {counts}", S::NAME, schema.dataset);
    }
    let env: Vec<(String, String)> = s3.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let out = sync_into::<S>(&emulator, &secret, &dest, 3, &[], env).await;
    assert_eq!(out.code, 0, "{}: the next run\n{}\n{}", S::NAME, out.stdout, out.stderr);
    s3.assert_nothing_left(&prefix, &format!("{}: after the next run's sweep", S::NAME)).await;
}

/// `forget` of a person the source's data names leaves no trace: the lake, the current tables,
/// the raw archive (its own scan, which `forget` ends with, finds nothing), and the rows
/// without that person are all still there.
pub async fn forget_leaves_no_trace<S: SourceUnderTest>() {
    use cxlake::schema::pii::PiiKind;
    let (emulator, _secret, lake) = synced_two_days::<S>().await;
    // The first e-mail address (else phone number) the generator put in a personal column.
    let mut target = None;
    'find: for (kind, flag) in [(PiiKind::Email, "--email"), (PiiKind::Phone, "--phone")] {
        for schema in schemas::<S>() {
            for (index, column) in schema.columns.iter().enumerate() {
                if !(column.pii && column.pii_kind == kind) {
                    continue;
                }
                for w in days(FIRST_DAY, 2) {
                    for row in S::expected(&emulator, &schema, w.date) {
                        let Cell::Text(value) = &row[index] else { continue };
                        let usable = match kind {
                            PiiKind::Email => value.contains('@'),
                            _ => value.chars().filter(char::is_ascii_digit).count() >= 6,
                        };
                        if usable {
                            target = Some((flag.to_string(), value.clone()));
                            break 'find;
                        }
                    }
                }
            }
        }
    }
    // Else a record by its key: the first of an entities dataset with a one-column key.
    let by_key = target.is_none();
    let (flag, value) = target.unwrap_or_else(|| {
        let schema = schemas::<S>()
            .into_iter()
            .find(|s| s.kind == cxlake::schema::DatasetKind::Entities && s.key.len() == 1)
            .unwrap_or_else(|| panic!("{}: no e-mail, phone or keyed dataset to forget by", S::NAME));
        let index = schema.column_index(&schema.key[0]).unwrap();
        let row = S::expected(&emulator, &schema, date(FIRST_DAY)).remove(0);
        let id = match &row[index] {
            Cell::Text(text) => text.clone(),
            Cell::Int(n) => n.to_string(),
            other => panic!("{}: key {other:?}", S::NAME),
        };
        ("--key".to_string(), format!("{}.{}={id}", S::NAME, schema.dataset))
    });
    let flag = flag.as_str();
    let dest = lake.path().to_str().unwrap();
    let before: usize =
        schemas::<S>().iter().map(|s| local_rows(lake.path(), S::NAME, &s.dataset).len()).sum();
    let forget = run_cxlake(&["forget", flag, &value, "--dest", dest], NO_ENV).await;
    assert_eq!(forget.code, 0, "{}: forget {flag} {value}\n{}\n{}", S::NAME, forget.stdout, forget.stderr);
    assert!(forget.stdout.contains("verified: no trace left"), "{}: {}", S::NAME, forget.stdout);
    let after: usize =
        schemas::<S>().iter().map(|s| local_rows(lake.path(), S::NAME, &s.dataset).len()).sum();
    assert!(after < before && after > 0, "{}: {before} rows before, {after} after", S::NAME);
    for file in files_under(lake.path())
        .into_iter()
        .filter(|f| !by_key && (f.ends_with(".parquet") || f.ends_with(".json")))
    {
        let bytes = std::fs::read(lake.path().join(&file)).unwrap();
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{}: {value} left in {file}",
            S::NAME
        );
    }
    let verify = run_cxlake(&["forget", flag, &value, "--dest", dest, "--verify"], NO_ENV).await;
    assert_eq!(verify.code, 0, "{}: {}", S::NAME, verify.stdout);
}

/// The current tables a sync keeps up to date window by window equal a rebuild from the whole
/// history (`current --full`).
pub async fn incremental_current_tables_equal_a_full_rebuild<S: SourceUnderTest>() {
    let secret = S::secret();
    let emulator = S::start(false, &secret).await;
    let lake = tempfile::tempdir().unwrap();
    for day_count in [1, 3] {
        let out = sync::<S>(&emulator, &secret, lake.path(), day_count).await;
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    }
    let current = |lake: &Path| -> BTreeMap<String, Vec<String>> {
        schemas::<S>()
            .iter()
            .map(|s| {
                let dir = lake.join(format!("{}_current/{}", S::NAME, s.dataset));
                let mut rows: Vec<String> = read_dir_rows(&dir).iter().map(|r| format!("{r:?}")).collect();
                rows.sort();
                (s.dataset.clone(), rows)
            })
            .collect()
    };
    let incremental = current(lake.path());
    for schema in schemas::<S>() {
        // Entities get a materialised table; events a view that deduplicates at query time.
        let materialised = schema.kind == cxlake::schema::DatasetKind::Entities;
        assert_eq!(!incremental[&schema.dataset].is_empty(), materialised, "{}.{}", S::NAME, schema.dataset);
    }
    let dest = lake.path().to_str().unwrap();
    let full = run_cxlake(&["current", "--dest", dest, "--source", S::NAME, "--full"], NO_ENV).await;
    assert_eq!(full.code, 0, "{}\n{}", full.stdout, full.stderr);
    assert!(current(lake.path()) == incremental, "{}: incremental and full current tables differ", S::NAME);
}

/// Every property, one name each: calls `$callback! { $($args)* ; name, name, … }`, so that each
/// harness (libtest's functions, the sixth source's list) is built from the same names.
macro_rules! with_properties {
    ($callback:ident ! { $($args:tt)* }) => {
        $callback! { $($args)* ;
            window_is_exact_and_complete,
            rerun_is_idempotent,
            kill_9_then_rerun_converges,
            faults_are_survived,
            the_canary_secret_is_never_written,
            replay_and_convert_land_what_sync_landed,
            every_format_and_store_lands_the_same_rows,
            storage_faults_are_survived,
            refused_cleanup_never_fails_a_window,
            forget_leaves_no_trace,
            incremental_current_tables_equal_a_full_rebuild
        }
    };
}
