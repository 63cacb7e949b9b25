//! The lake's record of the exports each source created, and the turn that serialises
//! creations across workers, so a platform's creation cap (Salted CX asks for low-frequency
//! batch use) holds for a whole shard set rather than for each process.
//!
//! - `_cxlake/creations/<source>/<created-at>-<date>-<run>.json`: one object per export created,
//!   named by its creation time, so a listing is the log. Entries older than a day are pruned.
//! - The lease `<source>/creations` is the turn: a worker takes it, counts, creates, logs, and
//!   only then releases it, so two workers never both see room for one more export.
//! - In flight: the export journal's entries (`_cxlake/exports/<source>/`) younger than an hour —
//!   an export is journalled when created and cleared when its window lands; one a failed window
//!   left behind counts until a rerun adopts it or it is an hour old. The window asking does not
//!   count its own (it is replacing it).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::sink::layout::BOOKKEEPING_DIR;
use crate::sink::lease::{Lease, LeaseName, LockError};
use crate::sink::{Destination, SinkError};
use crate::sources::CreationCap;

/// How long a journalled export counts as in flight.
const IN_FLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long the creation log keeps an entry.
const LOG_KEEP: Duration = Duration::from_secs(24 * 3600);
/// A turn's lease: refreshed while a creation takes long (retries), taken over from a dead worker.
const TURN_TTL: Duration = Duration::from_secs(30);
/// How often a worker waiting for an export in flight to land looks again.
const IN_FLIGHT_POLL: Duration = Duration::from_secs(2);
/// How often a worker still waiting for the cap says so again.
const STILL_WAITING_EVERY: Duration = Duration::from_secs(300);

fn log_dir(source: &str) -> String {
    format!("{BOOKKEEPING_DIR}/creations/{source}")
}

fn exports_dir(source: &str) -> String {
    format!("{BOOKKEEPING_DIR}/exports/{source}")
}

/// The creation time a log entry's name starts with.
fn logged_at(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ").ok().map(|t| t.and_utc())
}

/// What the lake's records say about `source`'s creations at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationCounts {
    /// Creation times within the cap's period, oldest first.
    pub recent: Vec<DateTime<Utc>>,
    /// Exports created and not yet landed (other windows').
    pub in_flight: usize,
}

impl CreationCounts {
    /// How long to wait before `cap` allows another creation; `None`: now.
    pub fn wait(&self, cap: CreationCap, now: DateTime<Utc>) -> Option<Duration> {
        if self.recent.len() >= cap.per_period as usize {
            // Room again once the oldest of the last `per_period` leaves the period.
            let oldest = self.recent[self.recent.len() - cap.per_period as usize];
            let free_at = oldest + chrono::Duration::from_std(cap.period).unwrap_or_default();
            return Some((free_at - now).to_std().unwrap_or_default().max(Duration::from_millis(50)));
        }
        if self.in_flight >= cap.in_flight as usize {
            return Some(IN_FLIGHT_POLL);
        }
        None
    }
}

/// Counts `source`'s creations in the last `cap.period` and its exports in flight (other than
/// `window`'s), pruning log entries past keeping.
pub async fn counts(
    dest: &Destination,
    source: &str,
    window: NaiveDate,
    cap: CreationCap,
    now: DateTime<Utc>,
) -> Result<CreationCounts, SinkError> {
    let dir = dest.path(&log_dir(source));
    let entries: Vec<_> =
        dest.store.list(Some(&dir)).try_collect().await.map_err(|e| SinkError::store(&dir, e))?;
    let since = now - chrono::Duration::from_std(cap.period).unwrap_or_default();
    let keep_since = now - chrono::Duration::from_std(LOG_KEEP.max(cap.period)).unwrap_or_default();
    let mut recent = Vec::new();
    for entry in &entries {
        match logged_at(entry.location.filename().unwrap_or_default()) {
            Some(at) if at > since => recent.push(at),
            Some(at) if at < keep_since => {
                let _ = dest.store.delete(&entry.location).await;
            }
            _ => {}
        }
    }
    recent.sort();
    let exports = dest.path(&exports_dir(source));
    let own = format!("date={window}.json");
    let journalled: Vec<_> =
        dest.store.list(Some(&exports)).try_collect().await.map_err(|e| SinkError::store(&exports, e))?;
    let fresh_since = now - chrono::Duration::from_std(IN_FLIGHT_MAX_AGE).unwrap_or_default();
    let in_flight = journalled
        .iter()
        .filter(|m| m.location.filename() != Some(own.as_str()) && m.last_modified > fresh_since)
        .count();
    Ok(CreationCounts { recent, in_flight })
}

