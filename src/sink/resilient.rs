//! Every storage call retried where it is safe, as Kafka Connect's S3 sink and the Delta writers
//! do. object_store retries what it knows to be idempotent (a 5xx or 429 on any request, a
//! timeout on a GET or a plain PUT); what it leaves to its caller — a connection that broke after
//! the request was sent, on a bulk delete, a create-only PUT, the completion of a multipart
//! upload, a listing — is retried here:
//!
//! - deletes and listings are simply repeated (deleting twice is deleting; a missing object is
//!   deleted);
//! - a create-only PUT (leases, window records, Delta log entries) whose answer was lost, or that
//!   finds its object already there, is resolved by reading the object back: our bytes mean it
//!   was ours and it succeeded (object_store sends a request again on a broken connection, and
//!   that second attempt finds what the first one wrote); other bytes mean another writer won,
//!   and the caller sees `AlreadyExists`;
//! - a multipart completion whose answer was lost is resolved by a HEAD: an object of the size of
//!   the parts is the upload completed;
//! - a rename (a copy, then a delete) of a staged file whose source cannot be deleted has
//!   landed: what is left in staging is swept by a later run.
//!
//! Only S3 lakes are wrapped: a local directory's calls do not lose answers.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, RenameTargetMode, Result, UploadPart,
};

/// How often and how long a call that failed in transit is tried again.
#[derive(Debug, Clone, Copy)]
pub struct StorageRetry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// No attempt starts this long after a call's first: each attempt is itself up to ten of
    /// object_store's retries (within its three minutes), so a store that is down fails the
    /// window in minutes rather than after attempts × object_store's budget.
    pub deadline: Duration,
}

impl Default for StorageRetry {
    fn default() -> Self {
        StorageRetry {
            attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(300),
        }
    }
}

impl StorageRetry {
    /// The default, with `CXLAKE_STORAGE_ATTEMPTS` (attempts in all, at least 1) when set: the
    /// budget of a call that failed in transit.
    pub fn from_env() -> StorageRetry {
        let attempts =
            std::env::var("CXLAKE_STORAGE_ATTEMPTS").ok().and_then(|v| v.trim().parse::<u32>().ok());
        StorageRetry {
            attempts: attempts.unwrap_or(StorageRetry::default().attempts).max(1),
            ..StorageRetry::default()
        }
    }

    /// The wait before attempt `attempt` (2, 3, …): doubling, capped, with jitter so that the
    /// workers of one lake do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self.first_backoff.saturating_mul(1u32 << attempt.saturating_sub(2).min(16));
        let capped = doubled.min(self.max_backoff);
        let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * capped.as_millis() as u64 / 512;
        capped + Duration::from_millis(jitter)
    }
}

/// One call's attempts so far, against the policy's count and deadline.
struct Attempts {
    policy: StorageRetry,
    made: u32,
    started: Instant,
}

impl Attempts {
    fn new(policy: StorageRetry) -> Attempts {
        Attempts { policy, made: 1, started: Instant::now() }
    }

    /// Whether no attempt has been repeated yet.
    fn first(&self) -> bool {
        self.made == 1
    }

    /// After a failure in transit: the wait before one more attempt, or `None` when the error
    /// is an answer or the budget is spent.
    fn another(&mut self, error: &Error) -> Option<Duration> {
        let within = self.made < self.policy.attempts && self.started.elapsed() < self.policy.deadline;
        if !(is_transient(error) && within) {
            return None;
        }
        self.made += 1;
        Some(self.policy.backoff(self.made))
    }
}

/// Whether `error` may be a call that failed on the way (a broken connection, a timeout, an
/// error status past object_store's own retries): the answers that mean something — not found,
/// already exists, a failed precondition, refused credentials — are not.
pub fn is_transient(error: &Error) -> bool {
    matches!(error, Error::Generic { .. } | Error::JoinError { .. })
}

