//! The command line: clap definitions, and the one place where raw arguments become validated
//! plans (ripgrep's LowArgs → HiArgs). Nothing below this module sees unvalidated input.
//!
//! Per-source subcommands (`sync <source>`, `history <source>`, `emulator <source>`) are derived
//! from the source registry ([`crate::with_sources!`]): each source declares its own arguments
//! and environment variables in its folder, and the lake/write arguments are declared here once
//! and flattened into every one of them. This is the top layer, so it is where `anyhow` is used;
//! a [`UsageError`] in the chain means "nothing was attempted" and maps to exit code 2.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};

use crate::budget::{self, MemoryBudget};
use crate::config::ConfigFile;
use crate::current;
use crate::decode::TypeMismatchPolicy;
use crate::pipeline::{self, NewColumnPolicy, RejectLimit, RunError, SyncPlan, WriteOptions};
use crate::report::{exit_code, RunReport};
use crate::schema::pii::{PiiAction, PiiKey, PiiPolicy};
use crate::schema::{DatasetSchema, SchemaRegistry};
use crate::sink::delta;
use crate::sink::layout;
use crate::sink::lease::{Lease, LeaseName, LockError, RunGuard};
use crate::sink::parquet::PartWriterConfig;
use crate::sink::raw::RawPolicy;
use crate::sink::{Destination, OutputFormat};
use crate::sources::local::LocalFiles;
use crate::sources::{FailureScope, Platform, RunningEmulator, SetupError, Source};
use crate::state::StateStore;
use crate::window::{self, Window, WindowError};

/// An error in what the user asked for: nothing was attempted (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

impl From<SetupError> for UsageError {
    fn from(error: SetupError) -> UsageError {
        UsageError(error.0)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "cxlake",
    version,
    about = "Land contact-center exports as typed, Hive-partitioned Parquet or Delta tables on local disk or S3",
    // The long help is built from the registry at run time: see `long_about()`.
    long_about = None
)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, or a tracing directive such as cxlake=debug)
    #[arg(long, global = true, env = "CXLAKE_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,

    /// Log lines as text, or as JSON objects (one per line, with run_id, source, window, dataset)
    #[arg(long, global = true, env = "CXLAKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Progress bars on standard error: when it is a terminal (auto), always, or never
    #[arg(long, global = true, env = "CXLAKE_PROGRESS", value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// Write Prometheus metrics of the run to this file at the end (node_exporter textfile collector)
    #[arg(long, global = true, env = "CXLAKE_METRICS_FILE", value_name = "PATH.prom")]
    pub metrics_file: Option<PathBuf>,

    /// Worker threads for decoding and Parquet encoding (default: the cores this process may
    /// use, a container's CPU quota included)
    #[arg(long, global = true, env = "CXLAKE_THREADS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// The config file: destination, output options and sources (see `cxlake config show`)
    #[arg(long, global = true, env = "CXLAKE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,

    /// The config file, loaded.
    #[arg(skip)]
    pub config_file: Option<Arc<ConfigFile>>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Always,
    Never,
}

/// The command tree as parsed: a flag given twice (once from the config file, once typed)
/// takes the last value.
pub fn command_tree() -> clap::Command {
    fn override_self(command: clap::Command) -> clap::Command {
        command.args_override_self(true).mut_subcommands(override_self)
    }
    use clap::CommandFactory;
    override_self(Cli::command().long_about(long_about()))
}

/// The top-level help: what cxlake does, for which platforms (from the registry), and the exit
/// codes (those of [`exit_code`], as the README's table gives them).
pub fn long_about() -> String {
    format!(
        "cxlake pulls raw exports from customer-experience platforms ({}), parses every file against a \
         declared Arrow schema and writes Hive-partitioned Parquet or Delta tables to a local directory or \
         an S3-compatible bucket. Re-running a window replaces it; bookkeeping lives under <dest>/_cxlake/.\n\n\
         Exit codes: {} every window committed (or nothing to do); {} partial: some windows failed or the \
         current tables could not be refreshed, the next run retries; {} usage, configuration or \
         authentication error, nothing attempted; {} another run held a window, table or the lake past \
         --lease-wait; {} status --max-age: a dataset is stale; {} interrupted by Ctrl-C or SIGTERM (the \
         windows in flight committed, no other started).",
        source_titles().join(", "),
        exit_code::OK,
        exit_code::PARTIAL,
        exit_code::USAGE,
        exit_code::LOCKED,
        exit_code::STALE,
        exit_code::INTERRUPTED
    )
}

/// Parses the process's arguments, with the config file's settings inserted; exits with the
/// parser's message (code 2) when they do not parse.
pub fn parse(argv: Vec<std::ffi::OsString>) -> Cli {
    use clap::FromArgMatches;
    let root = command_tree();
    let config = match crate::config::find_path(&argv) {
        Some(path) => match ConfigFile::load(&path) {
            Ok(config) => Some(Arc::new(config)),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(exit_code::USAGE);
            }
        },
        None => None,
    };
    let argv = match &config {
        Some(config) => config.inject(argv, &root, &source_secrets).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(exit_code::USAGE);
        }),
        None => argv,
    };
    let matches = match root.try_get_matches_from(argv) {
        Ok(matches) => matches,
        Err(e) => exit_with_origin(e, config.as_deref()),
    };
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit_with_origin(e, config.as_deref()));
    cli.config_file = config;
    cli
}

/// Exits with the parser's message; a value the config file set is named by its section and key.
fn exit_with_origin(error: clap::Error, config: Option<&ConfigFile>) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let from_file = config.and_then(|config| {
        let flag = match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => arg.clone(),
            _ => return None,
        };
        let long = flag.trim_start_matches('-').split([' ', '=']).next()?.to_string();
        config.origin_of_flag(&long)
    });
    let rendered = error.render().to_string();
    let source_command =
        ["cxlake sync", "cxlake history", "cxlake emulator"].iter().any(|c| rendered.contains(c));
    match (from_file, error.kind()) {
        (Some(origin), kind) if !matches!(kind, ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            eprint!("{rendered}");
            eprintln!("(the config file sets it: {origin})");
            std::process::exit(exit_code::USAGE);
        }
        (None, ErrorKind::InvalidSubcommand) if source_command => {
            eprint!("{rendered}");
            eprintln!("The sources are: {}.", source_names().join(", "));
            std::process::exit(exit_code::USAGE);
        }
        _ => error.exit(),
    }
}

/// An error and its causes on one line, each cause once: storage errors repeat their source's
/// message in their own, and `{:#}` would print it again for every level.
pub fn render_error(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if message.is_empty() || text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

/// The exit code an error that stopped a command maps to.
pub fn exit_code_of(error: &anyhow::Error) -> i32 {
    if error.chain().any(|cause| cause.is::<UsageError>() || cause.is::<crate::config::ConfigError>()) {
        exit_code::USAGE
    } else if error.chain().any(|cause| cause.is::<crate::sink::lease::Locked>()) {
        exit_code::LOCKED
    } else {
        exit_code::PARTIAL
    }
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process; boxing buys nothing")]
pub enum Command {
    /// Export day windows from a platform and land them in the lake
    Sync(SyncRequest),
    /// List the declared dataset schemas or show one
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Show the platform's recent exports, where it keeps a history (most recent first)
    #[command(subcommand)]
    History(HistoryCommand),
    /// Show what a destination holds, for every source: windows, gaps, rows, files, bytes, drift, last run
    Status(StatusArgs),
    /// List how each dataset's data differs from its declaration, and the commands that fix it
    Drift(DriftArgs),
    /// Convert already-downloaded export files into the lake (same layout and commit as sync)
    Convert(ConvertArgs),
    /// Rebuild windows from the raw archive, with no call to the platform (after a schema change or a fix)
    Replay(ReplayArgs),
    /// Erase one person from the whole lake — history, current tables, raw archive (GDPR art. 17)
    Forget(ForgetArgs),
    /// Write deterministic synthetic export data (the emulator's data) for tests and benchmarks
    Synth(SynthArgs),
    /// Rebuild the current tables (one row per key, latest wins) and _cxlake/views.sql
    Current(CurrentArgs),
    /// Delete data files no Delta table version references any more, once older than --older-than
    Vacuum(VacuumArgs),
    /// Run a platform's emulator on 127.0.0.1 in the foreground
    #[command(subcommand)]
    Emulator(EmulatorCommand),
    /// Sync 3 days from every built-in emulator into ./lake and show how to query them
    Demo(DemoArgs),
    /// The config file (cxlake.toml)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Split a range of windows into shards for workers (`sync --shard I/N` syncs one)
    Plan(PlanArgs),
    /// Check every configured source's credentials, the destination, the schemas and the leases
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Lake root: a local directory or s3://bucket/prefix (default: the config file's)
    #[arg(long, env = "CXLAKE_DEST", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub dest: Option<String>,
    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas
    #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// First day: YYYY-MM-DD or RFC 3339
    #[arg(long, value_name = "T")]
    pub from: String,
    /// End of the range, exclusive
    #[arg(long, value_name = "T")]
    pub to: String,
    /// How many workers share the range
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub shards: usize,
    /// Print JSON (for an orchestrator's fan-out) instead of lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings of every configured source, where each comes from, secrets redacted
    Show,
}

/// `cxlake sync <source> …` or `cxlake sync --all`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_required = false, arg_required_else_help = true)]
pub struct SyncRequest {
    /// Sync every source of the config file, one after another; one failing does not stop the others
    #[arg(long)]
    pub all: bool,
    /// With --all: first day to export, for every source
    #[arg(long, value_name = "T", requires = "all")]
    pub from: Option<String>,
    /// With --all: end of the range, exclusive, for every source
    #[arg(long, value_name = "T", requires = "all")]
    pub to: Option<String>,
    /// With --all: leave windows already done as they are
    #[arg(long, requires = "all")]
    pub skip_done: bool,
    #[command(subcommand)]
    pub source: Option<SyncCommand>,
}

/// `--dest`: the lake root. Not required on the command line — `CXLAKE_DEST` or `url` in the config
/// file's `[destination]` may give it; a command without any says so ([`open_dest`]).
#[derive(Debug, Clone, Args)]
pub struct DestArg {
    /// Lake root: a local directory or s3://bucket/prefix (S3 configured by the AWS_* variables)
    #[arg(
        long = "dest",
        env = "CXLAKE_DEST",
        value_name = "DIR|s3://BUCKET/PREFIX",
        default_value = "",
        hide_default_value = true
    )]
    pub dest: String,
}

