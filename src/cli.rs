//! The command line, the top layer: parsing (with the config file's settings), the per-source
//! subcommands, dispatch, printing and exit codes. Arguments become requests here; the planner
//! ([`crate::plan`]) checks them against the lake and builds the plan, so nothing below this
//! module sees unvalidated input and nothing here branches on a table format.
//!
//! Per-source subcommands (`sync <source>`, `history <source>`, `emulator <source>`) are built
//! from the installed registry ([`registry`]): each source declares its own arguments
//! and environment variables in its folder, and the lake/write arguments are declared once
//! ([`args`]) and flattened into every one of them. This is where `anyhow` is used; a
//! [`UsageError`] or a [`PlanError::Usage`] in the chain means "nothing was attempted" (exit
//! code 2), a lease another run holds exit code 3.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Parser;

use crate::budget::{self, MemoryBudget};
use crate::config::ConfigFile;
use crate::pipeline::{RejectLimit, SyncPlan, WriteOptions};
use crate::plan::{self, Destination, Lake, LeaseTimes, PlanError, RawPolicy};
use crate::report::{exit_code, RunReport};
use crate::schema::pii::{PiiAction, PiiKey, PiiPolicy};
use crate::sources::{FailureScope, Platform, RunningEmulator, SetupError, Source};

use crate::state::StateStore;
use crate::window;

#[macro_use]
mod output;

mod args;
mod demo;
mod lake;
mod operate;
mod registry;
mod schema;

pub use args::*;
use demo::demo;
use lake::{current, dbt_sources, drift, forget, status, vacuum};
pub use registry::{
    install, registry, CommandKind, EmulatorCommand, HistoryCommand, Registry, SourceCommand, SourceEntry,
    SyncCommand,
};
use schema::{schema, synth};

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

/// The whole command line with the platforms of `registry`: parse, run, report; the process's
/// exit code. The `cxlake` binary runs it with [`Registry::builtin`]; a binary with a platform
/// of its own (a test-only source) with that one added.
pub fn main(registry: Registry) -> i32 {
    crate::heap::tune_allocator();
    install(registry);
    let cli = parse(std::env::args_os().collect());
    crate::logging::init(&cli);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", render_error(&error));
            exit_code_of(&error)
        }
    };
    // Dropping the runtime waits for blocking tasks; a finished run has none worth waiting for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
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
    let planned = |test: fn(&PlanError) -> bool| {
        error.chain().any(|cause| cause.downcast_ref::<PlanError>().is_some_and(test))
    };
    if planned(PlanError::is_usage)
        || error.chain().any(|cause| cause.is::<UsageError>() || cause.is::<crate::config::ConfigError>())
    {
        exit_code::USAGE
    } else if planned(PlanError::is_locked) || error.chain().any(|cause| cause.is::<plan::Locked>()) {
        exit_code::LOCKED
    } else {
        exit_code::PARTIAL
    }
}

/// The installed platforms, by name.
pub fn source_names() -> Vec<&'static str> {
    registry().names()
}

/// The installed platforms as people write them.
pub fn source_titles() -> Vec<&'static str> {
    registry().iter().map(|e| e.title()).collect()
}

/// Each platform's demo query (`{lake}` for the demo lake's root).
pub fn source_demo_queries() -> Vec<(&'static str, &'static str)> {
    registry().iter().map(|e| (e.name(), e.demo_query())).collect()
}

/// Each platform's emulator port (0: its emulator serves no port).
pub fn source_emulator_ports() -> Vec<(&'static str, u16)> {
    registry().iter().map(|e| (e.name(), e.emulator_port())).collect()
}

/// A platform's secrets: `(config key, environment variable)`.
pub fn source_secrets(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    registry().get(name).map(|e| e.secrets())
}

async fn run_sync_command(command: SyncCommand) -> Result<i32> {
    command.entry().sync(command.matches()).await
}

/// Builds a `sync <source>` command's source and makes its cheap call.
async fn probe_sync_command(command: &SyncCommand) -> Result<String, String> {
    command.entry().probe(command.matches()).await
}

/// Syncs every platform from its emulator into the demo lake.
async fn demo_every_source(args: &DemoArgs) -> Result<Vec<RunReport>> {
    let mut reports = Vec::new();
    for entry in registry().iter() {
        reports.push(entry.demo(args).await?);
    }
    Ok(reports)
}

