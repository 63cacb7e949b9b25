//! Issue 27: the soak. Simulated nights of every source into one S3 lake through the fault proxy
//! (10 % of S3 requests faulted): each night each source's nightly `sync` (no `--from` once the
//! lake has windows: it resumes where the lake is), with what nights bring — a kill -9 one night
//! in ten, one platform down for three nights then catching up, a credential rotated midway, a
//! staging disk that fills up once (a 16 KiB tmpfs as `--spool-dir`, where it can be mounted).
//! Every night's exit code must agree with what the metrics file and `status` say; at the end one
//! more night and the lake is exactly what fault-free syncs land on local disk, with nothing
//! needing a human. `make soak` runs `many_nights` (60) and writes the figures to RELIABILITY.md;
//! `five_nights` is to run in `make test` once the hang the first long soak found is fixed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::conformance::properties::{local_rows, s3_rows, schemas, sync_into, SourceUnderTest, FIRST_DAY};
use crate::conformance::{
    DixaUnderTest, KhorosUnderTest, LoopUnderTest, SaltedCxUnderTest, SparkcentralUnderTest,
};
use crate::fault_proxy::{Fault, FaultPlan, FaultProxy};

/// What a soak went through and found.
#[derive(Debug, Default)]
struct Figures {
    runs: u64,
    killed: u64,
    failed_nights: u64,
    rows_checked: u64,
    peak_rss_mib: u64,
    events: Vec<String>,
}

/// The lake and the proxy every source's nights go through.
struct Soak {
    nights: u32,
    proxy: FaultProxy,
    bucket: String,
    prefix: String,
    s3_env: Vec<(String, String)>,
    scratch: tempfile::TempDir,
    /// A tiny tmpfs for the night the staging disk fills up (`None`: cannot mount here).
    tiny: Option<PathBuf>,
}

