//! Network and API faults, injected by the emulator, survived by the client: rate limits,
//! server errors, resets, timeouts, truncated and corrupted downloads. Answers that are not
//! transient (400, 401, 404, non-expiry 403) are never retried.

use std::time::{Duration, Instant};

use cxlake::pipeline::run_sync;
use cxlake::sources::saltedcx::client::{ClientError, SaltedCxClient};
use cxlake::sources::saltedcx::emulator::{Emulator, EmulatorConfig, Endpoint, Fault, FaultKind};
use cxlake::sources::saltedcx::synth;

use crate::common::*;

fn fault(endpoint: Endpoint, kind: FaultKind, times: u32) -> Fault {
    Fault { endpoint, kind, times }
}

async fn faulty(faults: Vec<Fault>) -> Emulator {
    emulator(EmulatorConfig { faults, ..emulator_config() }).await
}

fn all() -> Vec<String> {
    DATASETS.iter().map(|d| d.to_string()).collect()
}

/// Creates, completes and downloads the turns of one day; returns the bytes.
async fn export_turns(client: &SaltedCxClient) -> Result<Vec<u8>, ClientError> {
    let day = days("2024-03-01", 1)[0];
    let created = client.create_export(day.start(), day.end(), &all(), None).await?;
    let status = client.wait_completed(&created).await?;
    let spool = tempfile::tempdir().unwrap();
    let path = spool.path().join("turns.csv");
    client.download_dataset(&created, status, "turn", &path).await?;
    Ok(std::fs::read(path).unwrap())
}

