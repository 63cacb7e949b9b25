//! The command line: clap definitions, and the one place where raw arguments become validated
//! plans (ripgrep's LowArgs → HiArgs). Nothing below this module sees unvalidated input.
//! This is the top layer, so it is where `anyhow` is used; a [`UsageError`] in the chain means
//! "nothing was attempted" and maps to exit code 2.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use url::Url;

use crate::budget::{self, MemoryBudget};
use crate::current;
use crate::pipeline::{self, NewColumnPolicy, RejectLimit, RunError, SyncPlan};
use crate::report::{exit_code, RunReport};
use crate::schema::{DatasetSchema, SchemaRegistry};
use crate::sink::delta;
use crate::sink::layout;
use crate::sink::lock::{DestLock, LockError};
use crate::sink::parquet::PartWriterConfig;
use crate::sink::{Destination, OutputFormat};
use crate::sources::local::LocalFiles;
use crate::sources::poll::PollConfig;
use crate::sources::saltedcx::client::{ApiKey, ClientConfig, SaltedCxClient};
use crate::sources::saltedcx::emulator::{self, Emulator, EmulatorConfig};
use crate::sources::saltedcx::synth::{self, SynthConfig};
use crate::sources::saltedcx::{api, ExportPolicy, SaltedCx};
use crate::sources::Source;
use crate::state::StateStore;
use crate::window::{self, Window, WindowError};

/// An error in what the user asked for: nothing was attempted (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

#[derive(Debug, Parser)]
#[command(
    name = "cxlake",
    version,
    about = "Land contact-center exports as typed, Hive-partitioned Parquet on local disk or S3",
    long_about = "cxlake pulls raw exports from customer-experience platforms (Salted CX first), parses every \
file against a declared Arrow schema and writes Hive-partitioned Parquet to a local directory or an \
S3-compatible bucket. Re-running a window replaces it; bookkeeping lives under <dest>/_cxlake/.\n\n\
Exit codes: 0 all windows committed, 1 some windows failed, 2 usage/configuration/authentication error, \
3 the destination is locked by another run."
)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, or a tracing directive such as cxlake=debug)
    #[arg(long, global = true, env = "CXLAKE_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process; boxing buys nothing")]
pub enum Command {
    /// Export day windows from a platform and land them in the lake
    Sync(SyncArgs),
    /// List the declared dataset schemas or show one
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Show the platform's recent exports (most recent first)
    History(HistoryArgs),
    /// Show what a destination holds: windows, gaps, rows, files, bytes, last run
    Status(StatusArgs),
    /// Convert already-downloaded export files into the lake (same layout and commit as sync)
    Convert(ConvertArgs),
    /// Write deterministic synthetic export CSV (the emulator's data) for tests and benchmarks
    Synth(SynthArgs),
    /// Rebuild the current tables (one row per pid, latest window wins) and _cxlake/views.sql
    Current(CurrentArgs),
    /// Delete data files no Delta table version references any more, once older than --older-than
    Vacuum(VacuumArgs),
    /// Run a platform's emulator on 127.0.0.1 in the foreground
    Emulator(EmulatorArgs),
    /// Sync 3 days from the built-in emulator into ./lake and show how to query them
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceName {
    /// Salted CX export API
    Saltedcx,
}

impl SourceName {
    fn as_str(self) -> &'static str {
        match self {
            SourceName::Saltedcx => "saltedcx",
        }
    }
}

