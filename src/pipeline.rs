//! The sync pipeline: windows → fetch → decode → stage → check rejects → publish → record.
//!
//! Windows run one after another, oldest first, and each is all-or-nothing: its datasets are
//! decoded and written to staging in parallel, and only if every one of them succeeds (within
//! `--max-rejects`) are they published together and the window recorded as done. A failing
//! window is reported and the run moves on (ripgrep's "keep going, report at the end"); only a
//! failure that would repeat for every window (bad key, bad filter) stops the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures::future::try_join_all;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use crate::budget::MemoryBudget;
use crate::current;
use crate::decode::{
    DecodeError, DecodeStats, DecodedBatch, Drift, FileContext, RejectedRow, TypeMismatchPolicy,
};
use crate::report::{DatasetReport, RunReport, WindowOutcome, WindowReport};
use crate::schema::load::LoadStamp;
use crate::schema::pii::{DatasetPii, PiiPolicy};
use crate::schema::{DatasetSchema, SchemaRegistry};
use crate::sink::commit;
use crate::sink::delta::WindowCommit;
use crate::sink::layout;
use crate::sink::lease::{Lease, LeaseName, LockError, Locked, RunGuard};
use crate::sink::parquet::{PartWriter, PartWriterConfig, WrittenFile};
use crate::sink::raw::{self, RawFile, RawPolicy};
use crate::sink::table::Table;
use crate::sink::{Destination, OutputFormat, SinkError};
use crate::sources::{
    CreationCap, ExportJournal, FailureScope, FetchedFile, PreviousExport, Source, SourceError,
};
use crate::state::{
    DatasetRecord, ExportIntent, StateStore, WindowRecord, WindowStatus, STATE_FORMAT_VERSION,
};
use crate::window::Window;

/// How many rejected rows a file may have before its window is not committed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RejectLimit {
    Rows(u64),
    Percent(f64),
}

impl RejectLimit {
    pub fn parse(text: &str) -> Result<RejectLimit, String> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(RejectLimit::Percent(v)),
                _ => Err(format!("`{text}` is not a percentage between 0% and 100%")),
            }
        } else {
            t.parse::<u64>()
                .map(RejectLimit::Rows)
                .map_err(|_| format!("`{text}` is not a row count or a percentage like 0.5%"))
        }
    }

    pub fn exceeded_by(&self, stats: &DecodeStats) -> bool {
        match *self {
            RejectLimit::Rows(n) => stats.rows_rejected > n,
            RejectLimit::Percent(p) => {
                stats.rows_rejected > 0 && (stats.rows_rejected as f64) * 100.0 > p * stats.rows_read as f64
            }
        }
    }
}

impl std::fmt::Display for RejectLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectLimit::Rows(n) => write!(f, "{n} rows"),
            RejectLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A validated sync: everything the pipeline needs, nothing it has to check again.
pub struct SyncPlan<S> {
    pub source: S,
    pub dest: Destination,
    pub datasets: Vec<Arc<DatasetSchema>>,
    pub windows: Vec<Window>,
    pub run_id: String,
    /// Fingerprint of an export filter (`--contact`), recorded with each window.
    pub filter: Option<String>,
    pub options: WriteOptions,
}

/// How a plan writes to the lake: everything of a [`SyncPlan`] that is not the source, the
/// destination, the datasets, the windows or the filter.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// How many rejected rows a file may have before its window is not committed.
    pub max_rejects: RejectLimit,
    pub writer: PartWriterConfig,
    /// Where downloads are spooled (a fresh temporary directory inside it).
    pub spool_dir: Option<PathBuf>,
    /// How long a lease lives without a heartbeat (a dead run's leases expire).
    pub lock_ttl: std::time::Duration,
    /// What a column in the file that the schema does not declare does to its window.
    pub on_new_column: NewColumnPolicy,
    /// What a value that does not fit its declared column does (after lossless coercions).
    pub on_type_mismatch: TypeMismatchPolicy,
    /// Windows in flight at once: the next window's export and downloads overlap this one's
    /// conversions (results are still reported oldest first).
    pub parallel_windows: usize,
    /// Bounds the conversions running at once, across datasets and windows.
    pub memory: MemoryBudget,
    /// Plain Hive-partitioned Parquet, or Delta tables.
    pub format: OutputFormat,
    /// Rebuild the datasets' current tables (and the views file) after committing windows.
    pub current_tables: bool,
    /// The zone local times in the files are in (`--timezone`; Sparkcentral).
    pub timezone: Option<chrono_tz::Tz>,
    /// Whether fetched files are archived (zstd) with their window, for replay.
    pub raw: RawPolicy,
    /// The files come from the raw archive (`cxlake replay`): they stay as archived, and the
    /// window record says it was replayed.
    pub replay: bool,
    /// What personal columns become (`--pii`, `pii_action`).
    pub pii: PiiPolicy,
    /// How long to wait for a window or table another run is working on (then: exit code 3).
    pub lease_wait: std::time::Duration,
    /// Leave windows that are already done as they are (a backfill's retry continues instead
    /// of redoing); by default a requested window is re-exported and replaces itself.
    pub skip_done: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            max_rejects: RejectLimit::Rows(0),
            writer: PartWriterConfig::default(),
            spool_dir: None,
            lock_ttl: std::time::Duration::from_secs(120),
            on_new_column: NewColumnPolicy::Ignore,
            on_type_mismatch: TypeMismatchPolicy::Extra,
            parallel_windows: 2,
            memory: MemoryBudget::default(),
            format: OutputFormat::Parquet,
            current_tables: true,
            timezone: None,
            raw: RawPolicy::Keep,
            replay: false,
            pii: PiiPolicy::default(),
            lease_wait: std::time::Duration::from_secs(30 * 60),
            skip_done: false,
        }
    }
}