impl std::ops::Deref for DestArg {
    type Target = str;
    fn deref(&self) -> &str {
        &self.dest
    }
}

impl std::fmt::Display for DestArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dest)
    }
}

/// Where the lake is and how windows are written: shared by `sync` and `convert`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub dest: DestArg,

    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas
    #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,

    /// Rejected rows allowed per file before its window is not committed: a count or a percentage
    #[arg(long, default_value = "0", value_name = "N|P%")]
    pub max_rejects: String,

    /// A field in an export that the schema does not declare: warn (CSV: skip it; JSON: keep it
    /// in `_extra`), or fail the window
    #[arg(long, value_enum, default_value_t = NewColumnPolicy::Ignore)]
    pub on_new_column: NewColumnPolicy,

    /// A value that does not fit its declared column (after lossless coercions): land the row with
    /// the column null and the value kept exactly in `_extra` (datasets without `_extra`
    /// quarantine the row), quarantine the row, or fail the window
    #[arg(long, value_enum, default_value_t = TypeMismatchPolicy::Extra)]
    pub on_type_mismatch: TypeMismatchPolicy,

    /// Output format: plain Hive-partitioned Parquet, or Delta Lake tables (atomic window commits)
    #[arg(long, value_enum, default_value_t = OutputFormat::Parquet)]
    pub format: OutputFormat,

    /// Do not rebuild the current tables (one row per key) and views.sql afterwards
    #[arg(long)]
    pub no_current_tables: bool,

    /// A run's leases (on windows, tables) expire this long after their last heartbeat (a killed
    /// run's on another host are taken over after it; on this host at once)
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,

    /// How long to wait for windows or tables another run is working on, before leaving them
    /// to it (exit code 3)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub lease_wait: String,

    /// Also write the run report as JSON to this file
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,

    /// Memory for the work running at once: conversions across datasets and windows, current-table
    /// builds (e.g. 256MiB, 1GiB); a large file's conversion takes up to 224 MiB, a small one little
    #[arg(long, default_value = "256MiB", value_name = "SIZE")]
    pub memory_budget: String,

    /// Keep every fetched file, zstd-compressed, under _cxlake/raw/ (for `cxlake replay`), or not
    /// (default: keep, but off when --pii hashes or drops, since raw files hold personal data as fetched)
    #[arg(long, value_enum, value_name = "keep|off")]
    pub raw: Option<RawPolicy>,

    /// What columns marked `pii` land as: as fetched, HMAC-SHA256 hashed (key from CXLAKE_PII_KEY),
    /// or null; a column's `pii_action` in its schema overrides this
    #[arg(long, value_enum, default_value_t = PiiAction::Keep)]
    pub pii: PiiAction,
}

/// `cxlake forget`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["email", "phone", "key"])))]
pub struct ForgetArgs {
    #[command(flatten)]
    pub dest: DestArg,
    /// Every row in which a personal column holds this e-mail address (compared lowercased)
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// Every row in which a personal column holds this phone number (compared as digits and +)
    #[arg(long, value_name = "NUMBER")]
    pub phone: Option<String>,
    /// A record by its key, and every row that references it (the schemas' references)
    #[arg(long, value_name = "SOURCE.DATASET=ID")]
    pub key: Option<String>,
    /// Say what would be removed; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only look: scan the whole lake (history, current tables, raw archive, quarantined rows)
    /// and exit 1 if any trace of the person remains (every forget ends with this check)
    #[arg(long, conflicts_with = "dry_run")]
    pub verify: bool,
    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas
    #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,
    /// The lake lease expires this long after the last heartbeat
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,
    /// How long to wait for runs still syncing to finish before rewriting the lake
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub lease_wait: String,
}

/// `cxlake replay <source>`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The source whose windows to rebuild (saltedcx, dixa, …)
    pub source: String,

    #[command(flatten)]
    pub output: OutputArgs,

    /// First day to rebuild (default: the first window with raw files)
    #[arg(long, value_name = "T")]
    pub from: Option<String>,

    /// End of the range, exclusive (default: after the last window)
    #[arg(long, value_name = "T")]
    pub to: Option<String>,

    /// Datasets to rebuild, comma separated (default: all of the source's)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub datasets: Option<Vec<String>>,

    /// The zone of the files' local times (default: the zone each window was read in)
    #[arg(long, value_name = "ZONE", value_parser = window::parse_zone)]
    pub timezone: Option<chrono_tz::Tz>,

    /// Where archived files are restored before decoding (default: the system temp directory)
    #[arg(long, env = "CXLAKE_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
}

/// The lake/write arguments of every `sync <source>`, declared once.
#[derive(Debug, Args)]
pub struct LakeArgs {
    #[command(flatten)]
    pub output: OutputArgs,

    /// First day to export: YYYY-MM-DD or RFC 3339 (default: continue after the last done window)
    #[arg(long, value_name = "T")]
    pub from: Option<String>,

    /// End of the range, exclusive (default: start of the current UTC day, i.e. complete days only)
    #[arg(long, value_name = "T")]
    pub to: Option<String>,

    /// Datasets to export, comma separated (default: all of the source's)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub datasets: Option<Vec<String>>,

    /// Also re-export the last N done windows, to pick up late updates (a nightly run without
    /// --from; an explicit --from/--to range is synced exactly as given)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub lookback_days: u32,

    /// Leave windows already done in the lake as they are, instead of re-exporting them (a
    /// backfill worker's retry continues where it stopped)
    #[arg(long)]
    pub skip_done: bool,

    /// Sync only shard I of N of the windows from --from to --to (contiguous runs, as `cxlake
    /// plan --shards N` prints them)
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<String>,

    /// Sync one of N shards, the one Kubernetes' JOB_COMPLETION_INDEX names (an Indexed Job)
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Where downloads are spooled before decoding (default: the system temp directory)
    #[arg(long, env = "CXLAKE_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Windows in flight at once: the next day's export and downloads overlap this day's conversions
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel_windows: u16,

    /// Bytes buffered per file before its upload turns multipart (at least S3's 5 MiB part minimum)
    #[arg(long, hide = true, default_value_t = PartWriterConfig::default().upload_chunk_bytes)]
    pub upload_chunk_bytes: usize,
}

/// `cxlake sync <source>`: the source's own arguments and the shared lake arguments.
#[derive(Debug, Args)]
pub struct SyncArgs<T: Args> {
    #[command(flatten)]
    pub source: T,
    #[command(flatten)]
    pub lake: LakeArgs,
}

/// `cxlake emulator <source>`: the port and the source's own emulator arguments.
#[derive(Debug, Args)]
pub struct EmulatorArgs<T: Args> {
    /// Port on 127.0.0.1 (0 picks a free one; default: the source's own — saltedcx 8089, dixa
    /// 8090, khoros 8091, loop 8092)
    #[arg(long)]
    pub port: Option<u16>,
    #[command(flatten)]
    pub emulator: T,
}

