//! Secrets stay secret: the API key and presigned-URL signatures never appear in logs, errors,
//! reports, state files or Parquet — checked byte by byte with canary values through every
//! fault the emulator can inject — and the key is never carried to another host.

use std::collections::BTreeMap;

use cxlake::sources::saltedcx::client::ClientError;
use cxlake::sources::saltedcx::emulator::{EmulatorConfig, Endpoint, Fault, FaultKind};

use crate::common::*;

const CANARY_KEY: &str = "canary-key-7f3a91c2e5";

/// Everything that could carry a secret: the key, and the parts of a presigned download URL.
fn secrets() -> Vec<&'static str> {
    vec![CANARY_KEY, "X-Amz-Signature", "X-Amz-Date", "/download/"]
}

fn assert_clean(what: &str, bytes: &[u8]) {
    for secret in secrets() {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret:?} found in {what}");
    }
}

fn every_fault() -> Vec<Fault> {
    let f = |endpoint, kind, times| Fault { endpoint, kind, times };
    vec![
        f(Endpoint::Create, FaultKind::RateLimit { seconds: 0, http_date: false }, 1),
        f(Endpoint::Create, FaultKind::Status { code: 503 }, 1),
        f(Endpoint::Status, FaultKind::Reset, 1),
        f(Endpoint::Status, FaultKind::Status { code: 502 }, 1),
        f(Endpoint::Status, FaultKind::RateLimit { seconds: 0, http_date: true }, 1),
        f(Endpoint::Download, FaultKind::Truncate { bytes: 2_000 }, 2),
        f(Endpoint::Download, FaultKind::Corrupt, 1),
        f(Endpoint::Download, FaultKind::Reset, 1),
        f(Endpoint::Download, FaultKind::Status { code: 500 }, 1),
        f(Endpoint::History, FaultKind::Status { code: 503 }, 1),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_through_the_whole_fault_suite() {
    let config = EmulatorConfig {
        api_key: CANARY_KEY.into(),
        expire_downloads: 3,
        fail_first: 1,
        fail_dates: [date("2024-03-03")].into(),
        faults: every_fault(),
        ..emulator_config()
    };
    let emulator = emulator(config).await;
    let lake = tempfile::tempdir().unwrap();
    let dest = lake.path().join("lake");
    let dest = dest.to_str().unwrap();
    let report = lake.path().join("report.json");
    let url = emulator.base_url().to_string();
    let good =
        [("SALTEDCX_API_URL", url.as_str()), ("SALTEDCX_API_KEY", CANARY_KEY), ("CXLAKE_LOG", "debug")];
    let common = ["--poll-interval", "10ms", "--failed-export-cooldown", "10ms"];

    let mut outputs = BTreeMap::new();
    let mut sync = vec!["sync", "saltedcx", "--dest", dest, "--from", "2024-03-01", "--to", "2024-03-04"];
    sync.extend(common);
    sync.extend(["--report-json", report.to_str().unwrap()]);
    let out = run_cxlake(&sync, &good).await;
    assert_eq!(out.code, 1, "one window always FAILS: {}", out.stderr);
    assert!(
        out.stderr.contains("Retrying") && out.stderr.contains("expired"),
        "the faults happened: {}",
        out.stderr
    );
    outputs.insert("sync", out);
    outputs.insert("history", run_cxlake(&["history", "saltedcx"], &good).await);
    outputs.insert("status", run_cxlake(&["status", "--dest", dest], &good).await);
    // A key that is almost right: the 401 path must not echo what was sent either.
    let wrong_key = format!("{CANARY_KEY}-x");
    let wrong = [
        ("SALTEDCX_API_URL", url.as_str()),
        ("SALTEDCX_API_KEY", wrong_key.as_str()),
        ("CXLAKE_LOG", "debug"),
    ];
    let mut retry = vec!["sync", "saltedcx", "--dest", dest, "--from", "2024-03-03", "--to", "2024-03-04"];
    retry.extend(common);
    let out = run_cxlake(&retry, &wrong).await;
    assert_eq!(out.code, 2);
    outputs.insert("sync with a wrong key", out);

    for (command, out) in &outputs {
        assert_clean(&format!("{command} stdout"), out.stdout.as_bytes());
        assert_clean(&format!("{command} stderr"), out.stderr.as_bytes());
    }
    assert_clean("report json", &std::fs::read(&report).unwrap());
    let files = files_under(lake.path());
    assert!(
        files.iter().any(|f| f.ends_with(".parquet")) && files.iter().any(|f| f.contains("_cxlake/state"))
    );
    for file in files {
        assert_clean(&file, &std::fs::read(lake.path().join(&file)).unwrap());
    }
    assert!(emulator.stats().faults_injected >= 11, "{:?}", emulator.stats());
    assert_eq!(emulator.stats().downloads_with_authorization, 0, "the key never went to the download host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_of_client_and_status_hides_key_and_urls() {
    let emulator = emulator(EmulatorConfig { api_key: CANARY_KEY.into(), ..emulator_config() }).await;
    let client = client(&emulator);
    let day = days("2024-03-01", 1)[0];
    let created = client.create_export(day.start(), day.end(), &["turn".into()], None).await.unwrap();
    let status = client.wait_completed(&created).await.unwrap();
    assert_clean("client Debug", format!("{client:?}").as_bytes());
    assert_clean("status Debug", format!("{status:?}").as_bytes());
    assert_clean("config Debug", format!("{:?}", client.config()).as_bytes());
}

/// A listener standing for "another host": it records whether anything connected to it.
async fn foreign_host() -> (String, tokio::task::JoinHandle<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/steal", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        tokio::time::timeout(std::time::Duration::from_millis(1500), listener.accept()).await.is_ok()
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed_by_the_api_or_download_client() {
    for endpoint in [Endpoint::Create, Endpoint::Status, Endpoint::Download] {
        let (location, visited) = foreign_host().await;
        let emulator = emulator(EmulatorConfig {
            api_key: CANARY_KEY.into(),
            faults: vec![Fault { endpoint, kind: FaultKind::Redirect { location }, times: 1 }],
            ..emulator_config()
        })
        .await;
        let client = client(&emulator);
        let day = days("2024-03-01", 1)[0];
        let result = async {
            let created = client.create_export(day.start(), day.end(), &["agent".into()], None).await?;
            let status = client.wait_completed(&created).await?;
            let spool = tempfile::tempdir().unwrap();
            client.download_dataset(&created, status, "agent", &spool.path().join("a.csv")).await
        }
        .await;
        assert!(matches!(result, Err(ClientError::Http { status: 307, .. })), "{endpoint:?}: {result:?}");
        assert!(!visited.await.unwrap(), "{endpoint:?}: the client went to the redirect target");
    }
}
