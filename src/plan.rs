//! The planning layer: turns what a command asked for (a request the face built from arguments
//! and the config file) and what the lake already holds into a validated plan, and runs it.
//!
//! It owns every check made before anything is written — the schemas and datasets asked for,
//! window selection (continue the lake, a range, a shard, a source's own windows), the PII
//! policy, the declarations the lake's files were written under, erasures left unfinished, the
//! table format already on disk — and the lake-wide leases `current`, `forget` and `vacuum`
//! take. A [`PlanError::Usage`] means nothing was attempted; the face maps it to exit code 2
//! and a lease another run holds to exit code 3. Nothing here parses a command line or prints.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};

use crate::budget::MemoryBudget;
use crate::current::CurrentReport;
use crate::pipeline::{self, RunError, SyncPlan, WriteOptions};
use crate::replay::Replay;
use crate::report::RunReport;
use crate::schema::pii::PiiPolicy;
use crate::schema::{DatasetSchema, SchemaRegistry};
use crate::sink::lease::{Lease, LeaseName, LockError, RunGuard};
use crate::sink::table::Table;
use crate::sink::{layout, SinkError};
use crate::sources::local::LocalFiles;
use crate::sources::{FailureScope, Source};
use crate::state::{StateStore, WindowRecord, WindowStatus};
use crate::window::{self, Window};

pub use crate::sink::lease::Locked;
/// What the face hands on from the storage and sink layers: its arguments name these types.
pub use crate::sink::raw::RawPolicy;
pub use crate::sink::{Destination, OutputFormat};

/// Bytes buffered per file before its upload turns multipart, unless `sync` says otherwise.
pub const UPLOAD_CHUNK_BYTES: usize = crate::sink::parquet::PartWriterConfig::DEFAULT_UPLOAD_CHUNK;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// What was asked cannot be done as asked; nothing was attempted (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// Another run holds what this one needs (exit code 3).
    #[error(transparent)]
    Locked(Box<Locked>),
    #[error(transparent)]
    Lock(LockError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Declaration(Box<crate::declaration::DeclarationError>),
    #[error("{0}")]
    Source(crate::sources::SourceError),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
}

impl PlanError {
    fn usage(message: impl Into<String>) -> PlanError {
        PlanError::Usage(message.into())
    }

    pub fn is_usage(&self) -> bool {
        matches!(self, PlanError::Usage(_))
    }

    pub fn is_locked(&self) -> bool {
        matches!(self, PlanError::Locked(_))
    }
}

impl From<LockError> for PlanError {
    fn from(error: LockError) -> PlanError {
        match error {
            LockError::Locked(locked) => PlanError::Locked(locked),
            e => PlanError::Lock(e),
        }
    }
}

impl From<RunError> for PlanError {
    fn from(error: RunError) -> PlanError {
        match error {
            RunError::Lock(e) => e.into(),
            // The destination refused the first writes: a setup problem, as `check` would say.
            e @ RunError::Destination { .. } => PlanError::Usage(e.to_string()),
            e => PlanError::Run(Box::new(e)),
        }
    }
}

impl From<crate::declaration::DeclarationError> for PlanError {
    fn from(error: crate::declaration::DeclarationError) -> PlanError {
        use crate::declaration::DeclarationError;
        match error {
            e @ DeclarationError::Incompatible { .. } => PlanError::Usage(e.to_string()),
            e => PlanError::Declaration(Box::new(e)),
        }
    }
}

impl From<crate::erase::EraseError> for PlanError {
    fn from(error: crate::erase::EraseError) -> PlanError {
        use crate::erase::EraseError;
        match error {
            EraseError::Usage(message) => PlanError::Usage(message),
            EraseError::Sink(e) => PlanError::Sink(e),
            EraseError::Declaration(e) => e.into(),
        }
    }
}

/// A lake as the user named it and as it is opened.
#[derive(Debug, Clone)]
pub struct Lake {
    /// As given: `--dest`, `CXLAKE_DEST` or the config file's `[destination]`.
    pub text: String,
    pub dest: Destination,
}

