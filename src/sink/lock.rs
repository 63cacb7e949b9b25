//! One writer per destination: cron overlaps and orchestrator retries must not interleave.
//!
//! The lock is a series of generation objects `_cxlake/locks/lock-<generation>.json`; the highest
//! generation is the current lock. A run takes the lock by creating the next generation with a
//! create-only put (`PutMode::Create`: an atomic "if none match" on S3, an exclusive create on
//! disk), so of two runs racing for it exactly one succeeds — the same arbitration delta-rs uses
//! for commits. Generations never reuse a name, so taking over an expired lock needs no delete
//! that could race with another taker.
//!
//! The holder refreshes its heartbeat every third of the TTL. A lock whose heartbeat is older
//! than its TTL was left by a run that died, and is taken over; so is one whose owner is a
//! process on this host that no longer exists (a `kill -9`), without waiting. Before publishing
//! a window the pipeline checks that it still holds the lock (a run stalled past its TTL has
//! lost it to a newer one and stops). Releasing marks the generation released.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{layout, Destination, SinkError};

/// Another run holds the destination. Exit code 3.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{dest} is locked by run {run_id} on {host} (pid {pid}) since {since}; it expires {expires} unless refreshed — wait for that run, or rerun later")]
pub struct Locked {
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
    Locked(#[from] Locked),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("lost the lock on {dest}: run {by} took it over (this run stalled past --lock-ttl); stopping before publishing")]
    Lost { dest: String, by: String },
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
    fn expires(&self) -> DateTime<Utc> {
        self.heartbeat_at + chrono::Duration::seconds(self.ttl_secs as i64)
    }

    /// Whether another run may take over.
    fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.released || self.expires() < now || self.owner_is_dead_here()
    }

