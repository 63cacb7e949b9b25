//! HTTP client for the Dixa Exports API: one synchronous `GET` per dataset and window, whose
//! answer is one JSON array spooled to disk.
//!
//! The API's bounds are strict (`*_after` is `>`, `*_before` is `<`), so a UTC-day window
//! `[00:00, next 00:00)` is asked as `after = 23:59:59.999 of the day before`, `before = next
//! midnight`: a record stamped exactly at midnight lands in exactly one window (the published
//! connectors ask `after = midnight` and lose it, or ask overlapping ranges and duplicate).
//! The token goes only to the configured API host (no redirects followed) as `Authorization:
//! Bearer`; requests are paced to the known limit of about 10 a minute per token; a body is
//! accepted only when it is one complete JSON array — an answer cut before its closing `]` is
//! fetched again, never decoded.

use std::path::Path;

use url::Url;

use crate::schema::FileFormat;
use crate::sources::http::{self, DownloadError, HttpClient, HttpConfig, HttpError, Secret};
use crate::sources::SourceError;

/// Requests per minute per token that Dixa accepts (the document omits it; 429 beyond).
pub const REQUESTS_PER_MINUTE: u32 = 10;

#[derive(Debug, Clone)]
pub struct DixaConfig {
    /// API base, e.g. `https://exports.dixa.io/`.
    pub base_url: Url,
    pub token: Secret,
    pub http: HttpConfig,
}

impl DixaConfig {
    pub fn new(base_url: Url, token: Secret) -> DixaConfig {
        let http = HttpConfig {
            requests_per_minute: Some(REQUESTS_PER_MINUTE),
            // Large answers take a while to start streaming.
            read_timeout: std::time::Duration::from_secs(300),
            ..HttpConfig::default()
        };
        DixaConfig { base_url, token, http }
    }
}

/// One export request: the endpoint and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// `conversation_export` or `message_export`.
    pub endpoint: &'static str,
    /// `updated`, `created`, `closed` or `last_message_created`: the `<filter>_after` /
    /// `<filter>_before` pair.
    pub filter: &'static str,
    /// Strict bounds in epoch milliseconds.
    pub after_ms: i64,
    pub before_ms: i64,
    /// Only these conversations (`csids`; the conversation export only).
    pub csids: Option<Vec<i64>>,
}

#[derive(Debug, Clone)]
pub struct DixaClient {
    base_url: Url,
    http: HttpClient,
}

impl DixaClient {
    pub fn new(mut config: DixaConfig) -> Result<DixaClient, HttpError> {
        http::check_url(&config.base_url, "API URL", config.http.allow_http)?;
        if !config.base_url.path().ends_with('/') {
            let path = format!("{}/", config.base_url.path());
            config.base_url.set_path(&path);
        }
        let http = HttpClient::new(config.http, Some(config.token))?;
        Ok(DixaClient { base_url: config.base_url, http })
    }

    /// The Exports API's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The URL of one request (relative paths keep a base's own path prefix).
    pub fn url(&self, request: &ExportRequest) -> Url {
        let mut url = self.base_url.join(&format!("v1/{}", request.endpoint)).expect("a relative path joins");
        url.query_pairs_mut()
            .append_pair(&format!("{}_after", request.filter), &request.after_ms.to_string())
            .append_pair(&format!("{}_before", request.filter), &request.before_ms.to_string());
        if let Some(ids) = &request.csids {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            url.query_pairs_mut().append_pair("csids", &ids.join(","));
        }
        url
    }

    /// Fetches one answer into `path`; returns its size in bytes.
    pub async fn export(&self, request: &ExportRequest, path: &Path) -> Result<u64, SourceError> {
        let context = format!(
            "GET /v1/{} ({} between {} and {})",
            request.endpoint,
            request.filter,
            ms_text(request.after_ms),
            ms_text(request.before_ms)
        );
        match self.http.download(&context, &self.url(request), path, FileFormat::Json).await {
            Ok(bytes) => Ok(bytes),
            Err(DownloadError::Expired | DownloadError::Forbidden) => Err(SourceError::Unauthorized(format!(
                "{context}: Dixa refused the API token (403); check that it may use the Exports API"
            ))),
            Err(DownloadError::Failed(HttpError::Http { status: 401, .. })) => Err(SourceError::Unauthorized(
                "the Dixa API token was rejected (401 Unauthorized); check DIXA_API_TOKEN or --api-token-file".into(),
            )),
            Err(DownloadError::Failed(e @ HttpError::Http { status: 400, .. })) => {
                Err(SourceError::Rejected(format!("{e} (the request cxlake built was refused; please report it)")))
            }
            Err(DownloadError::Failed(e)) => Err(e.into()),
        }
    }
}

fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