#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// API base URL
    #[arg(long, env = "SALTEDCX_API_URL", default_value = "https://api.eu.salted.cx", value_name = "URL")]
    pub api_url: String,

    /// Read the API key from this file (default: the SALTEDCX_API_KEY environment variable)
    #[arg(long, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,

    /// Allow plain http:// API and download URLs to hosts other than loopback
    #[arg(long)]
    pub allow_http: bool,

    /// Longest Retry-After to honour on a 429; a longer one fails the window as rate-limited
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub max_retry_wait: String,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The platform to export from
    pub source: SourceName,

    /// Lake root: a local directory or s3://bucket/prefix (S3 configured by the AWS_* variables)
    #[arg(long, env = "CXLAKE_DEST", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub dest: String,

    /// First day to export: YYYY-MM-DD or RFC 3339 (default: continue after the last done window)
    #[arg(long, value_name = "T")]
    pub from: Option<String>,

    /// End of the range, exclusive (default: start of the current UTC day, i.e. complete days only)
    #[arg(long, value_name = "T")]
    pub to: Option<String>,

    /// Datasets to export, comma separated (default: all)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub datasets: Option<Vec<String>>,

    /// Export only one customer profile, by email or phone (needs --from and its own --dest)
    #[arg(long, value_name = "EMAIL|PHONE")]
    pub contact: Option<String>,

    /// Also re-export the last N done windows, to pick up late updates
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "from")]
    pub lookback_days: u32,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas
    #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,

    /// Rejected rows allowed per file before its window is not committed: a count or a percentage
    #[arg(long, default_value = "0", value_name = "N|P%")]
    pub max_rejects: String,

    /// Give up on an export still processing after this long (e.g. 30m, 2h)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub export_timeout: String,

    /// First wait between status polls; grows 1.5× per poll up to 30 s
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub poll_interval: String,

    /// Where downloads are spooled before decoding (default: the system temp directory)
    #[arg(long, env = "CXLAKE_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Also write the run report as JSON to this file
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,

    /// A run's destination lock expires this long after its last heartbeat (a killed run's lock
    /// on another host is taken over after it; on this host at once)
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,

    /// A column in an export that the schema does not declare: warn and skip it, or fail the window
    #[arg(long, value_enum, default_value_t = NewColumnPolicy::Ignore)]
    pub on_new_column: NewColumnPolicy,

    /// New exports to create after one ends FAILED, before the window fails
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub failed_export_retries: u32,

    /// Wait before creating a new export after a FAILED one
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub failed_export_cooldown: String,

    /// Output format: plain Hive-partitioned Parquet, or Delta Lake tables (atomic window commits)
    #[arg(long, value_enum, default_value_t = OutputFormat::Parquet)]
    pub format: OutputFormat,

    /// Do not rebuild the current tables (one row per pid) and views.sql after the sync
    #[arg(long)]
    pub no_current_tables: bool,

    /// Windows in flight at once: the next day's export and downloads overlap this day's conversions
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel_windows: u16,

    /// Memory for conversions running at once, across datasets and windows (e.g. 512MiB, 2GiB);
    /// a large file's conversion takes up to 256 MiB, a small one little
    #[arg(long, default_value = "512MiB", value_name = "SIZE")]
    pub memory_budget: String,

    /// Bytes buffered per file before its upload turns multipart (at least S3's 5 MiB part minimum)
    #[arg(long, hide = true, default_value_t = PartWriterConfig::default().upload_chunk_bytes)]
    pub upload_chunk_bytes: usize,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// source.dataset the files hold, e.g. saltedcx.turn
    pub dataset: String,

    /// The UTC day the files cover: their partition date=YYYY-MM-DD (replaced as a whole)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: chrono::NaiveDate,

    /// Lake root: a local directory or s3://bucket/prefix (S3 configured by the AWS_* variables)
    #[arg(long, env = "CXLAKE_DEST", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub dest: String,

    /// The CSV files (all of this dataset and day); they are read, never changed
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas
    #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,

    /// Rejected rows allowed per file before the day is not committed: a count or a percentage
    #[arg(long, default_value = "0", value_name = "N|P%")]
    pub max_rejects: String,

    /// A column the schema does not declare: warn and skip it, or fail
    #[arg(long, value_enum, default_value_t = NewColumnPolicy::Ignore)]
    pub on_new_column: NewColumnPolicy,

    /// The destination lock expires this long after its holder's last heartbeat
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,

    /// Also write the run report as JSON to this file
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,

    /// Output format: plain Hive-partitioned Parquet, or Delta Lake tables (atomic window commits)
    #[arg(long, value_enum, default_value_t = OutputFormat::Parquet)]
    pub format: OutputFormat,

    /// Do not rebuild the dataset's current table (one row per pid) and views.sql afterwards
    #[arg(long)]
    pub no_current_tables: bool,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// source.dataset to generate, e.g. saltedcx.turn
    pub dataset: String,
    /// The UTC day to generate
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: chrono::NaiveDate,
    /// Mean engagements per day (turns are 10–30 per engagement)
    #[arg(long, default_value_t = SynthConfig::default().engagements_per_day)]
    pub engagements_per_day: usize,
    /// Write here instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// List every dataset with its column count
    List {
        #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
        schemas: Option<PathBuf>,
    },
    /// Show one dataset's columns: name, Arrow type, nullable, pii, description
    Show {
        /// source.dataset, e.g. saltedcx.engagement
        name: String,
        #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
        schemas: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub source: SourceName,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Lake root: a local directory or s3://bucket/prefix
    #[arg(long, env = "CXLAKE_DEST", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub dest: String,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CurrentArgs {
    /// Lake root: a local directory or s3://bucket/prefix
    #[arg(long, env = "CXLAKE_DEST", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub dest: String,
    /// The platform whose datasets to rebuild
    #[arg(long, value_enum, default_value_t = SourceName::Saltedcx)]
    pub source: SourceName,
    /// Datasets, comma separated (default: all)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub datasets: Option<Vec<String>>,
    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas
    #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,
    /// The destination lock expires this long after its holder's last heartbeat
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Lake root: a local directory or s3://bucket/prefix
    #[arg(long, env = "CXLAKE_DEST", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub dest: String,
    /// Keep files removed (or never committed) less than this long ago, for time travel and for
    /// writers still running (e.g. 7d, 36h)
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub older_than: String,
    /// List what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The platform whose tables to vacuum
    #[arg(long, value_enum, default_value_t = SourceName::Saltedcx)]
    pub source: SourceName,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    pub source: SourceName,
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// The API key the emulator accepts
    #[arg(long, default_value = emulator::DEFAULT_API_KEY)]
    pub api_key: String,
    /// Mean engagements per day in the synthetic tenant
    #[arg(long, default_value_t = SynthConfig::default().engagements_per_day)]
    pub engagements_per_day: usize,
    /// Status polls answered PROCESSING before an export completes
    #[arg(long, default_value_t = 2)]
    pub processing_polls: u32,
    /// Days (YYYY-MM-DD) whose exports end FAILED, comma separated
    #[arg(long, value_delimiter = ',', value_name = "DATES")]
    pub fail_dates: Vec<chrono::NaiveDate>,
    /// Inject faults from a TOML scenario: [[faults]] with endpoint, kind and times (see README)
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the lake
    #[arg(long, default_value = "./lake")]
    pub dest: String,
    /// How many complete days (ending yesterday) to sync
    #[arg(long, default_value_t = 3)]
    pub days: u32,
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Sync(args) => sync(args).await,
        Command::Schema(command) => schema(command),
        Command::History(args) => history(args).await,
        Command::Status(args) => status(args).await,
        Command::Convert(args) => convert(args).await,
        Command::Current(args) => current(args).await,
        Command::Vacuum(args) => vacuum(args).await,
        Command::Synth(args) => synth(args),
        Command::Emulator(args) => run_emulator(args).await,
        Command::Demo(args) => demo(args).await,
    }
}

