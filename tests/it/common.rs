//! Shared helpers: emulators, plans, and reading a lake back with the parquet crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use cxlake::pipeline::{SyncPlan, WriteOptions};
use cxlake::schema::{DatasetSchema, SchemaRegistry};
use cxlake::sink::Destination;
use cxlake::sources::saltedcx::client::{ApiKey, ClientConfig, SaltedCxClient};
use cxlake::sources::saltedcx::emulator::{Emulator, EmulatorConfig};
use cxlake::sources::saltedcx::synth::{self, SynthConfig};
use cxlake::sources::saltedcx::{api, ExportPolicy, SaltedCx};
use cxlake::window::Window;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub const DATASETS: [&str; 5] = api::DATASETS;

pub fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("test date")
}

pub fn days(first: &str, count: u64) -> Vec<Window> {
    (0..count).map(|i| Window::new(date(first) + chrono::Days::new(i))).collect()
}

/// A small tenant, so tests stay fast while still spanning several batches per file.
pub fn small_tenant() -> SynthConfig {
    SynthConfig { engagements_per_day: 60, ..SynthConfig::default() }
}

pub async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config, 0).await.expect("emulator starts on loopback")
}

pub fn emulator_config() -> EmulatorConfig {
    EmulatorConfig { synth: small_tenant(), processing_polls: 1, ..EmulatorConfig::default() }
}

pub fn client_config(emulator: &Emulator) -> ClientConfig {
    let mut config = ClientConfig::new(emulator.base_url(), ApiKey::new(emulator.config().api_key.clone()));
    config.poll.initial_interval = Duration::from_millis(10);
    config.poll.max_interval = Duration::from_millis(50);
    config.poll.deadline = Duration::from_secs(20);
    config.http.retry.initial_backoff = Duration::from_millis(10);
    config.http.retry.max_backoff = Duration::from_millis(50);
    config
}

/// Retries and polls short enough for tests (a 429 without `Retry-After` waits 20 ms).
pub fn fast_transport(
    http: &mut cxlake::sources::http::HttpConfig,
    poll: Option<&mut cxlake::sources::poll::PollConfig>,
) {
    http.retry.initial_backoff = Duration::from_millis(10);
    http.retry.max_backoff = Duration::from_millis(50);
    http.retry.rate_limit_floor = Duration::from_millis(20);
    if let Some(poll) = poll {
        poll.initial_interval = Duration::from_millis(5);
        poll.max_interval = Duration::from_millis(50);
    }
}

pub fn client(emulator: &Emulator) -> SaltedCxClient {
    SaltedCxClient::new(client_config(emulator)).expect("client builds")
}

/// Export policy with a cool-down short enough for tests.
pub fn fast_policy() -> ExportPolicy {
    ExportPolicy { failed_cooldown: Duration::from_millis(10), ..ExportPolicy::default() }
}

pub fn all_schemas() -> Vec<std::sync::Arc<DatasetSchema>> {
    let registry = SchemaRegistry::embedded().unwrap();
    DATASETS.iter().map(|d| registry.dataset("saltedcx", d).unwrap()).collect()
}

pub fn plan(emulator: &Emulator, lake: &Path, windows: Vec<Window>) -> SyncPlan<SaltedCx> {
    let jobs = cxlake::sources::saltedcx::client::SaltedCxJobs::new(client(emulator), None);
    let source = SaltedCx::new(jobs, fast_policy());
    plan_with(source, lake, all_schemas(), windows)
}

/// A plan with the tests' defaults for any source.
pub fn plan_with<S: cxlake::sources::Source>(
    source: S,
    lake: &Path,
    datasets: Vec<std::sync::Arc<DatasetSchema>>,
    windows: Vec<Window>,
) -> SyncPlan<S> {
    let options =
        WriteOptions { lock_ttl: Duration::from_secs(30), current_tables: false, ..WriteOptions::default() };
    SyncPlan::new(
        source,
        Destination::parse(lake.to_str().unwrap()).unwrap(),
        datasets,
        windows,
        None,
        options,
    )
}

/// Every file under `dir`, relative to it.
pub fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// The data files of the lake (bookkeeping excluded).
/// The history's data files (what a glob over `<lake>/saltedcx/` sees).
pub fn data_files(lake: &Path) -> BTreeSet<String> {
    files_under(lake).into_iter().filter(|f| f.starts_with("saltedcx/")).collect()
}

/// A data file's rows, without the load columns every row has (what the tests compare with a
/// generator's values); [`read_parquet_file_whole`] keeps them.
pub fn read_parquet_file(path: &Path) -> Vec<RecordBatch> {
    read_parquet_file_whole(path).iter().map(without_load_columns).collect()
}

