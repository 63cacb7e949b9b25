//! A faithful emulator of the Khoros Care Analytics user export, served over real HTTP on
//! loopback under `/api/public/`.
//!
//! - `POST reports/report/user?companyKey=K` with an `x-www-form-urlencoded` body (`startTime`,
//!   `endTime` in epoch ms, `reportFormat` json|csv, `locale`, `includeDisabled`, repeated
//!   `agentId`/`teamId`/`reportMetrics`; the GET variant takes them all as query parameters) →
//!   `{"status":"PASS","result":{workflowId, runId, statusUrl, downloadUrl:""}}`.
//! - `GET reports/report/<workflowId>/<runId>/status?companyKey=K` → `result.runnerState`
//!   RUNNING until a configured number of polls, then CLOSED with `detail` COMPLETED (and the
//!   `downloadUrl`) or FAILED. As in the live API, `result` is sometimes an object and sometimes
//!   a one-element array (alternating here).
//! - `GET reports/report/<workflowId>/<runId>/download?companyKey=K` → the report, JSON (every
//!   value a string, with the five `*_MILLIS` columns) or CSV.
//!
//! Run ids contain `+`, `/` and `=`, percent-encoded in the URLs the API returns; a client that
//! rebuilds the URLs from the ids instead of using them as given gets 404s. Every call needs
//! HTTP Basic auth and the company key (401 otherwise; the answer never echoes either). The
//! tenant is [`super::synth`]'s. Faults, for tests and rehearsals: 429 with `Retry-After`, error
//! statuses, exports that end FAILED, connection resets mid-download, slow answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::synth::{self, KhorosSynthConfig};
use crate::sources::loopback::{
    self, download_response, BodyCut, Fault, FaultEndpoint, FaultQueue, LoopbackServer,
};

pub const DEFAULT_USERNAME: &str = "cxlake-emulator";
pub const DEFAULT_PASSWORD: &str = "khoros-emulator-password";
pub const DEFAULT_COMPANY_KEY: &str = "khoros-emulator-company-key";
const PREFIX: &str = "/api/public/reports/report/";

#[derive(Debug, Clone)]
pub struct KhorosEmulatorConfig {
    pub username: String,
    pub password: String,
    pub company_key: String,
    pub synth: KhorosSynthConfig,
    /// Status polls answered RUNNING before an export closes.
    pub running_polls: u32,
    /// Bytes per streamed chunk of a download.
    pub chunk_bytes: usize,
    pub faults: Vec<KhorosFault>,
}