impl<S: Source> SyncPlan<S> {
    /// The one way a validated plan is built: a fresh run id, `filter` recorded with each window.
    pub fn new(
        source: S,
        dest: Destination,
        datasets: Vec<Arc<DatasetSchema>>,
        windows: Vec<Window>,
        filter: Option<String>,
        options: WriteOptions,
    ) -> SyncPlan<S> {
        // The source's zone is the zone of its days and files unless the caller says otherwise
        // (a replay gives the recorded one).
        let timezone = options.timezone.or_else(|| source.timezone());
        let options = WriteOptions { parallel_windows: options.parallel_windows.max(1), timezone, ..options };
        SyncPlan { source, dest, datasets, windows, run_id: new_run_id(), filter, options }
    }
}

/// A run id that sorts by start time and is safe as a path component.
pub fn new_run_id() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%SZ"), &suffix[..8])
}

/// `--on-new-column`: a column the platform added that the schema does not know yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NewColumnPolicy {
    /// Load the declared columns, warn about the new one (its values are not loaded).
    #[default]
    Ignore,
    /// Fail the window, so the schema is extended before any data lands without it.
    Fail,
}

/// Why a run could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The destination refused the run's first writes: nothing was attempted.
    #[error("cannot write to the destination {dest} ({source}); nothing was written. The user running cxlake must be able to create, read, list and delete files there (a directory, or a bucket's objects); `cxlake check --dest {dest}` tests each")]
    Destination { dest: String, source: SinkError },
}

#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    TooManyRejects(Box<TooManyRejects>),
    #[error("{file}: column `{column}` is not in schema {schema} (--on-new-column fail); add it to the schema with --schemas, or pass --on-new-column ignore")]
    NewColumn { file: String, column: String, schema: String },
    #[error("cannot use the spool directory: {0}")]
    Spool(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl WindowError {
    fn scope(&self) -> FailureScope {
        match self {
            WindowError::Source(e) => e.scope(),
            WindowError::Lock(_) => FailureScope::Run,
            _ => FailureScope::Window,
        }
    }
}

/// A file whose rejected rows exceeded `--max-rejects`, so its window is not committed.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {rejected} of {read} rows did not fit schema {schema} (limit {limit}); first: {first}; all rejected rows are in {rejects_path}")]
/// `first` quotes up to three rejects, each with its line, column and reason.
pub struct TooManyRejects {
    pub file: String,
    pub schema: String,
    pub read: u64,
    pub rejected: u64,
    pub limit: RejectLimit,
    pub first: String,
    pub rejects_path: String,
}

/// One dataset's file decoded and written to staging.
#[derive(Debug)]
pub struct StagedDataset {
    pub dataset: String,
    pub stats: DecodeStats,
    pub files: Vec<WrittenFile>,
    pub warnings: Vec<String>,
    /// The fetched files, compressed into staging (none with `--raw off` or in a replay).
    pub raw: Vec<RawFile>,
    /// What the PII policy did to the dataset (`None`: everything kept).
    pub pii: Option<String>,
    /// Seconds from the start of its decoding to its staged files.
    pub seconds: f64,
    /// What its files showed about the declaration, merged.
    pub drift: Drift,
    /// The load columns of its rows.
    pub stamp: LoadStamp,
}

/// Runs every window of the plan, each under its own lease, and writes the run report into the
/// destination. Windows another run is working on are waited for (`lease_wait`); a window that
/// run finished meanwhile is not done twice.
pub async fn run_sync<S: Source>(plan: &SyncPlan<S>) -> Result<RunReport, RunError> {
    use tracing::Instrument;
    let span = tracing::info_span!("run", run_id = %plan.run_id, source = plan.source.name());
    async {
        // A copy of each declaration this run writes with, before any window names it: the
        // run's first write, so a destination it cannot write to stops it here.
        let unwritable = |source| RunError::Destination { dest: plan.dest.display.clone(), source };
        for schema in &plan.datasets {
            crate::declaration::keep(&plan.dest, schema).await.map_err(unwritable)?;
        }
        let guard = match RunGuard::start(&plan.dest, &plan.run_id, plan.options.lock_ttl).await {
            Ok(guard) => guard,
            Err(LockError::Sink(source)) => return Err(unwritable(source)),
            Err(e) => return Err(e.into()),
        };
        crate::progress::run_started(plan.source.name(), plan.windows.len());
        let report = run_windows(plan).await;
        let report = match report {
            Ok(report) => refresh_current_tables(plan, report).await,
            Err(e) => Err(e),
        };
        crate::progress::run_finished(plan.source.name());
        remove_local_staging(&plan.dest, &plan.run_id);
        guard.release().await?;
        Ok(report?)
    }
    .instrument(span)
    .await
}

/// After windows were committed: rebuilds the current tables of the synced datasets and the
/// views file, each under its lease, then saves the run report. A failure here leaves the
/// history committed and makes the run partial (exit 1); the next run rebuilds them.
async fn refresh_current_tables<S: Source>(
    plan: &SyncPlan<S>,
    mut report: RunReport,
) -> Result<RunReport, SinkError> {
    let failure_file = layout::current_refresh_failure_file(plan.source.name());
    let state = StateStore::new(plan.dest.clone());
    // A refresh that failed in an earlier run is retried even when this run committed nothing.
    let failed_before = match state.get_json::<current::RefreshFailure>(&failure_file).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the current tables' refresh marker");
            None
        }
    };
    if plan.options.current_tables && (report.committed() > 0 || failed_before.is_some()) {
        if let Some(failure) = &failed_before {
            tracing::info!(run_id = %failure.run_id, "Refreshing the current tables, which an earlier run could not refresh");
        }
        let refreshed = async {
            let source = plan.source.name();
            let (dest, format) = (&plan.dest, plan.options.format);
            let (ttl, wait) = (plan.options.lock_ttl, plan.options.lease_wait);
            let lease =
                Lease::acquire_waiting(dest, &LeaseName::current(source), &plan.run_id, ttl, wait).await?;
            let tables = current::refresh_tables(
                dest,
                source,
                &plan.datasets,
                format,
                &plan.run_id,
                &plan.options.memory,
                false,
            )
            .await;
            lease.release().await?;
            let tables = tables?;
            // The views cover every source in the lake; this plan's schemas win over the embedded.
            let schemas = SchemaRegistry::embedded_with(&plan.datasets)
                .expect("the embedded schemas load (a unit test proves it)");
            let lease = Lease::acquire_waiting(dest, &LeaseName::views(), &plan.run_id, ttl, wait).await?;
            let views = current::write_views(dest, &schemas).await;
            lease.release().await?;
            views?;
            Ok::<_, LockError>(tables)
        };
        match refreshed.await {
            Ok(tables) => {
                report.current = tables;
                if failed_before.is_some() {
                    state.clear(&failure_file).await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "Could not refresh the current tables; the history is committed, the next run retries");
                report.current_error = Some(e.to_string());
                let failure = current::RefreshFailure {
                    run_id: plan.run_id.clone(),
                    failed_at: Utc::now(),
                    error: e.to_string(),
                };
                state.put_json(&failure_file, &failure).await?;
            }
        }
    }
    report.memory = Some(crate::report::MemoryReport::now(&plan.options.memory));
    StateStore::new(plan.dest.clone()).put_json(&layout::run_report_file(&plan.run_id), &report).await?;
    Ok(report)
}

