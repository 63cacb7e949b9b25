//! A faithful emulator of the Dixa Exports API, served over real HTTP on loopback.
//!
//! It implements the document's two endpoints with every filter parameter —
//! `GET /v1/conversation_export` (`created_*`, `updated_*`, `closed_*`,
//! `last_message_created_*`, `csids`) and `GET /v1/message_export` (`created_*`) — with bounds
//! as `yyyy-mm-dd` or epoch milliseconds, both strict (`>` and `<`). And what the document omits
//! but the live API does: Bearer authentication (401), 400 for a missing or half bound pair, an
//! inverted range or one longer than 31 days, and a rate limit per token (10 requests a minute
//! by default; 429 beyond, with `Retry-After` only when configured, since Dixa does not promise
//! one). Each answer is one JSON array streamed in chunks as it is generated, so a gigabyte
//! answer costs the emulator no memory. The data is [`super::synth`]'s deterministic tenant.
//!
//! Faults for tests and for users rehearsing incidents (`cxlake emulator dixa --faults FILE`):
//! rate limits with or without `Retry-After`, error statuses (optionally with `Retry-After`),
//! connection resets mid-body, slow answers, and bodies that end cleanly but too early — a JSON
//! array without its closing `]`, which only a client that checks the array notices.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::synth::{self, ConversationFilter, DixaSynthConfig, Range};
use crate::sources::loopback::{self, Fault, FaultEndpoint, FaultQueue, LoopbackServer};

/// The token the emulator accepts unless told otherwise.
pub const DEFAULT_API_TOKEN: &str = "dixa-emulator-token";
/// The longest range one request may span.
pub const MAX_RANGE_DAYS: i64 = 31;

#[derive(Debug, Clone)]
pub struct DixaEmulatorConfig {
    pub api_token: String,
    pub synth: DixaSynthConfig,
    /// Requests per minute per token before 429 (`None`: no limit).
    pub rate_limit_per_minute: Option<u32>,
    /// Send `Retry-After` with the rate limit's 429 (the live API does not promise it).
    pub rate_limit_retry_after: bool,
    /// Bytes per streamed chunk of an answer.
    pub chunk_bytes: usize,
    pub faults: Vec<DixaFault>,
}

impl Default for DixaEmulatorConfig {
    fn default() -> Self {
        DixaEmulatorConfig {
            api_token: DEFAULT_API_TOKEN.to_string(),
            synth: DixaSynthConfig::default(),
            rate_limit_per_minute: Some(10),
            rate_limit_retry_after: false,
            chunk_bytes: 64 << 10,
            faults: Vec::new(),
        }
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DixaEndpoint {
    Conversations,
    Messages,
    Any,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DixaFaultKind {
    /// 429, with `Retry-After: seconds` when `seconds` is given.
    RateLimit {
        #[serde(default)]
        seconds: Option<u64>,
    },
    /// An error status, with `Retry-After: seconds` when given.
    Status {
        code: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// The body breaks off (connection reset) after this many bytes.
    Reset { bytes: u64 },
    /// The body ends cleanly after this many bytes: an array without its closing `]`.
    Truncate { bytes: u64 },
    /// The answer starts this late.
    Delay { millis: u64 },
}

/// One injected fault: `kind` on the next `times` requests to `endpoint`.
pub type DixaFault = Fault<DixaEndpoint, DixaFaultKind>;

impl FaultEndpoint for DixaEndpoint {
    fn is_any(self) -> bool {
        self == DixaEndpoint::Any
    }
}

/// What the emulator has seen, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DixaEmulatorStats {
    pub requests: u64,
    pub unauthorized: u64,
    pub bad_requests: u64,
    pub rate_limited: u64,
    pub faults_injected: u64,
    pub answers: u64,
    pub records_served: u64,
    /// The shortest gap between two requests of one token, in milliseconds.
    pub min_gap_ms: Option<u64>,
}

struct Shared {
    config: DixaEmulatorConfig,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stats: DixaEmulatorStats,
    faults: FaultQueue<DixaEndpoint, DixaFaultKind>,
    /// Request times per token, for the rate limit.
    recent: HashMap<String, VecDeque<Instant>>,
}

/// A running emulator. Dropping it (or [`DixaEmulator::shutdown`]) stops the server.
pub struct DixaEmulator {
    shared: Arc<Shared>,
    base_url: Url,
    server: LoopbackServer,
}

impl DixaEmulator {
    /// Starts serving on `127.0.0.1:port` (0 picks a free port).
    pub async fn start(config: DixaEmulatorConfig, port: u16) -> std::io::Result<DixaEmulator> {
        let (listener, base_url) = loopback::bind(port).await?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner { faults: FaultQueue::new(&config.faults), ..Inner::default() }),
            config,
        });
        let app = Router::new()
            .route("/v1/conversation_export", get(conversation_export))
            .route("/v1/message_export", get(message_export))
            .with_state(shared.clone());
        Ok(DixaEmulator { shared, base_url, server: LoopbackServer::serve(listener, app) })
    }