impl Lake {
    /// The lake at `text`; an empty `text` means no destination was given anywhere.
    pub fn open(text: &str) -> Result<Lake, PlanError> {
        if text.trim().is_empty() {
            return Err(PlanError::usage(
                "no destination: pass --dest DIR|s3://BUCKET/PREFIX, set CXLAKE_DEST, or set `url` in [destination] of cxlake.toml",
            ));
        }
        let dest = Destination::parse(text).map_err(|e| PlanError::usage(e.to_string()))?;
        Ok(Lake { text: text.to_string(), dest })
    }

    /// Like [`Lake::open`], for commands that only look: a mistyped local path is an error, not
    /// a new empty lake.
    pub fn existing(text: &str) -> Result<Lake, PlanError> {
        if !text.trim().is_empty() && !text.contains("://") && !Path::new(text).exists() {
            return Err(PlanError::usage(format!("destination {text} does not exist")));
        }
        Lake::open(text)
    }

    /// Where `current` writes the DuckDB views of every table.
    pub fn views_file(&self) -> String {
        self.dest.path(&layout::views_file()).to_string()
    }

    async fn records(&self, source: &str) -> Result<Vec<WindowRecord>, PlanError> {
        Ok(StateStore::new(self.dest.clone()).load_windows(source).await?)
    }

    /// The sources a lake-wide command covers: the one named (a platform, or any source with
    /// schemas, e.g. a user's own for `convert`), or every source in the lake.
    pub async fn sources(
        &self,
        registry: &SchemaRegistry,
        named: Option<&str>,
    ) -> Result<Vec<String>, PlanError> {
        match named {
            Some(name) if registry.of_source(name).next().is_some() => Ok(vec![name.to_string()]),
            Some(name) => Err(PlanError::usage(format!(
                "unknown source `{name}`; known: {}",
                registry.sources().join(", ")
            ))),
            None => Ok(StateStore::new(self.dest.clone()).sources().await?),
        }
    }
}

/// The built-in schemas, or those of `dir` over them (`--schemas`).
pub fn registry(dir: Option<&Path>) -> Result<SchemaRegistry, PlanError> {
    match dir {
        Some(dir) => SchemaRegistry::with_overrides(dir).map_err(|e| PlanError::usage(e.to_string())),
        // The built-in schemas not loading is a defect of the build, not of the request.
        None => Ok(SchemaRegistry::embedded()?),
    }
}

/// The schemas of `names` (default: every dataset the source's schema files declare).
pub fn select_datasets(
    registry: &SchemaRegistry,
    source: &str,
    names: Option<&[String]>,
) -> Result<Vec<Arc<DatasetSchema>>, PlanError> {
    let known: Vec<String> = registry.of_source(source).map(|s| s.dataset.clone()).collect();
    let names: Vec<String> = match names {
        None => known.clone(),
        Some(list) => {
            let list: Vec<String> =
                list.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if list.is_empty() {
                return Err(PlanError::usage("--datasets is empty; leave it out to export every dataset"));
            }
            list
        }
    };
    let mut seen = BTreeSet::new();
    let mut schemas = Vec::new();
    for name in names {
        if !known.contains(&name) {
            return Err(PlanError::usage(format!("unknown dataset `{name}`; valid: {}", known.join(", "))));
        }
        if seen.insert(name.clone()) {
            schemas.push(registry.dataset(source, &name).map_err(|e| PlanError::usage(e.to_string()))?);
        }
    }
    Ok(schemas)
}

/// The day of a `--from`/`--to` value, when given.
pub fn day_of(time: Option<&str>) -> Result<Option<NaiveDate>, PlanError> {
    time.map(|t| window::parse_time(t).map(|t| t.date_naive()).map_err(|e| PlanError::usage(e.to_string())))
        .transpose()
}

/// Which windows a `sync` asked for.
#[derive(Debug, Clone, Default)]
pub struct WindowRequest {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Also re-export the last N done windows (a run that continues the lake).
    pub lookback_days: u32,
    /// Only shard I of N of the range.
    pub shard: Option<(usize, usize)>,
}

/// A filtered export (one contact, some agents): its fingerprint, and the flags that made it
/// as the platform's users write them.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub fingerprint: Option<String>,
    pub flags: &'static str,
}