/// A window this run holds, and its record as the lease found it (nobody else writes it now).
struct HeldWindow {
    lease: Lease,
    previous: Option<WindowRecord>,
}

/// What taking a window's lease found.
enum Claim {
    /// This run holds the window.
    Took(Box<HeldWindow>),
    /// Another run finished the window since this run began (or at all, with `skip_done`).
    DoneBy(String),
    /// Another live run holds it.
    Held(Box<Locked>),
}

/// Takes a window's lease (waiting up to `wait` for another run to release it), unless the
/// window needs no work any more.
async fn claim_window<S: Source>(
    plan: &SyncPlan<S>,
    state: &StateStore,
    window: Window,
    started_at: chrono::DateTime<Utc>,
    wait: std::time::Duration,
) -> Result<Claim, WindowError> {
    let source = plan.source.name();
    let name = LeaseName::window(source, window.date);
    let lease =
        match Lease::acquire_waiting(&plan.dest, &name, &plan.run_id, plan.options.lock_ttl, wait).await {
            Ok(lease) => lease,
            Err(LockError::Locked(held)) => return Ok(Claim::Held(held)),
            Err(e) => return Err(e.into()),
        };
    let record = match state.load_window(source, window.date).await {
        Ok(record) => record,
        Err(e) => {
            let _ = lease.release().await;
            return Err(e.into());
        }
    };
    let done_elsewhere = record.as_ref().filter(|r| {
        r.status == WindowStatus::Done
            && r.filter == plan.filter
            && r.run_id != plan.run_id
            && plan.datasets.iter().all(|d| r.is_done_for(&d.dataset))
            && (plan.options.skip_done || r.finished_at.is_some_and(|t| t >= started_at))
    });
    match done_elsewhere {
        Some(done) => {
            let by = done.run_id.clone();
            lease.release().await?;
            Ok(Claim::DoneBy(by))
        }
        None => Ok(Claim::Took(Box::new(HeldWindow { lease, previous: record }))),
    }
}

/// Claims and runs one window; its report.
async fn window_report<S: Source>(
    plan: &SyncPlan<S>,
    state: &StateStore,
    window: Window,
    started_at: chrono::DateTime<Utc>,
    wait: std::time::Duration,
    fatal_error: &std::sync::Mutex<Option<String>>,
    drift: &DriftTally,
) -> WindowReport {
    if fatal_error.lock().expect("fatal error lock").is_some() {
        return WindowReport::skipped(window.date, None);
    }
    if crate::interrupt::requested() {
        return WindowReport::skipped(window.date, Some("interrupted before it started".into()));
    }
    let started = Instant::now();
    let result = match claim_window(plan, state, window, started_at, wait).await {
        Ok(Claim::Took(held)) => {
            let HeldWindow { lease, previous } = *held;
            tracing::info!(source = plan.source.name(), window = %window, "Window started");
            let result = run_window(plan, state, &lease, window, previous).await;
            if let Err(e) = lease.release().await {
                tracing::warn!(error = %e, "Could not release a window's lease; it expires after --lock-ttl");
            }
            result
        }
        Ok(Claim::DoneBy(run_id)) => {
            tracing::info!(window = %window, by = %run_id, "Window already done by another run; left as it is");
            crate::progress::window_done(&window, 0, "done by another run");
            return WindowReport::done_by(window.date, run_id);
        }
        Ok(Claim::Held(held)) => return WindowReport::held(window.date, held.to_string()),
        Err(e) => Err(e),
    };
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(record) => {
            tracing::info!(window = %window, seconds, "Window committed");
            let rows = record.datasets.values().map(|d| d.stats.rows_written).sum();
            drift.add(plan, &record);
            crate::progress::window_done(&window, rows, "committed");
            committed_report(plan, &record, seconds)
        }
        Err(error) => {
            tracing::error!(window = %window, error = %error, "Window failed; its previous data (if any) is unchanged");
            crate::progress::window_done(&window, 0, "failed");
            if error.scope() == FailureScope::Run {
                fatal_error.lock().expect("fatal error lock").get_or_insert(error.to_string());
                WindowReport { seconds, ..WindowReport::skipped(window.date, Some(error.to_string())) }
            } else {
                WindowReport {
                    date: window.date,
                    outcome: WindowOutcome::Failed,
                    export_id: None,
                    seconds,
                    datasets: BTreeMap::new(),
                    error: Some(error.to_string()),
                }
            }
        }
    }
}

