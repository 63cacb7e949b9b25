//! The asynchronous export-job lifecycle that Salted CX, Khoros and Loop share: create an export,
//! poll it (a growing interval, an overall deadline), and hand the completed job to the platform's
//! download. Around that loop, what a scheduled job needs:
//!
//! - **Adoption after a crash.** Each created export is recorded in the destination's journal
//!   first; a run that finds a young enough export recorded for the same window polls that one
//!   instead of creating a duplicate (platforms count exports against quotas).
//! - **Failed and expired exports.** An export the platform reports FAILED is created again after a
//!   cool-down, a bounded number of times; one that EXPIRED before it was downloaded is created
//!   again at once (counted against the same bound, so a platform that keeps failing ends the
//!   window with the platform's own message).
//!
//! A platform implements [`ExportJobApi`]: three calls (create, status, and rebuilding a job from
//! the id its journal recorded) and the mapping of the generic outcomes onto its error type.
//! Downloads stay the platform's: their URLs, auth and formats differ too much to share.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;

use super::poll::PollConfig;
use super::{ExportJournal, SetupError, SourceError};
use crate::units::parse_duration;
use crate::window::Window;

/// What a status call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState<R> {
    /// Still being produced.
    Running,
    /// Ready to download, with what the download needs (URLs, file name).
    Ready(R),
    /// The platform gave up on the export; the message is safe to log.
    Failed(String),
    /// Produced, but no longer downloadable: a new export is needed.
    Expired,
}

/// How an export ended without becoming ready, for the platform to phrase as its own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Failed { export_id: String, error: String },
    Expired { export_id: String },
    Timeout { export_id: String, waited_secs: u64 },
}

/// One platform's export API, as the lifecycle needs it.
pub trait ExportJobApi: Send + Sync {
    /// A created export: its id and whatever the status call needs (a status URL …).
    type Job: Clone + Send + Sync;
    /// What a completed export offers for download.
    type Ready: Send;
    type Error: From<JobEnd> + std::fmt::Display + Send;

    /// The platform's limit on creating exports, kept across the lake's workers.
    fn creation_cap(&self) -> Option<super::CreationCap> {
        None
    }

    /// Creates the export of `datasets` for `window`.
    fn create(
        &self,
        window: Window,
        datasets: &[String],
    ) -> impl Future<Output = Result<Self::Job, Self::Error>> + Send;

    /// The id recorded in the journal (and the window record) for `job`.
    fn job_id(&self, job: &Self::Job) -> String;

    /// The job a recorded id stands for, when the platform can poll it from the id alone.
    fn adopt(&self, recorded_id: &str) -> Option<Self::Job>;

    fn status(
        &self,
        job: &Self::Job,
    ) -> impl Future<Output = Result<JobState<Self::Ready>, Self::Error>> + Send;

    /// Whether an error from polling an adopted export means it is simply gone (404): a new
    /// export is created instead of failing the window.
    fn is_gone(&self, error: &Self::Error) -> bool;

    fn poll_config(&self) -> PollConfig;
}

/// What to do when an export fails, expires, or a previous run left one behind.
#[derive(Debug, Clone, Copy)]
pub struct ExportPolicy {
    /// New exports to try after one ends FAILED or EXPIRED, before the window fails.
    pub failed_retries: u32,
    /// Wait before creating the export again after a failure: the platform's trouble may be short-lived.
    pub failed_cooldown: Duration,
    /// Adopt an export recorded by an earlier (crashed) run if it is younger than this.
    pub adopt_within: Duration,
}

impl Default for ExportPolicy {
    fn default() -> Self {
        ExportPolicy {
            failed_retries: 2,
            failed_cooldown: Duration::from_secs(60),
            adopt_within: Duration::from_secs(3600),
        }
    }
}

/// The id a journal records for an export asked in `format`: a run asking for another format
/// must not adopt it (its file would not be what the run decodes).
pub fn id_with_format(id: &str, format: &str) -> String {
    format!("{id}#{format}")
}

