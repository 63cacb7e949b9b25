//! A faithful emulator of Loop's report export, served over real HTTP on loopback.
//!
//! - `POST /api/v1/report/export` (Bearer token, optional `X-Impersonate-User`) with
//!   `{timezone, start, end, resultFormat, tagIds, teamIds, teammateIds, customerIds}` (times in
//!   epoch seconds) → `{id, status: "InProgress", url: null}`; 400 for a bad range, format,
//!   time zone or a teammate/customer id that is not an e-mail address; 451 when the tenant is
//!   configured as an unverified account.
//! - `GET /api/v1/report/exports/{id}` → `InProgress` for a configured number of polls, then
//!   `Completed` with a signed URL that expires (`Failed` / `Expired` when a fault says so).
//! - `GET /signed/{id}/{file}?expires=…&signature=…` → the report, JSON or XLSX; refused with
//!   403 "Request has expired" after the expiry (as S3 words it), and refused if an
//!   `Authorization` header comes along (a signed URL needs none, and a client that sends the
//!   API token to the file host is leaking it).
//!
//! Faults, for tests and rehearsals: 429 with `Retry-After`, error statuses, exports that end
//! Failed or Expired, URLs that are already expired, connection resets mid-download, slow answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;
use url::Url;

use super::synth::{self, LoopSynthConfig, ReportRow};
use super::xlsx;
use crate::sources::loopback::{
    self, download_response, BodyCut, Fault, FaultEndpoint, FaultQueue, LoopbackServer,
};

pub const DEFAULT_API_TOKEN: &str = "loop-emulator-token";

#[derive(Debug, Clone)]
pub struct LoopEmulatorConfig {
    pub api_token: String,
    pub synth: LoopSynthConfig,
    /// Status polls answered InProgress before an export completes.
    pub running_polls: u32,
    /// How long a signed download URL is valid.
    pub url_ttl: Duration,
    /// Answer 451 to every export: the account is not verified.
    pub unverified: bool,
    pub chunk_bytes: usize,
    pub faults: Vec<LoopFault>,
}

