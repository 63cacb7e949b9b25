//! Sources: one folder per platform, each with its HTTP client, its emulator and the mapping of
//! its exports onto declared datasets.
//!
//! Every platform in scope delivers, for a time window, one file per dataset — whatever the way
//! there: an async export job that is created, polled and downloaded (Salted CX, Khoros, Loop),
//! a synchronous JSON response (Dixa) or files dropped on SFTP (Sparkcentral). So the contract
//! between a source and the pipeline is [`Source::fetch_window`]: "put this window's files for
//! these datasets into this spool directory and tell me what and where they are". Decoding,
//! writing and committing are the pipeline's, identical for every source. The shared pieces of
//! the async-job sources (create → poll → adopt after a crash → retry FAILED) live in
//! [`export_job`] and [`poll`].

pub mod dixa;
pub mod export_job;
pub mod export_source;
pub mod http;
pub mod khoros;
pub mod local;
pub mod r#loop;
pub mod loopback;
pub mod poll;
pub mod retry;
pub mod saltedcx;
pub mod sparkcentral;
pub mod synthetic;

use std::future::Future;
use std::path::PathBuf;

use crate::window::Window;

/// One dataset's file for one window, on local disk in the run's spool directory.
#[derive(Debug, Clone)]
pub struct FetchedFile {
    pub dataset: String,
    /// The platform's name for the file, used in messages and reject records (`turns.csv`).
    pub file_name: String,
    /// Decoded as its dataset's schema declares (`format`): a source only fetches.
    pub path: PathBuf,
    pub bytes: u64,
    /// Which occurrence of a repeated autumn hour the file's local times belong to, when the
    /// platform's file says (see [`crate::schema::local_time::Fold`]).
    pub fold: crate::schema::local_time::Fold,
    /// The export that wrote the file and the period it covers, for sources whose files each
    /// say so (Sparkcentral): filled into the columns declared with a per-file `fill`.
    pub facts: Option<crate::schema::FileFacts>,
}

impl FetchedFile {
    pub fn new(
        dataset: impl Into<String>,
        file_name: impl Into<String>,
        path: PathBuf,
        bytes: u64,
    ) -> FetchedFile {
        FetchedFile {
            dataset: dataset.into(),
            file_name: file_name.into(),
            path,
            bytes,
            fold: Default::default(),
            facts: None,
        }
    }
}

/// Everything a source fetched for one window.
#[derive(Debug, Clone)]
pub struct FetchedWindow {
    /// The platform's id of the export, if it has one (recorded for audit and adoption).
    pub export_id: Option<String>,
    pub files: Vec<FetchedFile>,
    /// Datasets the platform has no file for in this window (a drop folder where not every
    /// export type runs every day): their previous data, if any, stays as it is.
    pub absent: Vec<String>,
}

impl FetchedWindow {
    /// A window with a file for every dataset asked for.
    pub fn new(export_id: Option<String>, files: Vec<FetchedFile>) -> FetchedWindow {
        FetchedWindow { export_id, files, absent: Vec::new() }
    }
}

/// How bad a source failure is for the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureScope {
    /// Only this window failed; the run goes on with the next one.
    Window,
    /// Every window would fail the same way (bad key, bad filter): stop, nothing more to try.
    Run,
}

/// An export a run created for a window, as remembered in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousExport {
    pub export_id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub run_id: String,
}

/// A platform's limit on creating exports, kept by every worker syncing one lake together: at
/// most `per_period` created in any `period`, and at most `in_flight` created and not yet
/// landed (an export a failed window left behind counts until it is an hour old: the next
/// run may adopt it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreationCap {
    pub per_period: u32,
    pub period: std::time::Duration,
    pub in_flight: u32,
}