/// The export id of a recorded `id_with_format`, if it was asked in `format`.
pub fn id_in_format<'a>(recorded: &'a str, format: &str) -> Option<&'a str> {
    recorded.rsplit_once('#').filter(|(id, f)| *f == format && !id.is_empty()).map(|(id, _)| id)
}

/// The options every export-job platform takes (flattened into its arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct ExportJobArgs {
    /// Give up on an export still processing after this long (e.g. 30m, 2h)
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub export_timeout: String,

    /// First wait between status polls; grows 1.5× per poll up to 30 s
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub poll_interval: String,

    /// New exports to create after one ends FAILED (or expires), before the window fails
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub failed_export_retries: u32,

    /// Wait before creating a new export after a FAILED one
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub failed_export_cooldown: String,
}

impl ExportJobArgs {
    pub fn poll(&self) -> Result<PollConfig, SetupError> {
        Ok(PollConfig {
            initial_interval: parse_duration(&self.poll_interval)
                .map_err(|e| SetupError(format!("--poll-interval: {e}")))?,
            deadline: parse_duration(&self.export_timeout)
                .map_err(|e| SetupError(format!("--export-timeout: {e}")))?,
            ..PollConfig::default()
        })
    }

    pub fn policy(&self) -> Result<ExportPolicy, SetupError> {
        Ok(ExportPolicy {
            failed_retries: self.failed_export_retries,
            failed_cooldown: parse_duration(&self.failed_export_cooldown)
                .map_err(|e| SetupError(format!("--failed-export-cooldown: {e}")))?,
            ..ExportPolicy::default()
        })
    }
}

/// How an export that did not become ready reads as a source failure (for platforms whose
/// client speaks [`SourceError`]).
impl From<JobEnd> for SourceError {
    fn from(end: JobEnd) -> SourceError {
        match end {
            JobEnd::Failed { export_id, error } => {
                SourceError::Export(format!("export {export_id} failed on the platform's side: {error}; rerun the window later"))
            }
            JobEnd::Expired { export_id } => {
                SourceError::Export(format!("export {export_id} expired before it could be downloaded; rerun the window"))
            }
            JobEnd::Timeout { export_id, waited_secs } => SourceError::Export(format!(
                "export {export_id} was still running after {waited_secs} s; raise --export-timeout or rerun later"
            )),
        }
    }
}

/// Why [`wait`] stopped without a ready export.
enum Waited<E> {
    End(JobEnd),
    Api(E),
}

/// Polls `job` until it is ready, with a growing interval and an overall deadline.
pub async fn wait<A: ExportJobApi>(api: &A, job: &A::Job) -> Result<A::Ready, A::Error> {
    poll_until_ready(api, job).await.map_err(|waited| match waited {
        Waited::End(end) => end.into(),
        Waited::Api(error) => error,
    })
}

async fn poll_until_ready<A: ExportJobApi>(api: &A, job: &A::Job) -> Result<A::Ready, Waited<A::Error>> {
    let poll = api.poll_config();
    let started = tokio::time::Instant::now();
    let deadline = started + poll.deadline;
    let mut intervals = poll.intervals();
    let export_id = api.job_id(job);
    loop {
        match api.status(job).await.map_err(Waited::Api)? {
            JobState::Ready(ready) => return Ok(ready),
            JobState::Failed(error) => return Err(Waited::End(JobEnd::Failed { export_id, error })),
            JobState::Expired => return Err(Waited::End(JobEnd::Expired { export_id })),
            JobState::Running => {}
        }
        let wait = intervals.next().expect("intervals never end");
        if tokio::time::Instant::now() + wait > deadline {
            return Err(Waited::End(JobEnd::Timeout { export_id, waited_secs: started.elapsed().as_secs() }));
        }
        tracing::debug!(export_id = %export_id, wait_ms = wait.as_millis() as u64, "Export still processing");
        crate::progress::export_polled(&export_id, "processing");
        tokio::time::sleep(wait).await;
    }
}