/// Plans `sync <source>`: the windows to export and every check against what the lake holds.
pub async fn sync<S: Source>(
    source: S,
    lake: &Lake,
    datasets: Vec<Arc<DatasetSchema>>,
    request: &WindowRequest,
    filter: Filter,
    options: WriteOptions,
) -> Result<SyncPlan<S>, PlanError> {
    // Read once: both ways of planning need what the lake holds.
    let records = lake.records(source.name()).await?;
    let windows = match source_windows(&source, request, &records, &datasets).await? {
        Some(windows) => windows,
        None => {
            let zone = source.timezone().unwrap_or(chrono_tz::Tz::UTC);
            range_windows(lake, request, &records, source.name(), &datasets, &filter, zone)?
        }
    };
    let windows = match request.shard {
        Some((index, count)) => {
            if request.from.is_none() {
                return Err(PlanError::usage(
                    "a shard needs --from (and --to): every worker must split the same range",
                ));
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
    let options = WriteOptions { timezone: source.timezone(), ..options };
    let checks = Checks { lake, source: source.name(), datasets: &datasets, records: &records };
    checks.pii(&options.pii, &windows, true)?;
    checks.all(&windows, |_, date| windows.iter().any(|w| w.date == date), options.format).await?;
    Ok(SyncPlan::new(source, lake.dest.clone(), datasets, windows, filter.fingerprint, options))
}

/// What `convert` was given: one dataset's files of one day.
#[derive(Debug, Clone)]
pub struct ConvertRequest {
    pub dataset: String,
    pub date: NaiveDate,
    pub files: Vec<PathBuf>,
    pub timezone: Option<chrono_tz::Tz>,
}

/// Plans `convert`: the files as a local source of one window.
pub async fn convert(
    registry: &SchemaRegistry,
    lake: &Lake,
    request: ConvertRequest,
    options: WriteOptions,
) -> Result<SyncPlan<LocalFiles>, PlanError> {
    let schema = registry.get(&request.dataset).map_err(|e| PlanError::usage(e.to_string()))?;
    let source = schema.source.clone();
    if schema.needs_timezone() && request.timezone.is_none() {
        return Err(PlanError::usage(format!(
            "{} has local times without offset; pass --timezone ZONE, the zone the export was configured with (e.g. Europe/Brussels)",
            schema.qualified_name()
        )));
    }
    if let Some(file) = request.files.iter().find(|f| !f.is_file()) {
        return Err(PlanError::usage(format!("{} is not a readable file", file.display())));
    }
    let local = LocalFiles { source: source.clone(), dataset: schema.dataset.clone(), files: request.files };
    let options = WriteOptions { parallel_windows: 1, timezone: request.timezone, ..options };
    let windows = vec![Window::new(request.date)];
    let records = lake.records(&source).await?;
    let datasets = vec![schema];
    let checks = Checks { lake, source: &source, datasets: &datasets, records: &records };
    checks.pii(&options.pii, &windows, true)?;
    checks.all(&windows, |_, date| date == request.date, options.format).await?;
    Ok(SyncPlan::new(local, lake.dest.clone(), datasets, windows, None, options))
}

/// What `replay` was asked to rebuild.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub source: String,
    /// Default: every dataset of the source.
    pub datasets: Option<Vec<String>>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub timezone: Option<chrono_tz::Tz>,
}

/// A planned replay: the windows left out and why, and the plan (none when nothing is left).
pub struct PlannedReplay {
    pub skipped: Vec<(NaiveDate, String)>,
    pub plan: Option<SyncPlan<Replay>>,
}

/// Plans `replay`: the done windows of the range whose raw files the archive holds.
pub async fn replay(
    registry: &SchemaRegistry,
    lake: &Lake,
    request: &ReplayRequest,
    options: WriteOptions,
) -> Result<PlannedReplay, PlanError> {
    if registry.of_source(&request.source).next().is_none() {
        return Err(PlanError::usage(format!(
            "unknown source `{}`; valid: {}",
            request.source,
            registry.sources().join(", ")
        )));
    }
    let datasets = select_datasets(registry, &request.source, request.datasets.as_deref())?;
    let source = request.source.as_str();
    let names: Vec<String> = datasets.iter().map(|d| d.dataset.clone()).collect();
    let records = lake.records(source).await?;
    let planned = Replay::plan(
        source,
        lake.dest.clone(),
        records.clone(),
        request.from,
        request.to,
        &names,
        request.timezone,
    )
    .map_err(PlanError::Usage)?;
    if planned.windows.is_empty() {
        return Ok(PlannedReplay { skipped: planned.skipped, plan: None });
    }
    let checks = Checks { lake, source, datasets: &datasets, records: &records };
    // A replay may change the policy: it rewrites every window it covers from the archive.
    checks.pii(&options.pii, &planned.windows, false)?;
    // It rewrites a window's dataset only where the archive holds its files.
    let rewrites = |dataset: &str, date: NaiveDate| {
        planned.windows.iter().any(|w| w.date == date)
            && records
                .iter()
                .any(|r| r.date == date && r.datasets.get(dataset).is_some_and(|d| !d.raw.is_empty()))
    };
    checks.all(&planned.windows, rewrites, options.format).await?;
    let options = WriteOptions { timezone: planned.replay.timezone(), replay: true, ..options };
    let plan = SyncPlan::new(planned.replay, lake.dest.clone(), datasets, planned.windows, None, options);
    Ok(PlannedReplay { skipped: planned.skipped, plan: Some(plan) })
}

/// Runs a plan under the run's leases.
pub async fn run<S: Source>(plan: &SyncPlan<S>) -> Result<RunReport, PlanError> {
    Ok(pipeline::run_sync(plan).await?)
}

/// The windows a source decides itself (a drop folder's days with new files), if it does.
async fn source_windows<S: Source>(
    source: &S,
    request: &WindowRequest,
    records: &[WindowRecord],
    datasets: &[Arc<DatasetSchema>],
) -> Result<Option<Vec<Window>>, PlanError> {
    let from = day_of(request.from.as_deref())?;
    let to = day_of(request.to.as_deref())?.unwrap_or_else(|| Utc::now().date_naive());
    let done: BTreeMap<NaiveDate, String> = records
        .iter()
        .filter(|r| r.status == WindowStatus::Done && r.filter.is_none())
        .filter_map(|r| Some((r.date, r.export_id.clone()?)))
        .collect();
    let names: Vec<String> = datasets.iter().map(|d| d.dataset.clone()).collect();
    match source.plan_windows(from, to, &names, &done).await {
        Ok(windows) => Ok(windows),
        Err(e) if e.scope() == FailureScope::Run => Err(PlanError::usage(e.to_string())),
        Err(e) => Err(PlanError::Source(e)),
    }
}

/// The day windows of `--from`/`--to`, or those that continue the lake.
fn range_windows(
    lake: &Lake,
    request: &WindowRequest,
    records: &[WindowRecord],
    source: &str,
    datasets: &[Arc<DatasetSchema>],
    filter: &Filter,
    zone: chrono_tz::Tz,
) -> Result<Vec<Window>, PlanError> {
    let bad = |e: window::WindowError| PlanError::usage(e.to_string());
    // Days of one lake are counted in one zone: a window of another zone's day overlaps two of
    // this one's, and their rows would be landed twice.
    if let Some(other) = records.iter().find(|r| r.timezone.as_deref().unwrap_or("UTC") != zone.name()) {
        let theirs = other.timezone.as_deref().unwrap_or("UTC");
        return Err(PlanError::usage(format!(
            "{source} in {} holds days of {} counted in {theirs}; this sync counts days in {} — pass --timezone {theirs} or use a separate --dest",
            lake.text,
            other.date,
            zone.name(),
        )));
    }
    let now = Utc::now();
    let to = match &request.to {
        Some(t) => window::parse_time_in(t, zone).map_err(bad)?,
        None => window::start_of_today_in(now, zone),
    };
    let windows = match &request.from {
        Some(from) => {
            let from = window::parse_time_in(from, zone).map_err(bad)?;
            window::windows_between_in(from, to, now, zone).map_err(bad)?
        }
        None => {
            if filter.fingerprint.is_some() {
                return Err(PlanError::usage(format!(
                    "a filtered export ({}) needs --from: it does not continue a lake",
                    filter.flags
                )));
            }
            let done: BTreeSet<_> = records
                .iter()
                .filter(|r| r.filter.is_none() && datasets.iter().all(|d| r.is_done_for(&d.dataset)))
                .map(|r| r.date)
                .collect();
            // Windows of this kind of export that a run began but did not finish (failed, or
            // killed while publishing): resuming starts no later than the first of them.
            let begun: BTreeSet<_> = records.iter().filter(|r| r.filter.is_none()).map(|r| r.date).collect();
            match window::resume_windows(&done, &begun, to, now, request.lookback_days, zone) {
                Some(result) => result.map_err(bad)?,
                None => {
                    return Err(bad(window::WindowError::NothingToResume {
                        source_name: source.to_string(),
                        dest: lake.text.clone(),
                    }))
                }
            }
        }
    };
    // A filtered export must never replace a full window, nor the other way round.
    for record in records {
        if record.filter != filter.fingerprint && windows.iter().any(|w| w.date == record.date) {
            let held = if record.filter.is_some() {
                "a filtered export".to_string()
            } else {
                "a full export".to_string()
            };
            let this = if filter.fingerprint.is_some() {
                format!("a filtered one ({})", filter.flags)
            } else {
                "a full one".to_string()
            };
            return Err(PlanError::usage(format!(
                "window {} in {} holds {held}; this sync would replace it with {this} — use a separate --dest",
                record.date, lake.text
            )));
        }
    }
    Ok(windows)
}

/// The checks every run that writes windows passes before it starts.
struct Checks<'a> {
    lake: &'a Lake,
    source: &'a str,
    datasets: &'a [Arc<DatasetSchema>],
    records: &'a [WindowRecord],
}

impl Checks<'_> {
    /// Refuses a PII policy that cannot be applied (a hash without a key, a non-nullable column
    /// to drop), and, if `refuse_changes`, one that differs from what the lake's other windows
    /// hold: a lake mixing policies keeps personal data where the user thinks it is gone.
    fn pii(&self, policy: &PiiPolicy, windows: &[Window], refuse_changes: bool) -> Result<(), PlanError> {
        for schema in self.datasets {
            let wanted = policy.for_dataset(schema).map_err(PlanError::Usage)?.recorded(schema);
            if !refuse_changes {
                continue;
            }
            let untouched = self
                .records
                .iter()
                .filter(|r| r.status == WindowStatus::Done && !windows.iter().any(|w| w.date == r.date));
            for record in untouched {
                let Some(landed) = record.datasets.get(&schema.dataset) else { continue };
                if landed.pii != wanted {
                    let show = |p: &Option<String>| p.clone().unwrap_or_else(|| "keep (as fetched)".into());
                    return Err(PlanError::usage(format!(
                        "window {} of {} was written with PII policy `{}`, and this run asks `{}`: the lake would mix them, keeping personal data where you expect none. Rewrite every window with the new policy from the raw archive: `cxlake replay {} --dest {} --pii …` (same flags), or run with the lake's policy",
                        record.date,
                        schema.qualified_name(),
                        show(&landed.pii),
                        show(&wanted),
                        self.source,
                        self.lake.text,
                    )));
                }
            }
        }
        Ok(())
    }

    /// The declarations, the unfinished erasures and the format on disk.
    async fn all(
        &self,
        windows: &[Window],
        rewrites: impl Fn(&str, NaiveDate) -> bool,
        format: OutputFormat,
    ) -> Result<(), PlanError> {
        self.declarations(rewrites, format).await?;
        self.pending_erasures(windows).await?;
        self.format(format).await
    }

    /// Refuses a run whose declarations would leave a table whose files cannot be read together
    /// (see [`crate::declaration`]): every done window it does not rewrite (`rewrites(dataset,
    /// date)`) must have been written with the same columns or fewer. Columns it adds are reported.
    async fn declarations(
        &self,
        rewrites: impl Fn(&str, NaiveDate) -> bool,
        format: OutputFormat,
    ) -> Result<(), PlanError> {
        let table_wide = format.schema_is_table_wide();
        let checked =
            crate::declaration::check(&self.lake.dest, self.datasets, self.records, rewrites, table_wide)
                .await?;
        for (dataset, added) in checked.added {
            tracing::info!(dataset = %dataset, columns = %added.join(", "), "The declaration adds columns; older windows read them as null");
        }
        Ok(())
    }

    /// Refuses windows that a `forget` began to erase and did not finish: it must be run again
    /// first, or the lake would publish what the platform (or the archive) still holds of the
    /// person while the erasure record says it is being removed.
    async fn pending_erasures(&self, windows: &[Window]) -> Result<(), PlanError> {
        let pending = crate::erase::pending_windows(&self.lake.dest, self.source).await?;
        if let Some((date, fingerprint)) =
            windows.iter().find_map(|w| pending.get(&w.date).map(|f| (w.date, f)))
        {
            return Err(PlanError::usage(format!(
                "window {date} of {} is covered by erasure {fingerprint}, which a `cxlake forget` began and did not finish: run that forget again (same --email/--phone/--key) to complete it, then this command",
                self.source
            )));
        }
        Ok(())
    }

    /// Refuses to write one format into a dataset directory that holds the other: plain Parquet
    /// publishing would delete a Delta table's files, and a Delta table ignores loose files.
    async fn format(&self, format: OutputFormat) -> Result<(), PlanError> {
        for schema in self.datasets {
            let found = Table::found(&self.lake.dest, self.source, &schema.dataset).await?;
            if let Some(found) = found.filter(|found| *found != format) {
                return Err(PlanError::usage(format!(
                    "{}/{}/{} holds {} data; rerun with --format {} or use another --dest",
                    self.lake.text,
                    self.source,
                    schema.dataset,
                    found.name(),
                    found.name()
                )));
            }
        }
        Ok(())
    }
}

