//! Leases: who may write which part of a lake, so that many processes on many machines can sync
//! one lake at once without ever writing the same window twice.
//!
//! A lease is a series of generation objects `_cxlake/leases/<name>/lease-<generation>.json`; the
//! highest generation is the current holder. A run takes a lease by creating the next generation
//! with a create-only put (`PutMode::Create`: an atomic "if none match" on S3, an exclusive
//! create on disk), so of two runs racing for it exactly one succeeds — the same arbitration
//! delta-rs uses for commits. Generations never reuse a name, so taking over an expired lease
//! needs no delete that could race with another taker.
//!
//! The leases ([`LeaseName`]):
//! - `<source>/window/date=D`: one window of a source — its export, decoding, publishing and
//!   record. The window record holds every dataset of the source, so the window is the unit.
//! - `<source>/current`: the source's current tables; `views`: `_cxlake/views.sql`.
//! - `<source>/creations`: the turn to create an export, held from counting the source's
//!   creations against its cap to logging the new one ([`crate::creations`]).
//! - `runs/<run-id>`: a run's presence, held for its whole life. Staging belongs to runs;
//!   staging of a run without a live presence is swept ([`sweep_dead_staging`]).
//! - `lake`: taken by lake-wide rewrites (`forget`, `vacuum --raw-older-than`), which then wait
//!   until no other run is present; a run that finds it held after announcing its presence
//!   stops. Both sides write first and read second, so at least one sees the other.
//!
//! The holder refreshes its heartbeat every third of the TTL. A lease whose heartbeat is older
//! than its TTL was left by a run that died, and is taken over; so is one whose owner is a
//! process on this host that no longer exists (a `kill -9`), without waiting. Before publishing
//! a window the pipeline checks that it still holds the window's lease (a run stalled past its
//! TTL has lost it to a newer one and stops). Releasing marks the generation released.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{commit, layout, Destination, SinkError};

/// Another run holds a lease this run needs. Exit code 3.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} in {dest} is held by run {run_id} on {host} (pid {pid}) since {since}; it expires {expires} unless refreshed — wait for that run, or rerun later")]
pub struct Locked {
    pub what: String,
    pub dest: String,
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub since: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Locked(Box<Locked>),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("lost the lease on {what} in {dest}: run {by} took it over (this run stalled past --lock-ttl); stopping before publishing")]
    Lost { what: String, dest: String, by: String },
}

impl From<Locked> for LockError {
    fn from(locked: Locked) -> LockError {
        LockError::Locked(Box::new(locked))
    }
}

/// What a lease covers: a relative path under `_cxlake/leases/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeaseName(String);

impl LeaseName {
    /// One window of a source: its export, files and record.
    pub fn window(source: &str, date: NaiveDate) -> LeaseName {
        debug_assert!(layout::is_identifier(source));
        LeaseName(format!("{source}/window/date={date}"))
    }

    /// A source's current tables.
    pub fn current(source: &str) -> LeaseName {
        debug_assert!(layout::is_identifier(source));
        LeaseName(format!("{source}/current"))
    }

    /// The turn to create an export of a source (its creation cap holds across workers).
    pub fn creations(source: &str) -> LeaseName {
        debug_assert!(layout::is_identifier(source));
        LeaseName(format!("{source}/creations"))
    }

    /// The lake's views file.
    pub fn views() -> LeaseName {
        LeaseName("views".into())
    }

    /// The whole lake, for rewrites across every source and window.
    pub fn lake() -> LeaseName {
        LeaseName("lake".into())
    }