    /// The base URL to give `--api-url`.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    pub fn config(&self) -> &DixaEmulatorConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> DixaEmulatorStats {
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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

/// What happens to a request before it is answered.
enum Gate {
    Answer(Option<DixaFaultKind>),
    Refused(Response),
}

impl Shared {
    /// Authentication, the rate limit and fault injection, in that order.
    fn gate(&self, headers: &HeaderMap, endpoint: DixaEndpoint) -> Gate {
        let mut inner = self.inner.lock().expect("emulator lock");
        inner.stats.requests += 1;
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let Some(token) = token.filter(|t| *t == self.config.api_token) else {
            inner.stats.unauthorized += 1;
            return Gate::Refused(error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: missing or invalid bearer token",
            ));
        };
        let now = Instant::now();
        let recent = inner.recent.entry(token).or_default();
        let gap = recent.back().map(|last| now.duration_since(*last).as_millis() as u64);
        while recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            recent.pop_front();
        }
        let over_limit =
            self.config.rate_limit_per_minute.is_some_and(|limit| recent.len() >= limit as usize);
        if !over_limit {
            recent.push_back(now);
        }
        if let Some(gap) = gap {
            inner.stats.min_gap_ms = Some(inner.stats.min_gap_ms.map_or(gap, |m| m.min(gap)));
        }
        if over_limit {
            inner.stats.rate_limited += 1;
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            if self.config.rate_limit_retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("6"));
            }
            return Gate::Refused(response);
        }
        let fault = inner.faults.take(endpoint);
        if fault.is_some() {
            inner.stats.faults_injected += 1;
        }
        match fault {
            Some(DixaFaultKind::RateLimit { seconds }) => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
                if let Some(s) = seconds {
                    response.headers_mut().insert(header::RETRY_AFTER, s.into());
                }
                Gate::Refused(response)
            }
            Some(DixaFaultKind::Status { code, retry_after }) => {
                let mut response = error(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "injected fault",
                );
                if let Some(s) = retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, s.into());
                }
                Gate::Refused(response)
            }
            other => Gate::Answer(other),
        }
    }

    fn bad_request(&self, message: String) -> Response {
        self.inner.lock().expect("emulator lock").stats.bad_requests += 1;
        error(StatusCode::BAD_REQUEST, message)
    }
}

/// A bound as the API takes it: `yyyy-mm-dd` (midnight UTC) or epoch milliseconds.
fn parse_bound(name: &str, text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis())
        .map_err(|_| format!("{name}: `{text}` is neither yyyy-mm-dd nor a Unix timestamp in ms"))
}

/// The pair `<prefix>_after` / `<prefix>_before`, if given; a half pair or a bad range is a 400.
fn parse_pair(query: &HashMap<String, String>, prefix: &str) -> Result<Option<Range>, String> {
    let after = query.get(&format!("{prefix}_after"));
    let before = query.get(&format!("{prefix}_before"));
    match (after, before) {
        (None, None) => Ok(None),
        (Some(_), None) | (None, Some(_)) => {
            Err(format!("{prefix}_after and {prefix}_before must be given together"))
        }
        (Some(a), Some(b)) => {
            let after = parse_bound(&format!("{prefix}_after"), a)?;
            let before = parse_bound(&format!("{prefix}_before"), b)?;
            if after >= before {
                return Err(format!("{prefix}_after must be before {prefix}_before"));
            }
            if before - after > MAX_RANGE_DAYS * 86_400_000 {
                return Err(format!("the {prefix} range must not exceed {MAX_RANGE_DAYS} days"));
            }
            Ok(Some(Range { after, before }))
        }
    }
}