impl Default for KhorosEmulatorConfig {
    fn default() -> Self {
        KhorosEmulatorConfig {
            username: DEFAULT_USERNAME.into(),
            password: DEFAULT_PASSWORD.into(),
            company_key: DEFAULT_COMPANY_KEY.into(),
            synth: KhorosSynthConfig::default(),
            running_polls: 2,
            chunk_bytes: 16 << 10,
            faults: Vec::new(),
        }
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KhorosEndpoint {
    Create,
    Status,
    Download,
    Any,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KhorosFaultKind {
    /// 429 with `Retry-After: seconds`.
    RateLimit { seconds: u64 },
    /// An error status, with `Retry-After` when given.
    Status {
        code: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// The export being polled ends CLOSED / FAILED (on `status`).
    FailExport,
    /// The download breaks off (connection reset) after this many bytes.
    Reset { bytes: u64 },
    /// The download ends cleanly after this many bytes, with no length declared (a JSON
    /// report without its closing `]`, a workbook without its central directory).
    Truncate { bytes: u64 },
    /// The answer starts this late.
    Delay { millis: u64 },
}

/// One injected fault: `kind` on the next `times` requests to `endpoint`.
pub type KhorosFault = Fault<KhorosEndpoint, KhorosFaultKind>;

impl FaultEndpoint for KhorosEndpoint {
    fn is_any(self) -> bool {
        self == KhorosEndpoint::Any
    }
}

/// What the emulator has seen, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KhorosEmulatorStats {
    pub requests: u64,
    pub unauthorized: u64,
    pub bad_requests: u64,
    pub exports_created: u64,
    pub exports_failed: u64,
    pub downloads: u64,
    pub faults_injected: u64,
    /// Status answers whose `result` was a one-element array.
    pub array_results: u64,
    /// The `timezone`, `timezoneOffset` and `locale` of each export created, in order.
    pub created_in: Vec<(Option<String>, Option<String>, Option<String>)>,
}

/// One export job as the emulator keeps it.
#[derive(Debug, Clone)]
struct Job {
    start_ms: i64,
    end_ms: i64,
    json: bool,
    include_disabled: bool,
    agent_ids: Vec<i64>,
    polls: u32,
    failed: bool,
}

struct Shared {
    config: KhorosEmulatorConfig,
    base_url: Url,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stats: KhorosEmulatorStats,
    faults: FaultQueue<KhorosEndpoint, KhorosFaultKind>,
    /// By `(workflowId, runId)` (decoded).
    jobs: HashMap<(String, String), Job>,
}

/// A running emulator. Dropping it (or [`KhorosEmulator::shutdown`]) stops the server.
pub struct KhorosEmulator {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl KhorosEmulator {
    /// Starts serving on `127.0.0.1:port` (0 picks a free port).
    pub async fn start(config: KhorosEmulatorConfig, port: u16) -> std::io::Result<KhorosEmulator> {
        let (listener, base_url) = loopback::bind(port).await?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner { faults: FaultQueue::new(&config.faults), ..Inner::default() }),
            base_url: base_url.join("api/public/").expect("a relative path joins"),
            config,
        });
        let app = Router::new()
            .route("/api/public/reports/report/user", any(create))
            .route("/api/public/reports/report/{*rest}", get(job_call))
            .with_state(shared.clone());
        Ok(KhorosEmulator { shared, server: LoopbackServer::serve(listener, app) })
    }

    /// The base URL to give `--api-url` (`http://127.0.0.1:PORT/api/public/`).
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    pub fn config(&self) -> &KhorosEmulatorConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> KhorosEmulatorStats {
        self.shared.inner.lock().expect("emulator lock").stats.clone()
    }

    pub async fn wait(self) {
        self.server.wait().await
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await
    }
}

fn fail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "status": "FAIL", "message": message }))).into_response()
}

/// `key=value` pairs of a query or form body, repeated keys kept.
fn pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