fn synth_source(
    source: &str,
    dataset: &str,
    date: chrono::NaiveDate,
    per_day: Option<usize>,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    match registry().get(source) {
        Some(entry) => entry.synth(dataset, date, per_day, out),
        None => Err(usage(format!("unknown source `{source}`; known: {}", source_names().join(", ")))),
    }
}

use operate::{
    check, config_show, plan as plan_shards, record_report, record_source_failure, sync_all, write_metrics,
};

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
        Command::Sync(SyncRequest { source: Some(command), .. }) => Some(command.source),
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
        Command::History(command) => command.entry().history(command.matches()).await,
        Command::Status(args) => status(args, cli.config_file.as_deref()).await,
        Command::Drift(args) => drift(args).await,
        Command::Convert(args) => convert(args).await,
        Command::Current(args) => current(args).await,
        Command::Vacuum(args) => vacuum(args).await,
        Command::Replay(args) => replay(args).await,
        Command::Forget(args) => forget(args).await,
        Command::Synth(args) => synth(args),
        Command::Emulator(command) => command.entry().emulator(command.matches()).await,
        Command::Demo(args) => demo(args).await,
        Command::Config(ConfigCommand::Show) => config_show(cli.config_file.as_deref()),
        Command::Plan(args) => plan_shards(args),
        Command::Check(args) => check(args, cli.config_file.as_deref()).await,
        Command::Dbt(DbtCommand::Sources(args)) => dbt_sources(args).await,
    }
}

/// Parses `90s`, `30m`, `2h`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    crate::units::parse_duration(text).map_err(UsageError)
}

/// A run id that sorts by start time and is safe as a path component.
pub fn new_run_id() -> String {
    crate::pipeline::new_run_id()
}

impl LeaseArgs {
    fn times(&self) -> Result<LeaseTimes> {
        Ok(LeaseTimes { ttl: parse_duration(&self.lock_ttl)?, wait: parse_duration(&self.lease_wait)? })
    }
}

impl OutputArgs {
    fn lake(&self) -> Result<Lake> {
        Ok(Lake::open(&self.dest)?)
    }