fn expected_turns(emulator: &Emulator) -> Vec<u8> {
    synth::dataset_csv(&emulator.config().synth, "turn", date("2024-03-01"), None).unwrap().0
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_the_server_says() {
    let emulator = faulty(vec![
        fault(Endpoint::Create, FaultKind::RateLimit { seconds: 1, http_date: false }, 1),
        fault(Endpoint::Status, FaultKind::RateLimit { seconds: 1, http_date: true }, 1),
    ])
    .await;
    let started = Instant::now();
    let bytes = export_turns(&client(&emulator)).await.unwrap();
    assert_eq!(bytes, expected_turns(&emulator));
    assert_eq!(emulator.stats().faults_injected, 2);
    // One second as seconds, and an HTTP-date one to two seconds ahead (whole-second precision).
    assert!(started.elapsed() >= Duration::from_millis(1900), "{:?}", started.elapsed());
    assert_eq!(emulator.stats().exports_created, 1, "a 429 created nothing, the retry created one");
}

#[tokio::test]
async fn a_503_with_retry_after_waits_as_the_server_says_not_our_backoff() {
    let emulator = faulty(vec![fault(Endpoint::Status, FaultKind::Unavailable { seconds: 1 }, 1)]).await;
    let started = Instant::now();
    let bytes = export_turns(&client(&emulator)).await.unwrap();
    assert_eq!(bytes, expected_turns(&emulator));
    assert_eq!(emulator.stats().faults_injected, 1);
    // The client's own backoff is 10-50 ms in these tests: only the header explains a second.
    assert!(started.elapsed() >= Duration::from_millis(1000), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_as_rate_limited() {
    let emulator =
        faulty(vec![fault(Endpoint::Create, FaultKind::RateLimit { seconds: 3600, http_date: false }, 1)])
            .await;
    let mut config = client_config(&emulator);
    config.http.retry.max_retry_wait = Duration::from_secs(60);
    let started = Instant::now();
    let err = export_turns(&SaltedCxClient::new(config).unwrap()).await.unwrap_err();
    assert!(matches!(err, ClientError::RateLimited { wait_secs: 3600, .. }), "{err:?}");
    assert!(err.to_string().contains("rate-limited, retry later"));
    assert!(started.elapsed() < Duration::from_secs(5), "did not sit out the hour");
}

#[tokio::test]
async fn server_errors_resets_and_timeouts_are_retried_with_backoff() {
    let emulator = faulty(vec![
        fault(Endpoint::Create, FaultKind::Status { code: 503 }, 1),
        fault(Endpoint::Status, FaultKind::Status { code: 500 }, 1),
        fault(Endpoint::Status, FaultKind::Status { code: 502 }, 1),
        fault(Endpoint::Status, FaultKind::Reset, 1),
        fault(Endpoint::Status, FaultKind::Delay { millis: 1500 }, 1),
        fault(Endpoint::Download, FaultKind::Status { code: 503 }, 1),
        fault(Endpoint::Download, FaultKind::Reset, 1),
    ])
    .await;
    let mut config = client_config(&emulator);
    config.http.read_timeout = Duration::from_millis(500);
    let bytes = export_turns(&SaltedCxClient::new(config).unwrap()).await.unwrap();
    assert_eq!(bytes, expected_turns(&emulator));
    assert_eq!(emulator.stats().faults_injected, 7);
}

#[tokio::test]
async fn retries_are_bounded() {
    let emulator = faulty(vec![fault(Endpoint::Status, FaultKind::Status { code: 503 }, 1000)]).await;
    let mut config = client_config(&emulator);
    config.http.retry.max_attempts = 4;
    let err = export_turns(&SaltedCxClient::new(config).unwrap()).await.unwrap_err();
    assert!(matches!(err, ClientError::RetriesExhausted { attempts: 4, .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 503"));
    assert_eq!(emulator.stats().status_polls, 0, "503s came from the fault layer, before the handler");
    assert_eq!(emulator.stats().faults_injected, 4);
}

#[tokio::test]
async fn answers_are_never_retried() {
    let emulator = emulator(emulator_config()).await;
    let client = client(&emulator);
    let err = client.status("missing", &SaltedCxClient::status_url_for("missing")).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }));
    assert_eq!(emulator.stats().status_polls, 1, "404 asked once");
    let day = days("2024-03-01", 1)[0];
    let err = client.create_export(day.start(), day.end(), &["calls".into()], None).await.unwrap_err();
    assert!(matches!(err, ClientError::BadRequest { .. }));
    assert_eq!(emulator.stats().exports_created, 0);
}

#[tokio::test]
async fn a_download_cut_short_is_resumed_with_a_range_request() {
    let emulator = faulty(vec![fault(Endpoint::Download, FaultKind::Truncate { bytes: 10_000 }, 2)]).await;
    let bytes = export_turns(&client(&emulator)).await.unwrap();
    assert_eq!(bytes, expected_turns(&emulator), "resumed bytes line up exactly");
    let stats = emulator.stats();
    assert_eq!(stats.range_requests, 2, "{stats:?}");
    assert_eq!(stats.faults_injected, 2);
}

#[tokio::test]
async fn a_corrupted_download_is_caught_by_its_md5_etag_and_fetched_again() {
    let emulator = faulty(vec![fault(Endpoint::Download, FaultKind::Corrupt, 1)]).await;
    let bytes = export_turns(&client(&emulator)).await.unwrap();
    assert_eq!(bytes, expected_turns(&emulator));
    assert_eq!(emulator.stats().downloads_served, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_through_every_kind_of_fault_lands_exactly_the_emulators_rows() {
    let emulator = faulty(vec![
        fault(Endpoint::Create, FaultKind::Status { code: 502 }, 2),
        fault(Endpoint::Status, FaultKind::RateLimit { seconds: 0, http_date: false }, 2),
        fault(Endpoint::Status, FaultKind::Reset, 2),
        fault(Endpoint::Download, FaultKind::Truncate { bytes: 3_000 }, 3),
        fault(Endpoint::Download, FaultKind::Corrupt, 2),
        fault(Endpoint::Download, FaultKind::Status { code: 500 }, 2),
    ])
    .await;
    let lake = tempfile::tempdir().unwrap();
    let windows = days("2024-03-01", 2);
    let report = run_sync(&plan(&emulator, lake.path(), windows.clone())).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    for schema in all_schemas() {
        for w in &windows {
            let landed = batch_rows(&read_partition(lake.path(), &schema.dataset, w.date));
            assert_eq!(
                landed,
                expected_rows(&emulator.config().synth, &schema, w.date),
                "{}",
                schema.dataset
            );
        }
    }
    assert_eq!(emulator.stats().faults_injected, 13);
}

/// A creation whose answer is lost after the platform created the export (the connection
/// breaks) is found in the history and adopted: one export, not two. One lost before the
/// platform acted (a 502 from the fault layer) is sent again: still one export. Either way the
/// data is the day's.
#[tokio::test]
async fn a_lost_creation_answer_leaves_one_export_not_two() {
    for (kind, why) in [
        (FaultKind::Reset, "connection broken after the export was created"),
        (FaultKind::Status { code: 502 }, "gateway error before the platform acted"),
    ] {
        let emulator = faulty(vec![fault(Endpoint::Create, kind.clone(), 1)]).await;
        let mut config = client_config(&emulator);
        config.http.read_timeout = Duration::from_millis(600);
        let client = SaltedCxClient::new(config).unwrap();
        let bytes = export_turns(&client).await.unwrap_or_else(|e| panic!("{why}: {e}"));
        assert_eq!(bytes, expected_turns(&emulator), "{why}");
        assert_eq!(emulator.stats().exports_created, 1, "{why}: {kind:?}");
        assert_eq!(emulator.stats().faults_injected, 1, "{why}");
    }
}