impl Default for LoopEmulatorConfig {
    fn default() -> Self {
        LoopEmulatorConfig {
            api_token: DEFAULT_API_TOKEN.into(),
            synth: LoopSynthConfig::default(),
            running_polls: 2,
            url_ttl: Duration::from_secs(60),
            unverified: false,
            chunk_bytes: 16 << 10,
            faults: Vec::new(),
        }
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopEndpoint {
    Create,
    Status,
    Download,
    Any,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LoopFaultKind {
    /// 429 with `Retry-After: seconds`.
    RateLimit { seconds: u64 },
    /// An error status, with `Retry-After` when given.
    Status {
        code: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// The export being polled ends Failed (on `status`).
    FailExport,
    /// The export being polled is Expired (on `status`).
    ExpireExport,
    /// The download is refused as expired (on `download`).
    ExpireUrl,
    /// The download breaks off (connection reset) after this many bytes.
    Reset { bytes: u64 },
    /// The download ends cleanly after this many bytes, with no length declared (a JSON
    /// report without its closing `]`, a workbook without its central directory).
    Truncate { bytes: u64 },
    /// The answer starts this late.
    Delay { millis: u64 },
}

/// One injected fault: `kind` on the next `times` requests to `endpoint`.
pub type LoopFault = Fault<LoopEndpoint, LoopFaultKind>;

impl FaultEndpoint for LoopEndpoint {
    fn is_any(self) -> bool {
        self == LoopEndpoint::Any
    }
}

/// What the emulator has seen, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopEmulatorStats {
    pub requests: u64,
    pub unauthorized: u64,
    pub bad_requests: u64,
    pub exports_created: u64,
    pub downloads: u64,
    pub expired_urls_refused: u64,
    /// Downloads that came with an `Authorization` header (must stay 0).
    pub downloads_with_credentials: u64,
    pub faults_injected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    InProgress,
    Failed,
    Expired,
}

#[derive(Debug, Clone)]
struct Job {
    start: i64,
    end: i64,
    /// The zone the report is calculated in: its times are written as this zone's.
    zone: chrono_tz::Tz,
    xlsx: bool,
    filter: Filter,
    polls: u32,
    state: JobState,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Filter {
    tag_ids: Option<Vec<String>>,
    team_ids: Option<Vec<String>>,
    teammate_ids: Option<Vec<String>>,
    customer_ids: Option<Vec<String>>,
}

impl Filter {
    fn keeps(&self, row: &ReportRow) -> bool {
        let any = |ids: &Option<Vec<String>>, test: &dyn Fn(&str) -> bool| {
            ids.as_ref().is_none_or(|ids| ids.is_empty() || ids.iter().any(|id| test(id)))
        };
        any(&self.tag_ids, &|id| row.tags.iter().any(|t| synth::tag_id(t) == id))
            && any(&self.team_ids, &|id| synth::inbox_id(row.shared_inbox) == id)
            && any(&self.teammate_ids, &|id| row.assignee_email.as_deref() == Some(id))
            && any(&self.customer_ids, &|id| row.customer_email == id)
    }
}

struct Shared {
    config: LoopEmulatorConfig,
    base_url: Url,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stats: LoopEmulatorStats,
    faults: FaultQueue<LoopEndpoint, LoopFaultKind>,
    jobs: HashMap<String, Job>,
    /// Download URLs handed out while a fault said they are already expired.
    expired_signatures: Vec<String>,
}

/// A running emulator. Dropping it (or [`LoopEmulator::shutdown`]) stops the server.
pub struct LoopEmulator {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl LoopEmulator {
    /// Starts serving on `127.0.0.1:port` (0 picks a free port).
    pub async fn start(config: LoopEmulatorConfig, port: u16) -> std::io::Result<LoopEmulator> {
        let (listener, base_url) = loopback::bind(port).await?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner { faults: FaultQueue::new(&config.faults), ..Inner::default() }),
            base_url,
            config,
        });
        let app = Router::new()
            .route("/api/v1/report/export", post(create))
            .route("/api/v1/report/exports/{id}", get(status))
            .route("/signed/{id}/{file}", get(download))
            .with_state(shared.clone());
        Ok(LoopEmulator { shared, server: LoopbackServer::serve(listener, app) })
    }

    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    pub fn config(&self) -> &LoopEmulatorConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> LoopEmulatorStats {
        self.shared.inner.lock().expect("emulator lock").stats.clone()
    }

    pub async fn wait(self) {
        self.server.wait().await
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

impl Shared {
    /// The bearer token (API calls only), then fault injection.
    fn gate(
        &self,
        headers: &HeaderMap,
        endpoint: LoopEndpoint,
    ) -> Result<Option<LoopFaultKind>, Box<Response>> {
        let mut inner = self.inner.lock().expect("emulator lock");
        inner.stats.requests += 1;
        if endpoint == LoopEndpoint::Download {
            if headers.contains_key(header::AUTHORIZATION) {
                inner.stats.downloads_with_credentials += 1;
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "Only one auth mechanism allowed",
                )));
            }
        } else {
            let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            if token != Some(format!("Bearer {}", self.config.api_token).as_str()) {
                inner.stats.unauthorized += 1;
                return Err(Box::new(error(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Missing or invalid access token",
                )));
            }
            if let Some(user) = headers.get("x-impersonate-user").and_then(|v| v.to_str().ok()) {
                if !user.contains('@') {
                    return Err(Box::new(error(
                        StatusCode::FORBIDDEN,
                        "Forbidden",
                        "Cannot impersonate that user",
                    )));
                }
            }
        }
        let fault = inner.faults.take(endpoint);
        if fault.is_some() {
            inner.stats.faults_injected += 1;
        }
        match fault {
            Some(LoopFaultKind::RateLimit { seconds }) => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Slow down");
                response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
                Err(Box::new(response))
            }
            Some(LoopFaultKind::Status { code, retry_after }) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response = error(status, "Injected", "injected fault");
                if let Some(s) = retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, s.into());
                }
                Err(Box::new(response))
            }
            other => Ok(other),
        }
    }

    fn bad_request(&self, message: &str) -> Response {
        self.inner.lock().expect("emulator lock").stats.bad_requests += 1;
        error(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn signature(&self, id: &str, expires: i64, nonce: u64) -> String {
        let digest =
            sha2::Sha256::digest(format!("{}:{id}:{expires}:{nonce}", self.config.api_token).as_bytes());
        hex::encode(&digest[..16])
    }

    /// A fresh signed URL: every one handed out is distinct (its nonce), as real presigning is.
    fn signed_url(&self, id: &str, xlsx: bool, nonce: u64) -> String {
        let expires = Utc::now().timestamp() + self.config.url_ttl.as_secs() as i64;
        let file = if xlsx { "report.xlsx" } else { "report.json" };
        let signature = self.signature(id, expires, nonce);
        format!("{}signed/{id}/{file}?expires={expires}&nonce={nonce}&signature={signature}", self.base_url)
    }
}

async fn delay(fault: &Option<LoopFaultKind>) {
    if let Some(LoopFaultKind::Delay { millis }) = fault {
        tokio::time::sleep(Duration::from_millis(*millis)).await;
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    #[serde(default)]
    timezone: Option<String>,
    start: i64,
    end: i64,
    #[serde(default)]
    result_format: Option<String>,
    #[serde(flatten)]
    filter: Filter,
}

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = match shared.gate(&headers, LoopEndpoint::Create) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    delay(&fault).await;
    if shared.config.unverified {
        return error(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "AccountNotVerified",
            "Account is not verified",
        );
    }
    let body: CreateBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return shared.bad_request(&format!("Invalid request body: {e}")),
    };
    if body.start >= body.end {
        return shared.bad_request("start must be before end");
    }
    if body.end - body.start > 31 * 86_400 {
        return shared.bad_request("The range may span at most 31 days");
    }
    let timezone = body.timezone.unwrap_or_else(|| "UTC".into());
    let Ok(zone) = timezone.parse::<chrono_tz::Tz>() else {
        return shared.bad_request("timezone must be an IANA time zone");
    };
    let xlsx = match body.result_format.as_deref().unwrap_or("Json") {
        "Json" => false,
        "Xlsx" => true,
        _ => return shared.bad_request("resultFormat must be Json or Xlsx"),
    };
    let emails = [&body.filter.teammate_ids, &body.filter.customer_ids];
    if emails.iter().any(|ids| ids.iter().flatten().any(|id| !id.contains('@'))) {
        return shared.bad_request("teammateIds and customerIds are e-mail addresses");
    }
    let mut inner = shared.inner.lock().expect("emulator lock");
    inner.stats.exports_created += 1;
    let id = format!("exp_{:08x}", inner.stats.exports_created * 2_654_435_761 % (1 << 32));
    let job = Job {
        start: body.start,
        end: body.end,
        zone,
        xlsx,
        filter: body.filter,
        polls: 0,
        state: JobState::InProgress,
    };
    inner.jobs.insert(id.clone(), job);
    Json(json!({ "id": id, "status": "InProgress", "url": null })).into_response()
}

