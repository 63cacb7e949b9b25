//! A faithful emulator of the Salted CX export API, served over real HTTP on loopback.
//!
//! Users develop their pipelines against it (`cxlake emulator saltedcx`), the demo runs on it
//! and the tests drive the real client through it. It implements the whole document:
//! bearer-key authentication (401), every 400 code, the PROCESSING → COMPLETED / FAILED
//! lifecycle, 404 for unknown exports, the history (newest first, up to 100), and presigned-style
//! download URLs on the same server that carry `X-Amz-Date`, `X-Amz-Expires` and a signature,
//! expire, and answer an S3-style 403 "Request has expired". The data is the deterministic
//! synthetic tenant of [`super::synth`], so a test knows exactly which rows must land.
//!
//! Knobs in [`EmulatorConfig`] make the unusual paths reproducible: how many polls an export
//! stays PROCESSING, which windows FAIL, how many downloads are answered "expired", and a
//! scenario of [`Fault`]s — rate limits with `Retry-After`, 5xx, resets, slow answers, truncated
//! or corrupted downloads — injected in order on the endpoints they name. Downloads honour
//! `Range: bytes=N-` and carry the body's MD5 as `ETag`, as S3 does for single-part objects.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use md5::Md5;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::api::{self, ApiError, CreatedExport, ExportState, ExportStatus};
use super::synth::{self, SynthConfig};
use crate::sources::loopback::{self, FaultEndpoint, FaultQueue, LoopbackServer};

/// A contact that exists in the emulated tenant but has no customer records.
pub const LEAD_WITHOUT_CUSTOMERS: &str = "lead@example.com";
/// The key the emulator accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "emulator-key";

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub api_key: String,
    pub synth: SynthConfig,
    /// Status polls answered PROCESSING before an export completes.
    pub processing_polls: u32,
    /// Lifetime of a download URL (the real API: one hour).
    pub url_ttl: Duration,
    /// Exports whose window starts on one of these days end FAILED.
    pub fail_dates: BTreeSet<NaiveDate>,
    /// The first N exports created (whatever their window) end FAILED.
    pub fail_first: u32,
    /// The first N downloads are answered "Request has expired", as if the client were slow.
    pub expire_downloads: u32,
    /// Faults to inject, each on the first matching requests, in order.
    pub faults: Vec<Fault>,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Create,
    Status,
    History,
    Download,
    Any,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// 429 with `Retry-After` in seconds, or as an HTTP-date that many seconds ahead.
    RateLimit {
        seconds: u64,
        #[serde(default)]
        http_date: bool,
    },
    /// An error status, e.g. 500, 502, 503.
    Status { code: u16 },
    /// 503 Service Unavailable with `Retry-After` in seconds (maintenance, overload).
    Unavailable { seconds: u64 },
    /// Headers are sent, then the connection breaks before the body.
    Reset,
    /// The answer comes this late (longer than the client's read timeout: a timeout).
    Delay { millis: u64 },
    /// The body breaks off after this many bytes (its Content-Length promised more).
    Truncate { bytes: u64 },
    /// One byte of the body is changed (length intact; only a checksum notices).
    Corrupt,
    /// 307 to another URL: a client must not carry the request (or the API key) there.
    Redirect { location: String },
}

/// One injected fault: `kind` on the next `times` requests to `endpoint`.
pub type Fault = loopback::Fault<Endpoint, FaultKind>;

impl FaultEndpoint for Endpoint {
    fn is_any(self) -> bool {
        self == Endpoint::Any
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            api_key: DEFAULT_API_KEY.to_string(),
            synth: SynthConfig::default(),
            processing_polls: 2,
            url_ttl: Duration::from_secs(3600),
            fail_dates: BTreeSet::new(),
            fail_first: 0,
            expire_downloads: 0,
            faults: Vec::new(),
        }
    }
}

/// What the emulator has seen, for tests and the demo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmulatorStats {
    pub exports_created: u64,
    pub status_polls: u64,
    pub downloads_served: u64,
    pub downloads_expired: u64,
    /// Download requests that carried an Authorization header: the key leaked to the file host.
    pub downloads_with_authorization: u64,
    pub faults_injected: u64,
    /// Download requests that asked for a byte range (resumed downloads).
    pub range_requests: u64,
    /// Each export's creation and the start of its latest download, by export id: how long it
    /// was in flight as the platform sees it.
    pub lifetimes: std::collections::BTreeMap<String, (DateTime<Utc>, Option<DateTime<Utc>>)>,
}