async fn conversation_export(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let fault = match shared.gate(&headers, DixaEndpoint::Conversations) {
        Gate::Refused(response) => return response,
        Gate::Answer(fault) => fault,
    };
    let parsed = (|| -> Result<ConversationFilter, String> {
        let csids = match query.get("csids") {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|id| {
                        id.trim().parse::<i64>().map_err(|_| format!("csids: `{id}` is not an integer"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let filter = ConversationFilter {
            created: parse_pair(&query, "created")?,
            updated: parse_pair(&query, "updated")?,
            closed: parse_pair(&query, "closed")?,
            last_message_created: parse_pair(&query, "last_message_created")?,
            csids,
        };
        if filter == ConversationFilter::default() {
            return Err("give a pair of bounds (created, updated, closed or last_message_created _after/_before) or csids".into());
        }
        Ok(filter)
    })();
    let filter = match parsed {
        Ok(filter) => filter,
        Err(message) => return shared.bad_request(message),
    };
    let config = shared.config.synth;
    stream_array(shared, fault, move || Box::new(synth::conversations(config, filter))).await
}

async fn message_export(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let fault = match shared.gate(&headers, DixaEndpoint::Messages) {
        Gate::Refused(response) => return response,
        Gate::Answer(fault) => fault,
    };
    let range = match parse_pair(&query, "created") {
        Ok(Some(range)) => range,
        Ok(None) => return shared.bad_request("created_after and created_before are required".into()),
        Err(message) => return shared.bad_request(message),
    };
    let config = shared.config.synth;
    stream_array(shared, fault, move || Box::new(synth::messages(config, range))).await
}

type Records = Box<dyn Iterator<Item = serde_json::Value> + Send>;

/// Streams the records as one JSON array in chunks, generated on a blocking thread.
async fn stream_array(
    shared: Arc<Shared>,
    fault: Option<DixaFaultKind>,
    records: impl FnOnce() -> Records + Send + 'static,
) -> Response {
    if let Some(DixaFaultKind::Delay { millis }) = fault {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
    let (cut, reset) = match fault {
        Some(DixaFaultKind::Truncate { bytes }) => (Some(bytes), false),
        Some(DixaFaultKind::Reset { bytes }) => (Some(bytes), true),
        _ => (None, false),
    };
    let chunk_bytes = shared.config.chunk_bytes.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let counting = shared.clone();
    tokio::task::spawn_blocking(move || {
        let mut sent = 0u64;
        let mut buffer = Vec::with_capacity(chunk_bytes + 1024);
        let mut count = 0u64;
        // Sends `buffer` (up to the cut); false when the client is gone or the cut was reached.
        let flush = |buffer: &mut Vec<u8>, sent: &mut u64| -> bool {
            let mut chunk = std::mem::take(buffer);
            if let Some(limit) = cut {
                let room = limit.saturating_sub(*sent) as usize;
                if chunk.len() >= room {
                    chunk.truncate(room);
                    *sent += chunk.len() as u64;
                    let _ = tx.blocking_send(Ok(Bytes::from(chunk)));
                    if reset {
                        std::thread::sleep(Duration::from_millis(50));
                        let _ = tx.blocking_send(Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected connection reset",
                        )));
                    }
                    return false;
                }
            }
            *sent += chunk.len() as u64;
            tx.blocking_send(Ok(Bytes::from(chunk))).is_ok()
        };
        buffer.push(b'[');
        for record in records() {
            if count > 0 {
                buffer.push(b',');
            }
            buffer.push(b'\n');
            serde_json::to_writer(&mut buffer, &record).expect("a Value serialises");
            count += 1;
            if buffer.len() >= chunk_bytes && !flush(&mut buffer, &mut sent) {
                return;
            }
        }
        buffer.extend_from_slice(b"\n]\n");
        if flush(&mut buffer, &mut sent) {
            let mut inner = counting.inner.lock().expect("emulator lock");
            inner.stats.answers += 1;
            inner.stats.records_served += count;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response.headers_mut().insert(
        header::DATE,
        Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string().parse().expect("date header"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_dates_or_epoch_ms_and_pairs_are_strict() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(parse_bound("x", "2024-03-01"), Ok(1_709_251_200_000));
        assert_eq!(parse_bound("x", "1709251200000"), Ok(1_709_251_200_000));
        assert!(parse_bound("x", "March").is_err());
        assert_eq!(
            parse_pair(&q(&[("updated_after", "2024-03-01"), ("updated_before", "2024-03-02")]), "updated"),
            Ok(Some(Range { after: 1_709_251_200_000, before: 1_709_337_600_000 }))
        );
        assert!(parse_pair(&q(&[("updated_after", "2024-03-01")]), "updated")
            .unwrap_err()
            .contains("together"));
        assert!(parse_pair(
            &q(&[("created_after", "2024-03-02"), ("created_before", "2024-03-01")]),
            "created"
        )
        .unwrap_err()
        .contains("must be before"));
        assert!(parse_pair(
            &q(&[("created_after", "2024-01-01"), ("created_before", "2024-03-01")]),
            "created"
        )
        .unwrap_err()
        .contains("31 days"));
    }
}