/// Parses `90s`, `30m`, `2h`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| UsageError(format!("`{text}` is not a duration; write e.g. 90s, 30m or 2h")))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err(UsageError(format!("`{text}`: unknown unit `{unit}`; use ms, s, m, h or d"))),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn load_registry(dir: Option<&Path>) -> Result<SchemaRegistry> {
    Ok(match dir {
        Some(dir) => SchemaRegistry::with_overrides(dir).map_err(|e| usage(e.to_string()))?,
        None => SchemaRegistry::embedded()?,
    })
}

/// Reads the API key from `--api-key-file` or `SALTEDCX_API_KEY`.
fn load_api_key(file: Option<&Path>) -> Result<ApiKey> {
    let key = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read --api-key-file {}: {e}", path.display())))?;
            warn_if_world_readable(path);
            ApiKey::new(text)
        }
        None => ApiKey::new(std::env::var("SALTEDCX_API_KEY").unwrap_or_default()),
    };
    if key.is_empty() {
        return Err(usage("no Salted CX API key: set SALTEDCX_API_KEY or pass --api-key-file PATH"));
    }
    Ok(key)
}

#[cfg(unix)]
fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(path = %path.display(), "The API key file is readable by every user; run chmod 600 on it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_path: &Path) {}

fn client_config(connection: &ConnectionArgs, api_key: ApiKey) -> Result<ClientConfig> {
    let base_url = Url::parse(&connection.api_url)
        .map_err(|e| usage(format!("--api-url `{}` is not a URL: {e}", connection.api_url)))?;
    let mut config = ClientConfig::new(base_url, api_key);
    config.allow_http = connection.allow_http;
    config.retry.max_retry_wait = parse_duration(&connection.max_retry_wait)?;
    Ok(config)
}

fn build_client(config: ClientConfig) -> Result<SaltedCxClient> {
    SaltedCxClient::new(config).map_err(|e| usage(e.to_string()))
}

fn select_datasets(
    registry: &SchemaRegistry,
    source: &str,
    names: Option<&[String]>,
) -> Result<Vec<Arc<DatasetSchema>>> {
    let names: Vec<String> = match names {
        None => api::DATASETS.iter().map(|d| d.to_string()).collect(),
        Some(list) => {
            let list: Vec<String> =
                list.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if list.is_empty() {
                return Err(usage("--datasets is empty; leave it out to export every dataset"));
            }
            list
        }
    };
    let mut seen = BTreeSet::new();
    let mut schemas = Vec::new();
    for name in names {
        if !api::DATASETS.contains(&name.as_str()) {
            return Err(usage(format!("unknown dataset `{name}`; valid: {}", api::DATASETS.join(", "))));
        }
        if seen.insert(name.clone()) {
            schemas.push(registry.dataset(source, &name).map_err(|e| usage(e.to_string()))?);
        }
    }
    Ok(schemas)
}

/// A run id that sorts by start time and is safe as a path component.
pub fn new_run_id() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%SZ"), &suffix[..8])
}