struct Job {
    id: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    include: Vec<String>,
    only_customer: Option<usize>,
    polls: u32,
    state: ExportState,
    error: Option<String>,
    /// Ends FAILED whatever its window (see `fail_first`).
    doomed: bool,
}

struct Shared {
    config: EmulatorConfig,
    base_url: Url,
    secret: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// Export ids, oldest first.
    order: Vec<String>,
    stats: EmulatorStats,
    expire_remaining: u32,
    /// Faults still to inject, with how many times each has left.
    faults: FaultQueue<Endpoint, FaultKind>,
}

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl Emulator {
    /// Starts serving on `127.0.0.1:port` (0 picks a free port).
    pub async fn start(config: EmulatorConfig, port: u16) -> std::io::Result<Emulator> {
        let (listener, base_url) = loopback::bind(port).await?;
        let shared = Arc::new(Shared {
            secret: uuid::Uuid::new_v4().to_string(),
            inner: Mutex::new(Inner {
                expire_remaining: config.expire_downloads,
                faults: FaultQueue::new(&config.faults),
                ..Inner::default()
            }),
            config,
            base_url,
        });
        let server = LoopbackServer::serve(listener, router(shared.clone()));
        Ok(Emulator { shared, server })
    }

    /// The base URL to give `--api-url`.
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> EmulatorStats {
        self.shared.inner.lock().expect("emulator lock").stats.clone()
    }

    /// Runs until the process is interrupted (for `cxlake emulator`).
    pub async fn wait(self) {
        self.server.wait().await
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/export", post(create_export))
        .route("/api/v1/export/history", get(history))
        .route("/api/v1/export/{id}/status", get(status))
        .route("/download/{id}/{file}", get(download))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), inject_faults))
        .with_state(shared)
}

fn endpoint_of(method: &Method, path: &str) -> Endpoint {
    if path.starts_with("/download/") {
        Endpoint::Download
    } else if path == "/api/v1/export/history" {
        Endpoint::History
    } else if method == Method::POST {
        Endpoint::Create
    } else {
        Endpoint::Status
    }
}

impl Shared {
    /// The next fault for this endpoint, consuming one of its remaining times.
    fn take_fault(&self, endpoint: Endpoint) -> Option<FaultKind> {
        let mut inner = self.inner.lock().expect("emulator lock");
        let kind = inner.faults.take(endpoint)?;
        inner.stats.faults_injected += 1;
        Some(kind)
    }
}

async fn inject_faults(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let endpoint = endpoint_of(request.method(), request.uri().path());
    let Some(fault) = shared.take_fault(endpoint) else {
        return next.run(request).await;
    };
    match fault {
        FaultKind::RateLimit { seconds, http_date } => {
            let value = if http_date {
                (Utc::now() + chrono::Duration::seconds(seconds as i64 + 1))
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string()
            } else {
                seconds.to_string()
            };
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, value)], "rate limit exceeded")
                .into_response()
        }
        FaultKind::Status { code } => {
            (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "injected fault")
                .into_response()
        }
        FaultKind::Unavailable { seconds } => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, seconds.to_string())],
            "down for maintenance",
        )
            .into_response(),
        FaultKind::Delay { millis } => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(request).await
        }
        FaultKind::Redirect { location } => {
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)], "moved").into_response()
        }
        FaultKind::Reset => break_body(next.run(request).await, 0).await,
        FaultKind::Truncate { bytes } => break_body(next.run(request).await, bytes).await,
        FaultKind::Corrupt => {
            let (parts, body) = next.run(request).await.into_parts();
            let mut bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default().to_vec();
            if !bytes.is_empty() {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x20;
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// Sends the headers (with the full Content-Length) and `keep` bytes, then breaks the connection.
async fn break_body(response: Response, keep: u64) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len() as u64));
    let head = bytes.slice(..(keep as usize).min(bytes.len()));
    // Pause before breaking, so the bytes sent so far reach the client as they would on a real
    // network, instead of being discarded with the connection.
    let head = futures::stream::iter([Ok::<_, std::io::Error>(head)]);
    let break_off = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected connection reset"))
    });
    Response::from_parts(parts, Body::from_stream(futures::StreamExt::chain(head, break_off)))
}

fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ApiError { code: code.to_string(), message: message.into() })).into_response()
}

/// The 401 answer for a request without the right bearer key, or `None` when it may pass.
fn unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {}", shared.config.api_key);
    match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(value) if value == expected => None,
        _ => Some(api_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "missing or invalid API key")),
    }
}

async fn create_export(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(denied) = unauthorized(&shared, &headers) {
        return denied;
    }
    let bad = |code: &str, message: &str| api_error(StatusCode::BAD_REQUEST, code, message);
    let parse = |name: &str| {
        query.get(name).and_then(|v| DateTime::parse_from_rfc3339(v).ok()).map(|t| t.with_timezone(&Utc))
    };
    let (Some(from), Some(to)) = (parse("from"), parse("to")) else {
        return bad("INVALID_DATE_RANGE", "from and to are required ISO 8601 timestamps");
    };
    if from >= to {
        return bad("INVALID_DATE_RANGE", "from must be before to");
    }
    if to - from > chrono::Duration::hours(24) {
        return bad("INVALID_DATE_RANGE", "the date range must not exceed 24 hours");
    }
    let include: Vec<String> = match query.get("include") {
        None => api::DATASETS.iter().map(|d| d.to_string()).collect(),
        Some(list) if list.trim().is_empty() => return bad("EMPTY_INCLUDE", "include is present but empty"),
        Some(list) => {
            let names: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
            if let Some(unknown) = names.iter().find(|n| !api::DATASETS.contains(&n.as_str())) {
                return bad("INVALID_INCLUDE", &format!("unknown dataset: {unknown}"));
            }
            names
        }
    };
    let only_customer = match query.get("contact") {
        None => None,
        Some(contact) if contact.trim().eq_ignore_ascii_case(LEAD_WITHOUT_CUSTOMERS) => {
            return bad("NO_CUSTOMERS_FOR_CONTACT", "the contact has no associated customer records")
        }
        Some(contact) => match synth::customer_for_contact(&shared.config.synth, contact) {
            Some(index) => Some(index),
            None => return bad("CONTACT_NOT_FOUND", "the contact could not be resolved"),
        },
    };
    let id = uuid::Uuid::new_v4().to_string();
    let created = CreatedExport { export_id: id.clone(), status_url: format!("api/v1/export/{id}/status") };
    let mut inner = shared.inner.lock().expect("emulator lock");
    inner.stats.exports_created += 1;
    inner.stats.lifetimes.insert(id.clone(), (Utc::now(), None));
    let doomed = inner.stats.exports_created <= u64::from(shared.config.fail_first);
    inner.order.push(id.clone());
    inner.jobs.insert(
        id.clone(),
        Job {
            id,
            from,
            to,
            include,
            only_customer,
            polls: 0,
            state: ExportState::Processing,
            error: None,
            doomed,
        },
    );
    Json(created).into_response()
}

/// The status object of a job, with freshly signed URLs when it is COMPLETED.
fn status_of(shared: &Shared, job: &Job) -> ExportStatus {
    let download_urls = if job.state == ExportState::Completed {
        job.include
            .iter()
            .map(|dataset| {
                let file = api::file_name(dataset).expect("validated dataset");
                (dataset.clone(), presign(shared, &job.id, file, Utc::now()))
            })
            .collect()
    } else {
        Default::default()
    };
    ExportStatus { export_id: job.id.clone(), status: job.state, download_urls, error: job.error.clone() }
}