impl CreationCap {
    /// Parses `N/DURATION` (`60/1h`, `3/10s`) for the rate.
    pub fn parse_rate(text: &str) -> Result<(u32, std::time::Duration), String> {
        let (count, period) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}`: write the rate as N/DURATION, e.g. 60/1h"))?;
        let count: u32 =
            count.trim().parse().map_err(|_| format!("`{text}`: `{count}` is not a whole number"))?;
        let period = crate::units::parse_duration(period.trim()).map_err(|e| format!("`{text}`: {e}"))?;
        if count == 0 || period.is_zero() {
            return Err(format!("`{text}`: the rate must allow at least one export per non-zero period"));
        }
        Ok((count, period))
    }
}

/// Where async-export sources remember the exports they create, so that a run which crashed
/// after creating one is followed by a run that adopts it instead of creating a duplicate.
/// Journal problems are never fatal: at worst an export is created again.
pub trait ExportJournal: Send + Sync {
    /// The export recorded for `window` with the same datasets and filter, if any.
    fn previous(&self, window: Window) -> impl Future<Output = Option<PreviousExport>> + Send;
    /// Remembers that `export_id` was created for `window`.
    fn record(&self, window: Window, export_id: &str) -> impl Future<Output = ()> + Send;
    /// Forgets the export recorded for `window` (it is gone): the next attempt creates one.
    fn forget(&self, window: Window) -> impl Future<Output = ()> + Send;
    /// Waits until `cap` allows creating an export for `window`, then holds the lake's creation
    /// turn — no other worker on the lake creates one — until [`ExportJournal::end_creation`].
    /// Without a cap it returns at once.
    fn begin_creation(&self, window: Window, cap: Option<CreationCap>) -> impl Future<Output = ()> + Send;
    /// Ends the turn: `export_id` is the export created (counted against the cap), `None` if
    /// the creation failed.
    fn end_creation(&self, window: Window, export_id: Option<&str>) -> impl Future<Output = ()> + Send;
}

/// A platform that can deliver a window of data as files.
pub trait Source: Send + Sync {
    /// Short name, also the lake's top-level folder: `saltedcx`.
    fn name(&self) -> &str;

    /// The zone the platform counts its days in, when it is not UTC: the windows are that
    /// zone's days (Khoros, Loop with `--timezone`), and local times without an offset in its
    /// files are in it (Sparkcentral). Recorded with each window and shown by `status`.
    fn timezone(&self) -> Option<chrono_tz::Tz> {
        None
    }

    /// The platform's limit on creating exports, if it asks for one (Salted CX).
    fn creation_cap(&self) -> Option<CreationCap> {
        None
    }

    /// The windows a run processes when the platform decides them: a drop folder's are the
    /// days its files cover within `[from, to)`, minus those whose files are the ones `done`
    /// recorded (date → the done window's export id). `None`, the default: the command line
    /// plans from `--from`/`--to` and the lake's history.
    fn plan_windows(
        &self,
        _from: Option<chrono::NaiveDate>,
        _to: chrono::NaiveDate,
        _datasets: &[String],
        _done: &std::collections::BTreeMap<chrono::NaiveDate, String>,
    ) -> impl Future<Output = Result<Option<Vec<Window>>, SourceError>> + Send {
        async { Ok(None) }
    }

    /// Where the platform's data comes from, as lineage names a dataset (OpenLineage's
    /// namespace and name): the API's scheme, host and port, or the drop tree — never a path
    /// with a query, a user or a secret. `None` for files given on the command line.
    fn lineage_input(&self) -> Option<(String, String)> {
        None
    }

    /// One cheap call that proves the connection and credentials work (`cxlake check`): what it
    /// found. An error scoped to the run means the credentials or address are wrong.
    fn probe(&self) -> impl Future<Output = Result<String, SourceError>> + Send {
        async { Ok("nothing to check: the files are local".into()) }
    }

    /// Fetches `datasets` of `window` into `spool`, a directory owned by this run.
    fn fetch_window<J: ExportJournal>(
        &self,
        window: Window,
        datasets: &[String],
        spool: &std::path::Path,
        journal: &J,
    ) -> impl Future<Output = Result<FetchedWindow, SourceError>> + Send;
}

/// A source failure. Messages are safe to log: sources never put credentials or presigned URLs
/// into them. The kind decides the [`FailureScope`]: what would fail every window stops the run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The platform refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The platform refused the request as configured (a bad filter, URL or setting): every
    /// window would be refused the same way.
    #[error("{0}")]
    Rejected(String),
    /// The platform refused this window's request (e.g. its range), or its export failed.
    #[error("{0}")]
    Export(String),
    /// The export (or its download) no longer exists on the platform: a new one is needed.
    #[error("{0}")]
    Gone(String),
    /// Rate-limited for longer than `--max-retry-wait`.
    #[error("{0}")]
    RateLimited(String),
    /// The network or the platform failed past the retries, or a body stayed broken.
    #[error("{0}")]
    Transfer(String),
    /// Local input (files given to `convert`, the spool) could not be read or written.
    #[error("{0}")]
    Local(String),
}

impl SourceError {
    pub fn scope(&self) -> FailureScope {
        match self {
            SourceError::Unauthorized(_) | SourceError::Rejected(_) => FailureScope::Run,
            SourceError::Local(_) => FailureScope::Run,
            SourceError::Export(_)
            | SourceError::Gone(_)
            | SourceError::RateLimited(_)
            | SourceError::Transfer(_) => FailureScope::Window,
        }
    }
}

impl From<http::HttpError> for SourceError {
    fn from(error: http::HttpError) -> SourceError {
        use http::HttpError as E;
        let message = error.to_string();
        match error {
            E::RateLimited { .. } => SourceError::RateLimited(message),
            E::InsecureUrl { .. } => SourceError::Rejected(message),
            E::Spool { .. }
            | E::RetriesExhausted { .. }
            | E::Http { .. }
            | E::Transport { .. }
            | E::Protocol { .. } => SourceError::Transfer(message),
        }
    }
}

/// A URL's scheme, host and port (`https://api.example.com`, `sftp://host:2222`): what lineage
/// names a platform by; no path, query, user or password.
pub fn origin(url: &url::Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or_default())
}

/// A fingerprint of an export filter for bookkeeping (`kind:` and 16 hex digits of SHA-256): the
/// filter may hold personal data (e-mail addresses), which must not land in window records.
pub fn fingerprint(kind: &str, filter: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(filter.as_bytes());
    format!("{kind}:{}", &hex::encode(digest)[..16])
}