/// A fingerprint of `--contact` for bookkeeping: the contact itself is personal data.
fn contact_fingerprint(contact: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(contact.trim().to_lowercase().as_bytes());
    format!("contact:{}", &hex::encode(digest)[..16])
}

async fn plan_windows(
    args: &SyncArgs,
    state: &StateStore,
    source: &str,
    datasets: &[Arc<DatasetSchema>],
    filter: &Option<String>,
) -> Result<Vec<Window>> {
    let now = Utc::now();
    let to = match &args.to {
        Some(t) => window::parse_time(t).map_err(|e| usage(e.to_string()))?,
        None => window::start_of_today(now),
    };
    let records = state.load_windows(source).await.context("reading the destination's window records")?;
    let windows = match &args.from {
        Some(from) => {
            let from = window::parse_time(from).map_err(|e| usage(e.to_string()))?;
            window::windows_between(from, to, now).map_err(|e| usage(e.to_string()))?
        }
        None => {
            if args.contact.is_some() {
                return Err(usage("--contact needs --from: a one-contact export does not continue a lake"));
            }
            let done: BTreeSet<_> = records
                .iter()
                .filter(|r| r.filter.is_none() && datasets.iter().all(|d| r.is_done_for(&d.dataset)))
                .map(|r| r.date)
                .collect();
            match window::resume_windows(&done, to, now, args.lookback_days) {
                Some(result) => result.map_err(|e| usage(e.to_string()))?,
                None => {
                    return Err(usage(
                        WindowError::NothingToResume {
                            source_name: source.to_string(),
                            dest: args.dest.clone(),
                        }
                        .to_string(),
                    ))
                }
            }
        }
    };
    // A one-contact export must never replace a full window, nor the other way round.
    for record in &records {
        if record.filter != *filter && windows.iter().any(|w| w.date == record.date) {
            let held = if record.filter.is_some() { "a one-contact export" } else { "a full export" };
            return Err(usage(format!(
                "window {} in {} holds {held}; this sync would replace it with a differently filtered one — use a separate --dest",
                record.date, args.dest
            )));
        }
    }
    Ok(windows)
}