/// Derives the per-source subcommands and their dispatch from the registry's list.
macro_rules! define_source_commands {
    ($($variant:ident => $platform:ty),* $(,)?) => {
        /// `cxlake sync <source>`: one subcommand per registered source.
        #[derive(Debug, Subcommand)]
        #[allow(clippy::large_enum_variant, reason = "parsed once per process")]
        pub enum SyncCommand {
            $(
                #[command(about = <$platform as Platform>::DESCRIPTION)]
                $variant(SyncArgs<<$platform as Platform>::Args>),
            )*
        }

        /// `cxlake history <source>`.
        #[derive(Debug, Subcommand)]
        pub enum HistoryCommand {
            $(
                #[command(about = <$platform as Platform>::DESCRIPTION)]
                $variant(<$platform as Platform>::Args),
            )*
        }

        /// `cxlake emulator <source>`.
        #[derive(Debug, Subcommand)]
        pub enum EmulatorCommand {
            $(
                #[command(about = <$platform as Platform>::DESCRIPTION)]
                $variant(EmulatorArgs<<$platform as Platform>::EmulatorArgs>),
            )*
        }

        /// The registered sources, by name.
        pub fn source_names() -> Vec<&'static str> {
            vec![$( <$platform as Platform>::NAME ),*]
        }

        /// The registered sources as people write them.
        pub fn source_titles() -> Vec<&'static str> {
            vec![$( <$platform as Platform>::TITLE ),*]
        }

        /// Each registered source's emulator port (0: its emulator serves no port).
        pub fn source_emulator_ports() -> Vec<(&'static str, u16)> {
            vec![$( (<$platform as Platform>::NAME, <$platform as Platform>::EMULATOR_PORT) ),*]
        }

        /// A registered source's secrets: `(config key, environment variable)`.
        pub fn source_secrets(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
            $( if name == <$platform as Platform>::NAME { return Some(<$platform as Platform>::SECRETS); } )*
            None
        }

        /// The source a `sync <source>` command syncs.
        fn sync_command_source(command: &SyncCommand) -> &'static str {
            match command {
                $( SyncCommand::$variant(_) => <$platform as Platform>::NAME, )*
            }
        }

        async fn run_sync_command(command: SyncCommand) -> Result<i32> {
            match command {
                $( SyncCommand::$variant(args) => sync::<$platform>(args).await, )*
            }
        }

        /// Builds a `sync <source>` command's source and makes its cheap call.
        async fn probe_sync_command(command: &SyncCommand) -> Result<String, String> {
            match command {
                $( SyncCommand::$variant(args) => probe::<$platform>(args).await, )*
            }
        }

        async fn run_history_command(command: HistoryCommand) -> Result<i32> {
            match command {
                $( HistoryCommand::$variant(args) => history::<$platform>(args).await, )*
            }
        }

        async fn run_emulator_command(command: EmulatorCommand) -> Result<i32> {
            match command {
                $( EmulatorCommand::$variant(args) => run_emulator::<$platform>(args).await, )*
            }
        }

        /// Syncs every registered source from its emulator into the demo lake.
        async fn demo_every_source(args: &DemoArgs) -> Result<Vec<RunReport>> {
            Ok(vec![$( demo_source::<$platform>(args).await?, )*])
        }

        fn synth_source(
            source: &str,
            dataset: &str,
            date: chrono::NaiveDate,
            per_day: Option<usize>,
            out: &mut dyn std::io::Write,
        ) -> Result<u64> {
            $(
                if source == <$platform as Platform>::NAME {
                    return <$platform as Platform>::synth(dataset, date, per_day, out)
                        .map_err(|e| UsageError::from(e).into());
                }
            )*
            Err(usage(format!("unknown source `{source}`; known: {}", source_names().join(", "))))
        }
    };
}

crate::with_sources!(define_source_commands);

mod operate;
use operate::{
    check, config_show, plan, probe, record_report, record_source_failure, sync_all, write_metrics,
};

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// source.dataset the files hold, e.g. saltedcx.turn or dixa.message
    pub dataset: String,

    /// The UTC day the files cover: their partition date=YYYY-MM-DD (replaced as a whole)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: chrono::NaiveDate,

    /// The export files (all of this dataset and day, in the dataset's format); read, never changed
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The zone the files' local times are in (IANA name, e.g. Europe/Brussels): needed by
    /// datasets whose times carry no offset (Sparkcentral)
    #[arg(long, value_name = "ZONE", value_parser = window::parse_zone)]
    pub timezone: Option<chrono_tz::Tz>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// source.dataset to generate, e.g. saltedcx.turn or dixa.conversation
    pub dataset: String,
    /// The UTC day to generate
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: chrono::NaiveDate,
    /// Mean records per day of the source's main entity (Salted CX engagements, Dixa conversations)
    #[arg(long, alias = "engagements-per-day", value_name = "N")]
    pub per_day: Option<usize>,
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
    /// Propose a schema (TOML) for a dataset from a sample file (CSV, JSON array or XLSX), or
    /// redraw its declaration from what a lake received (--from-lake)
    #[command(group(clap::ArgGroup::new("sample").required(true).args(["file", "from_lake"])))]
    Draft {
        /// source.dataset the draft is for, e.g. khoros.user
        name: String,
        /// The sample file; its extension (.csv, .json, .xlsx) says how to read it
        file: Option<PathBuf>,
        /// Redraw the dataset's declaration from this lake's raw archive (or, for windows without
        /// raw files, the `_extra` values), merged with the declaration the table stands under
        #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
        from_lake: Option<String>,
        /// With --from-lake: the first window to sample
        #[arg(long, value_name = "T", requires = "from_lake")]
        from: Option<String>,
        /// With --from-lake: the end of the windows to sample, exclusive
        #[arg(long, value_name = "T", requires = "from_lake")]
        to: Option<String>,
        /// Rows to sample
        #[arg(long, default_value_t = 10_000, value_name = "N")]
        rows: u64,
        /// With --from-lake: your declarations, when the lake was written with them
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
pub struct StatusArgs {
    #[command(flatten)]
    pub dest: DestArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Exit 4 when a dataset's newest done window ended longer ago than this (e.g. 36h): a
    /// monitoring check. Covers the config file's sources, or every source in the lake
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub dest: DestArg,
    /// Only this source
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CurrentArgs {
    #[command(flatten)]
    pub dest: DestArg,
    /// The source whose datasets to refresh (default: every source in the lake)
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Datasets, comma separated (default: all; with several sources, source.dataset)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub datasets: Option<Vec<String>>,
    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas
    #[arg(long, env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub schemas: Option<PathBuf>,
    /// Rebuild from the whole history instead of applying the windows changed since the last
    /// refresh (the result is the same; this also compacts the table into one segment per date)
    #[arg(long)]
    pub full: bool,
    /// The leases expire this long after their holder's last heartbeat
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,
    /// How long to wait for a current table another run is refreshing
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub lease_wait: String,
    /// Memory a table's build may hold: its keys beyond a quarter of it go to temporary files
    #[arg(long, default_value = "256MiB", value_name = "SIZE")]
    pub memory_budget: String,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub dest: DestArg,
    /// Keep files removed (or never committed) less than this long ago, for time travel and for
    /// writers still running (e.g. 7d, 36h)
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub older_than: String,
    /// List what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The source whose tables to vacuum (default: every source in the lake)
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Also delete the raw archive of windows dated more than this before today (e.g. 90d);
    /// those windows can no longer be replayed
    #[arg(long, value_name = "DURATION")]
    pub raw_older_than: Option<String>,
    /// With --raw-older-than: the lake lease expires this long after the last heartbeat
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,
    /// With --raw-older-than: how long to wait for runs still syncing to finish
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub lease_wait: String,
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
    if let Some(threads) = cli.threads {
        crate::cores::configure(usize::from(threads));
    }
    // Only commands that land windows have metrics to write.
    let metrics_file = cli
        .metrics_file
        .clone()
        .filter(|_| matches!(cli.command, Command::Sync(_) | Command::Replay(_) | Command::Convert(_)));
    let syncing = match &cli.command {
        Command::Sync(SyncRequest { source: Some(command), .. }) => Some(sync_command_source(command)),
        _ => None,
    };
    // A run that lands windows stops cleanly on Ctrl-C or SIGTERM (see `crate::interrupt`).
    if matches!(cli.command, Command::Sync(_) | Command::Replay(_) | Command::Convert(_)) {
        crate::interrupt::listen();
    }
    let result = run_command(cli).await;
    if let Some(path) = metrics_file {
        if let (Err(_), Some(source)) = (&result, syncing) {
            record_source_failure(source);
        }
        write_metrics(&path).await?;
    }
    result
}

async fn run_command(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Sync(SyncRequest { source: Some(command), .. }) => run_sync_command(command).await,
        Command::Sync(request) => sync_all(request, cli.config_file.as_deref()).await,
        Command::Schema(command) => schema(command).await,
        Command::History(command) => run_history_command(command).await,
        Command::Status(args) => status(args, cli.config_file.as_deref()).await,
        Command::Drift(args) => drift(args).await,
        Command::Convert(args) => convert(args).await,
        Command::Current(args) => current(args).await,
        Command::Vacuum(args) => vacuum(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Forget(args) => forget(args).await,
        Command::Synth(args) => synth(args),
        Command::Emulator(command) => run_emulator_command(command).await,
        Command::Demo(args) => demo(args).await,
        Command::Config(ConfigCommand::Show) => config_show(cli.config_file.as_deref()),
        Command::Plan(args) => plan(args),
        Command::Check(args) => check(args, cli.config_file.as_deref()).await,
    }
}

/// Parses `90s`, `30m`, `2h`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    crate::units::parse_duration(text).map_err(UsageError)
}

fn load_registry(dir: Option<&Path>) -> Result<SchemaRegistry> {
    Ok(match dir {
        Some(dir) => SchemaRegistry::with_overrides(dir).map_err(|e| usage(e.to_string()))?,
        None => SchemaRegistry::embedded()?,
    })
}

/// The schemas of `names` (default: every dataset the source's schema files declare).
fn select_datasets(
    registry: &SchemaRegistry,
    source: &str,
    names: Option<&[String]>,
) -> Result<Vec<Arc<DatasetSchema>>> {
    let known: Vec<String> = registry.of_source(source).map(|s| s.dataset.clone()).collect();
    let names: Vec<String> = match names {
        None => known.clone(),
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
        if !known.contains(&name) {
            return Err(usage(format!("unknown dataset `{name}`; valid: {}", known.join(", "))));
        }
        if seen.insert(name.clone()) {
            schemas.push(registry.dataset(source, &name).map_err(|e| usage(e.to_string()))?);
        }
    }
    Ok(schemas)
}

/// A run id that sorts by start time and is safe as a path component.
pub fn new_run_id() -> String {
    pipeline::new_run_id()
}

impl OutputArgs {
    fn destination(&self) -> Result<Destination> {
        open_dest(&self.dest)
    }

    fn options(&self) -> Result<WriteOptions> {
        Ok(WriteOptions {
            max_rejects: RejectLimit::parse(&self.max_rejects)
                .map_err(|e| usage(format!("--max-rejects: {e}")))?,
            lock_ttl: parse_duration(&self.lock_ttl)?,
            on_new_column: self.on_new_column,
            on_type_mismatch: self.on_type_mismatch,
            format: self.format,
            current_tables: !self.no_current_tables,
            raw: self.raw.unwrap_or(if self.pii == PiiAction::Keep {
                RawPolicy::Keep
            } else {
                RawPolicy::Off
            }),
            pii: PiiPolicy { default: self.pii, key: PiiKey::from_env() },
            lease_wait: parse_duration(&self.lease_wait)?,
            memory: memory_budget(&self.memory_budget)?,
            ..WriteOptions::default()
        })
    }
}

/// `--memory-budget`: a size, at least what one conversion needs whatever its input.
fn memory_budget(text: &str) -> Result<MemoryBudget> {
    let bytes = budget::parse_size(text).map_err(|e| usage(format!("--memory-budget: {e}")))?;
    if bytes < budget::MIN_BUDGET {
        return Err(usage(format!(
            "--memory-budget {text}: at least {} MiB, what one conversion holds whatever its size (its column writers' pages and dictionaries, a chunk being decoded, an upload part)",
            budget::MIN_BUDGET >> 20
        )));
    }
    Ok(MemoryBudget::new(bytes))
}

/// `I/N` of `--shard`.
fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let parsed =
        text.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((index, count)) if count > 0 && index < count => Ok((index, count)),
        _ => Err(usage(format!("--shard `{text}`: write I/N with 0 <= I < N, e.g. 0/4"))),
    }
}