    /// A run's presence.
    pub fn run(run_id: &str) -> LeaseName {
        LeaseName(format!("runs/{run_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn dir(&self) -> String {
        format!("{}/{}", leases_root(), self.0)
    }

    fn file(&self, generation: u64) -> String {
        format!("{}/lease-{generation:012}.json", self.dir())
    }
}

impl std::fmt::Display for LeaseName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn leases_root() -> String {
    format!("{}/leases", layout::BOOKKEEPING_DIR)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub generation: u64,
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub ttl_secs: u64,
    pub released: bool,
}

impl LockRecord {
    pub fn expires(&self) -> DateTime<Utc> {
        self.heartbeat_at + chrono::Duration::seconds(self.ttl_secs as i64)
    }

    /// Whether another run may take over.
    pub fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.released || self.expires() < now || self.owner_is_dead_here()
    }

    /// The owner ran on this host and its process is gone (Linux `/proc`; elsewhere, wait for the TTL).
    fn owner_is_dead_here(&self) -> bool {
        self.host == hostname()
            && self.pid != std::process::id()
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    fn held_error(&self, what: &LeaseName, dest: &Destination) -> Locked {
        Locked {
            what: what.to_string(),
            dest: dest.display.clone(),
            expires: self.expires(),
            run_id: self.run_id.clone(),
            host: self.host.clone(),
            pid: self.pid,
            since: self.acquired_at,
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

fn generation_of(name: &str) -> Option<u64> {
    name.strip_prefix("lease-")?.strip_suffix(".json")?.parse().ok()
}

/// The current generation of a lease, if it was ever taken.
pub async fn latest(dest: &Destination, name: &LeaseName) -> Result<Option<LockRecord>, SinkError> {
    let dir = dest.path(&name.dir());
    // Only this lease's own files: `runs/<id>` must not list `runs/<id>-longer`.
    let metas: Vec<_> =
        dest.store.list(Some(&dir)).try_collect().await.map_err(|e| SinkError::store(&dir, e))?;
    let Some(newest) = metas
        .iter()
        .filter(|m| m.location.prefix_match(&dir).is_some_and(|rest| rest.count() == 1))
        .filter_map(|m| m.location.filename().and_then(generation_of))
        .max()
    else {
        return Ok(None);
    };
    let path = dest.path(&name.file(newest));
    let bytes = match dest.store.get(&path).await {
        Ok(r) => r.bytes().await.map_err(|e| SinkError::store(&path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(SinkError::store(&path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SinkError::CorruptState { path: path.to_string(), message: e.to_string() })
}

/// Who holds `name` now, if anyone does (and is not this run).
pub async fn holder(
    dest: &Destination,
    name: &LeaseName,
    run_id: &str,
) -> Result<Option<LockRecord>, SinkError> {
    Ok(latest(dest, name).await?.filter(|r| !r.is_free(Utc::now()) && r.run_id != run_id))
}

async fn write(
    dest: &Destination,
    name: &LeaseName,
    record: &LockRecord,
    mode: PutMode,
) -> Result<(), object_store::Error> {
    let path = dest.path(&name.file(record.generation));
    let bytes = serde_json::to_vec_pretty(record).expect("lease records serialize");
    dest.store.put_opts(&path, PutPayload::from(bytes), PutOptions::from(mode)).await.map(|_| ())
}

/// A lease held by this run. Drop or [`Lease::release`] stops the heartbeat.
pub struct Lease {
    dest: Destination,
    name: LeaseName,
    record: LockRecord,
    lost: Arc<AtomicBool>,
    lost_to: Arc<std::sync::Mutex<Option<String>>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("generation", &self.record.generation)
            .finish()
    }
}

impl Lease {
    /// Takes `name` for `run_id`, or says who holds it.
    pub async fn acquire(
        dest: &Destination,
        name: &LeaseName,
        run_id: &str,
        ttl: Duration,
    ) -> Result<Lease, LockError> {
        for _ in 0..5 {
            let now = Utc::now();
            let generation = match latest(dest, name).await? {
                Some(current) if !current.is_free(now) => return Err(current.held_error(name, dest).into()),
                Some(current) => {
                    if !current.released {
                        tracing::warn!(lease = %name, stale_run = %current.run_id, host = %current.host, pid = current.pid, heartbeat = %current.heartbeat_at, "Taking over a lease left by a run that is gone");
                    }
                    current.generation + 1
                }
                None => 1,
            };
            let record = LockRecord {
                generation,
                run_id: run_id.to_string(),
                host: hostname(),
                pid: std::process::id(),
                acquired_at: now,
                heartbeat_at: now,
                ttl_secs: ttl.as_secs().max(1),
                released: false,
            };
            match write(dest, name, &record, PutMode::Create).await {
                Ok(()) => {
                    prune_older(dest, name, generation).await;
                    return Ok(Lease::start(dest.clone(), name.clone(), record, ttl));
                }
                // Another run created this generation first: look again at who holds it.
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => continue,
                Err(e) => return Err(SinkError::store(&dest.path(&name.file(generation)), e).into()),
            }
        }
        Err(SinkError::CorruptState {
            path: name.dir(),
            message: "the lease kept changing hands while taking it".into(),
        }
        .into())
    }

    /// Takes `name`, waiting up to `wait` while another live run holds it.
    pub async fn acquire_waiting(
        dest: &Destination,
        name: &LeaseName,
        run_id: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut logged = false;
        loop {
            match Lease::acquire(dest, name, run_id, ttl).await {
                Err(LockError::Locked(held)) if tokio::time::Instant::now() < deadline => {
                    if !logged {
                        tracing::info!(lease = %name, holder = %held.run_id, host = %held.host, "Waiting for another run to release a lease");
                        logged = true;
                    }
                    tokio::time::sleep(poll_interval(ttl)).await;
                }
                other => return other,
            }
        }
    }

    fn start(dest: Destination, name: LeaseName, record: LockRecord, ttl: Duration) -> Lease {
        let lost = Arc::new(AtomicBool::new(false));
        let lost_to = Arc::new(std::sync::Mutex::new(None));
        let heartbeat = {
            let (dest, name, mut record, lost, lost_to) =
                (dest.clone(), name.clone(), record.clone(), lost.clone(), lost_to.clone());
            tokio::spawn(async move {
                let every = (ttl / 3).max(Duration::from_millis(200));
                loop {
                    tokio::time::sleep(every).await;
                    match latest(&dest, &name).await {
                        Ok(Some(current)) if current.generation != record.generation => {
                            *lost_to.lock().expect("lease state") = Some(current.run_id);
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(lease = %name, error = %e, "Could not check a lease; will retry")
                        }
                    }
                    record.heartbeat_at = Utc::now();
                    if let Err(e) = write(&dest, &name, &record, PutMode::Overwrite).await {
                        tracing::warn!(lease = %name, error = %e, "Could not refresh a lease; will retry");
                    }
                }
            })
        };
        Lease { dest, name, record, lost, lost_to, heartbeat: Some(heartbeat) }
    }

    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    pub fn name(&self) -> &LeaseName {
        &self.name
    }

    /// Fails if another run has taken the lease over since it was acquired.
    pub async fn ensure_held(&self) -> Result<(), LockError> {
        let by = if self.lost.load(Ordering::SeqCst) {
            self.lost_to.lock().expect("lease state").clone()
        } else {
            match latest(&self.dest, &self.name).await? {
                Some(current) if current.generation != self.record.generation => Some(current.run_id),
                _ => None,
            }
        };
        match by {
            Some(by) => {
                Err(LockError::Lost { what: self.name.to_string(), dest: self.dest.display.clone(), by })
            }
            None => Ok(()),
        }
    }

    /// Stops the heartbeat and marks the lease released (if it is still ours).
    pub async fn release(mut self) -> Result<(), SinkError> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        if self.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Releasing is cleanup: a lease left unreleased expires at its TTL, and no work waits on
        // it succeeding — a storage failure here never fails what the lease protected.
        if let Err(e) = self.write_released().await {
            let path = self.dest.path(&self.name.file(self.record.generation));
            tracing::warn!(error = %e, path = %path, "Could not release a lease; it expires at its TTL");
        }
        Ok(())
    }

    /// Overwrites the lease with its record marked released (free for anyone at once).
    async fn write_released(&self) -> object_store::Result<()> {
        let mut record = self.record.clone();
        record.released = true;
        record.heartbeat_at = Utc::now();
        write(&self.dest, &self.name, &record, PutMode::Overwrite).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// How often a waiting run looks again: a lease is usually released within seconds (a current
/// table's refresh), and a look is one listing and one small read.
fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 20).clamp(Duration::from_millis(200), Duration::from_secs(1))
}

/// Removes generations before `current` (best effort: they are history, not state).
async fn prune_older(dest: &Destination, name: &LeaseName, current: u64) {
    for generation in current.saturating_sub(16)..current {
        let _ = dest.store.delete(&dest.path(&name.file(generation))).await;
    }
}

/// A run's presence in the lake: held from its start to its end. While it is held, the run's
/// staging is its own; a lake-wide rewrite waits for it.
#[derive(Debug)]
pub struct RunGuard {
    presence: Lease,
    lake: Option<Lease>,
}

impl RunGuard {
    /// Announces a run that writes windows or tables, then sweeps what dead runs left in
    /// staging. Fails with [`Locked`] while a lake-wide rewrite holds the lake.
    pub async fn start(dest: &Destination, run_id: &str, ttl: Duration) -> Result<RunGuard, LockError> {
        let presence = Lease::acquire(dest, &LeaseName::run(run_id), run_id, ttl).await?;
        // Written first, read second: a `forget` taking the lake now either sees this run or is seen.
        if let Some(held) = holder(dest, &LeaseName::lake(), run_id).await? {
            let _ = presence.release().await;
            return Err(held.held_error(&LeaseName::lake(), dest).into());
        }
        sweep_dead_staging(dest).await;
        Ok(RunGuard { presence, lake: None })
    }

    /// Takes the whole lake for a rewrite across sources and windows: no new run starts, and
    /// this waits up to `wait` for the runs already present to finish.
    pub async fn exclusive(
        dest: &Destination,
        run_id: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<RunGuard, LockError> {
        let lake = Lease::acquire(dest, &LeaseName::lake(), run_id, ttl).await?;
        let presence = match Lease::acquire(dest, &LeaseName::run(run_id), run_id, ttl).await {
            Ok(presence) => presence,
            Err(e) => {
                let _ = lake.release().await;
                return Err(e);
            }
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let others = present_runs(dest, run_id).await?;
            let Some(first) = others.into_iter().next() else { break };
            if tokio::time::Instant::now() >= deadline {
                let _ = presence.release().await;
                let _ = lake.release().await;
                return Err(first.held_error(&LeaseName::run(&first.run_id), dest).into());
            }
            tracing::info!(run = %first.run_id, host = %first.host, "Waiting for a run to finish before rewriting the lake");
            tokio::time::sleep(poll_interval(ttl)).await;
        }
        sweep_dead_staging(dest).await;
        Ok(RunGuard { presence, lake: Some(lake) })
    }

    pub fn run_id(&self) -> &str {
        &self.presence.record.run_id
    }

    /// Fails if a lake-wide rewrite has taken this run's presence or lake lease over.
    pub async fn ensure_held(&self) -> Result<(), LockError> {
        self.presence.ensure_held().await?;
        match &self.lake {
            Some(lake) => lake.ensure_held().await,
            None => Ok(()),
        }
    }

    /// Ends the run: its presence is deleted (a run id never comes back, so nothing is left
    /// to arbitrate), the lake lease released.
    pub async fn release(mut self) -> Result<(), SinkError> {
        if let Some(task) = self.presence.heartbeat.take() {
            task.abort();
        }
        let presence = &self.presence;
        let path = presence.dest.path(&presence.name.file(presence.record.generation));
        // Cleanup: a presence left behind expires at its TTL (see `Lease::release`). A store
        // that refuses deletes (an append-only bucket policy) may still take it marked released.
        if let Err(e) = presence.dest.store.delete(&path).await {
            if presence.write_released().await.is_err() {
                tracing::warn!(error = %e, path = %path, "Could not remove this run's presence; it expires at its TTL");
            }
        }
        // object_store leaves the emptied directory behind on local disk.
        if let Some(dir) = &presence.dest.local_dir {
            let _ = std::fs::remove_dir(dir.join(presence.name.dir()));
        }
        if let Some(lake) = self.lake.take() {
            lake.release().await?;
        }
        Ok(())
    }
}

/// The runs present in the lake other than `run_id` (live presence leases).
pub async fn present_runs(dest: &Destination, run_id: &str) -> Result<Vec<LockRecord>, SinkError> {
    let root = format!("{}/runs", leases_root());
    let mut present = Vec::new();
    for id in commit::child_dirs(dest, &root).await? {
        if id == run_id {
            continue;
        }
        match latest(dest, &LeaseName::run(&id)).await? {
            Some(record) if !record.is_free(Utc::now()) => present.push(record),
            // A killed run's presence: nothing of it is alive any more.
            Some(record) => {
                let path = dest.path(&LeaseName::run(&id).file(record.generation));
                let _ = dest.store.delete(&path).await;
            }
            None => {}
        }
    }
    Ok(present)
}

/// Removes staged files and open multipart uploads of runs that are no longer present (killed
/// runs), leaving alone anything written after this sweep began: a run that starts meanwhile
/// writes only newer objects. Best effort: staging is invisible to readers.
pub async fn sweep_dead_staging(dest: &Destination) {
    let began = Utc::now();
    let root = layout::staging_root();
    let prefix = dest.path(&root);
    let mut by_run: std::collections::BTreeMap<String, Vec<object_store::path::Path>> = Default::default();
    let listed: Result<Vec<_>, _> = dest.store.list(Some(&prefix)).try_collect().await;
    let metas = match listed {
        Ok(metas) => metas,
        Err(e) => {
            tracing::warn!(error = %e, "Could not list staging; it is invisible to readers");
            return;
        }
    };
    for meta in metas.into_iter().filter(|m| m.last_modified < began) {
        if let Some(run) = meta.location.prefix_match(&prefix).and_then(|mut rest| rest.next()) {
            by_run.entry(run.as_ref().to_string()).or_default().push(meta.location.clone());
        }
    }
    let uploads = match &dest.s3 {
        Some(s3) => match s3.incomplete_uploads(&format!("{prefix}/")).await {
            Ok(uploads) => uploads,
            Err(e) => {
                tracing::warn!(error = %e, "Could not list abandoned multipart uploads; a bucket lifecycle rule reclaims them");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let upload_run = |key: &str| -> Option<String> {
        key.strip_prefix(&format!("{prefix}/"))?.split('/').next().map(str::to_string)
    };
    let mut runs: BTreeSet<String> = by_run.keys().cloned().collect();
    runs.extend(
        uploads.iter().filter(|u| u.initiated.is_none_or(|t| t < began)).filter_map(|u| upload_run(&u.key)),
    );
    // On disk, a run killed in the middle of a put leaves the store's temporary file (`name#N`),
    // which a listing does not show: the run directories themselves are looked at too.
    if let Some(dir) = &dest.local_dir {
        let before = std::time::SystemTime::from(began);
        for entry in std::fs::read_dir(dir.join(&root)).into_iter().flatten().flatten() {
            let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < before);
            if old && entry.file_type().is_ok_and(|t| t.is_dir()) {
                runs.insert(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let (mut files, mut aborted) = (0, 0);
    for run in runs {
        match latest(dest, &LeaseName::run(&run)).await {
            Ok(Some(presence)) if !presence.is_free(Utc::now()) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(run = %run, error = %e, "Could not read a run's presence; leaving its staging");
                continue;
            }
        }
        for path in by_run.remove(&run).unwrap_or_default() {
            if dest.store.delete(&path).await.is_ok() {
                files += 1;
            }
        }
        if let Some(s3) = &dest.s3 {
            for upload in uploads.iter().filter(|u| upload_run(&u.key).as_deref() == Some(run.as_str())) {
                if upload.initiated.is_some_and(|t| t >= began) {
                    continue;
                }
                if s3.abort(upload).await.is_ok() {
                    aborted += 1;
                }
            }
        }
        if let Some(dir) = &dest.local_dir {
            let _ = std::fs::remove_dir_all(dir.join(&root).join(&run));
        }
    }
    if files > 0 {
        tracing::info!(files, "Removed staged files left by an interrupted run");
    }
    if aborted > 0 {
        tracing::info!(uploads = aborted, "Aborted multipart uploads left open by an interrupted run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, pid: u32, heartbeat_secs_ago: i64, ttl: u64) -> LockRecord {
        let now = Utc::now();
        LockRecord {
            generation: 1,
            run_id: "r".into(),
            host: host.into(),
            pid,
            acquired_at: now,
            heartbeat_at: now - chrono::Duration::seconds(heartbeat_secs_ago),
            ttl_secs: ttl,
            released: false,
        }
    }

    #[test]
    fn a_lock_is_free_when_released_expired_or_its_local_owner_is_gone() {
        let now = Utc::now();
        assert!(!record("elsewhere", 1, 0, 60).is_free(now));
        assert!(record("elsewhere", 1, 120, 60).is_free(now), "expired");
        assert!(LockRecord { released: true, ..record("elsewhere", 1, 0, 60) }.is_free(now));
        assert!(!record(&hostname(), std::process::id(), 0, 60).is_free(now), "our own process is alive");
        assert!(record(&hostname(), u32::MAX - 1, 0, 60).is_free(now), "no such process here");
    }

    #[test]
    fn generations_round_trip_through_file_names() {
        assert_eq!(generation_of("lease-000000000042.json"), Some(42));
        let date = NaiveDate::from_ymd_opt(2024, 3, 9).unwrap();
        assert_eq!(
            LeaseName::window("saltedcx", date).file(42),
            "_cxlake/leases/saltedcx/window/date=2024-03-09/lease-000000000042.json"
        );
        assert_eq!(LeaseName::current("dixa").dir(), "_cxlake/leases/dixa/current");
        assert_eq!(generation_of("lease-x.json"), None);
    }
}