async fn sync(args: SyncArgs) -> Result<i32> {
    let source = args.source.as_str();
    let registry = load_registry(args.schemas.as_deref())?;
    let datasets = select_datasets(&registry, source, args.datasets.as_deref())?;
    let max_rejects =
        RejectLimit::parse(&args.max_rejects).map_err(|e| usage(format!("--max-rejects: {e}")))?;
    let mut config = client_config(&args.connection, load_api_key(args.connection.api_key_file.as_deref())?)?;
    config.poll = PollConfig {
        initial_interval: parse_duration(&args.poll_interval)?,
        deadline: parse_duration(&args.export_timeout)?,
        ..PollConfig::default()
    };
    let client = build_client(config)?;
    let dest = Destination::parse(&args.dest).map_err(|e| usage(e.to_string()))?;
    let state = StateStore::new(dest.clone());
    let filter = args.contact.as_deref().map(contact_fingerprint);
    let windows = plan_windows(&args, &state, source, &datasets, &filter).await?;
    // With nothing to do the run still takes the lock and sweeps what killed runs left behind.
    let nothing_to_do = windows.is_empty();
    let policy = ExportPolicy {
        failed_retries: args.failed_export_retries,
        failed_cooldown: parse_duration(&args.failed_export_cooldown)?,
        ..ExportPolicy::default()
    };
    let plan = SyncPlan {
        source: SaltedCx::new(client, args.contact.clone()).with_policy(policy),
        dest,
        datasets,
        windows,
        run_id: new_run_id(),
        max_rejects,
        writer: PartWriterConfig {
            upload_chunk_bytes: args.upload_chunk_bytes.max(5 << 20),
            ..PartWriterConfig::default()
        },
        spool_dir: args.spool_dir.clone(),
        filter,
        lock_ttl: parse_duration(&args.lock_ttl)?,
        on_new_column: args.on_new_column,
        parallel_windows: usize::from(args.parallel_windows),
        memory: MemoryBudget::new(
            budget::parse_size(&args.memory_budget).map_err(|e| usage(format!("--memory-budget: {e}")))?,
        ),
        format: args.format,
        current_tables: !args.no_current_tables,
    };
    check_format(&plan.dest, &args.dest, source, &plan.datasets, args.format).await?;
    if nothing_to_do {
        run_holding_lock(&plan).await?;
        println!("nothing to do: every window of {source} up to the requested end is done in {}", args.dest);
        return Ok(exit_code::OK);
    }
    run_and_report(&plan, args.report_json.as_deref()).await
}

/// Runs a plan, prints its report (and writes it as JSON if asked); returns the exit code.
async fn run_and_report<S: Source>(plan: &SyncPlan<S>, report_json: Option<&Path>) -> Result<i32> {
    let report = run_holding_lock(plan).await?;
    print!("{}", report.render());
    write_report_json(report_json, &report)?;
    Ok(report.exit_code())
}

/// Runs a plan; a destination locked by another run surfaces as [`Locked`] (exit code 3).
async fn run_holding_lock<S: Source>(plan: &SyncPlan<S>) -> Result<RunReport> {
    match pipeline::run_sync(plan).await {
        Ok(report) => Ok(report),
        Err(RunError::Lock(LockError::Locked(locked))) => Err(locked.into()),
        Err(e) => Err(e.into()),
    }
}

fn write_report_json(path: Option<&Path>, report: &RunReport) -> Result<()> {
    if let Some(path) = path {
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the run report to {}", path.display()))?;
    }
    Ok(())
}