    /// The owner ran on this host and its process is gone (Linux `/proc`; elsewhere, wait for the TTL).
    fn owner_is_dead_here(&self) -> bool {
        self.host == hostname()
            && self.pid != std::process::id()
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
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

fn lock_file(generation: u64) -> String {
    format!("{}/locks/lock-{generation:012}.json", layout::BOOKKEEPING_DIR)
}

fn generation_of(name: &str) -> Option<u64> {
    name.strip_prefix("lock-")?.strip_suffix(".json")?.parse().ok()
}

/// The lock held by this run. Drop or [`DestLock::release`] stops the heartbeat.
pub struct DestLock {
    dest: Destination,
    record: LockRecord,
    lost: Arc<AtomicBool>,
    lost_to: Arc<std::sync::Mutex<Option<String>>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for DestLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestLock").field("generation", &self.record.generation).finish()
    }
}

async fn latest(dest: &Destination) -> Result<Option<LockRecord>, SinkError> {
    let dir = dest.path(&format!("{}/locks", layout::BOOKKEEPING_DIR));
    let metas: Vec<_> =
        dest.store.list(Some(&dir)).try_collect().await.map_err(|e| SinkError::store(&dir, e))?;
    let Some(newest) = metas.iter().filter_map(|m| m.location.filename().and_then(generation_of)).max()
    else {
        return Ok(None);
    };
    let path = dest.path(&lock_file(newest));
    let bytes = match dest.store.get(&path).await {
        Ok(r) => r.bytes().await.map_err(|e| SinkError::store(&path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(SinkError::store(&path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SinkError::CorruptState { path: path.to_string(), message: e.to_string() })
}

async fn write(dest: &Destination, record: &LockRecord, mode: PutMode) -> Result<(), object_store::Error> {
    let path = dest.path(&lock_file(record.generation));
    let bytes = serde_json::to_vec_pretty(record).expect("lock records serialize");
    dest.store.put_opts(&path, PutPayload::from(bytes), PutOptions::from(mode)).await.map(|_| ())
}

impl DestLock {
    /// Takes the destination's lock for `run_id`, or says who holds it.
    pub async fn acquire(dest: &Destination, run_id: &str, ttl: Duration) -> Result<DestLock, LockError> {
        for _ in 0..5 {
            let now = Utc::now();
            let generation = match latest(dest).await? {
                Some(current) if !current.is_free(now) => {
                    return Err(Locked {
                        dest: dest.display.clone(),
                        expires: current.expires(),
                        run_id: current.run_id,
                        host: current.host,
                        pid: current.pid,
                        since: current.acquired_at,
                    }
                    .into())
                }
                Some(current) => {
                    if !current.released {
                        tracing::warn!(stale_run = %current.run_id, host = %current.host, pid = current.pid, heartbeat = %current.heartbeat_at, "Taking over a lock left by a run that is gone");
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
            match write(dest, &record, PutMode::Create).await {
                Ok(()) => {
                    prune_older(dest, generation).await;
                    return Ok(DestLock::start(dest.clone(), record, ttl));
                }
                // Another run created this generation first: look again at who holds it.
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => continue,
                Err(e) => return Err(SinkError::store(&dest.path(&lock_file(generation)), e).into()),
            }
        }
        Err(SinkError::CorruptState {
            path: format!("{}/locks", layout::BOOKKEEPING_DIR),
            message: "the lock kept changing hands while taking it".into(),
        }
        .into())
    }

    fn start(dest: Destination, record: LockRecord, ttl: Duration) -> DestLock {
        let lost = Arc::new(AtomicBool::new(false));
        let lost_to = Arc::new(std::sync::Mutex::new(None));
        let heartbeat = {
            let (dest, mut record, lost, lost_to) =
                (dest.clone(), record.clone(), lost.clone(), lost_to.clone());
            tokio::spawn(async move {
                let every = (ttl / 3).max(Duration::from_millis(200));
                loop {
                    tokio::time::sleep(every).await;
                    match latest(&dest).await {
                        Ok(Some(current)) if current.generation != record.generation => {
                            *lost_to.lock().expect("lock state") = Some(current.run_id);
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "Could not check the destination lock; will retry")
                        }
                    }
                    record.heartbeat_at = Utc::now();
                    if let Err(e) = write(&dest, &record, PutMode::Overwrite).await {
                        tracing::warn!(error = %e, "Could not refresh the destination lock; will retry");
                    }
                }
            })
        };
        DestLock { dest, record, lost, lost_to, heartbeat: Some(heartbeat) }
    }

    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Fails if another run has taken the lock over since it was acquired.
    pub async fn ensure_held(&self) -> Result<(), LockError> {
        let by = if self.lost.load(Ordering::SeqCst) {
            self.lost_to.lock().expect("lock state").clone()
        } else {
            match latest(&self.dest).await? {
                Some(current) if current.generation != self.record.generation => Some(current.run_id),
                _ => None,
            }
        };
        match by {
            Some(by) => Err(LockError::Lost { dest: self.dest.display.clone(), by }),
            None => Ok(()),
        }
    }

    /// Stops the heartbeat and marks the lock released (if it is still ours).
    pub async fn release(mut self) -> Result<(), SinkError> {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        if self.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut record = self.record.clone();
        record.released = true;
        record.heartbeat_at = Utc::now();
        write(&self.dest, &record, PutMode::Overwrite)
            .await
            .map_err(|e| SinkError::store(&self.dest.path(&lock_file(record.generation)), e))
    }
}

impl Drop for DestLock {
    fn drop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }
}

/// Removes generations before `current` (best effort: they are history, not state).
async fn prune_older(dest: &Destination, current: u64) {
    for generation in current.saturating_sub(16)..current {
        let _ = dest.store.delete(&dest.path(&lock_file(generation))).await;
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
        assert_eq!(generation_of("lock-000000000042.json"), Some(42));
        assert_eq!(lock_file(42), "_cxlake/locks/lock-000000000042.json");
        assert_eq!(generation_of("lock-x.json"), None);
    }
}