async fn run_windows<S: Source>(plan: &SyncPlan<S>) -> Result<RunReport, SinkError> {
    use tracing::Instrument;
    let state = StateStore::new(plan.dest.clone());
    let started_at = Utc::now();
    // A failure that would repeat for every window (bad key, lost lease) stops windows that
    // have not started yet; the ones already running finish on their own.
    let fatal_error: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let drift = DriftTally::default();
    let (state, fatal_error, drift) = (&state, &fatal_error, &drift);
    let parallel = plan.options.parallel_windows.max(1);
    // First every window nobody else holds; then, waiting, the ones another run was working on.
    let mut windows: Vec<WindowReport> = futures::stream::iter(plan.windows.iter().copied())
        .map(|window| {
            window_report(plan, state, window, started_at, std::time::Duration::ZERO, fatal_error, drift)
                .instrument(tracing::info_span!("window", window = %window))
        })
        .buffered(parallel)
        .collect()
        .await;
    let held: Vec<Window> =
        windows.iter().filter(|w| w.outcome == WindowOutcome::Held).map(|w| Window::new(w.date)).collect();
    if !held.is_empty() && !plan.options.lease_wait.is_zero() && !crate::interrupt::requested() {
        let deadline = Instant::now() + plan.options.lease_wait;
        let retried: Vec<WindowReport> = futures::stream::iter(held)
            .map(|window| {
                let wait = deadline.saturating_duration_since(Instant::now());
                window_report(plan, state, window, started_at, wait, fatal_error, drift)
                    .instrument(tracing::info_span!("window", window = %window))
            })
            .buffered(parallel)
            .collect()
            .await;
        for report in retried {
            if let Some(slot) = windows.iter_mut().find(|w| w.date == report.date) {
                *slot = report;
            }
        }
    }
    drift.log(plan);
    let report = RunReport {
        run_id: plan.run_id.clone(),
        source: plan.source.name().to_string(),
        dest: plan.dest.display.clone(),
        started_at,
        finished_at: Utc::now(),
        windows,
        fatal_error: fatal_error.lock().expect("fatal error lock").take(),
        current: Vec::new(),
        current_error: None,
        interrupted: crate::interrupt::requested(),
        memory: None,
    };
    Ok(report)
}

/// The declaration drift of the windows a run committed, per dataset: logged once at the end of
/// the run (one line per dataset, instead of one per field per file).
#[derive(Default)]
struct DriftTally {
    datasets: std::sync::Mutex<BTreeMap<String, (Drift, bool)>>,
}

impl DriftTally {
    fn add<S>(&self, plan: &SyncPlan<S>, record: &WindowRecord) {
        let mut datasets = self.datasets.lock().expect("drift tally lock");
        for schema in &plan.datasets {
            if let Some(landed) = record.datasets.get(&schema.dataset) {
                let (drift, seen) = datasets.entry(schema.dataset.clone()).or_default();
                drift.merge(&landed.drift, !*seen);
                *seen = true;
            }
        }
    }

    fn log<S: Source>(&self, plan: &SyncPlan<S>) {
        let datasets = self.datasets.lock().expect("drift tally lock");
        for (dataset, (drift, _)) in datasets.iter() {
            let summary = drift.summary();
            if summary.is_empty() {
                continue;
            }
            let name = format!("{}.{dataset}", plan.source.name());
            let few = |items: Vec<&String>| {
                let shown: Vec<&str> = items.iter().take(5).map(|s| s.as_str()).collect();
                let more = items.len().saturating_sub(shown.len());
                if more > 0 {
                    format!("{} and {more} more", shown.join(", "))
                } else {
                    shown.join(", ")
                }
            };
            let mut details = Vec::new();
            if !drift.undeclared.is_empty() {
                details.push(format!("undeclared: {}", few(drift.undeclared.keys().collect())));
            }
            if !drift.absent.is_empty() {
                details.push(format!("absent: {}", few(drift.absent.iter().collect())));
            }
            if !drift.kept_in_extra.is_empty() {
                details.push(format!("did not fit: {}", few(drift.kept_in_extra.keys().collect())));
            }
            let hint = format!("`cxlake drift --dest {} --source {}`", plan.dest.display, plan.source.name());
            if details.is_empty() {
                tracing::info!(dataset = %name, "{name}: {summary} (nothing lost; details: {hint})");
            } else {
                let kept = if drift.undeclared.values().all(|f| f.kept) {
                    "nothing was lost — every value is in its column or `_extra`"
                } else {
                    "undeclared CSV columns are not loaded (this dataset keeps no `_extra`; the raw archive has them)"
                };
                tracing::warn!(
                    dataset = %name,
                    "{name} differs from its declaration: {summary} ({}); {kept}. Details and the fix: {hint}",
                    details.join("; ")
                );
            }
        }
    }
}

fn committed_report<S: Source>(plan: &SyncPlan<S>, record: &WindowRecord, seconds: f64) -> WindowReport {
    WindowReport {
        date: record.date,
        outcome: WindowOutcome::Committed,
        export_id: record.export_id.clone(),
        seconds,
        datasets: record
            .datasets
            .iter()
            .filter(|(name, _)| plan.datasets.iter().any(|d| &d.dataset == *name))
            .map(|(name, d)| {
                (name.clone(), DatasetReport::new(d.stats, d.files.len(), d.bytes, d.seconds, &d.drift))
            })
            .collect(),
        error: None,
    }
}