async fn convert(args: ConvertArgs) -> Result<i32> {
    let registry = load_registry(args.schemas.as_deref())?;
    let schema = registry.get(&args.dataset).map_err(|e| usage(e.to_string()))?;
    let source = schema.source.clone();
    let source = source.as_str();
    for file in &args.files {
        if !file.is_file() {
            return Err(usage(format!("{} is not a readable file", file.display())));
        }
    }
    let dest = Destination::parse(&args.dest).map_err(|e| usage(e.to_string()))?;
    let plan = SyncPlan {
        source: LocalFiles {
            source: source.to_string(),
            dataset: schema.dataset.clone(),
            format: schema.format,
            files: args.files.clone(),
        },
        dest,
        datasets: vec![schema],
        windows: vec![Window::new(args.date)],
        run_id: new_run_id(),
        max_rejects: RejectLimit::parse(&args.max_rejects)
            .map_err(|e| usage(format!("--max-rejects: {e}")))?,
        writer: PartWriterConfig::default(),
        spool_dir: None,
        filter: None,
        lock_ttl: parse_duration(&args.lock_ttl)?,
        on_new_column: args.on_new_column,
        parallel_windows: 1,
        memory: MemoryBudget::default(),
        format: args.format,
        current_tables: !args.no_current_tables,
    };
    check_format(&plan.dest, &args.dest, source, &plan.datasets, args.format).await?;
    run_and_report(&plan, args.report_json.as_deref()).await
}

/// Refuses to write one format into a dataset directory that holds the other: plain Parquet
/// publishing would delete a Delta table's files, and a Delta table ignores loose files.
async fn check_format(
    dest: &Destination,
    dest_text: &str,
    source: &str,
    datasets: &[Arc<DatasetSchema>],
    format: OutputFormat,
) -> Result<()> {
    for schema in datasets {
        let found = delta::existing_format(dest, &layout::dataset_dir(source, &schema.dataset)).await?;
        if let Some(found) = found.filter(|found| *found != format) {
            return Err(usage(format!(
                "{dest_text}/{source}/{} holds {} data; rerun with --format {} or use another --dest",
                schema.dataset,
                found.name(),
                found.name()
            )));
        }
    }
    Ok(())
}

/// The format the lake's datasets are in (Parquet for a new lake).
async fn lake_format(dest: &Destination, source: &str, registry: &SchemaRegistry) -> Result<OutputFormat> {
    for schema in registry.iter().filter(|s| s.source == source) {
        if let Some(found) =
            delta::existing_format(dest, &layout::dataset_dir(source, &schema.dataset)).await?
        {
            return Ok(found);
        }
    }
    Ok(OutputFormat::Parquet)
}

async fn current(args: CurrentArgs) -> Result<i32> {
    let source = args.source.as_str();
    let registry = load_registry(args.schemas.as_deref())?;
    let datasets = select_datasets(&registry, source, args.datasets.as_deref())?;
    let dest = Destination::parse(&args.dest).map_err(|e| usage(e.to_string()))?;
    let format = lake_format(&dest, source, &registry).await?;
    let run_id = new_run_id();
    let lock = match DestLock::acquire(&dest, &run_id, parse_duration(&args.lock_ttl)?).await {
        Ok(lock) => lock,
        Err(LockError::Locked(locked)) => return Err(locked.into()),
        Err(e) => return Err(e.into()),
    };
    let result = current::refresh(&dest, source, &datasets, format, &run_id).await;
    pipeline::remove_local_staging(&dest, &run_id);
    lock.release().await?;
    for table in result? {
        println!(
            "{}: {} rows, one per key, from {} rows of history",
            table.path, table.rows, table.history_rows
        );
    }
    println!("views: {}", dest.path(&layout::views_file()));
    Ok(exit_code::OK)
}

async fn vacuum(args: VacuumArgs) -> Result<i32> {
    let source = args.source.as_str();
    let dest = Destination::parse(&args.dest).map_err(|e| usage(e.to_string()))?;
    let retention = parse_duration(&args.older_than)?;
    let registry = SchemaRegistry::embedded()?;
    let mut tables = 0;
    for schema in registry.iter().filter(|s| s.source == source) {
        for relative in
            [layout::dataset_dir(source, &schema.dataset), layout::current_dir(source, &schema.dataset)]
        {
            let Some(outcome) = delta::vacuum(&dest, &relative, retention, args.dry_run).await? else {
                continue;
            };
            tables += 1;
            let verb = if args.dry_run { "would delete" } else { "deleted" };
            println!("{relative}: {verb} {} file(s)", outcome.files.len());
            for file in &outcome.files {
                println!("  {file}");
            }
        }
    }
    if tables == 0 {
        println!("no Delta tables of {source} in {}", args.dest);
    }
    Ok(exit_code::OK)
}

