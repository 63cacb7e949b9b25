//! The Salted CX client against the emulator: every documented answer of the API.

use std::time::Duration;

use cxlake::sources::saltedcx::api::ExportState;
use cxlake::sources::saltedcx::client::{ApiKey, ClientError, SaltedCxClient};
use cxlake::sources::saltedcx::emulator::{EmulatorConfig, LEAD_WITHOUT_CUSTOMERS};
use cxlake::sources::saltedcx::synth;

use crate::common::*;

fn all() -> Vec<String> {
    DATASETS.iter().map(|d| d.to_string()).collect()
}

async fn bad_request_code(result: Result<impl std::fmt::Debug, ClientError>) -> String {
    match result {
        Err(ClientError::BadRequest { code, hint, .. }) => {
            assert!(!hint.is_empty());
            code
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn every_documented_400_code_becomes_a_clear_error() {
    let emulator = emulator(emulator_config()).await;
    let client = client(&emulator);
    let day = days("2024-03-01", 1)[0];
    let (from, to) = (day.start(), day.end());

    let too_long = client.create_export(from, to + chrono::Duration::seconds(1), &all(), None).await;
    assert_eq!(bad_request_code(too_long).await, "INVALID_DATE_RANGE");
    let reversed = client.create_export(to, from, &all(), None).await;
    assert_eq!(bad_request_code(reversed).await, "INVALID_DATE_RANGE");
    let unknown = client.create_export(from, to, &["turn".into(), "calls".into()], None).await;
    assert_eq!(bad_request_code(unknown).await, "INVALID_INCLUDE");
    let empty = client.create_export(from, to, &[], None).await;
    assert_eq!(bad_request_code(empty).await, "EMPTY_INCLUDE");
    let nobody = client.create_export(from, to, &all(), Some("nobody@example.org")).await;
    assert_eq!(bad_request_code(nobody).await, "CONTACT_NOT_FOUND");
    let lead = client.create_export(from, to, &all(), Some(LEAD_WITHOUT_CUSTOMERS)).await;
    assert_eq!(bad_request_code(lead).await, "NO_CUSTOMERS_FOR_CONTACT");

    let message = ClientError::BadRequest { code: "EMPTY_INCLUDE".into(), message: String::new(), hint: "x" }
        .to_string();
    assert!(message.contains("EMPTY_INCLUDE"));
    // A whole-day window of up to 24 h is accepted, and a contact that resolves too.
    let contact =
        synth::customer_email(synth::day_plan(&emulator.config().synth, day.date, None)[0].customer);
    assert!(client.create_export(from, to, &all(), Some(&contact)).await.is_ok());
    assert_eq!(emulator.stats().exports_created, 1);
}

#[tokio::test]
async fn a_wrong_key_is_401_everywhere_and_says_what_to_fix() {
    let emulator = emulator(emulator_config()).await;
    let mut config = client_config(&emulator);
    config.api_key = ApiKey::new("wrong-key");
    let client = SaltedCxClient::new(config).unwrap();
    let day = days("2024-03-01", 1)[0];
    let err = client.create_export(day.start(), day.end(), &all(), None).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized));
    assert!(err.to_string().contains("SALTEDCX_API_KEY"));
    assert!(err.affects_whole_run());
    assert!(matches!(client.history().await.unwrap_err(), ClientError::Unauthorized));
    assert!(!err.to_string().contains("wrong-key"));
}

#[tokio::test]
async fn an_unknown_export_is_404() {
    let emulator = emulator(emulator_config()).await;
    let client = client(&emulator);
    let url = SaltedCxClient::status_url_for("no-such-export");
    let err = client.status("no-such-export", &url).await.unwrap_err();
    assert!(
        matches!(err, ClientError::NotFound { ref export_id } if export_id == "no-such-export"),
        "{err:?}"
    );
}

#[tokio::test]
async fn processing_then_completed_with_a_url_per_dataset() {
    let emulator = emulator(EmulatorConfig { processing_polls: 3, ..emulator_config() }).await;
    let client = client(&emulator);
    let day = days("2024-03-01", 1)[0];
    let created = client.create_export(day.start(), day.end(), &all(), None).await.unwrap();
    assert!(!created.status_url.starts_with('/'), "statusUrl is relative without a leading slash");
    let first = client.status(&created.export_id, &created.status_url).await.unwrap();
    assert_eq!(first.status, ExportState::Processing);
    assert!(first.download_urls.is_empty());
    let done = client.wait_completed(&created).await.unwrap();
    assert_eq!(done.status, ExportState::Completed);
    assert_eq!(done.download_urls.len(), 5);
    assert_eq!(emulator.stats().status_polls, 4);
    let history = client.history().await.unwrap();
    assert_eq!(history[0].export_id, created.export_id);
}

#[tokio::test]
async fn a_failed_export_reports_the_platforms_error() {
    let day = days("2024-03-02", 1)[0];
    let config = EmulatorConfig { fail_dates: [day.date].into(), ..emulator_config() };
    let emulator = emulator(config).await;
    let client = client(&emulator);
    let created = client.create_export(day.start(), day.end(), &all(), None).await.unwrap();
    let err = client.wait_completed(&created).await.unwrap_err();
    match &err {
        ClientError::ExportFailed { export_id, error } => {
            assert_eq!(export_id, &created.export_id);
            assert!(error.contains("internal error"));
        }
        other => panic!("expected FAILED, got {other:?}"),
    }
    assert!(!err.affects_whole_run());
}

#[tokio::test]
async fn an_export_processing_past_the_deadline_times_out() {
    let emulator = emulator(EmulatorConfig { processing_polls: 1_000_000, ..emulator_config() }).await;
    let mut config = client_config(&emulator);
    config.poll.deadline = Duration::from_millis(200);
    let client = SaltedCxClient::new(config).unwrap();
    let day = days("2024-03-01", 1)[0];
    let created = client.create_export(day.start(), day.end(), &all(), None).await.unwrap();
    let err = client.wait_completed(&created).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("--export-timeout"));
}