/// A data file's rows, every column.
pub fn read_parquet_file_whole(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(|b| b.unwrap()).collect()
}

pub fn read_parquet_bytes(bytes: bytes::Bytes) -> Vec<RecordBatch> {
    let batches = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    batches.map(|b| without_load_columns(&b.unwrap())).collect()
}

/// `batch` without `_cxlake_loaded_at` and `_cxlake_run_id`.
pub fn without_load_columns(batch: &RecordBatch) -> RecordBatch {
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|i| !cxlake::schema::load::is_load_column(batch.schema().field(*i).name()))
        .collect();
    batch.project(&keep).unwrap()
}

/// Every batch of one dataset and day in the lake.
pub fn read_partition(lake: &Path, dataset: &str, day: NaiveDate) -> Vec<RecordBatch> {
    read_source_partition(lake, "saltedcx", dataset, day)
}

/// Every batch of one source's dataset and day in the lake.
pub fn read_source_partition(lake: &Path, source: &str, dataset: &str, day: NaiveDate) -> Vec<RecordBatch> {
    let dir: PathBuf = lake.join(format!("{source}/{dataset}/date={day}"));
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files.iter().flat_map(|f| read_parquet_file(f)).collect()
}

/// A cell rendered canonically so the lake and the source CSV can be compared value by value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(u64),
    Bool(bool),
    List(Vec<Cell>),
    Struct(Vec<Cell>),
}

pub fn batch_rows(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(batch.columns().iter().map(|column| cell(column.as_ref(), row)).collect());
        }
    }
    rows
}

/// One value of an Arrow array as a [`Cell`], nested types included.
pub fn cell(column: &dyn Array, row: usize) -> Cell {
    if column.is_null(row) {
        return Cell::Null;
    }
    match column.data_type() {
        DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(row).to_string()),
        DataType::Int64 => Cell::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Cell::Float(column.as_primitive::<Float64Type>().value(row).to_bits()),
        DataType::Boolean => Cell::Bool(column.as_boolean().value(row)),
        DataType::Timestamp(_, _) => Cell::Int(column.as_primitive::<TimestampMicrosecondType>().value(row)),
        DataType::Date32 => Cell::Int(column.as_primitive::<Date32Type>().value(row).into()),
        DataType::List(_) => {
            let items = column.as_list::<i32>().value(row);
            Cell::List((0..items.len()).map(|i| cell(items.as_ref(), i)).collect())
        }
        DataType::Struct(_) => {
            let s = column.as_struct();
            Cell::Struct(s.columns().iter().map(|c| cell(c.as_ref(), row)).collect())
        }
        other => panic!("unexpected type {other}"),
    }
}

/// The rows the emulator serves for one dataset and day, parsed independently of the decoder:
/// the csv crate for the text, std/our value parsers for typed columns.
pub fn expected_rows(config: &SynthConfig, schema: &DatasetSchema, day: NaiveDate) -> Vec<Vec<Cell>> {
    use cxlake::schema::value;
    use cxlake::schema::ColumnType;
    let (bytes, count) = synth::dataset_csv(config, &schema.dataset, day, None).unwrap();
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows: Vec<Vec<Cell>> = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            schema
                .columns
                .iter()
                .map(|column| {
                    let i = header.iter().position(|h| *h == column.name).expect("emulator has every column");
                    let text = &record[i];
                    if text.is_empty() {
                        return Cell::Null;
                    }
                    match &column.column_type {
                        ColumnType::Utf8 => Cell::Text(text.to_string()),
                        ColumnType::Int64 => Cell::Int(text.parse().unwrap()),
                        ColumnType::Float64 => Cell::Float(text.parse::<f64>().unwrap().to_bits()),
                        ColumnType::Boolean => Cell::Bool(text.parse().unwrap()),
                        ColumnType::TimestampUtc => Cell::Int(value::parse_timestamp_micros(text).unwrap()),
                        ColumnType::Date32 => Cell::Int(value::parse_date(text).unwrap() as i64),
                        nested => panic!("a CSV dataset has no {nested} column"),
                    }
                })
                .collect()
        })
        .collect();
    assert_eq!(rows.len() as u64, count);
    rows
}

/// Row counts per dataset for each day, straight from the generator.
pub fn expected_counts(config: &SynthConfig, windows: &[Window]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for w in windows {
        for dataset in DATASETS {
            let (_, rows) = synth::dataset_csv(config, dataset, w.date, None).unwrap();
            *counts.entry(dataset.to_string()).or_insert(0) += rows;
        }
    }
    counts
}