impl Shared {
    /// Basic auth, the company key, then fault injection.
    fn gate(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
        endpoint: KhorosEndpoint,
    ) -> Result<Option<KhorosFaultKind>, Box<Response>> {
        let mut inner = self.inner.lock().expect("emulator lock");
        inner.stats.requests += 1;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.config.username, self.config.password))
        );
        let authorised = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&expected);
        if !authorised {
            inner.stats.unauthorized += 1;
            return Err(Box::new(fail(
                StatusCode::UNAUTHORIZED,
                "Full authentication is required to access this resource",
            )));
        }
        if first(query, "companyKey") != Some(self.config.company_key.as_str()) {
            inner.stats.unauthorized += 1;
            return Err(Box::new(fail(StatusCode::UNAUTHORIZED, "Invalid or missing company key")));
        }
        let fault = inner.faults.take(endpoint);
        if fault.is_some() {
            inner.stats.faults_injected += 1;
        }
        match fault {
            Some(KhorosFaultKind::RateLimit { seconds }) => {
                let mut response = fail(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
                response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
                Err(Box::new(response))
            }
            Some(KhorosFaultKind::Status { code, retry_after }) => {
                let mut response = fail(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "injected fault",
                );
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
        fail(StatusCode::BAD_REQUEST, message)
    }

    /// The URL of a job's `action`, with the run id percent-encoded as the API returns it.
    fn job_url(&self, workflow_id: &str, run_id: &str, action: &str) -> String {
        let run: String = url::form_urlencoded::byte_serialize(run_id.as_bytes()).collect();
        format!("{}reports/report/{workflow_id}/{run}/{action}", self.base_url)
    }

    fn result(&self, workflow_id: &str, run_id: &str, state: &str, detail: &str, ready: bool) -> Value {
        json!({
            "workflowId": workflow_id,
            "runId": run_id,
            "runnerState": state,
            "detail": detail,
            "statusUrl": self.job_url(workflow_id, run_id, "status"),
            "downloadUrl": if ready { self.job_url(workflow_id, run_id, "download") } else { String::new() },
        })
    }
}

async fn delay(fault: &Option<KhorosFaultKind>) {
    if let Some(KhorosFaultKind::Delay { millis }) = fault {
        tokio::time::sleep(Duration::from_millis(*millis)).await;
    }
}

async fn create(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = pairs(query.as_deref().unwrap_or_default());
    let fault = match shared.gate(&headers, &query, KhorosEndpoint::Create) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    delay(&fault).await;
    // POST takes the parameters as a form body, GET as query parameters.
    let params = if method == Method::POST { pairs(&String::from_utf8_lossy(&body)) } else { query.clone() };
    let time = |name: &str| -> Result<i64, String> {
        let text = first(&params, name).ok_or(format!("{name} is required"))?;
        text.parse::<i64>().map_err(|_| format!("{name} must be epoch milliseconds"))
    };
    let (start_ms, end_ms) = match (time("startTime"), time("endTime")) {
        (Ok(s), Ok(e)) if s < e => (s, e),
        (Ok(_), Ok(_)) => return shared.bad_request("startTime must be before endTime"),
        (Err(m), _) | (_, Err(m)) => return shared.bad_request(&m),
    };
    let json = match first(&params, "reportFormat").unwrap_or("json") {
        "json" => true,
        "csv" => false,
        _ => return shared.bad_request("reportFormat must be json or csv"),
    };
    if let Some(locale) = first(&params, "locale") {
        if !["en", "es", "fr", "de", "tr"].contains(&locale) {
            return shared.bad_request("locale must be one of en, es, fr, de, tr");
        }
    }
    // `timezone` formats the export's times (a user export has durations only); the range
    // itself is never adjusted. Our reading of the pair: an IANA id, and its offset from UTC at
    // startTime in milliseconds, which must agree.
    match (first(&params, "timezone"), first(&params, "timezoneOffset")) {
        (None, None) => {}
        (Some(zone), offset) => {
            let Ok(tz) = zone.parse::<chrono_tz::Tz>() else {
                return shared.bad_request(&format!("Unknown timezone: {zone}"));
            };
            let expected = DateTime::<Utc>::from_timestamp_millis(start_ms)
                .map(|at| crate::sources::khoros::client::zone_offset_millis(tz, at));
            if let Some(offset) = offset {
                if offset.parse::<i64>().ok() != expected {
                    return shared.bad_request(&format!(
                        "timezoneOffset {offset} is not the offset of {zone} at startTime"
                    ));
                }
            }
        }
        (None, Some(_)) => return shared.bad_request("timezoneOffset needs timezone"),
    }
    let known = |metric: &str| synth::COLUMNS.iter().any(|(name, _)| name.eq_ignore_ascii_case(metric));
    if let Some((_, metric)) = params.iter().find(|(k, v)| k == "reportMetrics" && !known(v)) {
        return shared.bad_request(&format!("Unknown report metric: {metric}"));
    }
    let include_disabled = first(&params, "includeDisabled").is_some_and(|v| v == "true");
    let agent_ids =
        params.iter().filter(|(k, _)| k == "agentId").filter_map(|(_, v)| v.parse().ok()).collect();
    let mut inner = shared.inner.lock().expect("emulator lock");
    inner.stats.exports_created += 1;
    let param = |name: &str| first(&params, name).map(str::to_string);
    inner.stats.created_in.push((param("timezone"), param("timezoneOffset"), param("locale")));
    let n = inner.stats.exports_created;
    let workflow_id = format!("user-export-{n:06}");
    // Like the live API's: base64 with `+`, `/` and `=` in it.
    let run_id = format!("{}+r/{n}==", base64::engine::general_purpose::STANDARD.encode(n.to_be_bytes()));
    inner.jobs.insert(
        (workflow_id.clone(), run_id.clone()),
        Job { start_ms, end_ms, json, include_disabled, agent_ids, polls: 0, failed: false },
    );
    drop(inner);
    let mut result = shared.result(&workflow_id, &run_id, "RUNNING", "RUNNING", false);
    result.as_object_mut().expect("an object").remove("runnerState");
    result.as_object_mut().expect("an object").remove("detail");
    Json(json!({ "status": "PASS", "result": result })).into_response()
}

/// `<workflowId>/<runId>/status` and `…/download`, read from the raw path: the run id's
/// `%2F` must not split it.
async fn job_call(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let segments: Vec<&str> = raw.split('/').collect();
    let [workflow_id, run, action] = segments[..] else {
        return fail(StatusCode::NOT_FOUND, "No such report");
    };
    let run_id: String = percent_encoding::percent_decode_str(run).decode_utf8_lossy().into_owned();
    let endpoint = match action {
        "status" => KhorosEndpoint::Status,
        "download" => KhorosEndpoint::Download,
        _ => return fail(StatusCode::NOT_FOUND, "No such report"),
    };
    let fault = match shared.gate(&headers, &query, endpoint) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    delay(&fault).await;
    let key = (workflow_id.to_string(), run_id.clone());
    let mut inner = shared.inner.lock().expect("emulator lock");
    let Some(job) = inner.jobs.get_mut(&key) else {
        return fail(StatusCode::NOT_FOUND, "No such workflow run");
    };
    if endpoint == KhorosEndpoint::Status {
        if fault == Some(KhorosFaultKind::FailExport) && !job.failed {
            job.failed = true;
            inner.stats.exports_failed += 1;
        }
        let job = inner.jobs.get_mut(&key).expect("found above");
        job.polls += 1;
        let (state, detail, ready) = match (job.failed, job.polls > shared.config.running_polls) {
            (true, _) => ("CLOSED", "FAILED", false),
            (false, true) => ("CLOSED", "COMPLETED", true),
            (false, false) => ("RUNNING", "RUNNING", false),
        };
        let result = shared.result(workflow_id, &run_id, state, detail, ready);
        // The live API answers `result` as an object or as a one-element array.
        let as_array = job.polls % 2 == 0;
        if as_array {
            inner.stats.array_results += 1;
        }
        let result = if as_array { Value::Array(vec![result]) } else { result };
        return Json(json!({ "status": "PASS", "result": result })).into_response();
    }
    if job.failed || job.polls <= shared.config.running_polls {
        return fail(StatusCode::NOT_FOUND, "The export is not ready");
    }
    let job = job.clone();
    inner.stats.downloads += 1;
    drop(inner);
    let rows = report_rows(shared.config.synth, &job);
    let body = synth::render(&rows, job.json);
    let cut = match fault {
        Some(KhorosFaultKind::Reset { bytes }) => Some(BodyCut::Reset(bytes)),
        Some(KhorosFaultKind::Truncate { bytes }) => Some(BodyCut::Truncate(bytes)),
        _ => None,
    };
    let content_type = if job.json { "application/json" } else { "text/csv; charset=utf-8" };
    download_response(&body, content_type, shared.config.chunk_bytes, cut)
}

/// The rows a job reports: one per agent for each UTC day the range covers (the emulator's
/// tenant aggregates by day, as cxlake asks for one day per export).
fn report_rows(config: KhorosSynthConfig, job: &Job) -> Vec<synth::UserRow> {
    let at = DateTime::<Utc>::from_timestamp_millis;
    let (Some(start), Some(end)) = (at(job.start_ms), at(job.end_ms)) else {
        return Vec::new();
    };
    synth::report_rows(config, start, end, job.include_disabled)
        .into_iter()
        .filter(|row| job.agent_ids.is_empty() || job.agent_ids.contains(&row.agent.id))
        .collect()
}