impl Soak {
    fn dest(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

fn mount_tiny(dir: &Path) -> Option<PathBuf> {
    let tiny = dir.join("tiny-spool");
    std::fs::create_dir_all(&tiny).ok()?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs", tiny.to_str()?])
        .output()
        .ok()?
        .status
        .success();
    mounted.then_some(tiny)
}

fn metric(text: &str, name: &str, source: &str) -> Option<f64> {
    let prefix = format!("{name}{{source=\"{source}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// One source's nights: `role` picks what happens to it (0: kills only, 1: down for three
/// nights, 2: its credential rotated, 3: its staging disk fills up once).
async fn soak_source<S: SourceUnderTest>(soak: &Soak, role: usize) -> Figures {
    let mut figures = Figures::default();
    let figures = &mut figures;
    let mut secret = S::secret();
    let mut emulator = S::start(false, &secret).await;
    let n = soak.nights;
    let down: Vec<u32> =
        if role == 1 { (n / 3..(n / 3 + 3).min(n)).filter(|d| *d > 0).collect() } else { Vec::new() };
    let rotate_at = (role == 2).then_some(n / 2);
    let fill_at = (role == 3 && soak.tiny.is_some()).then_some(n.saturating_sub(1));
    let dest = soak.dest();
    let work = soak.scratch.path().join(S::NAME);
    std::fs::create_dir_all(&work).unwrap();
    let mut rng = cxlake::sources::synthetic::Rng::new(S::NAME.len() as u64 * 7919);
    for night in 0..=n {
        let last = night == n; // the catch-up night: everything up, no event
        if !last && rotate_at == Some(night) {
            secret = format!("{}-rotated-{night}", S::secret());
            emulator = S::start(false, &secret).await;
            figures.events.push(format!("{}: credential rotated before night {night}", S::NAME));
        }
        let to = (date(FIRST_DAY) + chrono::Days::new(u64::from(night) + 1)).to_string();
        let (metrics, report) = (work.join(format!("{night}.prom")), work.join(format!("{night}.json")));
        let mut args: Vec<String> =
            ["sync", S::NAME, "--dest", &dest, "--to", &to].iter().map(|s| s.to_string()).collect();
        if night == 0 {
            args.extend(["--from".to_string(), FIRST_DAY.to_string()]);
        }
        args.extend(S::fast_args().iter().map(|s| s.to_string()));
        args.extend([
            "--metrics-file".into(),
            metrics.display().to_string(),
            "--report-json".into(),
            report.display().to_string(),
        ]);
        let mut env = S::env(&emulator, &secret);
        env.extend(soak.s3_env.iter().cloned());
        let is_down = !last && down.contains(&night);
        if is_down {
            for (name, value) in env.iter_mut() {
                if name.ends_with("_API_URL") {
                    *value = "http://127.0.0.1:9/".into();
                }
            }
            figures.events.push(format!("{}: platform down on night {night}", S::NAME));
        }
        if !last && fill_at == Some(night) {
            args.extend(["--spool-dir".to_string(), soak.tiny.as_ref().unwrap().display().to_string()]);
            figures.events.push(format!("{}: staging disk full on night {night}", S::NAME));
        }
        let kill = !last && !is_down && fill_at != Some(night) && night % 10 == 3;
        figures.runs += 1;
        if kill {
            let delay = Duration::from_millis(30 + rng.below(400));
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            kill_after(&argv, &env, delay).await;
            figures.killed += 1;
            figures.events.push(format!("{}: kill -9 after {delay:?} on night {night}", S::NAME));
            continue;
        }
        let out = run_cxlake(&args, &env).await;
        let expect_failure = is_down || (!last && fill_at == Some(night));
        if expect_failure {
            assert_ne!(out.code, 0, "{}: night {night} should fail\n{}", S::NAME, out.stdout);
            figures.failed_nights += 1;
        } else {
            assert_eq!(out.code, 0, "{}: night {night}\n{}\n{}", S::NAME, out.stdout, out.stderr);
        }
        // The exit code, the metrics file and the lake's status tell the same story.
        let text = std::fs::read_to_string(&metrics).unwrap_or_default();
        let success = metric(&text, "cxlake_run_success", S::NAME);
        assert_eq!(
            success,
            Some(if out.code == 0 { 1.0 } else { 0.0 }),
            "{}: night {night}: {text}",
            S::NAME
        );
        if let Ok(report) = std::fs::read(&report) {
            let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
            if let Some(rss) = report["memory"]["peak_rss_mib"].as_u64() {
                figures.peak_rss_mib = figures.peak_rss_mib.max(rss);
            }
        }
        let status = run_cxlake(&["status", "--dest", &dest, "--json"], &soak.s3_env).await;
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        let mine = status.as_array().unwrap().iter().find(|s| s["source"] == S::NAME);
        if out.code == 0 && S::NAME != "sparkcentral" {
            for (dataset, d) in mine.unwrap()["datasets"].as_object().unwrap() {
                assert_eq!(
                    d["last_day"].as_str(),
                    Some((date(&to) - chrono::Days::new(1)).to_string().as_str()),
                    "{}.{dataset}: night {night}",
                    S::NAME
                );
                assert_eq!(d["gaps"], serde_json::json!([]), "{}.{dataset}: night {night}", S::NAME);
            }
        }
        if is_down {
            let behind =
                mine.is_none_or(|m| {
                    m["datasets"].as_object().unwrap().values().all(|d| {
                        d["last_day"].as_str() != Some(&(date(&to) - chrono::Days::new(1)).to_string())
                    })
                });
            assert!(behind, "{}: night {night} failed and status must show the day missing", S::NAME);
        }
    }

    // Exactly what fault-free syncs land on local disk.
    let reference = tempfile::tempdir().unwrap();
    let out = sync_into::<S>(
        &emulator,
        &secret,
        reference.path().to_str().unwrap(),
        u64::from(n) + 1,
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(out.code, 0, "{}: the reference sync\n{}", S::NAME, out.stderr);
    let store = s3().store();
    for schema in schemas::<S>() {
        let want = local_rows(reference.path(), S::NAME, &schema.dataset);
        let got = s3_rows(&store, &soak.prefix, S::NAME, &schema.dataset).await;
        assert!(
            got == want,
            "{}.{}: the soaked lake differs from a fault-free one ({} rows vs {})",
            S::NAME,
            schema.dataset,
            got.len(),
            want.len()
        );
        figures.rows_checked += want.len() as u64;
    }
    std::mem::take(figures)
}

/// What the soak (and the storage-fault tests) found so far, kept in the report it writes.
const FOUND: &str = "## What the soak and the fault tests found\n\n\
- **A run that waited out the hour (the first 60-night soak, 7 December 2026).** About the 330th run, Salted CX's last \
night, never finished: it held its window's lease, heartbeated it, and sent nothing. It was not stuck: it was waiting for \
the lake's export creation cap (`--max-export-rate`, 60 an hour by default), because the soak's nights pass in seconds \
and that night's export was Salted CX's 61st within the hour (with the kills' extra ones). It had said so at `info` \
(\"Waiting for the export creation cap shared by this lake's workers\"), in output the test did not keep. The soak now \
passes `--max-export-rate 100000/1h` with the other flags that compress time (poll intervals), and a test's `cxlake` run \
is killed after 300 s with what it printed, so a wait like this one is shown, not guessed at.\n\
- **A sync killed by SIGPIPE (the multipart fault test, 7 December 2026).** A part upload answered 503 before the \
server read its body ended the whole process by signal 13, with no message: cxlake had restored SIGPIPE's default \
action (so that `cxlake … | head` ended quietly), and a write to a connection the server had closed then killed it. \
SIGPIPE stays ignored now, as Rust leaves it; the commands' output goes through a writer that stops quietly when its \
reader goes away; a test's run reports the signal that ended it.\n";

async fn soak(nights: u32) -> Figures {
    let s3 = s3();
    let plan = FaultPlan {
        rate: 0.1,
        ops: Vec::new(),
        faults: vec![Fault::SlowDown, Fault::InternalError, Fault::ResetAfterExecution, Fault::Delay],
        seed: u64::from(nights),
        delay: Duration::from_millis(100),
        retry_after: None,
    };
    let proxy = FaultProxy::start(&s3.endpoint, plan).await;
    let s3_env = proxy.s3_env(&s3);
    let scratch = tempfile::tempdir().unwrap();
    let tiny = mount_tiny(scratch.path());
    let soak = Soak {
        nights,
        proxy,
        bucket: s3.bucket.clone(),
        prefix: format!("soak/{}-{nights}", cxlake::cli::new_run_id()),
        s3_env,
        tiny,
        scratch,
    };
    let started = Instant::now();
    // The sources' nights side by side, as a scheduler runs them: one lake, its leases shared.
    let all = tokio::join!(
        soak_source::<SaltedCxUnderTest>(&soak, 0),
        soak_source::<DixaUnderTest>(&soak, 1),
        soak_source::<KhorosUnderTest>(&soak, 2),
        soak_source::<LoopUnderTest>(&soak, 3),
        soak_source::<SparkcentralUnderTest>(&soak, 0),
    );
    let mut figures = Figures::default();
    for part in [all.0, all.1, all.2, all.3, all.4] {
        figures.runs += part.runs;
        figures.killed += part.killed;
        figures.failed_nights += part.failed_nights;
        figures.rows_checked += part.rows_checked;
        figures.peak_rss_mib = figures.peak_rss_mib.max(part.peak_rss_mib);
        figures.events.extend(part.events);
    }
    if let Some(tiny) = &soak.tiny {
        let _ = std::process::Command::new("umount").arg(tiny).output();
    }
    let counts = soak.proxy.counts.lock().unwrap();
    let requests: u64 = counts.requests.values().sum();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, fault), count) in &counts.injected {
        *by_kind.entry(format!("{fault:?}")).or_default() += count;
    }
    let report = format!(
        "# Reliability: the soak\n\n`make soak` ran {nights} simulated nights of the five built-in sources into one S3 lake \
         (SeaweedFS) through the fault proxy in `tests/it/fault_proxy.rs`, which gave 10 % of the S3 requests a 503 SlowDown, a 500, \
         a connection reset after the server executed the request, or a 100 ms delay; the nights brought a kill -9 one night in \
         ten, Dixa down for three nights, a rotated Khoros credential, and a full staging disk for Loop{}. Every night's exit code \
         agreed with the metrics file and `status`; after one more night every table equalled a fault-free sync's, and nothing \
         needed a human.\n\n| figure | value |\n|---|---|\n| nights | {nights} |\n| runs | {} ({} killed, {} failing as they should) |\n\
         | runs needed | one per source and night, as scheduled: no rerun by hand |\n\
         | S3 requests | {requests} |\n| faults injected | {} |\n| rows checked against fault-free syncs | {} |\n\
         | peak RSS of one run | {} MiB |\n| wall time | {:.0} s |\n\n{FOUND}",
        if soak.tiny.is_none() { " (not mounted: no tmpfs here)" } else { "" },
        figures.runs,
        figures.killed,
        figures.failed_nights,
        by_kind.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "),
        figures.rows_checked,
        figures.peak_rss_mib,
        started.elapsed().as_secs_f64(),
    );
    eprintln!("{report}");
    if let Ok(path) = std::env::var("CXLAKE_SOAK_REPORT") {
        std::fs::write(path, &report).unwrap();
    }
    assert!(counts.injected.values().sum::<u64>() > 0, "faults were injected");
    drop(counts);
    figures
}

/// The soak in `make test`: five nights, a kill, Dixa down, a full disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nights() {
    let figures = soak(5).await;
    // Dixa's three nights down, and Loop's full staging disk where a tmpfs can be mounted.
    assert!(figures.killed >= 1 && figures.failed_nights >= 3, "{figures:?}");
}

/// `make soak`: `CXLAKE_SOAK_NIGHTS` nights (default 60).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long soak: make soak"]
async fn many_nights() {
    let nights = std::env::var("CXLAKE_SOAK_NIGHTS").ok().and_then(|n| n.parse().ok()).unwrap_or(60);
    soak(nights).await;
}