async fn run_window<S: Source>(
    plan: &SyncPlan<S>,
    state: &StateStore,
    lease: &Lease,
    window: Window,
    previous: Option<WindowRecord>,
) -> Result<WindowRecord, WindowError> {
    let spool = match &plan.options.spool_dir {
        Some(dir) => tempfile::Builder::new().prefix("cxlake-spool-").tempdir_in(dir),
        None => tempfile::Builder::new().prefix("cxlake-spool-").tempdir(),
    }
    .map_err(WindowError::Spool)?;
    let names: Vec<String> = plan.datasets.iter().map(|d| d.dataset.clone()).collect();
    let source = plan.source.name();
    let journal = StateJournal { plan, state, source, datasets: names.clone(), turn: Default::default() };
    let fetched = plan.source.fetch_window(window, &names, spool.path(), &journal).await?;
    crate::progress::downloaded(fetched.files.iter().map(|f| f.bytes).sum());
    crate::progress::export_state(&window, "converting");
    // One instant for every dataset of the window: its rows' `_cxlake_loaded_at`.
    let stamp = LoadStamp { loaded_at: Utc::now(), run_id: plan.run_id.clone() };

    // A dataset whose files are byte for byte the ones its window landed last time is left as
    // it is: a rerun rewrites nothing, and `_cxlake_loaded_at` moves only when the data did.
    let unchanged = unchanged_datasets(plan, previous.as_ref(), &fetched.files).await;
    for dataset in &unchanged {
        tracing::info!(window = %window, dataset = %dataset, "Unchanged: the same files as the window landed before; nothing rewritten");
    }
    let staging = plan
        .datasets
        .iter()
        .filter(|schema| !fetched.absent.contains(&schema.dataset) && !unchanged.contains(&schema.dataset))
        .map(|schema| {
            let files: Vec<FetchedFile> =
                fetched.files.iter().filter(|f| f.dataset == schema.dataset).cloned().collect();
            let stamp = stamp.clone();
            async move {
                if files.is_empty() {
                    return Err(WindowError::Internal(format!(
                        "the source delivered no file for {}",
                        schema.dataset
                    )));
                }
                let span = tracing::info_span!("dataset", dataset = %schema.dataset);
                tracing::Instrument::instrument(
                    stage_files(plan, source, schema.clone(), window, &files, stamp),
                    span,
                )
                .await
            }
        });
    let staged = match try_join_all(staging).await {
        Ok(staged) => staged,
        Err(e) => {
            discard_staging(plan, source, window).await;
            return Err(e);
        }
    };
    // Publish only while this run still holds the window.
    if let Err(e) = lease.ensure_held().await {
        discard_staging(plan, source, window).await;
        return Err(e.into());
    }
    let record = match previous {
        // Nothing to publish: the window stays exactly as it was committed.
        Some(previous) if staged.is_empty() && !unchanged.is_empty() => Ok(previous),
        previous => commit_window(plan, state, source, window, fetched.export_id, staged, previous).await,
    };
    match &record {
        Ok(_) => {
            if let Err(e) = state.clear_export_intent(source, window.date).await {
                tracing::warn!(error = %e, "Could not clear the export journal entry; a later rerun may adopt that export");
            }
        }
        Err(_) => discard_staging(plan, source, window).await,
    }
    record
}

/// What decides the rows a dataset's files become, besides the files: cxlake's version, the
/// declaration, the filter, the zone, the PII policy and the decoding policies. A fingerprint
/// (16 hex digits of SHA-256): equal settings and equal files land equal rows.
fn load_settings<S>(plan: &SyncPlan<S>, schema: &DatasetSchema) -> String {
    use sha2::Digest;
    let pii = plan.options.pii.for_dataset(schema).map(|pii| pii.recorded(schema));
    let text = format!(
        "cxlake={};declaration={};filter={:?};timezone={:?};pii={pii:?};on_type_mismatch={:?};on_new_column={:?}",
        env!("CARGO_PKG_VERSION"),
        schema.declaration.fingerprint,
        plan.filter,
        plan.options.timezone.map(|zone| zone.name()),
        plan.options.on_type_mismatch,
        plan.options.on_new_column,
    );
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
}

/// The datasets of the window whose fetched files are exactly those its last landing archived
/// (name, SHA-256, and what the source said about them), landed with the same settings
/// ([`load_settings`]) and the load columns: rewriting them would change nothing but their load
/// columns. Never in a replay (an explicit rebuild), nor without raw files to compare.
async fn unchanged_datasets<S>(
    plan: &SyncPlan<S>,
    previous: Option<&WindowRecord>,
    fetched: &[FetchedFile],
) -> BTreeSet<String> {
    let mut unchanged = BTreeSet::new();
    let Some(previous) = previous.filter(|p| p.status == WindowStatus::Done) else { return unchanged };
    if plan.options.replay {
        return unchanged;
    }
    for schema in &plan.datasets {
        let Some(landed) = previous.datasets.get(&schema.dataset) else { continue };
        let comparable = !landed.raw.is_empty()
            && landed.loaded_at.is_some()
            && landed.settings.as_deref() == Some(load_settings(plan, schema).as_str());
        if !comparable {
            continue;
        }
        let files: Vec<&FetchedFile> = fetched.iter().filter(|f| f.dataset == schema.dataset).collect();
        let mut now = Vec::with_capacity(files.len());
        for file in files {
            let path = file.path.clone();
            let Ok(Ok(sha256)) = tokio::task::spawn_blocking(move || raw::file_sha256(&path)).await else {
                break;
            };
            now.push((file.file_name.clone(), sha256, file.fold, file.facts.clone()));
        }
        let mut before: Vec<_> = landed
            .raw
            .iter()
            .map(|r| (r.file_name.clone(), r.sha256.clone(), r.fold, r.facts.clone()))
            .collect();
        now.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        before.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        if now == before {
            unchanged.insert(schema.dataset.clone());
        }
    }
    unchanged
}

/// The export journal kept in the destination's bookkeeping.
struct StateJournal<'a, S> {
    plan: &'a SyncPlan<S>,
    state: &'a StateStore,
    source: &'a str,
    datasets: Vec<String>,
    /// The lake's creation turn while this window creates an export under a cap.
    turn: std::sync::Mutex<Option<Lease>>,
}

impl<S: Sync> ExportJournal for StateJournal<'_, S> {
    async fn previous(&self, window: Window) -> Option<PreviousExport> {
        match self.state.load_export_intent(self.source, window.date).await {
            Ok(Some(intent)) if intent.datasets == self.datasets && intent.filter == self.plan.filter => {
                Some(PreviousExport {
                    export_id: intent.export_id,
                    created_at: intent.created_at,
                    run_id: intent.run_id,
                })
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the export journal; a new export will be created");
                None
            }
        }
    }

    async fn record(&self, window: Window, export_id: &str) {
        let intent = ExportIntent {
            source: self.source.to_string(),
            date: window.date,
            export_id: export_id.to_string(),
            created_at: Utc::now(),
            run_id: self.plan.run_id.clone(),
            datasets: self.datasets.clone(),
            filter: self.plan.filter.clone(),
        };
        if let Err(e) = self.state.save_export_intent(&intent).await {
            tracing::warn!(error = %e, "Could not record the export in the journal; a crash now would create it again");
        }
    }

    async fn forget(&self, window: Window) {
        if let Err(e) = self.state.clear_export_intent(self.source, window.date).await {
            tracing::warn!(error = %e, "Could not clear the export journal entry; a later run may try to adopt that export");
        }
    }

    async fn begin_creation(&self, window: Window, cap: Option<CreationCap>) {
        let Some(cap) = cap else { return };
        match crate::creations::begin(&self.plan.dest, self.source, &self.plan.run_id, window.date, cap).await
        {
            Ok(turn) => *self.turn.lock().expect("turn lock") = Some(turn),
            // The cap is etiquette kept through the lake: a lake that cannot be read now fails
            // the window's publishing anyway, so the creation goes ahead rather than hang.
            Err(e) => {
                tracing::warn!(error = %e, "Could not take the lake's export creation turn; creating without the shared cap")
            }
        }
    }

    async fn end_creation(&self, window: Window, export_id: Option<&str>) {
        let turn = self.turn.lock().expect("turn lock").take();
        if let Some(turn) = turn {
            if let Err(e) = crate::creations::end(
                &self.plan.dest,
                turn,
                self.source,
                &self.plan.run_id,
                window.date,
                export_id,
            )
            .await
            {
                tracing::warn!(error = %e, "Could not log the export creation in the lake; the shared cap may allow one more");
            }
        }
    }
}