async fn retrying<T, F, Fut>(policy: StorageRetry, what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempts = Attempts::new(policy);
    loop {
        match call().await {
            Err(e) => match attempts.another(&e) {
                Some(wait) => {
                    tracing::warn!(error = %e, attempt = attempts.made, wait_ms = wait.as_millis() as u64, "Storage call failed in transit ({what}); trying again");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(e),
            },
            done => return done,
        }
    }
}

/// An object store whose calls are retried where it is safe (see the module's header).
#[derive(Debug)]
pub struct Resilient {
    inner: Arc<dyn ObjectStore>,
    policy: StorageRetry,
}

impl Resilient {
    pub fn new(inner: Arc<dyn ObjectStore>, policy: StorageRetry) -> Resilient {
        Resilient { inner, policy }
    }

    /// After a create-only PUT's answer was lost: did it land? Ours (same bytes) → its result;
    /// another writer's → `AlreadyExists`; nothing there → `None`, send it again.
    async fn landed(&self, location: &Path, payload: &PutPayload) -> Result<Option<PutResult>> {
        let meta = match retrying(self.policy, "reading back a create-only put", || self.inner.head(location))
            .await
        {
            Ok(meta) => meta,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ours: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
        let stored = retrying(self.policy, "reading back a create-only put", || async {
            self.inner.get(location).await?.bytes().await
        })
        .await?;
        if stored.as_ref() == ours.as_slice() {
            tracing::info!(path = %location, "A create-only put whose answer was lost had landed: ours");
            Ok(Some(PutResult { e_tag: meta.e_tag, version: meta.version }))
        } else {
            Err(Error::AlreadyExists {
                path: location.to_string(),
                source: "another writer created it (found when the answer to our create was lost)".into(),
            })
        }
    }
}

impl fmt::Display for Resilient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resilient({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Resilient {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Create) {
            // An overwrite or a conditional update says what the object becomes: repeatable
            // (an update's precondition fails if our own first attempt landed, as it should).
            return retrying(self.policy, "put", || {
                self.inner.put_opts(location, payload.clone(), opts.clone())
            })
            .await;
        }
        let mut attempts = Attempts::new(self.policy);
        loop {
            match self.inner.put_opts(location, payload.clone(), opts.clone()).await {
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, path = %location, "A create-only put failed in transit; reading back whether it landed");
                    if let Some(result) = self.landed(location, &payload).await? {
                        return Ok(result);
                    }
                    let Some(wait) = attempts.another(&e) else { return Err(e) };
                    tokio::time::sleep(wait).await;
                }
                // A create that finds the object: someone else's, or ours after all — object_store
                // itself sends a request again when its connection broke, and the second
                // attempt then finds what the first one wrote.
                Err(Error::AlreadyExists { .. }) | Err(Error::Precondition { .. }) => {
                    return match self.landed(location, &payload).await? {
                        Some(result) => Ok(result),
                        None => Err(Error::AlreadyExists {
                            path: location.to_string(),
                            source: "created meanwhile and gone again".into(),
                        }),
                    };
                }
                other => return other,
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = retrying(self.policy, "creating a multipart upload", || {
            self.inner.put_multipart_opts(location, opts.clone())
        })
        .await?;
        Ok(Box::new(ResilientUpload {
            inner: upload,
            store: self.inner.clone(),
            location: location.clone(),
            policy: self.policy,
            bytes: 0,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        retrying(self.policy, "get", || self.inner.get_opts(location, options.clone())).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        retrying(self.policy, "get ranges", || self.inner.get_ranges(location, ranges)).await
    }

    /// Deletes in batches of the caller's stream; the paths whose delete failed in transit are
    /// deleted again. A path already gone is deleted.
    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let inner = self.inner.clone();
        let policy = self.policy;
        locations
            .chunks(1000)
            .then(move |batch| {
                let inner = inner.clone();
                async move {
                    let mut results: Vec<Result<Path>> = Vec::with_capacity(batch.len());
                    let mut pending: Vec<Path> = Vec::new();
                    for item in batch {
                        match item {
                            Ok(path) => pending.push(path),
                            Err(e) => results.push(Err(e)),
                        }
                    }
                    let mut attempts = Attempts::new(policy);
                    while !pending.is_empty() {
                        let paths = futures::stream::iter(pending.clone().into_iter().map(Ok)).boxed();
                        let outcomes: Vec<Result<Path>> = inner.delete_stream(paths).collect().await;
                        let (mut again, mut failed) = (Vec::new(), Vec::new());
                        for (path, outcome) in pending.iter().zip(outcomes) {
                            match outcome {
                                Ok(done) => results.push(Ok(done)),
                                Err(Error::NotFound { .. }) => results.push(Ok(path.clone())),
                                Err(e) if is_transient(&e) => {
                                    again.push(path.clone());
                                    failed.push(e);
                                }
                                Err(e) => results.push(Err(e)),
                            }
                        }
                        pending = again;
                        let Some(first) = failed.first() else { continue };
                        match attempts.another(first) {
                            Some(wait) => {
                                tracing::warn!(
                                    paths = pending.len(),
                                    attempt = attempts.made,
                                    "Deletes failed in transit; deleting them again"
                                );
                                tokio::time::sleep(wait).await;
                            }
                            None => {
                                results.extend(failed.into_iter().map(Err));
                                pending.clear();
                            }
                        }
                    }
                    futures::stream::iter(results)
                }
            })
            .flatten()
            .boxed()
    }

    /// A listing read whole, and read again from the start when it breaks off.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let policy = self.policy;
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            retrying(policy, "list", || inner.list(prefix.as_ref()).try_collect::<Vec<ObjectMeta>>()).await
        })
        .map_ok(|all| futures::stream::iter(all.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        retrying(self.policy, "list", || self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let mut attempts = Attempts::new(self.policy);
        loop {
            match self.inner.copy_opts(from, to, options.clone()).await {
                Err(e) if is_transient(&e) => {
                    let Some(wait) = attempts.another(&e) else { return Err(e) };
                    tokio::time::sleep(wait).await;
                }
                // A create-only copy retried after a lost answer finds its own copy.
                Err(Error::AlreadyExists { .. })
                    if !attempts.first() && matches!(options.mode, CopyMode::Create) =>
                {
                    let (source, target) = (self.inner.head(from).await?, self.inner.head(to).await?);
                    return if source.size == target.size && source.e_tag == target.e_tag {
                        Ok(())
                    } else {
                        Err(Error::AlreadyExists {
                            path: to.to_string(),
                            source: "another writer created it".into(),
                        })
                    };
                }
                other => return other,
            }
        }
    }

    /// A rename on S3 is a copy and a delete. The copy moves the data and is retried as a copy
    /// is; deleting a staged source afterwards is cleanup — a staged file left behind is
    /// invisible to readers and a later run's sweep removes it — so its failure is a warning,
    /// never a failed window. Any other source must be gone for the rename to have happened.
    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let mode = match options.target_mode {
            RenameTargetMode::Overwrite => CopyMode::Overwrite,
            RenameTargetMode::Create => CopyMode::Create,
        };
        self.copy_opts(from, to, CopyOptions { mode, extensions: options.extensions }).await?;
        match self.delete(from).await {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) if is_staged(from) => {
                tracing::warn!(error = %e, path = %from, "Could not delete a staged file after copying it into place; it is invisible to readers, and a later run's sweep removes it");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether `path` is in a run's staging area (`…/_cxlake/staging/…`).
fn is_staged(path: &Path) -> bool {
    let staging = super::layout::staging_root();
    path.as_ref().starts_with(&format!("{staging}/")) || path.as_ref().contains(&format!("/{staging}/"))
}

/// A multipart upload whose completion survives a lost answer.
#[derive(Debug)]
struct ResilientUpload {
    inner: Box<dyn MultipartUpload>,
    store: Arc<dyn ObjectStore>,
    location: Path,
    policy: StorageRetry,
    /// The bytes of the parts sent: the size the completed object has.
    bytes: u64,
}

#[async_trait]
impl MultipartUpload for ResilientUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.bytes += data.content_length() as u64;
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let mut attempts = Attempts::new(self.policy);
        loop {
            match self.inner.complete().await {
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, path = %self.location, "Completing a multipart upload failed in transit; checking whether it completed");
                    if let Ok(meta) = self.store.head(&self.location).await {
                        if meta.size == self.bytes {
                            return Ok(PutResult { e_tag: meta.e_tag, version: meta.version });
                        }
                    }
                    let Some(wait) = attempts.another(&e) else { return Err(e) };
                    tokio::time::sleep(wait).await;
                }
                // A completion retried after its first attempt completed: the upload is gone.
                Err(e) if !attempts.first() => {
                    return match self.store.head(&self.location).await {
                        Ok(meta) if meta.size == self.bytes => {
                            Ok(PutResult { e_tag: meta.e_tag, version: meta.version })
                        }
                        _ => Err(e),
                    };
                }
                other => return other,
            }
        }
    }

    async fn abort(&mut self) -> Result<()> {
        let mut attempts = Attempts::new(self.policy);
        loop {
            match self.inner.abort().await {
                Err(e) if is_transient(&e) => {
                    let Some(wait) = attempts.another(&e) else { return Err(e) };
                    tokio::time::sleep(wait).await;
                }
                Err(Error::NotFound { .. }) => return Ok(()),
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_tried_again_within_its_count_and_deadline_and_never_after_an_answer() {
        let transient = || Error::Generic { store: "S3", source: "connection reset".into() };
        let policy = StorageRetry {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            deadline: Duration::from_secs(3600),
        };
        let mut attempts = Attempts::new(policy);
        assert!(attempts.first());
        assert!(attempts.another(&transient()).is_some());
        assert!(!attempts.first());
        assert!(attempts.another(&transient()).is_some());
        assert!(attempts.another(&transient()).is_none(), "three attempts in all");
        let answer = Error::NotFound { path: "x".into(), source: "gone".into() };
        assert!(Attempts::new(policy).another(&answer).is_none());
        let spent = StorageRetry { deadline: Duration::ZERO, ..policy };
        assert!(Attempts::new(spent).another(&transient()).is_none(), "past the deadline");
    }

    #[test]
    fn staged_files_are_told_apart_from_the_lake() {
        assert!(is_staged(&Path::from(
            "lake/_cxlake/staging/run-1/saltedcx/turn/date=2024-03-01/part-00000.parquet"
        )));
        assert!(is_staged(&Path::from("_cxlake/staging/run-1/x.parquet")));
        assert!(!is_staged(&Path::from("lake/saltedcx/turn/date=2024-03-01/part-00000.parquet")));
        assert!(!is_staged(&Path::from("lake/_cxlake/state/saltedcx/staging.json")));
    }
}