fn synth(args: SynthArgs) -> Result<i32> {
    let (source, dataset) = args.dataset.split_once('.').unwrap_or(("", ""));
    if source != "saltedcx" || !api::DATASETS.contains(&dataset) {
        return Err(usage(format!(
            "unknown dataset `{}`; valid: {}",
            args.dataset,
            api::DATASETS.map(|d| format!("saltedcx.{d}")).join(", ")
        )));
    }
    let config = SynthConfig {
        engagements_per_day: args.engagements_per_day,
        customers: SynthConfig::default().customers.max(args.engagements_per_day),
        ..SynthConfig::default()
    };
    let window = Window::new(args.date);
    let out: Box<dyn std::io::Write> = match &args.out {
        Some(path) => {
            Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let out = std::io::BufWriter::with_capacity(1 << 20, out);
    let rows = synth::write_dataset(&config, dataset, window.start(), window.end(), None, out)?;
    tracing::info!(dataset = %args.dataset, rows, "Generated");
    Ok(exit_code::OK)
}

fn schema(command: SchemaCommand) -> Result<i32> {
    match command {
        SchemaCommand::List { schemas } => {
            let registry = load_registry(schemas.as_deref())?;
            println!("{:<22} {:>7}  {:<16} description", "dataset", "columns", "file");
            for s in registry.iter() {
                println!(
                    "{:<22} {:>7}  {:<16} {}",
                    s.qualified_name(),
                    s.columns.len(),
                    s.file,
                    s.description
                );
            }
        }
        SchemaCommand::Show { name, schemas } => {
            let registry = load_registry(schemas.as_deref())?;
            let s = registry.get(&name).map_err(|e| usage(e.to_string()))?;
            println!("{} — {} ({}; key {})", s.qualified_name(), s.description, s.file, s.key_display());
            println!("{:<38} {:<30} {:<8} {:<4} description", "column", "arrow type", "nullable", "pii");
            for c in &s.columns {
                let yes_no = |b: bool| if b { "yes" } else { "no" };
                println!(
                    "{:<38} {:<30} {:<8} {:<4} {}",
                    c.name,
                    c.column_type.to_string(),
                    yes_no(c.nullable),
                    yes_no(c.pii),
                    c.description
                );
            }
        }
    }
    Ok(exit_code::OK)
}

async fn history(args: HistoryArgs) -> Result<i32> {
    let key = load_api_key(args.connection.api_key_file.as_deref())?;
    let client = build_client(client_config(&args.connection, key)?)?;
    let exports = match client.history().await {
        Ok(exports) => exports,
        Err(e) if e.affects_whole_run() => return Err(usage(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    println!("{:<38} {:<11} {:<40} error", "export id", "status", "datasets ready");
    for e in &exports {
        let datasets: Vec<&str> = e.download_urls.keys().map(String::as_str).collect();
        let status = format!("{:?}", e.status).to_uppercase();
        println!(
            "{:<38} {:<11} {:<40} {}",
            e.export_id,
            status,
            datasets.join(","),
            e.error.as_deref().unwrap_or("")
        );
    }
    println!("{} export(s)", exports.len());
    Ok(exit_code::OK)
}

async fn status(args: StatusArgs) -> Result<i32> {
    // Looking must not create: a mistyped local path is an error, not a new empty lake.
    if !args.dest.contains("://") && !Path::new(&args.dest).exists() {
        return Err(usage(format!("destination {} does not exist", args.dest)));
    }
    let dest = Destination::parse(&args.dest).map_err(|e| usage(e.to_string()))?;
    let sources = crate::status::lake_status(&dest).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sources)?);
    } else {
        print!("{}", crate::status::render(&args.dest, &sources));
    }
    Ok(exit_code::OK)
}

async fn run_emulator(args: EmulatorArgs) -> Result<i32> {
    let SourceName::Saltedcx = args.source;
    let faults = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read --faults {}: {e}", path.display())))?;
            toml::from_str::<emulator::FaultScenario>(&text)
                .map_err(|e| usage(format!("--faults {}: {e}", path.display())))?
                .faults
        }
        None => Vec::new(),
    };
    let config = EmulatorConfig {
        faults,
        api_key: args.api_key.clone(),
        synth: SynthConfig { engagements_per_day: args.engagements_per_day, ..SynthConfig::default() },
        processing_polls: args.processing_polls,
        fail_dates: args.fail_dates.into_iter().collect(),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config, args.port)
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    println!("Salted CX emulator listening on {}", emulator.base_url());
    println!("  export SALTEDCX_API_URL={}", emulator.base_url());
    println!("  export SALTEDCX_API_KEY={}", args.api_key);
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = emulator.wait() => {}
    }
    Ok(exit_code::OK)
}