/// The binary the tests run as `cxlake` when it is not the one built for them, and the variable
/// that makes it act as the command line.
static CLI: std::sync::OnceLock<(std::path::PathBuf, (String, String))> = std::sync::OnceLock::new();

/// Runs every `cxlake` of this test process as `binary` with `env` set: a test binary whose
/// `main` is [`cxlake::cli::main`] with a platform of its own (the sixth source's).
#[allow(dead_code, reason = "called by the sixth source's harness, which shares this file")]
pub fn use_cli(binary: std::path::PathBuf, env: (&str, &str)) {
    CLI.set((binary, (env.0.to_string(), env.1.to_string()))).expect("one command line per test process");
}

/// The `cxlake` binary built for these tests (or the one [`use_cli`] named).
pub fn cxlake_bin() -> &'static str {
    match CLI.get() {
        Some((binary, _)) => binary.to_str().expect("a UTF-8 path"),
        None => env!("CARGO_BIN_EXE_cxlake"),
    }
}

/// A process of [`cxlake_bin`], ready for its arguments.
pub fn cxlake_command() -> std::process::Command {
    let mut command = std::process::Command::new(cxlake_bin());
    if let Some((_, (name, value))) = CLI.get() {
        command.env(name, value);
    }
    command
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The longest one `cxlake` run of a test may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the binary off the async workers (the emulator it talks to runs in this process).
pub async fn run_cxlake<A: AsRef<str>, K: AsRef<str>, V: AsRef<str>>(args: &[A], env: &[(K, V)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
    let env = owned_env(env);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut child = cxlake_command()
            .args(&args)
            .env_remove("SALTEDCX_API_KEY")
            .env_remove("SALTEDCX_API_URL")
            .env_remove("CXLAKE_DEST")
            .envs(env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cxlake runs");
        let read = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = read(Box::new(child.stdout.take().unwrap()));
        let stderr = read(Box::new(child.stderr.take().unwrap()));
        // A run that hangs fails its test with what it printed, instead of stalling the suite.
        let deadline = std::time::Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("cxlake is waited for") {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stdout, mut stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        match status {
            None => stderr
                .push_str(&format!("\n[test] cxlake {args:?} did not finish in {RUN_TIMEOUT:?}: killed\n")),
            Some(status) => {
                if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
                    stderr.push_str(&format!("\n[test] cxlake {args:?} ended by signal {signal}\n"));
                }
            }
        }
        Output { code: status.and_then(|s| s.code()).unwrap_or(-1), stdout, stderr }
    })
    .await
    .unwrap()
}

/// `cxlake synth DATASET --date 2024-03-01 VOLUME_FLAG COUNT --out PATH` (the generators' day, on
/// disk as a platform would send it); panics if it fails.
pub async fn synth_file(dataset: &str, volume_flag: &str, count: &str, out: &Path) {
    let out = out.to_str().unwrap();
    let run =
        run_cxlake(&["synth", dataset, "--date", "2024-03-01", volume_flag, count, "--out", out], NO_ENV)
            .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// Starts `cxlake args`, lets it run for `delay`, then SIGKILLs it: no destructor, no cleanup.
pub async fn kill_after<K: AsRef<str>, V: AsRef<str>>(args: &[&str], env: &[(K, V)], delay: Duration) {
    let mut child = cxlake_command()
        .args(args)
        .envs(owned_env(env))
        .env("CXLAKE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(delay).await;
    child.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
}

/// No extra environment for a `cxlake` run.
pub const NO_ENV: &[(&str, &str)] = &[];

fn owned_env<K: AsRef<str>, V: AsRef<str>>(env: &[(K, V)]) -> Vec<(String, String)> {
    env.iter().map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string())).collect()
}

/// The environment that points `cxlake` at this emulator.
pub fn api_env(emulator: &Emulator) -> Vec<(&'static str, String)> {
    vec![
        ("SALTEDCX_API_URL", emulator.base_url().to_string()),
        ("SALTEDCX_API_KEY", emulator.config().api_key.clone()),
    ]
}

/// An environment variable the Makefile sets for tests that need an external component.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test`, which installs and starts DuckDB and SeaweedFS")
    })
}

/// Every row of every Parquet file directly in `dir`, in file name order.
pub fn read_dir_rows(dir: &Path) -> Vec<Vec<Cell>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect()
        })
        .unwrap_or_default();
    files.sort();
    files.iter().flat_map(|f| batch_rows(&read_parquet_file(f))).collect()
}