    fn options(&self) -> Result<WriteOptions> {
        let leases = self.leases.times()?;
        Ok(WriteOptions {
            max_rejects: RejectLimit::parse(&self.max_rejects)
                .map_err(|e| usage(format!("--max-rejects: {e}")))?,
            lock_ttl: leases.ttl,
            lease_wait: leases.wait,
            on_new_column: self.on_new_column,
            on_type_mismatch: self.on_type_mismatch,
            format: self.format,
            current_tables: !self.no_current_tables,
            // Raw files hold personal data as fetched: not kept when the lake hashes or drops it.
            raw: self.raw.unwrap_or(if self.pii == PiiAction::Keep {
                RawPolicy::Keep
            } else {
                RawPolicy::Off
            }),
            pii: PiiPolicy { default: self.pii, key: PiiKey::from_env() },
            memory: memory_budget(&self.memory.budget)?,
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

    fn windows(&self) -> Result<plan::WindowRequest> {
        Ok(plan::WindowRequest {
            from: self.from.clone(),
            to: self.to.clone(),
            lookback_days: self.lookback_days,
            shard: self.shard()?,
        })
    }

    fn options(&self) -> Result<WriteOptions> {
        let mut options = WriteOptions {
            spool_dir: self.spool_dir.clone(),
            skip_done: self.skip_done,
            parallel_windows: usize::from(self.parallel_windows),
            ..self.output.options()?
        };
        options.writer.upload_chunk_bytes = self.upload_chunk_bytes.max(5 << 20);
        Ok(options)
    }
}

async fn sync<P: Platform>(args: SyncArgs<P::Args>) -> Result<i32> {
    let SyncArgs { source: source_args, lake: lake_args } = args;
    let registry = plan::registry(lake_args.output.schemas.dir.as_deref())?;
    let datasets = plan::select_datasets(&registry, P::NAME, lake_args.datasets.as_deref())?;
    let options = lake_args.options()?;
    let source = P::source(&source_args).map_err(UsageError::from)?;
    let lake = lake_args.output.lake()?;
    let filter = plan::Filter { fingerprint: P::filter(&source_args), flags: P::FILTER_FLAGS };
    let plan = plan::sync(source, &lake, datasets, &lake_args.windows()?, filter, options).await?;
    if !plan.windows.is_empty() {
        return run_and_report(&plan, &lake_args.output, "sync").await;
    }
    // With nothing to do the run still announces itself and sweeps what killed runs left behind.
    let report = plan::run(&plan).await?;
    record_report(&report);
    outln!("nothing to do: every window of {} up to the requested end is done in {}", P::NAME, lake.text);
    // Current tables an earlier run could not refresh were refreshed (or not) all the same.
    for table in &report.current {
        outln!("{}", table.summary());
    }
    if let Some(error) = &report.current_error {
        outln!("current tables NOT refreshed: {error}");
    }
    Ok(report.exit_code())
}

/// Runs a plan of `command`, with its OpenLineage events if asked; prints its report (and
/// writes it as JSON if asked); returns the exit code.
async fn run_and_report<S: Source>(plan: &SyncPlan<S>, output: &OutputArgs, command: &str) -> Result<i32> {
    let target =
        crate::lineage::Target::from_args(output.openlineage_url.as_deref(), output.openlineage_file.clone())
            .map_err(usage)?;
    let lineage = target.map(|target| {
        crate::lineage::RunLineage::new(
            target,
            command,
            plan.source.name(),
            plan.source.lineage_input(),
            crate::lineage::Written {
                dest: &plan.dest,
                datasets: &plan.datasets,
                current_tables: plan.options.current_tables,
            },
            &plan.run_id,
        )
    });
    if let Some(lineage) = &lineage {
        lineage.start().await;
    }
    let report = match plan::run(plan).await {
        Ok(report) => report,
        Err(e) => {
            if let Some(lineage) = &lineage {
                lineage.fail(&e.to_string()).await;
            }
            return Err(e.into());
        }
    };
    if let Some(lineage) = &lineage {
        lineage.end(&report).await;
    }
    record_report(&report);
    out!("{}", report.render());
    if let Some(path) = &output.report_json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the run report to {}", path.display()))?;
    }
    Ok(report.exit_code())
}

async fn convert(args: ConvertArgs) -> Result<i32> {
    let registry = plan::registry(args.output.schemas.dir.as_deref())?;
    let request = plan::ConvertRequest {
        dataset: args.dataset,
        date: args.date,
        files: args.files,
        timezone: args.timezone,
    };
    let plan = plan::convert(&registry, &args.output.lake()?, request, args.output.options()?).await?;
    run_and_report(&plan, &args.output, "convert").await
}

async fn replay(args: ReplayArgs) -> Result<i32> {
    let registry = plan::registry(args.output.schemas.dir.as_deref())?;
    let request = plan::ReplayRequest {
        source: args.source.clone(),
        datasets: args.datasets.clone(),
        from: plan::day_of(args.from.as_deref())?,
        to: plan::day_of(args.to.as_deref())?,
        timezone: args.timezone,
    };
    let options = WriteOptions { spool_dir: args.spool_dir.clone(), ..args.output.options()? };
    let lake = args.output.lake()?;
    let planned = plan::replay(&registry, &lake, &request, options).await?;
    for (date, reason) in &planned.skipped {
        outln!("{date}: {reason}");
    }
    match planned.plan {
        Some(plan) => run_and_report(&plan, &args.output, "replay").await,
        None => {
            outln!("nothing to replay: no done window of {} with raw files in {}", args.source, lake.text);
            Ok(exit_code::OK)
        }
    }
}

async fn history<P: Platform>(args: P::Args) -> Result<i32> {
    match P::history(&args).await {
        Ok(Some(text)) => {
            out!("{text}");
            Ok(exit_code::OK)
        }
        Ok(None) => Err(usage(format!("{} keeps no export history to show", P::TITLE))),
        Err(e) if e.scope() == FailureScope::Run => Err(usage(e.to_string())),
        Err(e) => Err(e.into()),
    }
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
        let registry = crate::schema::SchemaRegistry::embedded().unwrap();
        let command = Cli::command();
        let sync = command.find_subcommand("sync").unwrap();
        for name in source_names() {
            assert!(registry.of_source(name).next().is_some(), "{name} has no schemas");
            assert!(sync.find_subcommand(name).is_some(), "no `sync {name}`");
        }
        // Each platform shows its own data in the demo.
        for (name, query) in source_demo_queries() {
            assert!(query.contains(&format!("{{lake}}/{name}/")), "{name}: {query}");
        }
    }
}
