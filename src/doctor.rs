//! `cxlake check`: before the first night, prove that everything a sync needs works — the
//! config file, the schemas, the destination (write, read, delete, a create-only put that must
//! be refused the second time, the clock against the store's), the leases in the lake, and
//! each configured source's credentials with one cheap call (an SFTP login and listing for a
//! drop folder). One line per check with ✓ or ✗ and, for ✗, what to do; exit 0 only when all pass.

use std::time::Instant;

use chrono::Utc;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::sink::lease::{self, LeaseName};
use crate::sink::{layout, Destination};

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl CheckResult {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult { name: name.into(), ok: true, detail: detail.into() }
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult { name: name.into(), ok: false, detail: detail.into() }
    }
}

/// How far the clock may be from the store's before leases (heartbeats written by one host,
/// judged by another) become unreliable.
const MAX_SKEW_SECS: f64 = 30.0;

/// Write, read back, create-only put (refused the second time), clock, delete.
pub async fn check_destination(dest: &Destination, run_id: &str) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let relative = format!("{}/check/{run_id}.probe", layout::BOOKKEEPING_DIR);
    let path = dest.path(&relative);
    let body = format!("cxlake check {run_id}");
    let before = Utc::now();
    let started = Instant::now();
    let put = dest
        .store
        .put_opts(&path, PutPayload::from(body.clone().into_bytes()), PutOptions::from(PutMode::Create))
        .await;
    if let Err(e) = put {
        results.push(CheckResult::fail(
            "destination write",
            format!("{}: cannot write under _cxlake/: {e} — check the path or bucket, the credentials (AWS_*) and that they may write there", dest.display),
        ));
        return results;
    }
    let written_in = started.elapsed();
    let read = match dest.store.get(&path).await {
        Ok(r) => r.bytes().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match read {
        Ok(bytes) if bytes.as_ref() == body.as_bytes() => results.push(CheckResult::pass(
            "destination write/read",
            format!("{}: wrote and read back {relative} ({} ms)", dest.display, written_in.as_millis()),
        )),
        Ok(_) => results.push(CheckResult::fail(
            "destination write/read",
            format!(
                "{}: read back other bytes than written — is something rewriting the store?",
                dest.display
            ),
        )),
        Err(e) => results.push(CheckResult::fail(
            "destination write/read",
            format!(
                "{}: wrote but cannot read back: {e} — the credentials need read access too",
                dest.display
            ),
        )),
    }
    let again = dest
        .store
        // Other bytes than the first put's: a create that finds its own bytes is taken as having
        // landed (see `sink::resilient`), and this one must be refused as another writer's.
        .put_opts(
            &path,
            PutPayload::from(format!("{body} again").into_bytes()),
            PutOptions::from(PutMode::Create),
        )
        .await;
    results.push(match again {
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
            CheckResult::pass("conditional put", "a second create-only put of the same object was refused")
        }
        Ok(_) => CheckResult::fail(
            "conditional put",
            "the store accepted a create-only put over an existing object: it ignores If-None-Match, so leases and Delta commits cannot be arbitrated — use a store with conditional writes (AWS S3, MinIO, SeaweedFS, R2)",
        ),
        Err(e) => CheckResult::fail("conditional put", format!("unexpected answer to a create-only put: {e}")),
    });
    match dest.store.head(&path).await {
        Ok(meta) => {
            // The store stamps the object with its clock; ours is taken around the write.
            let ours = before + chrono::Duration::from_std(written_in / 2).unwrap_or_default();
            let skew = (ours - meta.last_modified).num_milliseconds() as f64 / 1000.0;
            // Local disk stamps with this machine's clock; S3 stores to the second.
            let detail = format!("{skew:+.1} s against the destination's clock");
            results.push(if skew.abs() <= MAX_SKEW_SECS {
                CheckResult::pass("clock skew", detail)
            } else {
                CheckResult::fail(
                    "clock skew",
                    format!("{detail}: leases compare heartbeats across hosts — synchronise this machine's clock (NTP)"),
                )
            });
        }
        Err(e) => {
            results.push(CheckResult::fail("clock skew", format!("cannot read the probe's metadata: {e}")))
        }
    }
    results.push(match dest.store.delete(&path).await {
        Ok(()) => CheckResult::pass("destination delete", "deleted the probe"),
        Err(e) => CheckResult::fail(
            "destination delete",
            format!("cannot delete {relative}: {e} — a sync replaces files, so it needs delete permission"),
        ),
    });
    // On local disk the store leaves the directory; a check leaves nothing behind (nor the
    // `_cxlake` it may have created in an empty lake).
    if let Some(root) = &dest.local_dir {
        let check_dir = root.join(layout::BOOKKEEPING_DIR).join("check");
        let _ = std::fs::remove_dir(&check_dir);
        let _ = std::fs::remove_dir(root.join(layout::BOOKKEEPING_DIR));
    }
    results
}

/// The lake's leases: runs in progress, a lake-wide rewrite holding it.
pub async fn check_leases(dest: &Destination, run_id: &str) -> CheckResult {
    let lake = match lease::holder(dest, &LeaseName::lake(), run_id).await {
        Ok(holder) => holder,
        Err(e) => return CheckResult::fail("leases", format!("cannot read the leases: {e}")),
    };
    if let Some(holder) = lake {
        return CheckResult::fail(
            "leases",
            format!(
                "a lake-wide rewrite (forget or vacuum) by run {} on {} holds the lake since {}; syncs wait for it",
                holder.run_id, holder.host, holder.acquired_at
            ),
        );
    }
    match lease::present_runs(dest, run_id).await {
        Ok(runs) if runs.is_empty() => CheckResult::pass("leases", "no run in progress"),
        Ok(runs) => {
            let list: Vec<String> =
                runs.iter().map(|r| format!("{} on {} (pid {})", r.run_id, r.host, r.pid)).collect();
            CheckResult::pass("leases", format!("{} run(s) in progress: {}", runs.len(), list.join(", ")))
        }
        Err(e) => CheckResult::fail("leases", format!("cannot list the runs in progress: {e}")),
    }
}

/// The table `cxlake check` prints.
pub fn render(results: &[CheckResult]) -> String {
    let width = results.iter().map(|r| r.name.chars().count()).max().unwrap_or(5).max(5);
    let mut out = format!("{:<width$}  ok  detail\n", "check");
    for r in results {
        let mark = if r.ok { "✓" } else { "✗" };
        out.push_str(&format!("{:<width$}  {mark}   {}\n", r.name, r.detail));
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    if failed == 0 {
        out.push_str(&format!("all {} checks passed\n", results.len()));
    } else {
        out.push_str(&format!("{failed} of {} checks failed\n", results.len()));
    }
    out
}