async fn status(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let fault = match shared.gate(&headers, LoopEndpoint::Status) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    delay(&fault).await;
    let mut inner = shared.inner.lock().expect("emulator lock");
    let Some(job) = inner.jobs.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "No such export");
    };
    match fault {
        Some(LoopFaultKind::FailExport) => job.state = JobState::Failed,
        Some(LoopFaultKind::ExpireExport) => job.state = JobState::Expired,
        _ => {}
    }
    job.polls += 1;
    let (state, xlsx, nonce) = (job.state, job.xlsx, u64::from(job.polls));
    let (status, url) = match state {
        JobState::Failed => ("Failed", None),
        JobState::Expired => ("Expired", None),
        JobState::InProgress if job.polls > shared.config.running_polls => {
            ("Completed", Some(shared.signed_url(&id, xlsx, nonce)))
        }
        JobState::InProgress => ("InProgress", None),
    };
    Json(json!({ "id": id, "status": status, "url": url })).into_response()
}

#[derive(Deserialize)]
struct Signed {
    expires: i64,
    nonce: u64,
    signature: String,
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path((id, _file)): Path<(String, String)>,
    Query(signed): Query<Signed>,
    headers: HeaderMap,
) -> Response {
    let fault = match shared.gate(&headers, LoopEndpoint::Download) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    delay(&fault).await;
    let expired = || {
        (
            StatusCode::FORBIDDEN,
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        )
            .into_response()
    };
    if signed.signature != shared.signature(&id, signed.expires, signed.nonce) {
        return (StatusCode::FORBIDDEN, "<Error><Code>SignatureDoesNotMatch</Code></Error>").into_response();
    }
    let mut inner = shared.inner.lock().expect("emulator lock");
    if fault == Some(LoopFaultKind::ExpireUrl) {
        inner.expired_signatures.push(signed.signature.clone());
    }
    if signed.expires < Utc::now().timestamp() || inner.expired_signatures.contains(&signed.signature) {
        inner.stats.expired_urls_refused += 1;
        return expired();
    }
    let Some(job) = inner.jobs.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, "<Error><Code>NoSuchKey</Code></Error>").into_response();
    };
    inner.stats.downloads += 1;
    drop(inner);
    let rows = report_rows(shared.config.synth, &job);
    let body = if job.xlsx {
        let header: Vec<&str> = synth::columns(shared.config.synth.tenant).iter().map(|(_, h)| *h).collect();
        match xlsx::workbook(&header, rows.iter().map(ReportRow::cells), job.zone) {
            Ok(bytes) => bytes,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal", &e.to_string()),
        }
    } else {
        synth::render_json(&rows, job.zone)
    };
    let cut = match fault {
        Some(LoopFaultKind::Reset { bytes }) => Some(BodyCut::Reset(bytes)),
        Some(LoopFaultKind::Truncate { bytes }) => Some(BodyCut::Truncate(bytes)),
        _ => None,
    };
    let content_type = if job.xlsx {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    } else {
        "application/json"
    };
    download_response(&body, content_type, shared.config.chunk_bytes, cut)
}

/// The rows of an export: the conversations with activity in its range, filtered.
fn report_rows(config: LoopSynthConfig, job: &Job) -> Vec<ReportRow> {
    let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0);
    let (Some(start), Some(end)) = (at(job.start), at(job.end)) else {
        return Vec::new();
    };
    synth::report_rows(config, start, end).into_iter().filter(|row| job.filter.keeps(row)).collect()
}