#[tokio::test]
async fn expired_download_urls_are_refreshed_from_the_status_endpoint() {
    let emulator = emulator(EmulatorConfig { expire_downloads: 2, ..emulator_config() }).await;
    let client = client(&emulator);
    let day = days("2024-03-01", 1)[0];
    let created = client.create_export(day.start(), day.end(), &all(), None).await.unwrap();
    let status = client.wait_completed(&created).await.unwrap();
    let polls_before = emulator.stats().status_polls;
    let spool = tempfile::tempdir().unwrap();
    let path = spool.path().join("turns.csv");
    let bytes = client.download_dataset(&created, status, "turn", &path).await.unwrap();
    let (expected, _) = synth::dataset_csv(&emulator.config().synth, "turn", day.date, None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    assert_eq!(bytes, expected.len() as u64);
    let stats = emulator.stats();
    assert_eq!(stats.downloads_expired, 2);
    assert_eq!(stats.status_polls, polls_before + 2, "one status call per refresh");
    assert_eq!(stats.downloads_with_authorization, 0, "the API key is never sent to the download host");
}

#[tokio::test]
async fn urls_that_keep_expiring_fail_the_download_after_a_bounded_number_of_refreshes() {
    let emulator = emulator(EmulatorConfig { expire_downloads: 100, ..emulator_config() }).await;
    let client = client(&emulator);
    let day = days("2024-03-01", 1)[0];
    let created = client.create_export(day.start(), day.end(), &all(), None).await.unwrap();
    let status = client.wait_completed(&created).await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let err =
        client.download_dataset(&created, status, "agent", &spool.path().join("a.csv")).await.unwrap_err();
    assert!(matches!(err, ClientError::UrlExpired { refreshes: 3, .. }), "{err:?}");
    assert_eq!(emulator.stats().downloads_expired, 4);
}

#[tokio::test]
async fn a_tampered_download_url_is_forbidden_not_refreshed() {
    let emulator = emulator(emulator_config()).await;
    let client = client(&emulator);
    let day = days("2024-03-01", 1)[0];
    let created = client.create_export(day.start(), day.end(), &all(), None).await.unwrap();
    let mut status = client.wait_completed(&created).await.unwrap();
    let url = status.download_urls.get_mut("agent").unwrap();
    *url = url.replace("X-Amz-Signature=", "X-Amz-Signature=00");
    let spool = tempfile::tempdir().unwrap();
    let err =
        client.download_dataset(&created, status, "agent", &spool.path().join("a.csv")).await.unwrap_err();
    assert!(matches!(err, ClientError::DownloadForbidden { .. }), "{err:?}");
    assert!(!err.to_string().contains("X-Amz-Signature"));
}