impl LakeArgs {
    /// The shard this worker syncs: `--shard I/N`, or `--shards N` with Kubernetes'
    /// `JOB_COMPLETION_INDEX`.
    fn shard(&self) -> Result<Option<(usize, usize)>> {
        if let Some(text) = &self.shard {
            return parse_shard(text).map(Some);
        }
        let Some(count) = self.shards else { return Ok(None) };
        let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
            usage("--shards N takes this worker's index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), which is not set; pass --shard I/N")
        })?;
        parse_shard(&format!("{}/{count}", index.trim())).map(Some)
    }

    fn options(&self) -> Result<WriteOptions> {
        Ok(WriteOptions {
            writer: PartWriterConfig {
                upload_chunk_bytes: self.upload_chunk_bytes.max(5 << 20),
                ..PartWriterConfig::default()
            },
            spool_dir: self.spool_dir.clone(),
            skip_done: self.skip_done,
            parallel_windows: usize::from(self.parallel_windows),
            ..self.output.options()?
        })
    }
}

/// The day of a `--from`/`--to` value, when given.
fn day_of(time: &Option<String>) -> Result<Option<chrono::NaiveDate>> {
    time.as_deref()
        .map(|t| window::parse_time(t).map(|t| t.date_naive()).map_err(|e| usage(e.to_string())))
        .transpose()
}

/// The destination a command was given: `--dest`, `CXLAKE_DEST` or `url` in `[destination]` of
/// the config file (which is why the flag is not marked required), else a usage error saying so.
fn open_dest(text: &str) -> Result<Destination> {
    if text.trim().is_empty() {
        return Err(usage(
            "no destination: pass --dest DIR|s3://BUCKET/PREFIX, set CXLAKE_DEST, or set `url` in [destination] of cxlake.toml",
        ));
    }
    Destination::parse(text).map_err(|e| usage(e.to_string()))
}

/// Like [`open_dest`], for commands that only look: a mistyped local path is an error, not a new
/// empty lake.
fn existing_dest(text: &str) -> Result<()> {
    if !text.trim().is_empty() && !text.contains("://") && !Path::new(text).exists() {
        return Err(usage(format!("destination {text} does not exist")));
    }
    Ok(())
}

/// A lease another run holds surfaces as [`crate::sink::lease::Locked`] (exit code 3).
fn lease_error(error: LockError) -> anyhow::Error {
    match error {
        LockError::Locked(locked) => (*locked).into(),
        e => e.into(),
    }
}

/// Takes the whole lake for a rewrite, once the runs syncing it have finished.
async fn exclusive_run(dest: &Destination, run_id: &str, ttl: &str, wait: &str) -> Result<RunGuard> {
    RunGuard::exclusive(dest, run_id, parse_duration(ttl)?, parse_duration(wait)?).await.map_err(lease_error)
}

/// The windows a source decides itself (a drop folder's days with new files), if it does.
async fn source_windows<S: Source>(
    source: &S,
    lake: &LakeArgs,
    records: &[crate::state::WindowRecord],
    datasets: &[Arc<DatasetSchema>],
) -> Result<Option<Vec<Window>>> {
    let from = day_of(&lake.from)?;
    let to = day_of(&lake.to)?.unwrap_or_else(|| Utc::now().date_naive());
    let done: std::collections::BTreeMap<chrono::NaiveDate, String> = records
        .iter()
        .filter(|r| r.status == crate::state::WindowStatus::Done && r.filter.is_none())
        .filter_map(|r| Some((r.date, r.export_id.clone()?)))
        .collect();
    let names: Vec<String> = datasets.iter().map(|d| d.dataset.clone()).collect();
    match source.plan_windows(from, to, &names, &done).await {
        Ok(windows) => Ok(windows),
        Err(e) if e.scope() == crate::sources::FailureScope::Run => Err(usage(e.to_string())),
        Err(e) => Err(anyhow::anyhow!(e.to_string())),
    }
}