/// The rows of a Delta table's latest version, read through the files its log references.
pub async fn read_delta_rows(lake: &Path, relative: &str) -> Vec<Vec<Cell>> {
    let dest = Destination::parse(lake.to_str().unwrap()).unwrap();
    let table = cxlake::sink::delta::open_table(&dest, relative).await.unwrap().expect("a Delta table");
    let mut files: Vec<String> = table
        .get_file_uris()
        .unwrap()
        .map(|uri| uri.strip_prefix("file://").map(str::to_string).unwrap_or(uri))
        .collect();
    files.sort();
    files.iter().flat_map(|f| batch_rows(&read_parquet_file(Path::new(f)))).collect()
}

/// Runs a python script from tests/readback with the venv's python; returns its JSON output.
pub async fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let python = required_env("CXLAKE_TEST_PYTHON");
    let script = format!("{}/tests/readback/{script}", env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(&script).args(&args).output()
    })
    .await
    .unwrap()
    .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The real SFTP server `scripts/with-sshd.sh` started (OpenSSH's sshd on 127.0.0.1).
pub struct SftpServer {
    pub port: String,
    pub user: String,
    pub password: String,
    /// The chroot on this machine: what is written under it is served from `/`.
    pub root: PathBuf,
    pub known_hosts: String,
    pub identity: String,
}

impl SftpServer {
    pub fn from_env() -> SftpServer {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests with `make test`, which installs and starts sshd")
            })
        };
        SftpServer {
            port: var("CXLAKE_TEST_SFTP_PORT"),
            user: var("CXLAKE_TEST_SFTP_USER"),
            password: var("CXLAKE_TEST_SFTP_PASSWORD"),
            root: PathBuf::from(var("CXLAKE_TEST_SFTP_ROOT")),
            known_hosts: var("CXLAKE_TEST_SFTP_KNOWN_HOSTS"),
            identity: var("CXLAKE_TEST_SFTP_IDENTITY"),
        }
    }

    /// A fresh directory served by the server (readable by its user), and its `sftp://` URL.
    pub fn tree(&self) -> (tempfile::TempDir, String) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("tree-").tempdir_in(&self.root).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap().to_string();
        let url = format!("sftp://{}@127.0.0.1:{}/{name}", self.user, self.port);
        (dir, url)
    }

    /// The environment of a `cxlake sync sparkcentral` that reads `url` with the password.
    pub fn env(&self, url: &str) -> Vec<(String, String)> {
        vec![
            ("SPARKCENTRAL_SOURCE".into(), url.to_string()),
            ("SPARKCENTRAL_SFTP_PASSWORD".into(), self.password.clone()),
            ("SPARKCENTRAL_SFTP_KNOWN_HOSTS".into(), self.known_hosts.clone()),
            ("SPARKCENTRAL_TIMEZONE".into(), "Europe/Brussels".into()),
        ]
    }
}

/// Every raw file a done window of `source` lists: present, and decompressing to the size and
/// SHA-256 its record holds. Returns (file name, decompressed bytes) per dataset.
pub fn archived_files(lake: &Path, source: &str) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    use sha2::Digest;
    let mut found: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let state = lake.join(format!("_cxlake/state/{source}"));
    for entry in std::fs::read_dir(&state).unwrap() {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        if record["status"] != "done" {
            continue;
        }
        for (dataset, d) in record["datasets"].as_object().unwrap() {
            for raw in d["raw"].as_array().into_iter().flatten() {
                let path = lake.join(raw["path"].as_str().unwrap());
                let bytes = zstd::decode_all(std::fs::File::open(&path).unwrap()).unwrap();
                assert_eq!(bytes.len() as u64, raw["bytes"].as_u64().unwrap(), "{}", path.display());
                assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), raw["sha256"].as_str().unwrap());
                assert_eq!(std::fs::metadata(&path).unwrap().len(), raw["stored_bytes"].as_u64().unwrap());
                let name = raw["file_name"].as_str().unwrap().to_string();
                found
                    .entry(format!("{dataset}/{}", record["date"].as_str().unwrap()))
                    .or_default()
                    .push((name, bytes));
            }
        }
    }
    found
}