/// Waits until `cap` allows `source` to create an export for `window`, and returns the turn
/// (held until [`end`]). Other workers' turns are waited for; a capped lake is waited out with
/// the turn released.
pub async fn begin(
    dest: &Destination,
    source: &str,
    run_id: &str,
    window: NaiveDate,
    cap: CreationCap,
) -> Result<Lease, LockError> {
    let name = LeaseName::creations(source);
    // Said when the wait begins and every few minutes after: a run waiting out an hourly cap
    // must not look like a run that hangs.
    let mut said_at: Option<std::time::Instant> = None;
    loop {
        // A turn is held for one creation (a history read and a POST): look again soon.
        let turn = match Lease::acquire(dest, &name, run_id, TURN_TTL).await {
            Ok(turn) => turn,
            Err(LockError::Locked(_)) => {
                tokio::time::sleep(Duration::from_millis(50 + u64::from(rand_jitter()) % 100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let now = Utc::now();
        let counted = match counts(dest, source, window, cap, now).await {
            Ok(counted) => counted,
            Err(e) => {
                let _ = turn.release().await;
                return Err(e.into());
            }
        };
        let Some(wait) = counted.wait(cap, now) else {
            return Ok(turn);
        };
        let _ = turn.release().await;
        if said_at.is_none_or(|at| at.elapsed() >= STILL_WAITING_EVERY) {
            tracing::info!(
                source,
                window = %window,
                created_in_period = counted.recent.len(),
                in_flight = counted.in_flight,
                cap_per_period = cap.per_period,
                period_secs = cap.period.as_secs(),
                cap_in_flight = cap.in_flight,
                wait_ms = wait.as_millis() as u64,
                "Waiting for the export creation cap shared by this lake's workers (--max-export-rate, --max-exports-in-flight)"
            );
            said_at = Some(std::time::Instant::now());
        }
        tokio::time::sleep(wait.min(STILL_WAITING_EVERY)).await;
    }
}

/// A few bits of jitter so waiting workers do not look in lockstep.
fn rand_jitter() -> u16 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    (nanos ^ std::process::id()) as u16
}

/// Logs the export created during `turn` (if any) and releases the turn.
pub async fn end(
    dest: &Destination,
    turn: Lease,
    source: &str,
    run_id: &str,
    window: NaiveDate,
    export_id: Option<&str>,
) -> Result<(), SinkError> {
    let logged = match export_id {
        Some(export_id) => {
            let name = format!("{}-{window}-{run_id}.json", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
            let path = dest.path(&format!("{}/{name}", log_dir(source)));
            let body = serde_json::json!({ "export_id": export_id, "date": window, "run_id": run_id });
            dest.store
                .put(&path, serde_json::to_vec(&body).expect("a JSON value serialises").into())
                .await
                .map(|_| ())
                .map_err(|e| SinkError::store(&path, e))
        }
        None => Ok(()),
    };
    let released = turn.release().await;
    logged.and(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_cap_waits_for_the_oldest_creation_to_leave_the_period_or_for_room_in_flight() {
        let cap = CreationCap { per_period: 2, period: Duration::from_secs(3600), in_flight: 1 };
        let now = t("2024-03-01T12:00:00Z");
        let counts = |recent: &[&str], in_flight| CreationCounts {
            recent: recent.iter().map(|s| t(s)).collect(),
            in_flight,
        };
        assert_eq!(counts(&["2024-03-01T11:30:00Z"], 0).wait(cap, now), None);
        assert_eq!(
            counts(&["2024-03-01T11:10:00Z", "2024-03-01T11:30:00Z"], 0).wait(cap, now),
            Some(Duration::from_secs(600))
        );
        assert_eq!(counts(&["2024-03-01T11:30:00Z"], 1).wait(cap, now), Some(IN_FLIGHT_POLL));
        assert_eq!(
            logged_at("20240301T113000.250Z-2024-02-01-run.json"),
            Some(t("2024-03-01T11:30:00.250Z"))
        );
    }
}