async fn plan_windows(
    lake: &LakeArgs,
    records: &[crate::state::WindowRecord],
    source: &str,
    datasets: &[Arc<DatasetSchema>],
    filter: &Option<String>,
    zone: chrono_tz::Tz,
) -> Result<Vec<Window>> {
    // Days of one lake are counted in one zone: a window of another zone's day overlaps two of
    // this one's, and their rows would be landed twice.
    if let Some(other) = records.iter().find(|r| r.timezone.as_deref().unwrap_or("UTC") != zone.name()) {
        return Err(usage(format!(
            "{} in {} holds days of {} counted in {}; this sync counts days in {} — pass --timezone {} or use a separate --dest",
            source,
            lake.output.dest,
            other.date,
            other.timezone.as_deref().unwrap_or("UTC"),
            zone.name(),
            other.timezone.as_deref().unwrap_or("UTC"),
        )));
    }
    let now = Utc::now();
    let to = match &lake.to {
        Some(t) => window::parse_time_in(t, zone).map_err(|e| usage(e.to_string()))?,
        None => window::start_of_today_in(now, zone),
    };
    let windows = match &lake.from {
        Some(from) => {
            let from = window::parse_time_in(from, zone).map_err(|e| usage(e.to_string()))?;
            window::windows_between_in(from, to, now, zone).map_err(|e| usage(e.to_string()))?
        }
        None => {
            if filter.is_some() {
                return Err(usage(
                    "a filtered export (Salted CX --contact; Dixa --csids or --window-by) needs --from: it does not continue a lake",
                ));
            }
            let done: BTreeSet<_> = records
                .iter()
                .filter(|r| r.filter.is_none() && datasets.iter().all(|d| r.is_done_for(&d.dataset)))
                .map(|r| r.date)
                .collect();
            // Windows of this kind of export that a run began but did not finish (failed, or
            // killed while publishing): resuming starts no later than the first of them.
            let begun: BTreeSet<_> = records.iter().filter(|r| r.filter.is_none()).map(|r| r.date).collect();
            match window::resume_windows(&done, &begun, to, now, lake.lookback_days, zone) {
                Some(result) => result.map_err(|e| usage(e.to_string()))?,
                None => {
                    return Err(usage(
                        WindowError::NothingToResume {
                            source_name: source.to_string(),
                            dest: lake.output.dest.to_string(),
                        }
                        .to_string(),
                    ))
                }
            }
        }
    };
    // A one-contact export must never replace a full window, nor the other way round.
    for record in records {
        if record.filter != *filter && windows.iter().any(|w| w.date == record.date) {
            let held = if record.filter.is_some() {
                "a filtered export (--contact, --csids, --window-by)"
            } else {
                "a full export"
            };
            return Err(usage(format!(
                "window {} in {} holds {held}; this sync would replace it with a differently filtered one — use a separate --dest",
                record.date, lake.output.dest
            )));
        }
    }
    Ok(windows)
}

async fn sync<P: Platform>(args: SyncArgs<P::Args>) -> Result<i32> {
    let SyncArgs { source: source_args, lake } = args;
    let source_name = P::NAME;
    let registry = load_registry(lake.output.schemas.as_deref())?;
    let datasets = select_datasets(&registry, source_name, lake.datasets.as_deref())?;
    let options = lake.options()?;
    let source = P::source(&source_args).map_err(UsageError::from)?;
    let dest = lake.output.destination()?;
    let state = StateStore::new(dest.clone());
    let filter = P::filter(&source_args);
    // Read once: both ways of planning need what the lake holds.
    let records =
        state.load_windows(source_name).await.context("reading the destination's window records")?;
    let windows = match source_windows(&source, &lake, &records, &datasets).await? {
        Some(windows) => windows,
        None => {
            let zone = source.timezone().unwrap_or(chrono_tz::Tz::UTC);
            plan_windows(&lake, &records, source_name, &datasets, &filter, zone).await?
        }
    };
    let windows = match lake.shard()? {
        Some((index, count)) => {
            if lake.from.is_none() {
                return Err(usage("a shard needs --from (and --to): every worker must split the same range"));
            }
            let mine = window::shard(&windows, index, count).to_vec();
            tracing::info!(
                shard = index,
                shards = count,
                windows = mine.len(),
                "Syncing one shard of the range"
            );
            mine
        }
        None => windows,
    };
    check_pii_policy(&options.pii, &datasets, &records, &windows, source_name, &lake.output.dest, true)?;
    let rewrites = |_: &str, date| windows.iter().any(|w| w.date == date);
    check_declarations(&dest, &datasets, &records, rewrites, options.format).await?;
    let dates: Vec<chrono::NaiveDate> = windows.iter().map(|w| w.date).collect();
    check_pending_erasures(&dest, source_name, &dates).await?;
    // With nothing to do the run still announces itself and sweeps what killed runs left behind.
    let nothing_to_do = windows.is_empty();
    let options = WriteOptions { timezone: source.timezone(), ..options };
    let plan = SyncPlan::new(source, dest, datasets, windows, filter, options);
    check_format(&plan.dest, &lake.output.dest, source_name, &plan.datasets, plan.options.format).await?;
    if nothing_to_do {
        let report = run_holding_lock(&plan).await?;
        record_report(&report);
        println!(
            "nothing to do: every window of {source_name} up to the requested end is done in {}",
            lake.output.dest
        );
        // Current tables an earlier run could not refresh were refreshed (or not) all the same.
        for table in &report.current {
            println!("{}", table.summary());
        }
        if let Some(error) = &report.current_error {
            println!("current tables NOT refreshed: {error}");
        }
        return Ok(report.exit_code());
    }
    run_and_report(&plan, lake.output.report_json.as_deref()).await
}

/// Refuses a PII policy that cannot be applied (a hash without a key, a non-nullable column to
/// drop), and, unless `replay`ing, one that differs from what the lake's other windows hold: a
/// lake mixing policies keeps personal data where the user thinks it is gone.
fn check_pii_policy(
    policy: &PiiPolicy,
    datasets: &[Arc<DatasetSchema>],
    records: &[crate::state::WindowRecord],
    windows: &[Window],
    source: &str,
    dest: &str,
    refuse_changes: bool,
) -> Result<()> {
    for schema in datasets {
        let resolved = policy.for_dataset(schema).map_err(usage)?;
        let wanted = resolved.recorded(schema);
        if !refuse_changes {
            continue;
        }
        let untouched = records.iter().filter(|r| {
            r.status == crate::state::WindowStatus::Done && !windows.iter().any(|w| w.date == r.date)
        });
        for record in untouched {
            let Some(landed) = record.datasets.get(&schema.dataset) else { continue };
            if landed.pii != wanted {
                let show = |p: &Option<String>| p.clone().unwrap_or_else(|| "keep (as fetched)".into());
                return Err(usage(format!(
                    "window {} of {} was written with PII policy `{}`, and this run asks `{}`: the lake would mix them, keeping personal data where you expect none. Rewrite every window with the new policy from the raw archive: `cxlake replay {source} --dest {dest} --pii …` (same flags), or run with the lake's policy",
                    record.date,
                    schema.qualified_name(),
                    show(&landed.pii),
                    show(&wanted)
                )));
            }
        }
    }
    Ok(())
}

/// Runs a plan, prints its report (and writes it as JSON if asked); returns the exit code.
async fn run_and_report<S: Source>(plan: &SyncPlan<S>, report_json: Option<&Path>) -> Result<i32> {
    let report = run_holding_lock(plan).await?;
    record_report(&report);
    print!("{}", report.render());
    write_report_json(report_json, &report)?;
    Ok(report.exit_code())
}