/// A ready export for `window`: adopted from a previous run when still usable, otherwise
/// created, and created again after FAILED or EXPIRED ones (bounded by the policy).
pub async fn completed<A: ExportJobApi, J: ExportJournal>(
    api: &A,
    policy: &ExportPolicy,
    window: Window,
    datasets: &[String],
    journal: &J,
) -> Result<(A::Job, A::Ready), A::Error> {
    if let Some(previous) = journal.previous(window).await {
        let age = (Utc::now() - previous.created_at).to_std().unwrap_or_default();
        if let (true, Some(job)) = (age < policy.adopt_within, api.adopt(&previous.export_id)) {
            match poll_until_ready(api, &job).await {
                Ok(ready) => {
                    tracing::info!(window = %window, export_id = %previous.export_id, created_by = %previous.run_id, "Adopted the export an interrupted run created");
                    return Ok((job, ready));
                }
                Err(Waited::End(end @ (JobEnd::Failed { .. } | JobEnd::Expired { .. }))) => {
                    let error = A::Error::from(end);
                    tracing::warn!(window = %window, error = %error, "The export an earlier run created is not usable; creating a new one");
                }
                Err(Waited::Api(error)) if api.is_gone(&error) => {
                    tracing::warn!(window = %window, error = %error, "The export an earlier run created is not usable; creating a new one");
                }
                Err(Waited::End(end)) => return Err(end.into()),
                Err(Waited::Api(error)) => return Err(error),
            }
        }
    }
    let mut retries = 0;
    loop {
        // Journalled inside the turn, so the next worker to count sees it in flight.
        journal.begin_creation(window, api.creation_cap()).await;
        let created = api.create(window, datasets).await;
        let export_id = created.as_ref().ok().map(|job| api.job_id(job));
        if let Some(export_id) = &export_id {
            journal.record(window, export_id).await;
        }
        journal.end_creation(window, export_id.as_deref()).await;
        let job = created?;
        let export_id = api.job_id(&job);
        tracing::info!(window = %window, export_id = %export_id, "Export created; waiting for it to complete");
        crate::progress::export_state(&window, "export created");
        match poll_until_ready(api, &job).await {
            Ok(ready) => return Ok((job, ready)),
            Err(Waited::End(end @ JobEnd::Failed { .. })) if retries < policy.failed_retries => {
                retries += 1;
                let error = A::Error::from(end);
                tracing::warn!(window = %window, error = %error, attempt = retries, cooldown_ms = policy.failed_cooldown.as_millis() as u64, "Export failed; creating a new one after a cool-down");
                tokio::time::sleep(policy.failed_cooldown).await;
            }
            Err(Waited::End(end @ JobEnd::Expired { .. })) if retries < policy.failed_retries => {
                retries += 1;
                let error = A::Error::from(end);
                tracing::warn!(window = %window, error = %error, attempt = retries, "Export expired before its download; creating a new one");
            }
            Err(Waited::End(end)) => return Err(end.into()),
            Err(Waited::Api(error)) => return Err(error),
        }
    }
}

/// [`completed`], then `download` of the ready export; when the download finds the export gone
/// (expired, deleted: [`ExportJobApi::is_gone`]), a new export is created and downloaded,
/// bounded by the policy's retries.
pub async fn download_completed<A, J, T, F, Fut>(
    api: &A,
    policy: &ExportPolicy,
    window: Window,
    datasets: &[String],
    journal: &J,
    mut download: F,
) -> Result<(A::Job, T), A::Error>
where
    A: ExportJobApi,
    J: ExportJournal,
    F: FnMut(A::Job, A::Ready) -> Fut,
    Fut: Future<Output = Result<T, A::Error>>,
{
    let mut retries = 0;
    loop {
        let (job, ready) = completed(api, policy, window, datasets, journal).await?;
        match download(job.clone(), ready).await {
            Ok(fetched) => return Ok((job, fetched)),
            Err(error) if api.is_gone(&error) && retries < policy.failed_retries => {
                retries += 1;
                tracing::warn!(window = %window, error = %error, attempt = retries, "The export went away before its download; creating a new one");
                // Not to be adopted again: the next attempt creates a new export.
                journal.forget(window).await;
            }
            Err(error) => return Err(error),
        }
    }
}