/// How long a lease lives without a heartbeat, and how long to wait for one another run holds.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimes {
    pub ttl: Duration,
    pub wait: Duration,
}

/// What a lake-wide command holds while it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// A run among others (refreshing current tables).
    Shared,
    /// The whole lake, once the runs syncing it have finished (a rewrite).
    Exclusive,
}

/// Runs `work` (given the run id) while holding the lake's run lease; releases it and this run's
/// local staging whatever the outcome.
async fn holding<T, F, Fut>(lake: &Lake, hold: Hold, times: LeaseTimes, work: F) -> Result<T, PlanError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<T, PlanError>>,
{
    let run_id = pipeline::new_run_id();
    let guard = match hold {
        Hold::Shared => RunGuard::start(&lake.dest, &run_id, times.ttl).await?,
        Hold::Exclusive => RunGuard::exclusive(&lake.dest, &run_id, times.ttl, times.wait).await?,
    };
    let outcome = work(run_id.clone()).await;
    pipeline::remove_local_staging(&lake.dest, &run_id);
    guard.release().await?;
    outcome
}

/// The current tables of `sources` rebuilt (incrementally, or `full`), and the views file.
pub async fn refresh_current(
    lake: &Lake,
    registry: &SchemaRegistry,
    sources: &[String],
    datasets: Option<&[String]>,
    full: bool,
    memory: &MemoryBudget,
    times: LeaseTimes,
) -> Result<Vec<CurrentReport>, PlanError> {
    let mut plans = Vec::new();
    for source in sources {
        // `source.dataset`, or a bare name when one source is covered.
        let names: Option<Vec<String>> = datasets.map(|list| {
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
        let schemas = select_datasets(registry, source, names.as_deref())?;
        // Each table under the declaration it was last written with, not narrowed to this run's.
        let records = lake.records(source).await?;
        let mut tables = Vec::with_capacity(schemas.len());
        for schema in &schemas {
            tables.push(crate::declaration::latest(&lake.dest, schema, &records).await?);
        }
        let format = lake_format(lake, source, registry).await?;
        plans.push((source.clone(), tables, format));
    }
    let dest = &lake.dest;
    holding(lake, Hold::Shared, times, |run_id| async move {
        let mut reports = Vec::new();
        for (source, tables, format) in &plans {
            let name = LeaseName::current(source);
            let lease = Lease::acquire_waiting(dest, &name, &run_id, times.ttl, times.wait).await?;
            let refreshed =
                crate::current::refresh_tables(dest, source, tables, *format, &run_id, memory, full).await;
            lease.release().await?;
            reports.extend(refreshed?);
            StateStore::new(dest.clone()).clear(&layout::current_refresh_failure_file(source)).await;
        }
        let lease = Lease::acquire_waiting(dest, &LeaseName::views(), &run_id, times.ttl, times.wait).await?;
        let views = crate::current::write_views(dest, registry).await;
        lease.release().await?;
        views?;
        Ok(reports)
    })
    .await
}

/// The format a source's datasets are in (Parquet for a new lake).
async fn lake_format(
    lake: &Lake,
    source: &str,
    registry: &SchemaRegistry,
) -> Result<OutputFormat, PlanError> {
    for schema in registry.of_source(source) {
        if let Some(found) = Table::found(&lake.dest, source, &schema.dataset).await? {
            return Ok(found);
        }
    }
    Ok(OutputFormat::default())
}

/// What `forget` does: erase (or, with `dry_run`, say what it would), then prove it; or only
/// prove (`verify_only`).
pub struct ForgetRequest {
    pub target: crate::erase::Target,
    pub dry_run: bool,
    pub verify_only: bool,
}

/// Erases a person from the whole lake, holding it alone; returns what was removed and what the
/// scan that follows found.
pub async fn forget(
    lake: &Lake,
    registry: &SchemaRegistry,
    request: &ForgetRequest,
    times: LeaseTimes,
) -> Result<(Option<crate::erase::ErasureReport>, Option<crate::erase::Verification>), PlanError> {
    use crate::erase::Erasure;
    holding(lake, Hold::Exclusive, times, |run_id| async move {
        let key = crate::schema::pii::PiiKey::from_env();
        let erasure = Erasure { dest: &lake.dest, registry, key, run_id, dry_run: request.dry_run };
        let target = &request.target;
        if request.verify_only {
            return Ok((None, Some(erasure.verify(target).await?)));
        }
        let report = erasure.run(target).await?;
        // Every erasure ends by proving itself: the whole lake scanned again.
        let verification = if request.dry_run { None } else { Some(erasure.verify(target).await?) };
        Ok((Some(report), verification))
    })
    .await
}

/// Deletes the files no Delta table version of `sources` references any more, once older than
/// `retention`; returns each table vacuumed with the files deleted (or, `dry_run`, to delete).
pub async fn vacuum_tables(
    lake: &Lake,
    registry: &SchemaRegistry,
    sources: &[String],
    retention: Duration,
    dry_run: bool,
) -> Result<Vec<(String, Vec<String>)>, PlanError> {
    let mut vacuumed = Vec::new();
    for source in sources {
        for schema in registry.of_source(source) {
            let Some(format) = Table::found(&lake.dest, source, &schema.dataset).await? else { continue };
            let history = Table::history(&lake.dest, source, schema, format);
            for table in [history, Table::current(&lake.dest, source, schema, format)] {
                if let Some(outcome) = table.vacuum(retention, dry_run).await? {
                    vacuumed.push((table.dir(), outcome.files));
                }
            }
        }
    }
    Ok(vacuumed)
}

/// Deletes the raw archive of `sources`' windows dated before `before`, holding the lake alone.
pub async fn prune_raw(
    lake: &Lake,
    sources: &[String],
    before: NaiveDate,
    dry_run: bool,
    times: LeaseTimes,
) -> Result<Vec<(String, crate::replay::Pruned)>, PlanError> {
    holding(lake, Hold::Exclusive, times, |_| async move {
        let mut all = Vec::new();
        for source in sources {
            all.push((
                source.clone(),
                crate::replay::prune_archive(&lake.dest, source, before, dry_run).await?,
            ));
        }
        Ok(all)
    })
    .await
}

/// `schema draft NAME --from-lake DEST`: the table's declaration redrawn from what the lake
/// received.
pub async fn redraw(
    registry: &SchemaRegistry,
    lake: &Lake,
    name: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    rows: u64,
) -> Result<String, PlanError> {
    let declared = registry.get(name).map_err(|e| PlanError::usage(e.to_string()))?;
    let records = lake.records(&declared.source).await?;
    let current = crate::declaration::latest(&lake.dest, &declared, &records).await?;
    match crate::drift::redraw(&lake.dest, &current, &records, from, to, rows).await {
        Ok(text) => Ok(text),
        Err(crate::drift::RedrawError::Read(message)) => Err(PlanError::Usage(message)),
        Err(crate::drift::RedrawError::Sink(e)) => Err(e.into()),
    }
}
