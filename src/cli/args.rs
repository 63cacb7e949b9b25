//! The command line's declarations: every subcommand's arguments, each shared argument declared
//! once ([`DestArg`], [`SchemasArg`], [`LeaseArgs`], [`OutputArgs`]) and flattened where it is
//! used. Turning them into requests is the face's ([`super`]); checking those against the lake
//! is the planner's ([`crate::plan`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::registry::{EmulatorCommand, HistoryCommand, SyncCommand};
use crate::decode::TypeMismatchPolicy;
use crate::pipeline::NewColumnPolicy;
use crate::plan::{OutputFormat, RawPolicy};
use crate::schema::pii::PiiAction;
use crate::window;

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
    /// dbt: the lake as a sources file for dbt-duckdb
    #[command(subcommand)]
    Dbt(DbtCommand),
}

/// `cxlake dbt …`.
#[derive(Debug, Subcommand)]
pub enum DbtCommand {
    /// Write a sources.yml for dbt-duckdb: one source per platform in the lake, a table per
    /// dataset and current table with its external_location, descriptions, PII flags, freshness
    /// on _cxlake_loaded_at and unique + not_null tests on each current table's key
    Sources(DbtSourcesArgs),
}

#[derive(Debug, Args)]
pub struct DbtSourcesArgs {
    #[command(flatten)]
    pub dest: DestArg,
    /// Write it to this file (e.g. models/cxlake_sources.yml) instead of standard output
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// `dbt source freshness` warns when a table's newest row was loaded longer ago than this,
    /// and fails at twice it
    #[arg(long, default_value = "36h", value_name = "DURATION")]
    pub max_age: String,
    #[command(flatten)]
    pub schemas: SchemasArg,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub dest: DestArg,
    #[command(flatten)]
    pub schemas: SchemasArg,
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

/// `--schemas`: a directory of the user's declarations, over the built-in ones.
#[derive(Debug, Clone, Args)]
pub struct SchemasArg {
    /// Directory with <source>/<dataset>.toml files overriding the built-in schemas (`cxlake
    /// schema draft` writes one)
    #[arg(long = "schemas", env = "CXLAKE_SCHEMAS", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `--memory-budget`: what the process's work may hold at once.
#[derive(Debug, Clone, Args)]
pub struct MemoryArg {
    /// Memory for the work running at once: conversions across datasets and windows, current-table
    /// builds (whose keys beyond a quarter of it go to temporary files), e.g. 256MiB, 1GiB; a large
    /// file's conversion takes up to 224 MiB, a small one little
    #[arg(long = "memory-budget", default_value = "256MiB", value_name = "SIZE")]
    pub budget: String,
}

/// How long a run's leases live without a heartbeat, and how long it waits for another's.
#[derive(Debug, Clone, Args)]
pub struct LeaseArgs {
    /// A run's leases (on windows, tables, the lake) expire this long after their last
    /// heartbeat (a killed run's on another host are taken over after it; on this host at once)
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub lock_ttl: String,

    /// How long to wait for windows, tables or the lake another run is working on, before
    /// leaving them to it (exit code 3)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub lease_wait: String,
}

/// Where the lake is and how windows are written: shared by `sync` and `convert`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub dest: DestArg,

    #[command(flatten)]
    pub schemas: SchemasArg,

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

    #[command(flatten)]
    pub leases: LeaseArgs,

    /// Also write the run report as JSON to this file
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,

    /// Send OpenLineage run events (START, then COMPLETE or FAIL) to this endpoint (a base URL:
    /// `<url>/api/v1/lineage`); OPENLINEAGE_API_KEY, if set, is sent to it as a bearer token
    #[arg(long, env = "OPENLINEAGE_URL", value_name = "URL")]
    pub openlineage_url: Option<String>,

    /// Append OpenLineage run events to this file, one JSON object per line (instead of a URL)
    #[arg(long, value_name = "PATH")]
    pub openlineage_file: Option<PathBuf>,

    #[command(flatten)]
    pub memory: MemoryArg,

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
    #[command(flatten)]
    pub schemas: SchemasArg,
    #[command(flatten)]
    pub leases: LeaseArgs,
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
    #[arg(long, hide = true, default_value_t = crate::plan::UPLOAD_CHUNK_BYTES)]
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
    /// Port on 127.0.0.1 (0 picks a free one; default: the source's own, which its help names)
    #[arg(long)]
    pub port: Option<u16>,
    #[command(flatten)]
    pub emulator: T,
}

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
        #[command(flatten)]
        schemas: SchemasArg,
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
        #[command(flatten)]
        schemas: SchemasArg,
    },
    /// Print the data dictionary: every dataset's description, kind, key and columns (type,
    /// nullable, PII, description), and the load columns every table has
    Docs {
        /// Markdown for people, JSON for catalogs and scripts
        #[arg(long, value_enum, default_value_t = DocsFormat::Markdown)]
        format: DocsFormat,
        /// Only this source's datasets
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        /// Write it to this file instead of standard output
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        #[command(flatten)]
        schemas: SchemasArg,
    },
    /// Show one dataset's columns: name, Arrow type, nullable, pii, description
    Show {
        /// source.dataset, e.g. saltedcx.engagement
        name: String,
        #[command(flatten)]
        schemas: SchemasArg,
    },
}

/// `schema docs --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DocsFormat {
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dest: DestArg,
    /// Print JSON instead of a table (the same as --format json)
    #[arg(long)]
    pub json: bool,
    /// text for people, json for machines
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// Exit 4 when a dataset's newest done window ended longer ago than this (e.g. 36h): a
    /// monitoring check. Covers the config file's sources, or every source in the lake
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Draw a coverage calendar: per source and dataset one cell per day, from the lake's first
    /// window to its last — done, failed, missing, or in the lookback
    #[arg(long)]
    pub calendar: bool,
    /// With --calendar: only the last N days
    #[arg(long, value_name = "N", requires = "calendar", value_parser = clap::value_parser!(u32).range(1..))]
    pub days: Option<u32>,
    /// With --calendar: the done windows a nightly run exports again (default: each source's
    /// `lookback_days` in the config file, else 0)
    #[arg(long, value_name = "N", requires = "calendar")]
    pub lookback_days: Option<u32>,
}

/// `status --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
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
    #[command(flatten)]
    pub schemas: SchemasArg,
    /// Rebuild from the whole history instead of applying the windows changed since the last
    /// refresh (the result is the same; this also compacts the table into one segment per date)
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub leases: LeaseArgs,
    #[command(flatten)]
    pub memory: MemoryArg,
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
    #[command(flatten)]
    pub leases: LeaseArgs,
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