/// Runs a plan; a lease held by another run surfaces as [`crate::sink::lease::Locked`] (exit code 3).
async fn run_holding_lock<S: Source>(plan: &SyncPlan<S>) -> Result<RunReport> {
    match pipeline::run_sync(plan).await {
        Ok(report) => Ok(report),
        Err(RunError::Lock(e)) => Err(lease_error(e)),
        // Nothing was attempted: a setup problem, exit 2, as `check` would say.
        Err(e @ RunError::Destination { .. }) => Err(usage(e.to_string())),
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
    let registry = load_registry(args.output.schemas.as_deref())?;
    let schema = registry.get(&args.dataset).map_err(|e| usage(e.to_string()))?;
    let source = schema.source.clone();
    if schema.needs_timezone() && args.timezone.is_none() {
        return Err(usage(format!(
            "{} has local times without offset; pass --timezone ZONE, the zone the export was configured with (e.g. Europe/Brussels)",
            schema.qualified_name()
        )));
    }
    for file in &args.files {
        if !file.is_file() {
            return Err(usage(format!("{} is not a readable file", file.display())));
        }
    }
    let local =
        LocalFiles { source: source.clone(), dataset: schema.dataset.clone(), files: args.files.clone() };
    let options = WriteOptions { parallel_windows: 1, timezone: args.timezone, ..args.output.options()? };
    let windows = vec![Window::new(args.date)];
    let dest = args.output.destination()?;
    let records = StateStore::new(dest.clone())
        .load_windows(&source)
        .await
        .context("reading the destination's window records")?;
    let datasets = vec![schema];
    check_pii_policy(&options.pii, &datasets, &records, &windows, &source, &args.output.dest, true)?;
    check_declarations(&dest, &datasets, &records, |_, date| date == args.date, options.format).await?;
    check_pending_erasures(&dest, &source, &[args.date]).await?;
    let plan = SyncPlan::new(local, dest, datasets, windows, None, options);
    check_format(&plan.dest, &args.output.dest, &source, &plan.datasets, plan.options.format).await?;
    run_and_report(&plan, args.output.report_json.as_deref()).await
}

/// Refuses a run whose declarations would leave a table whose files cannot be read together
/// (see [`crate::declaration`]): every done window it does not rewrite (`rewrites(dataset,
/// date)`) must have been written with the same columns or fewer. Columns it adds are reported.
async fn check_declarations(
    dest: &Destination,
    datasets: &[Arc<DatasetSchema>],
    records: &[crate::state::WindowRecord],
    rewrites: impl Fn(&str, chrono::NaiveDate) -> bool,
    format: OutputFormat,
) -> Result<()> {
    use crate::declaration::DeclarationError;
    let delta = format == OutputFormat::Delta;
    match crate::declaration::check(dest, datasets, records, rewrites, delta).await {
        Ok(checked) => {
            for (dataset, added) in checked.added {
                tracing::info!(dataset = %dataset, columns = %added.join(", "), "The declaration adds columns; older windows read them as null");
            }
            Ok(())
        }
        Err(e @ DeclarationError::Incompatible { .. }) => Err(usage(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Refuses windows that a `forget` began to erase and did not finish: it must be run again first,
/// or the lake would publish what the platform (or the archive) still holds of the person while
/// the erasure record says it is being removed.
async fn check_pending_erasures(dest: &Destination, source: &str, dates: &[chrono::NaiveDate]) -> Result<()> {
    let pending = crate::erase::pending_windows(dest, source).await?;
    if let Some((date, fingerprint)) = dates.iter().find_map(|d| pending.get(d).map(|f| (d, f))) {
        return Err(usage(format!(
            "window {date} of {source} is covered by erasure {fingerprint}, which a `cxlake forget` began and did not finish: run that forget again (same --email/--phone/--key) to complete it, then this command"
        )));
    }
    Ok(())
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

/// The format a source's datasets are in (Parquet for a new lake).
async fn lake_format(dest: &Destination, source: &str, registry: &SchemaRegistry) -> Result<OutputFormat> {
    for schema in registry.of_source(source) {
        if let Some(found) =
            delta::existing_format(dest, &layout::dataset_dir(source, &schema.dataset)).await?
        {
            return Ok(found);
        }
    }
    Ok(OutputFormat::Parquet)
}

/// The sources a lake-wide command covers: the one named (a platform, or any source with
/// schemas, e.g. a user's own for `convert`), or every source in the lake.
async fn lake_sources(
    dest: &Destination,
    registry: &SchemaRegistry,
    named: Option<&str>,
) -> Result<Vec<String>> {
    match named {
        Some(name) if registry.of_source(name).next().is_some() => Ok(vec![name.to_string()]),
        Some(name) => Err(usage(format!("unknown source `{name}`; known: {}", source_names().join(", ")))),
        None => Ok(StateStore::new(dest.clone()).sources().await?),
    }
}

async fn current(args: CurrentArgs) -> Result<i32> {
    let registry = load_registry(args.schemas.as_deref())?;
    let dest = open_dest(&args.dest)?;
    let sources = lake_sources(&dest, &registry, args.source.as_deref()).await?;
    let mut plans = Vec::new();
    for source in &sources {
        let names: Option<Vec<String>> = args.datasets.as_ref().map(|list| {
            list.iter()
                .filter_map(|d| match d.split_once('.') {
                    Some((s, dataset)) => (s == source).then(|| dataset.to_string()),
                    None => Some(d.clone()),
                })
                .collect()
        });
        if names.as_ref().is_some_and(|n| n.is_empty()) {
            continue;
        }
        let datasets = select_datasets(&registry, source, names.as_deref())?;
        // Each table under the declaration it was last written with, not narrowed to this run's.
        let records = StateStore::new(dest.clone()).load_windows(source).await?;
        let mut tables = Vec::with_capacity(datasets.len());
        for schema in &datasets {
            tables.push(crate::declaration::latest(&dest, schema, &records).await?);
        }
        let format = lake_format(&dest, source, &registry).await?;
        plans.push((source.clone(), tables, format));
    }
    let run_id = new_run_id();
    let (ttl, wait) = (parse_duration(&args.lock_ttl)?, parse_duration(&args.lease_wait)?);
    let memory = memory_budget(&args.memory_budget)?;
    let lock = RunGuard::start(&dest, &run_id, ttl).await.map_err(lease_error)?;
    let refreshed = async {
        let mut tables = Vec::new();
        for (source, datasets, format) in &plans {
            let lease =
                Lease::acquire_waiting(&dest, &LeaseName::current(source), &run_id, ttl, wait).await?;
            let refreshed =
                current::refresh_tables(&dest, source, datasets, *format, &run_id, &memory, args.full).await;
            lease.release().await?;
            tables.extend(refreshed?);
            StateStore::new(dest.clone()).delete(&layout::current_refresh_failure_file(source)).await?;
        }
        let lease = Lease::acquire_waiting(&dest, &LeaseName::views(), &run_id, ttl, wait).await?;
        let views = current::write_views(&dest, &registry).await;
        lease.release().await?;
        views?;
        Ok::<_, LockError>(tables)
    }
    .await;
    pipeline::remove_local_staging(&dest, &run_id);
    lock.release().await?;
    for table in refreshed.map_err(lease_error)? {
        println!("{}", table.summary());
    }
    println!("views: {}", dest.path(&layout::views_file()));
    Ok(exit_code::OK)
}

async fn forget(args: ForgetArgs) -> Result<i32> {
    use crate::erase::{EraseError, Erasure, Target};
    let registry = load_registry(args.schemas.as_deref())?;
    let dest = open_dest(&args.dest)?;
    let target = match (&args.email, &args.phone, &args.key) {
        (Some(email), _, _) if email.contains('@') => Target::email(email),
        (Some(_), _, _) => return Err(usage("--email: not an e-mail address")),
        (_, Some(phone), _) if phone.chars().any(|c| c.is_ascii_digit()) => Target::phone(phone),
        (_, Some(_), _) => return Err(usage("--phone: no digits in it")),
        (_, _, Some(key)) => {
            let parsed = key.split_once('=').and_then(|(qualified, id)| {
                let (source, dataset) = qualified.split_once('.')?;
                Some(Target::Key { source: source.into(), dataset: dataset.into(), id: id.trim().into() })
            });
            parsed.ok_or_else(|| {
                usage(format!("--key `{key}`: write it as source.dataset=ID, e.g. saltedcx.customer=c-17"))
            })?
        }
        _ => return Err(usage("name whom to forget: --email, --phone or --key")),
    };
    let run_id = new_run_id();
    let lock = exclusive_run(&dest, &run_id, &args.lock_ttl, &args.lease_wait).await?;
    let key = PiiKey::from_env();
    let erasure =
        Erasure { dest: &dest, registry: &registry, key, run_id: run_id.clone(), dry_run: args.dry_run };
    let outcome = if args.verify {
        erasure.verify(&target).await.map(|v| (None, Some(v)))
    } else {
        match erasure.run(&target).await {
            // Every erasure ends by proving itself: the whole lake scanned again.
            Ok(report) if !args.dry_run => erasure.verify(&target).await.map(|v| (Some(report), Some(v))),
            Ok(report) => Ok((Some(report), None)),
            Err(e) => Err(e),
        }
    };
    pipeline::remove_local_staging(&dest, &run_id);
    lock.release().await?;
    match outcome {
        Ok((report, verification)) => {
            if let Some(report) = report {
                print!("{}", report.render());
            }
            match verification {
                Some(v) => {
                    print!("{}", v.render());
                    Ok(if v.traces.is_empty() { exit_code::OK } else { exit_code::PARTIAL })
                }
                None => Ok(exit_code::OK),
            }
        }
        Err(EraseError::Usage(message)) => Err(usage(message)),
        Err(EraseError::Sink(e)) => Err(e.into()),
        Err(EraseError::Declaration(e)) => Err(e.into()),
    }
}

async fn replay(args: ReplayArgs) -> Result<i32> {
    let registry = load_registry(args.output.schemas.as_deref())?;
    if !source_names().contains(&args.source.as_str()) && registry.of_source(&args.source).next().is_none() {
        return Err(usage(format!("unknown source `{}`; valid: {}", args.source, source_names().join(", "))));
    }
    let datasets = select_datasets(&registry, &args.source, args.datasets.as_deref())?;
    let names: Vec<String> = datasets.iter().map(|d| d.dataset.clone()).collect();
    let dest = args.output.destination()?;
    let records = StateStore::new(dest.clone())
        .load_windows(&args.source)
        .await
        .context("reading the destination's window records")?;
    let planned = crate::replay::Replay::plan(
        &args.source,
        dest.clone(),
        records.clone(),
        day_of(&args.from)?,
        day_of(&args.to)?,
        &names,
        args.timezone,
    )
    .map_err(usage)?;
    for (date, reason) in &planned.skipped {
        println!("{date}: {reason}");
    }
    if planned.windows.is_empty() {
        println!(
            "nothing to replay: no done window of {} with raw files in {}",
            args.source, args.output.dest
        );
        return Ok(exit_code::OK);
    }
    let options = args.output.options()?;
    check_pii_policy(&options.pii, &datasets, &[], &planned.windows, &args.source, &args.output.dest, false)?;
    // A replay rewrites a window's dataset only where the archive holds its files.
    let rewrites = |dataset: &str, date: chrono::NaiveDate| {
        planned.windows.iter().any(|w| w.date == date)
            && records
                .iter()
                .any(|r| r.date == date && r.datasets.get(dataset).is_some_and(|d| !d.raw.is_empty()))
    };
    check_declarations(&dest, &datasets, &records, rewrites, options.format).await?;
    let dates: Vec<chrono::NaiveDate> = planned.windows.iter().map(|w| w.date).collect();
    check_pending_erasures(&dest, &args.source, &dates).await?;
    let options = WriteOptions {
        timezone: planned.replay.timezone(),
        replay: true,
        spool_dir: args.spool_dir.clone(),
        ..options
    };
    let plan = SyncPlan::new(planned.replay, dest, datasets, planned.windows, None, options);
    check_format(&plan.dest, &args.output.dest, &args.source, &plan.datasets, plan.options.format).await?;
    run_and_report(&plan, args.output.report_json.as_deref()).await
}

async fn vacuum(args: VacuumArgs) -> Result<i32> {
    let dest = open_dest(&args.dest)?;
    let retention = parse_duration(&args.older_than)?;
    let registry = SchemaRegistry::embedded()?;
    let sources = lake_sources(&dest, &registry, args.source.as_deref()).await?;
    let mut tables = 0;
    for source in &sources {
        for schema in registry.of_source(source) {
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
    }
    if tables == 0 {
        println!("no Delta tables in {}", args.dest);
    }
    if let Some(age) = &args.raw_older_than {
        let age = chrono::Duration::from_std(parse_duration(age)?)
            .map_err(|e| usage(format!("--raw-older-than: {e}")))?;
        let before = (Utc::now() - age).date_naive();
        let run_id = new_run_id();
        let lock = exclusive_run(&dest, &run_id, &args.lock_ttl, &args.lease_wait).await?;
        let pruned = async {
            let mut all = Vec::new();
            for source in &sources {
                all.push((source, crate::replay::prune_archive(&dest, source, before, args.dry_run).await?));
            }
            Ok::<_, crate::sink::SinkError>(all)
        }
        .await;
        lock.release().await?;
        let verb = if args.dry_run { "would delete" } else { "deleted" };
        for (source, pruned) in pruned? {
            println!(
                "_cxlake/raw/{source}: {verb} {} raw file(s), {:.1} MB, of {} window(s) before {before}",
                pruned.files,
                pruned.stored_bytes as f64 / 1e6,
                pruned.windows
            );
        }
    }
    Ok(exit_code::OK)
}

fn synth(args: SynthArgs) -> Result<i32> {
    let Some((source, dataset)) = args.dataset.split_once('.') else {
        return Err(usage(format!(
            "`{}`: name the dataset as source.dataset, e.g. saltedcx.turn",
            args.dataset
        )));
    };
    let out: Box<dyn std::io::Write> = match &args.out {
        Some(path) => {
            Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    let rows = synth_source(source, dataset, args.date, args.per_day, &mut out)?;
    std::io::Write::flush(&mut out).context("writing the synthetic data")?;
    tracing::info!(dataset = %args.dataset, rows, "Generated");
    Ok(exit_code::OK)
}

/// An IANA time zone name, with a message that says what is expected.
/// `cxlake schema draft`: the TOML draft for `name` from the sample at `file`.
fn schema_draft(name: &str, file: &Path, rows: u64) -> Result<String> {
    use crate::schema::draft::Sample;
    use crate::schema::FileFormat;
    let (source, dataset) = name
        .split_once('.')
        .filter(|(s, d)| layout::is_identifier(s) && layout::is_identifier(d))
        .ok_or_else(|| {
            usage(format!("`{name}` is not source.dataset in lowercase letters, digits and `_`"))
        })?;
    let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let open = |path: &Path| {
        std::fs::File::open(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
    };
    let bad = |e: String| usage(format!("{}: {e}", file.display()));
    let sample = match FileFormat::from_file_name(&file_name) {
        Some(FileFormat::Csv) => Sample::csv(open(file)?, rows).map_err(bad)?,
        Some(FileFormat::Json) => Sample::json_array(open(file)?, rows).map_err(bad)?,
        Some(FileFormat::Xlsx) => {
            let scratch = tempfile::tempdir().context("creating a scratch directory")?;
            let json = scratch.path().join("sheet.json");
            crate::decode::xlsx::to_json_array(file, &json, &file_name, None)
                .map_err(|e| usage(e.to_string()))?;
            Sample::json_array(open(&json)?, rows).map_err(bad)?
        }
        None => return Err(usage(format!("{}: name the sample .csv, .json or .xlsx", file.display()))),
    };
    Ok(sample.draft(source, dataset, &file_name, &file.display().to_string()))
}

/// `cxlake schema draft NAME --from-lake DEST`: the table's declaration redrawn from the lake.
async fn schema_redraw(
    name: &str,
    dest_text: &str,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    rows: u64,
    schemas: Option<&Path>,
) -> Result<String> {
    if !dest_text.contains("://") && !Path::new(dest_text).exists() {
        return Err(usage(format!("destination {dest_text} does not exist")));
    }
    let registry = load_registry(schemas)?;
    let declared = registry.get(name).map_err(|e| usage(e.to_string()))?;
    let dest = Destination::parse(dest_text).map_err(|e| usage(e.to_string()))?;
    let records = StateStore::new(dest.clone())
        .load_windows(&declared.source)
        .await
        .context("reading the destination's window records")?;
    let current = crate::declaration::latest(&dest, &declared, &records).await?;
    match crate::drift::redraw(&dest, &current, &records, from, to, rows).await {
        Ok(text) => Ok(text),
        Err(crate::drift::RedrawError::Read(message)) => Err(usage(message)),
        Err(crate::drift::RedrawError::Sink(e)) => Err(e.into()),
    }
}

async fn schema(command: SchemaCommand) -> Result<i32> {
    match command {
        SchemaCommand::List { schemas } => {
            let registry = load_registry(schemas.as_deref())?;
            println!("{:<22} {:>7}  {:<20} description", "dataset", "columns", "file");
            for s in registry.iter() {
                println!(
                    "{:<22} {:>7}  {:<20} {}",
                    s.qualified_name(),
                    s.columns.len(),
                    s.file,
                    s.description
                );
            }
        }
        SchemaCommand::Draft { name, file: Some(file), rows, .. } => {
            print!("{}", schema_draft(&name, &file, rows)?);
        }
        SchemaCommand::Draft { name, from_lake: Some(dest), from, to, rows, schemas, .. } => {
            print!(
                "{}",
                schema_redraw(&name, &dest, day_of(&from)?, day_of(&to)?, rows, schemas.as_deref()).await?
            );
        }
        SchemaCommand::Draft { .. } => return Err(usage("name a sample FILE or --from-lake DEST")),
        SchemaCommand::Show { name, schemas } => {
            let registry = load_registry(schemas.as_deref())?;
            let s = registry.get(&name).map_err(|e| usage(e.to_string()))?;
            let version = s.version.as_deref().map(|v| format!(", newest by {v}")).unwrap_or_default();
            println!(
                "{} — {} ({}; key {}{version})",
                s.qualified_name(),
                s.description,
                s.file,
                s.key_display()
            );
            println!("{:<38} {:<30} {:<8} {:<12} description", "column", "arrow type", "nullable", "pii");
            let yes_no = |b: bool| if b { "yes" } else { "no" };
            // A personal column shows what it holds and its own action, when it has one.
            let pii = |c: &crate::schema::Column| {
                use crate::schema::pii::PiiKind;
                let kind = match c.pii_kind {
                    PiiKind::Value => "yes",
                    PiiKind::Email => "email",
                    PiiKind::Phone => "phone",
                    PiiKind::Text => "text",
                };
                match (c.pii, c.pii_action) {
                    (false, _) => "no".to_string(),
                    (true, Some(action)) => format!("{kind}:{}", action.name()),
                    (true, None) => kind.to_string(),
                }
            };
            for c in &s.columns {
                let deprecated = if c.deprecated { " (deprecated)" } else { "" };
                println!(
                    "{:<38} {:<30} {:<8} {:<12} {}{deprecated}",
                    c.name,
                    c.column_type.to_string(),
                    yes_no(c.nullable),
                    pii(c),
                    c.description
                );
                for m in c.members() {
                    println!(
                        "{:<38} {:<30} {:<8} {:<12} {}",
                        format!("  .{}", m.name),
                        m.column_type.to_string(),
                        yes_no(m.nullable),
                        pii(m),
                        m.description
                    );
                }
            }
        }
    }
    Ok(exit_code::OK)
}

async fn history<P: Platform>(args: P::Args) -> Result<i32> {
    match P::history(&args).await {
        Ok(Some(text)) => {
            print!("{text}");
            Ok(exit_code::OK)
        }
        Ok(None) => Err(usage(format!("{} keeps no export history to show", P::TITLE))),
        Err(e) if e.scope() == FailureScope::Run => Err(usage(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// `cxlake drift`: per dataset, how the data differs from its declaration, and the fix. Exit 0
/// either way: drift is information (nothing was lost), not a failure.
async fn drift(args: DriftArgs) -> Result<i32> {
    existing_dest(&args.dest)?;
    let dest = open_dest(&args.dest)?;
    let drifts = crate::drift::lake_drift(&dest, args.source.as_deref()).await?;
    if args.json {
        let with_fix: Vec<serde_json::Value> = drifts
            .iter()
            .map(|d| {
                let mut value = serde_json::to_value(d).expect("drift serialises");
                value["fix"] = serde_json::Value::from(d.fix(&args.dest));
                value
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&with_fix)?);
    } else {
        print!("{}", crate::drift::render(&args.dest, &drifts));
    }
    Ok(exit_code::OK)
}

async fn status(args: StatusArgs, config: Option<&ConfigFile>) -> Result<i32> {
    // Looking must not create: a mistyped local path is an error, not a new empty lake.
    existing_dest(&args.dest)?;
    let dest = open_dest(&args.dest)?;
    let sources = crate::status::lake_status(&dest).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sources)?);
    } else {
        print!("{}", crate::status::render(&args.dest, &sources));
    }
    let Some(max_age) = &args.max_age else { return Ok(exit_code::OK) };
    let max_age =
        chrono::Duration::from_std(parse_duration(max_age)?).map_err(|e| usage(format!("--max-age: {e}")))?;
    let watched: Vec<String> = match config {
        Some(config) if !config.source_names().is_empty() => config.source_names(),
        _ => sources.iter().map(|s| s.source.clone()).collect(),
    };
    let now = Utc::now();
    let mut stale = Vec::new();
    for name in &watched {
        match sources.iter().find(|s| &s.source == name) {
            None => stale.push(format!("{name}: no done window in {}", args.dest)),
            Some(status) => {
                for (dataset, d) in &status.datasets {
                    match d.age(now) {
                        Some(age) if age <= max_age => {}
                        Some(age) => stale.push(format!(
                            "{name}.{dataset}: complete until {}, {} ago (more than --max-age {})",
                            d.complete_until.map(|t| t.to_rfc3339()).unwrap_or_default(),
                            crate::status::human_age(age),
                            args.max_age.as_deref().unwrap_or_default()
                        )),
                        None => stale.push(format!("{name}.{dataset}: no done window")),
                    }
                }
            }
        }
    }
    if stale.is_empty() {
        return Ok(exit_code::OK);
    }
    for line in &stale {
        eprintln!("STALE {line}");
    }
    Ok(exit_code::STALE)
}

async fn run_emulator<P: Platform>(args: EmulatorArgs<P::EmulatorArgs>) -> Result<i32> {
    let port = args.port.unwrap_or(P::EMULATOR_PORT);
    let emulator = P::start_emulator(&args.emulator, port).await.map_err(UsageError::from)?;
    println!("{} emulator listening on {}", P::TITLE, emulator.base_url());
    for (name, value) in emulator.env() {
        println!("  export {name}={value}");
    }
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = emulator.wait() => {}
    }
    Ok(exit_code::OK)
}

/// Syncs `args.days` days of one source from its emulator into the demo lake.
async fn demo_source<P: Platform>(args: &DemoArgs) -> Result<RunReport> {
    let (emulator, source) = P::demo().await.map_err(UsageError::from)?;
    println!("{} emulator running on {}", P::TITLE, emulator.base_url());
    let today = window::start_of_today(Utc::now());
    let from = today - chrono::Duration::days(i64::from(args.days.max(1)));
    let dest = open_dest(&args.dest)?;
    let registry = SchemaRegistry::embedded()?;
    let datasets = select_datasets(&registry, P::NAME, None)?;
    let names: Vec<String> = datasets.iter().map(|d| d.dataset.clone()).collect();
    let planned = source
        .plan_windows(Some(from.date_naive()), today.date_naive(), &names, &Default::default())
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let windows = match planned {
        Some(windows) => windows,
        None => window::windows_between(from, today, Utc::now())?,
    };
    let options = WriteOptions { timezone: source.timezone(), ..WriteOptions::default() };
    let plan = SyncPlan::new(source, dest, datasets, windows, None, options);
    println!(
        "syncing {} day(s) of {} from {} to {} into {}",
        plan.windows.len(),
        P::TITLE,
        from.date_naive(),
        today.date_naive(),
        args.dest
    );
    let report = run_holding_lock(&plan).await?;
    emulator.shutdown().await;
    print!("{}", report.render());
    Ok(report)
}

async fn demo(args: DemoArgs) -> Result<i32> {
    let started = Instant::now();
    let reports = demo_every_source(&args).await?;
    println!("\n{:<22} {:>9} {:>6} {:>12}", "dataset", "rows", "files", "bytes");
    for report in &reports {
        for (dataset, (rows, files, bytes)) in report.rows_by_dataset() {
            let name = format!("{}.{dataset}", report.source);
            println!("{name:<22} {rows:>9} {files:>6} {bytes:>12}");
        }
    }
    println!("done in {:.1} s\n", started.elapsed().as_secs_f64());
    for report in &reports {
        for table in &report.current {
            println!("{}", table.summary());
        }
    }
    let lake = args.dest.trim_end_matches('/');
    println!("\nEvery dataset as a DuckDB view (<source>_<dataset>, <source>_<dataset>_current):\n");
    println!("  duckdb -init {lake}/_cxlake/views.sql\n");
    println!("Or query the files directly (e.g. python -c \"import duckdb; duckdb.sql('''…''').show()\"):\n");
    println!(
        "  SELECT date, channel_type, count(*) AS engagements, round(avg(total_time) / 1000, 1) AS avg_seconds\n  \
         FROM read_parquet('{lake}/saltedcx/engagement/date=*/*.parquet', hive_partitioning = true)\n  \
         GROUP BY ALL ORDER BY date, channel_type;\n"
    );
    println!(
        "  -- Dixa ratings are nested: one row per rating with unnest\n  \
         SELECT id, r.rating_type, r.rating_score\n  \
         FROM read_parquet('{lake}/dixa/conversation/date=*/*.parquet', hive_partitioning = true),\n  \
              unnest(ratings) AS t(r)\n  \
         ORDER BY id LIMIT 10;"
    );
    println!(
        "\nHow each tenant's data differs from its declaration (every value is kept), and the fix:\n\n  \
         cxlake drift --dest {lake}"
    );
    Ok(reports.iter().map(RunReport::exit_code).max().unwrap_or(exit_code::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_are_path_safe() {
        let id = new_run_id();
        assert_eq!(id.len(), "20240101T000000Z-".len() + 8);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    /// Issue 22: the help says what the README says — every platform, the exit codes of the
    /// README's table, a line of its own per source, the emulators' ports.
    #[test]
    fn the_help_matches_the_registry_and_the_readme() {
        let readme = include_str!("../README.md");
        let about = long_about();
        for title in source_titles() {
            assert!(about.contains(title), "{title} missing from: {about}");
        }
        let table = readme.split("### Exit codes").nth(1).unwrap().split("\n## ").next().unwrap();
        let codes: Vec<i32> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| ")?.split(" |").next()?.trim().parse().ok())
            .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130], "the README's table");
        for code in codes {
            assert!(about.contains(&format!("{code} ")), "exit code {code} missing from: {about}");
        }
        use clap::CommandFactory;
        let command = Cli::command();
        let sync = command.find_subcommand("sync").unwrap();
        let mut seen = BTreeSet::new();
        for (name, title) in source_names().into_iter().zip(source_titles()) {
            let line = sync.find_subcommand(name).unwrap().get_about().unwrap().to_string();
            assert!(line.starts_with(title), "{name}: {line}");
            assert!(seen.insert(line), "{name}: the same line as another source");
        }
        let mut ports = BTreeSet::new();
        for (name, port) in source_emulator_ports() {
            if port == 0 {
                continue;
            }
            assert!(ports.insert(port), "{name}: port {port} taken twice");
            assert!(readme.contains(&format!("cxlake emulator {name} --port {port}")), "{name} {port}");
        }
        assert!(ports.len() >= 4);
    }

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_registered_source_has_schemas_and_a_sync_command() {
        use clap::CommandFactory;
        let registry = SchemaRegistry::embedded().unwrap();
        let command = Cli::command();
        let sync = command.find_subcommand("sync").unwrap();
        for name in source_names() {
            assert!(registry.of_source(name).next().is_some(), "{name} has no schemas");
            assert!(sync.find_subcommand(name).is_some(), "no `sync {name}`");
        }
        assert_eq!(source_names(), ["saltedcx", "dixa", "khoros", "loop", "sparkcentral"]);
    }
}