/// The fingerprint of a filter made of named selections (`lists`, each sorted: the order they
/// were given in makes no other filter) and further `name=value` parts; `None` when it selects
/// nothing, which is a full export.
pub fn selection_fingerprint(kind: &str, lists: &[(&str, &[String])], more: Vec<String>) -> Option<String> {
    let mut parts: Vec<String> = lists
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| {
            let mut sorted = values.to_vec();
            sorted.sort();
            format!("{name}={}", sorted.join(","))
        })
        .collect();
    parts.extend(more);
    (!parts.is_empty()).then(|| fingerprint(kind, &parts.join(";")))
}

/// A source's setup failed before anything was attempted (missing credential, bad URL): the
/// message says what to change. The command line turns it into exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// A running emulator of a platform, on loopback.
pub trait RunningEmulator: Send {
    /// The base URL to give `--api-url`.
    fn base_url(&self) -> url::Url;
    /// `export NAME=value` lines that point `cxlake sync <source>` at it.
    fn env(&self) -> Vec<(String, String)>;
    /// Runs until the process is interrupted.
    fn wait(self) -> impl Future<Output = ()> + Send;
    fn shutdown(self) -> impl Future<Output = ()> + Send;
}

/// Everything the command line needs from a platform: its arguments (declared in its own
/// folder, environment variables included), how to build its [`Source`], and its emulator and
/// synthetic data. A platform is one line in [`register_builtin`].
pub trait Platform {
    /// The source's name: `cxlake sync <NAME>`, the lake's top folder, the schemas' folder.
    const NAME: &'static str;
    /// How people write the platform's name.
    const TITLE: &'static str;
    /// One line for `cxlake sync --help`: the platform and what cxlake fetches from it.
    const DESCRIPTION: &'static str;
    /// Schema files the platform brings itself, `(<dataset>.toml, text)`, for one whose schemas
    /// are not under `schemas/<NAME>/` (a source that lives in the tests): registered with the
    /// platform, declared exactly as the files under `schemas/` are.
    const SCHEMAS: &'static [(&'static str, &'static str)] = &[];
    /// The emulator's default port on 127.0.0.1 (0: the emulator serves no port).
    const EMULATOR_PORT: u16 = 0;
    /// The secrets the source reads from the environment: `(config key, variable)`. In
    /// `cxlake.toml` each is only a `${VAR}` reference (or its `<key>_file` path), never inline.
    const SECRETS: &'static [(&'static str, &'static str)] = &[];
    /// Connection and export options of `sync` and `history`.
    type Args: clap::Args + std::fmt::Debug + Send + Sync;
    /// Options of `cxlake emulator <NAME>`.
    type EmulatorArgs: clap::Args + std::fmt::Debug + Send + Sync;
    type Source: Source + 'static;
    type Emulator: RunningEmulator;

    /// Builds the source from its arguments (reading its secrets from files or the environment).
    fn source(args: &Self::Args) -> Result<Self::Source, SetupError>;

    /// A DuckDB query over the demo lake (`{lake}` stands for its root) that `cxlake demo`
    /// prints to show what this platform's data answers.
    const DEMO_QUERY: &'static str = "";

    /// The flags that make a filtered export, as this platform's users write them (named in
    /// the messages that refuse one).
    const FILTER_FLAGS: &'static str = "";

    /// A fingerprint of an export filter (Salted CX `--contact`): windows exported with a
    /// filter never replace full ones, and a filtered export needs an explicit `--from`.
    fn filter(_args: &Self::Args) -> Option<String> {
        None
    }

    /// `cxlake history <NAME>`: the platform's recent exports as text, if it keeps any.
    fn history(_args: &Self::Args) -> impl Future<Output = Result<Option<String>, SourceError>> + Send {
        async { Ok(None) }
    }

    fn start_emulator(
        args: &Self::EmulatorArgs,
        port: u16,
    ) -> impl Future<Output = Result<Self::Emulator, SetupError>> + Send;

    /// The emulator with its default tenant and a source pointed at it, for `cxlake demo`.
    fn demo() -> impl Future<Output = Result<(Self::Emulator, Self::Source), SetupError>> + Send;

    /// Writes one day of `dataset` exactly as the emulator serves it; returns the records.
    fn synth(
        dataset: &str,
        date: chrono::NaiveDate,
        per_day: Option<usize>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, SetupError>;
}

/// What collects platforms: the command line's registry ([`crate::cli::Registry`]) adds each
/// with its static types and keeps it behind an object-safe entry.
pub trait Registrar {
    fn add<P: Platform + 'static>(&mut self);
}

/// The built-in platforms, one line each (a source is its folder, its schemas and this line).
pub fn register_builtin(registry: &mut impl Registrar) {
    registry.add::<saltedcx::platform::SaltedCxPlatform>();
    registry.add::<dixa::platform::DixaPlatform>();
    registry.add::<khoros::platform::KhorosPlatform>();
    registry.add::<r#loop::platform::LoopPlatform>();
    registry.add::<sparkcentral::platform::SparkcentralPlatform>();
}