/// A TCP proxy on 127.0.0.1 in front of `target_port` whose first connection breaks off after
/// `cut` bytes from the server (an interrupted transfer: both sides are closed); later
/// connections pass through untouched.
pub struct CuttingProxy {
    pub port: u16,
    /// Connections broken off so far.
    pub cuts: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn cutting_proxy(target_port: u16, cut: u64) -> CuttingProxy {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cuts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = cuts.clone();
    let task = tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let limit = std::mem::take(&mut first).then_some(cut);
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let (mut sent, mut buffer) = (0u64, vec![0u8; 16 << 10]);
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if limit.is_some_and(|limit| sent + n as u64 >= limit) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    sent += n as u64;
                }
                // Both halves of both sockets are dropped here: the client sees the connection end.
                upstream.abort();
            });
        }
    });
    CuttingProxy { port, cuts, task }
}

/// The S3-compatible server `make test` started (SeaweedFS on 127.0.0.1), as its users configure it.
pub struct S3 {
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

pub fn s3() -> S3 {
    S3 {
        endpoint: required_env("CXLAKE_TEST_S3_ENDPOINT"),
        bucket: required_env("CXLAKE_TEST_S3_BUCKET"),
        key_id: required_env("AWS_ACCESS_KEY_ID"),
        secret: required_env("AWS_SECRET_ACCESS_KEY"),
    }
}

impl S3 {
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
    }

    pub fn store(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .build()
            .unwrap()
    }

    /// The bucket as cxlake sees it for what object_store cannot do (listing open uploads).
    pub fn bucket(&self) -> cxlake::sink::s3_uploads::S3Bucket {
        cxlake::sink::s3_uploads::S3Bucket {
            store: std::sync::Arc::new(self.store()),
            bucket: self.bucket.clone(),
            region: "us-east-1".into(),
            endpoint: Some(self.endpoint.clone()),
        }
    }

    /// Nothing half-done under the lake at `prefix`: no open multipart upload, an empty staging area.
    pub async fn assert_nothing_left(&self, prefix: &str, what: &str) {
        use futures::TryStreamExt;
        let open = self.bucket().incomplete_uploads(prefix).await.unwrap();
        assert!(open.is_empty(), "{what}: uploads left open: {open:?}");
        let staging = object_store::path::Path::from(format!("{prefix}/_cxlake/staging"));
        let staged: Vec<String> = object_store::ObjectStore::list(&self.store(), Some(&staging))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert!(staged.is_empty(), "{what}: staging left: {staged:?}");
    }
}

/// The data files (keys under the table) a Delta table's latest version references, from its log.
pub async fn delta_files_on_s3(store: &impl object_store::ObjectStore, table: &str) -> BTreeSet<String> {
    use futures::TryStreamExt;
    use object_store::path::Path as ObjectPath;
    use object_store::ObjectStoreExt;
    let log = ObjectPath::from(format!("{table}/_delta_log"));
    let mut entries: Vec<ObjectPath> = store
        .list(Some(&log))
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.as_ref().ends_with(".json"))
        .collect();
    entries.sort();
    let mut files = BTreeSet::new();
    for entry in entries {
        let text =
            String::from_utf8(store.get(&entry).await.unwrap().bytes().await.unwrap().to_vec()).unwrap();
        for line in text.lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            let decoded =
                |path: &str| percent_encoding::percent_decode_str(path).decode_utf8().unwrap().to_string();
            if let Some(path) = action["add"]["path"].as_str() {
                files.insert(format!("{table}/{}", decoded(path)));
            }
            if let Some(path) = action["remove"]["path"].as_str() {
                files.remove(&format!("{table}/{}", decoded(path)));
            }
        }
    }
    files
}

/// A Delta table's rows on S3 through its own log (the files its latest version references),
/// each rendered, sorted: files a retried or crashed commit left unreferenced do not count.
pub async fn delta_rows_on_s3(
    store: &impl object_store::ObjectStore,
    prefix: &str,
    source: &str,
    dataset: &str,
) -> Vec<String> {
    use object_store::ObjectStoreExt;
    let mut rows = Vec::new();
    for key in delta_files_on_s3(store, &format!("{prefix}/{source}/{dataset}")).await {
        let key = object_store::path::Path::from(key);
        rows.extend(
            batch_rows(&read_parquet_bytes(store.get(&key).await.unwrap().bytes().await.unwrap()))
                .iter()
                .map(|r| format!("{r:?}")),
        );
    }
    rows.sort();
    rows
}

/// The Parquet data files under a table on S3 (its log's own files aside).
pub async fn parquet_keys_on_s3(store: &impl object_store::ObjectStore, table: &str) -> BTreeSet<String> {
    use futures::TryStreamExt;
    store
        .list(Some(&object_store::path::Path::from(table)))
        .map_ok(|m| m.location.to_string())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.ends_with(".parquet") && !k.contains("/_delta_log/"))
        .collect()
}