fn signature(shared: &Shared, id: &str, file: &str, date: &str, expires: u64) -> String {
    let mut hasher = Sha256::new();
    for part in [shared.secret.as_str(), id, file, date, &expires.to_string()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

fn presign(shared: &Shared, id: &str, file: &str, now: DateTime<Utc>) -> String {
    let date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let expires = shared.config.url_ttl.as_secs();
    let mut url = shared.base_url.join(&format!("download/{id}/{file}")).expect("relative path joins");
    url.query_pairs_mut()
        .append_pair("X-Amz-Algorithm", "AWS4-HMAC-SHA256")
        .append_pair("X-Amz-Date", &date)
        .append_pair("X-Amz-Expires", &expires.to_string())
        .append_pair("X-Amz-Signature", &signature(shared, id, file, &date, expires));
    url.to_string()
}

async fn status(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(denied) = unauthorized(&shared, &headers) {
        return denied;
    }
    let mut inner = shared.inner.lock().expect("emulator lock");
    inner.stats.status_polls += 1;
    let Some(job) = inner.jobs.get_mut(&id) else {
        return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "export not found");
    };
    if job.state == ExportState::Processing {
        job.polls += 1;
        if job.polls > shared.config.processing_polls {
            if job.doomed || shared.config.fail_dates.contains(&job.from.date_naive()) {
                job.state = ExportState::Failed;
                job.error = Some("Export failed: internal error while generating the export".into());
            } else {
                job.state = ExportState::Completed;
            }
        }
    }
    Json(status_of(&shared, job)).into_response()
}

async fn history(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = unauthorized(&shared, &headers) {
        return denied;
    }
    let inner = shared.inner.lock().expect("emulator lock");
    let recent: Vec<ExportStatus> = inner
        .order
        .iter()
        .rev()
        .take(100)
        .filter_map(|id| inner.jobs.get(id))
        .map(|j| status_of(&shared, j))
        .collect();
    Json(recent).into_response()
}

fn s3_error(code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn download(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let job = {
        let mut inner = shared.inner.lock().expect("emulator lock");
        if headers.contains_key(header::AUTHORIZATION) {
            inner.stats.downloads_with_authorization += 1;
        }
        let date = query.get("X-Amz-Date").cloned().unwrap_or_default();
        let expires: u64 = query.get("X-Amz-Expires").and_then(|e| e.parse().ok()).unwrap_or(0);
        let given = query.get("X-Amz-Signature").cloned().unwrap_or_default();
        if given != signature(&shared, &id, &file, &date, expires) {
            return s3_error("SignatureDoesNotMatch", "The request signature we calculated does not match");
        }
        let signed_at = chrono::NaiveDateTime::parse_from_str(&date, "%Y%m%dT%H%M%SZ").map(|t| t.and_utc());
        let expired = match signed_at {
            Ok(t) => Utc::now() > t + chrono::Duration::seconds(expires as i64),
            Err(_) => true,
        };
        if expired || inner.expire_remaining > 0 {
            inner.expire_remaining = inner.expire_remaining.saturating_sub(1);
            inner.stats.downloads_expired += 1;
            return s3_error("AccessDenied", "Request has expired");
        }
        let Some(job) = inner.jobs.get(&id) else {
            return s3_error("AccessDenied", "Access Denied");
        };
        let Some(dataset) = job.include.iter().find(|d| api::file_name(d) == Some(file.as_str())) else {
            return s3_error("AccessDenied", "Access Denied");
        };
        let found = (dataset.clone(), job.from, job.to, job.only_customer);
        inner.stats.downloads_served += 1;
        if let Some(lifetime) = inner.stats.lifetimes.get_mut(&id) {
            lifetime.1 = Some(Utc::now());
        }
        found
    };
    let (dataset, from, to, only_customer) = job;
    let config = shared.config.synth;
    // Generating a large day takes a while: keep it off the async workers.
    let generated = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        synth::write_dataset(&config, &dataset, from, to, only_customer, &mut bytes).map(|_| bytes)
    })
    .await;
    let bytes = match generated {
        Ok(Ok(bytes)) => bytes,
        _ => return (StatusCode::INTERNAL_SERVER_ERROR, "generation failed").into_response(),
    };
    let etag = format!("\"{}\"", hex::encode(Md5::digest(&bytes)));
    let total = bytes.len();
    let start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<usize>().ok());
    match start {
        Some(start) if start < total => {
            shared.inner.lock().expect("emulator lock").stats.range_requests += 1;
            let range = format!("bytes {start}-{}/{total}", total - 1);
            (
                StatusCode::PARTIAL_CONTENT,
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (header::ETAG, etag),
                    (header::CONTENT_RANGE, range),
                ],
                bytes[start..].to_vec(),
            )
                .into_response()
        }
        _ => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::ETAG, etag),
                (header::ACCEPT_RANGES, "bytes".into()),
            ],
            bytes,
        )
            .into_response(),
    }
}