/// Decodes a dataset's fetched files (usually one) into staged Parquet parts of one partition,
/// quarantining rejected rows. `--max-rejects` and `--on-new-column` apply per file.
pub async fn stage_files<S>(
    plan: &SyncPlan<S>,
    source: &str,
    schema: Arc<DatasetSchema>,
    window: Window,
    files: &[FetchedFile],
    stamp: LoadStamp,
) -> Result<StagedDataset, WindowError> {
    let began = Instant::now();
    let input_bytes = files.iter().map(|f| f.bytes).sum();
    let reservation = plan.options.memory.reserve(input_bytes).await;
    tracing::debug!(dataset = %schema.dataset, window = %window, reserved_mib = reservation.mib(), "Conversion started");
    let staging_dir = layout::staging_dir(&plan.run_id, source, &schema.dataset, window.date);
    let writer_config = plan.options.writer.within(reservation.bytes());
    let mut writer =
        PartWriter::for_dataset(plan.dest.clone(), staging_dir, &schema, stamp.clone(), writer_config);
    let rejects_relative = layout::rejects_file(source, &schema.dataset, window.date, &plan.run_id);
    let pii = plan.options.pii.for_dataset(&schema).map_err(WindowError::Internal)?;
    let mut rejects = RejectSink::new(&plan.dest, &rejects_relative);
    if !pii.is_noop() {
        rejects.withhold = Some(schema.columns.iter().filter(|c| c.pii).map(|c| c.name.clone()).collect());
    }
    let mut total = DecodeStats::default();
    let mut warnings = Vec::new();
    let context = FileContext {
        window: Some(window),
        timezone: plan.options.timezone,
        on_type_mismatch: plan.options.on_type_mismatch,
        // The chunks being decoded: a quarter of the share (the writer sizes itself to the rest).
        memory: Some(reservation.bytes() / 4),
        ..FileContext::default()
    };
    let mut drifts: Vec<Drift> = Vec::with_capacity(files.len());
    // The archive's compression runs alongside the decoding of the same files.
    let archiving = stage_raw(plan, source, &schema.dataset, window, files);
    let decoding = async {
        for (i, file) in files.iter().enumerate() {
            if i > 0 {
                // One part file per source file: a replaced or late file maps to its own part.
                writer.roll().await?;
            }
            // An export configured in its own zone reads its local times in it.
            let zone = file.facts.as_ref().and_then(|f| f.timezone.as_deref()).and_then(|z| z.parse().ok());
            let context = FileContext { fold: file.fold, timezone: zone.or(context.timezone), ..context };
            let checked =
                match write_file(&mut writer, &mut rejects, schema.clone(), context, &pii, file).await {
                    Ok((stats, drift)) => {
                        check_file(plan, &schema, window, file, stats, &drift, &rejects, &rejects_relative)
                            .map(|file_warnings| (stats, file_warnings, drift))
                    }
                    Err(e) => Err(e),
                };
            match checked {
                Ok((stats, file_warnings, drift)) => {
                    total.rows_read += stats.rows_read;
                    total.rows_written += stats.rows_written;
                    total.rows_rejected += stats.rows_rejected;
                    warnings.extend(file_warnings);
                    drifts.push(drift);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    let (decoded, raw) = tokio::join!(decoding, archiving);
    let raw = match decoded.and_then(|()| raw.map_err(WindowError::from)) {
        Ok(raw) => raw,
        Err(e) => {
            writer.abort().await;
            rejects.abort().await;
            return Err(e);
        }
    };
    let written = writer.finish().await?;
    rejects.finish().await?;
    let pii = pii.recorded(&schema);
    let seconds = began.elapsed().as_secs_f64();
    Ok(StagedDataset {
        dataset: schema.dataset.clone(),
        stats: total,
        files: written,
        warnings,
        raw,
        pii,
        seconds,
        drift: Drift::merged(&drifts),
        stamp,
    })
}

/// Compresses a dataset's fetched files into the run's staging area (unless the plan keeps no
/// raw files, or replays archived ones).
async fn stage_raw<S>(
    plan: &SyncPlan<S>,
    source: &str,
    dataset: &str,
    window: Window,
    files: &[FetchedFile],
) -> Result<Vec<RawFile>, SinkError> {
    if plan.options.raw == RawPolicy::Off || plan.options.replay {
        return Ok(Vec::new());
    }
    let dir = raw::staging_raw_dir(&plan.run_id, source, dataset, window.date);
    let mut staged: Vec<RawFile> = Vec::with_capacity(files.len());
    for file in files {
        let taken: Vec<String> =
            staged.iter().map(|f| f.path.rsplit('/').next().unwrap_or_default().to_string()).collect();
        let name = raw::archive_name(&file.file_name, &taken);
        staged.push(
            raw::stage(&plan.dest, &dir, &name, &file.file_name, &file.path, file.fold, file.facts.clone())
                .await?,
        );
    }
    Ok(staged)
}

/// Streams one file through the decoder into `writer`. Decoding is CPU work on a blocking
/// thread; batches come back through a small channel so that decoding the next batch overlaps
/// encoding the previous one, with bounded memory.
async fn write_file(
    writer: &mut PartWriter,
    rejects: &mut RejectSink,
    schema: Arc<DatasetSchema>,
    context: FileContext,
    pii: &DatasetPii,
    file: &FetchedFile,
) -> Result<(DecodeStats, Drift), WindowError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let declared = schema.clone();
    let (path, file_name) = (file.path.clone(), file.file_name.clone());
    let decoder = tokio::task::spawn_blocking(move || decode_file(&path, schema, file_name, context, tx));
    let mut write_error = None;
    while let Some(decoded) = rx.recv().await {
        let DecodedBatch { batch, rejects: rows } = decoded;
        if let Err(e) = rejects.write(&rows).await {
            write_error = Some(e);
            break;
        }
        let batch = crate::decode::fill_per_file(batch, &declared, file.facts.as_ref());
        if let Err(e) = writer.write(&pii.apply(batch)).await {
            write_error = Some(e);
            break;
        }
    }
    drop(rx);
    let decoded = decoder.await.map_err(|e| WindowError::Internal(format!("decoder task: {e}")))?;
    if let Some(error) = write_error {
        return Err(error.into());
    }
    let (stats, drift) = decoded?;
    debug_assert_eq!(stats.rows_read, stats.rows_written + stats.rows_rejected);
    Ok((stats, drift))
}

/// Applies `--on-new-column` and `--max-rejects` to one decoded file; returns its warnings (the
/// declaration's drift is summed per dataset and reported once per run, not per file).
#[allow(clippy::too_many_arguments, reason = "one call site; the pieces are all of one file's outcome")]
fn check_file<S>(
    plan: &SyncPlan<S>,
    schema: &DatasetSchema,
    window: Window,
    file: &FetchedFile,
    stats: DecodeStats,
    drift: &Drift,
    rejects: &RejectSink,
    rejects_relative: &str,
) -> Result<Vec<String>, WindowError> {
    let mut warnings = Vec::new();
    let times = drift.local_times;
    if !times.is_zero() {
        warnings.push(format!(
            "{}: {} local time(s) in the repeated hour of a DST change (the earlier instant taken) and {} in the skipped hour (read with the offset before the change)",
            file.file_name, times.ambiguous, times.skipped
        ));
    }
    if plan.options.on_new_column == NewColumnPolicy::Fail {
        if let Some(column) = drift.undeclared.keys().next() {
            return Err(WindowError::NewColumn {
                file: file.file_name.clone(),
                column: column.clone(),
                schema: schema.qualified_name(),
            });
        }
    }
    for warning in &warnings {
        tracing::warn!(window = %window, dataset = %schema.dataset, "{warning}");
    }
    if stats.rows_rejected > 0 {
        tracing::warn!(window = %window, dataset = %schema.dataset, file = %file.file_name, rejected = stats.rows_rejected, rejects = %rejects_relative, "Rows did not fit the schema and were quarantined");
    }
    if plan.options.max_rejects.exceeded_by(&stats) {
        return Err(WindowError::TooManyRejects(Box::new(TooManyRejects {
            file: file.file_name.clone(),
            schema: schema.qualified_name(),
            read: stats.rows_read,
            rejected: stats.rows_rejected,
            limit: plan.options.max_rejects,
            first: rejects.first_described().unwrap_or_default(),
            rejects_path: format!("{}/{rejects_relative}", plan.dest.display.trim_end_matches('/')),
        })));
    }
    Ok(warnings)
}

fn decode_file(
    path: &Path,
    schema: Arc<DatasetSchema>,
    file_name: String,
    context: FileContext,
    tx: tokio::sync::mpsc::Sender<DecodedBatch>,
) -> Result<(DecodeStats, Drift), DecodeError> {
    let mut decoder = crate::decode::open(schema, path, file_name, context)?;
    while let Some(batch) = decoder.next_batch()? {
        if tx.blocking_send(batch).is_err() {
            // The writer stopped (and will report why); nothing more to do here.
            break;
        }
    }
    Ok((decoder.stats(), decoder.drift().clone()))
}

/// Publishes the staged datasets of a window and records it as done.
async fn commit_window<S>(
    plan: &SyncPlan<S>,
    state: &StateStore,
    source: &str,
    window: Window,
    export_id: Option<String>,
    staged: Vec<StagedDataset>,
    previous: Option<WindowRecord>,
) -> Result<WindowRecord, WindowError> {
    // Datasets not in this run keep their previous record (their files are untouched).
    let mut datasets = match &previous {
        Some(previous) if previous.status == WindowStatus::Done => previous.datasets.clone(),
        _ => BTreeMap::new(),
    };
    // A replay keeps the archive as it is, and says so.
    let replayed_from = match (&previous, plan.options.replay) {
        (Some(previous), true) => {
            Some(previous.replayed_from.clone().unwrap_or_else(|| previous.run_id.clone()))
        }
        _ => None,
    };
    let mut record = WindowRecord {
        format_version: STATE_FORMAT_VERSION,
        source: source.to_string(),
        date: window.date,
        window_start: window.start_in(plan.options.timezone.unwrap_or(chrono_tz::Tz::UTC)),
        window_end: window.end_in(plan.options.timezone.unwrap_or(chrono_tz::Tz::UTC)),
        status: WindowStatus::Publishing,
        export_id,
        run_id: plan.run_id.clone(),
        filter: plan.filter.clone(),
        finished_at: None,
        datasets: datasets.clone(),
        timezone: plan.options.timezone.map(|zone| zone.name().to_string()),
        replayed_from,
    };
    state.save_window(&record).await?;
    let delta_commit = WindowCommit::window(window.date, &plan.run_id);
    for dataset in staged {
        // The raw files first: a window is done only with them in place.
        let raw = if plan.options.replay {
            datasets.get(&dataset.dataset).map(|d| d.raw.clone()).unwrap_or_default()
        } else {
            raw::publish(&plan.dest, source, &dataset.dataset, window.date, &dataset.raw).await?
        };
        let schema = plan
            .datasets
            .iter()
            .find(|s| s.dataset == dataset.dataset)
            .expect("staged datasets come from the plan");
        let table = Table::history(&plan.dest, source, schema, plan.options.format);
        let (files, delta_version) = table.replace_window(&delta_commit, &dataset.files).await?;
        let declaration = plan
            .datasets
            .iter()
            .find(|s| s.dataset == dataset.dataset)
            .map(|s| s.declaration.fingerprint.clone());
        datasets.insert(
            dataset.dataset,
            DatasetRecord {
                stats: dataset.stats,
                bytes: files.iter().map(|f| f.bytes).sum(),
                files,
                warnings: dataset.warnings,
                delta_version,
                raw,
                pii: dataset.pii,
                seconds: dataset.seconds,
                drift: dataset.drift,
                declaration,
                loaded_at: Some(dataset.stamp.loaded_at),
                loaded_by: Some(dataset.stamp.run_id),
                settings: Some(load_settings(plan, schema)),
            },
        );
    }
    record.datasets = datasets;
    record.status = WindowStatus::Done;
    record.finished_at = Some(Utc::now());
    state.save_window(&record).await?;
    Ok(record)
}

/// Removes this run's staged files of a window that will not be committed.
async fn discard_staging<S>(plan: &SyncPlan<S>, source: &str, window: Window) {
    for schema in &plan.datasets {
        let dir = layout::staging_dir(&plan.run_id, source, &schema.dataset, window.date);
        let raw_dir = raw::staging_raw_dir(&plan.run_id, source, &schema.dataset, window.date);
        let removed = match commit::delete_dir(&plan.dest, &dir).await {
            Ok(_) => commit::delete_dir(&plan.dest, &raw_dir).await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(error = %e, "Could not remove staged files; they are invisible to readers and removed by a later run");
        }
    }
}

/// object_store leaves empty directories behind on local disk; tidy this run's staging tree.
pub fn remove_local_staging(dest: &Destination, run_id: &str) {
    if let Some(dir) = &dest.local_dir {
        let staging = dir.join(layout::staging_root()).join(run_id);
        let _ = std::fs::remove_dir_all(staging);
    }
}

/// Streams rejected rows into `_cxlake/rejects/…/<run-id>.csv`, created on the first reject.
struct RejectSink {
    dest: Destination,
    path: object_store::path::Path,
    writer: Option<BufWriter>,
    /// The first few rejects, described, for the error message.
    first: Vec<String>,
    /// Under a PII policy: the personal columns, whose rejected values never land (nor the raw record).
    withhold: Option<Vec<String>>,
}

impl RejectSink {
    fn new(dest: &Destination, relative: &str) -> RejectSink {
        RejectSink {
            dest: dest.clone(),
            path: dest.path(relative),
            writer: None,
            first: Vec::new(),
            withhold: None,
        }
    }

    async fn write(&mut self, rows: &[RejectedRow]) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows.iter().take(3 - self.first.len().min(3)) {
            self.first.push(row.to_string());
        }
        let mut csv = csv::WriterBuilder::new().from_writer(Vec::new());
        if self.writer.is_none() {
            let _ = csv.write_record(["file", "line", "column", "reason", "raw_record"]);
            self.writer = Some(BufWriter::new(self.dest.store.clone(), self.path.clone()));
        }
        const WITHHELD: &[u8] =
            b"(withheld under the PII policy; the record is in the raw archive or at the platform)";
        for row in rows {
            let line = row.line.to_string();
            let (reason, raw): (&[u8], &[u8]) = match &self.withhold {
                None => (row.reason.as_bytes(), &row.raw),
                Some(personal) if row.column.as_ref().is_some_and(|c| personal.contains(c)) => {
                    (WITHHELD, WITHHELD)
                }
                Some(_) => (row.reason.as_bytes(), WITHHELD),
            };
            let _ = csv.write_record([
                row.file.as_bytes(),
                line.as_bytes(),
                row.column.as_deref().unwrap_or("").as_bytes(),
                reason,
                raw,
            ]);
        }
        let bytes = csv.into_inner().unwrap_or_default();
        let writer = self.writer.as_mut().expect("created above");
        writer.write_all(&bytes).await.map_err(|e| SinkError::Store {
            path: self.path.to_string(),
            source: object_store::Error::Generic { store: "rejects", source: Box::new(e) },
        })
    }

    /// The first rejects so far, described.
    fn first_described(&self) -> Option<String> {
        (!self.first.is_empty()).then(|| self.first.join("; "))
    }

    /// Completes the file; returns the first rejects, described, if there were any.
    async fn finish(mut self) -> Result<Option<String>, SinkError> {
        if let Some(mut writer) = self.writer.take() {
            writer.shutdown().await.map_err(|e| SinkError::Store {
                path: self.path.to_string(),
                source: object_store::Error::Generic { store: "rejects", source: Box::new(e) },
            })?;
        }
        Ok(self.first_described())
    }

    /// Keeps what was quarantined so far: rejected rows are evidence even when the window fails.
    async fn abort(self) {
        let _ = self.finish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(read: u64, rejected: u64) -> DecodeStats {
        DecodeStats { rows_read: read, rows_written: read - rejected, rows_rejected: rejected }
    }

    #[test]
    fn reject_limits_by_rows_and_percent() {
        assert_eq!(RejectLimit::parse("0"), Ok(RejectLimit::Rows(0)));
        assert_eq!(RejectLimit::parse("0.5%"), Ok(RejectLimit::Percent(0.5)));
        assert!(RejectLimit::parse("lots").is_err());
        assert!(RejectLimit::parse("150%").is_err());
        assert!(!RejectLimit::Rows(0).exceeded_by(&stats(10, 0)));
        assert!(RejectLimit::Rows(0).exceeded_by(&stats(10, 1)));
        assert!(!RejectLimit::Rows(2).exceeded_by(&stats(10, 2)));
        assert!(!RejectLimit::Percent(10.0).exceeded_by(&stats(100, 10)));
        assert!(RejectLimit::Percent(10.0).exceeded_by(&stats(100, 11)));
        assert!(!RejectLimit::Percent(0.0).exceeded_by(&stats(0, 0)));
    }
}