async fn demo(args: DemoArgs) -> Result<i32> {
    let started = Instant::now();
    let emulator = Emulator::start(EmulatorConfig::default(), 0).await.context("starting the emulator")?;
    println!("Salted CX emulator running on {}", emulator.base_url());
    let mut config = ClientConfig::new(emulator.base_url(), ApiKey::new(emulator::DEFAULT_API_KEY));
    config.poll.initial_interval = Duration::from_millis(100);
    let client = build_client(config)?;
    let today = window::start_of_today(Utc::now());
    let from = today - chrono::Duration::days(i64::from(args.days.max(1)));
    let windows = window::windows_between(from, today, Utc::now())?;
    let dest = Destination::parse(&args.dest).map_err(|e| usage(e.to_string()))?;
    let registry = SchemaRegistry::embedded()?;
    let plan = SyncPlan {
        source: SaltedCx::new(client, None),
        dest,
        datasets: select_datasets(&registry, "saltedcx", None)?,
        windows,
        run_id: new_run_id(),
        max_rejects: RejectLimit::Rows(0),
        writer: PartWriterConfig::default(),
        spool_dir: None,
        filter: None,
        lock_ttl: Duration::from_secs(120),
        on_new_column: NewColumnPolicy::Ignore,
        parallel_windows: 2,
        memory: MemoryBudget::default(),
        format: OutputFormat::Parquet,
        current_tables: true,
    };
    println!(
        "syncing {} day(s) from {} to {} into {}",
        plan.windows.len(),
        from.date_naive(),
        today.date_naive(),
        args.dest
    );
    let report = run_holding_lock(&plan).await?;
    emulator.shutdown().await;
    print!("{}", report.render());
    println!("\n{:<12} {:>9} {:>6} {:>12}", "dataset", "rows", "files", "bytes");
    for (dataset, (rows, files, bytes)) in report.rows_by_dataset() {
        println!("{dataset:<12} {rows:>9} {files:>6} {bytes:>12}");
    }
    println!("done in {:.1} s\n", started.elapsed().as_secs_f64());
    for table in &report.current {
        println!(
            "current table {}: {} rows, one per pid (from {} in the history)",
            table.path, table.rows, table.history_rows
        );
    }
    let lake = args.dest.trim_end_matches('/');
    println!("\nEvery dataset as a DuckDB view (saltedcx_<dataset>, saltedcx_<dataset>_current):\n");
    println!("  duckdb -init {lake}/_cxlake/views.sql\n");
    println!("Or query the files directly (e.g. python -c \"import duckdb; duckdb.sql('''…''').show()\"):\n");
    println!(
        "  SELECT date, channel_type, count(*) AS engagements, round(avg(total_time) / 1000, 1) AS avg_seconds\n  \
         FROM read_parquet('{lake}/saltedcx/engagement/date=*/*.parquet', hive_partitioning = true)\n  \
         GROUP BY ALL ORDER BY date, channel_type;"
    );
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_common_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn run_ids_sort_by_time_and_are_path_safe() {
        let id = new_run_id();
        assert_eq!(id.len(), "20240101T000000Z-".len() + 8);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    #[test]
    fn contact_fingerprint_hides_the_contact() {
        let f = contact_fingerprint("Jane@Example.com");
        assert!(f.starts_with("contact:") && !f.contains("jane"));
        assert_eq!(f, contact_fingerprint("jane@example.com "));
    }

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
