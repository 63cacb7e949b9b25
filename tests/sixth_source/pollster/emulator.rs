//! Pollster's emulator on loopback: `GET /v1/export/<dataset>?date=YYYY-MM-DD` with
//! `Authorization: Bearer <token>` answers the day's file; `GET /v1/me` proves the token. Faults
//! (a 429 with `Retry-After`, a 503, a connection reset, a body cut short) are injected in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cxlake::sources::loopback::{self, BodyCut, LoopbackServer};

use super::synth;

/// One injected fault, on the next export request of its dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    RateLimit {
        seconds: u64,
    },
    Status(u16),
    /// The connection resets after this many bytes.
    Reset(u64),
    /// The body ends after this many bytes, no length declared.
    Truncate(u64),
}

struct Tenant {
    token: String,
    faults: Mutex<Vec<(String, Fault)>>,
    faults_injected: AtomicU64,
}

pub struct PollsterEmulator {
    url: url::Url,
    tenant: Arc<Tenant>,
    server: LoopbackServer,
}

impl PollsterEmulator {
    /// Serves on 127.0.0.1:`port` (0: any), accepting `token`; `faults` are `(dataset, fault)`.
    pub async fn start(
        token: &str,
        faults: Vec<(String, Fault)>,
        port: u16,
    ) -> std::io::Result<PollsterEmulator> {
        let tenant = Arc::new(Tenant {
            token: token.to_string(),
            faults: Mutex::new(faults),
            faults_injected: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/v1/me", axum::routing::get(me))
            .route("/v1/export/{dataset}", axum::routing::get(export))
            .with_state(tenant.clone());
        let (listener, url) = loopback::bind(port).await?;
        Ok(PollsterEmulator { url, tenant, server: LoopbackServer::serve(listener, app) })
    }

    pub fn base_url(&self) -> url::Url {
        self.url.clone()
    }

    pub fn token(&self) -> &str {
        &self.tenant.token
    }

    pub fn faults_injected(&self) -> u64 {
        self.tenant.faults_injected.load(Ordering::SeqCst)
    }

    pub async fn wait(self) {
        self.server.wait().await
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await
    }
}

fn authorised(tenant: &Tenant, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", tenant.token);
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn unauthorised() -> Response {
    (StatusCode::UNAUTHORIZED, "invalid token").into_response()
}

async fn me(State(tenant): State<Arc<Tenant>>, headers: HeaderMap) -> Response {
    if !authorised(&tenant, &headers) {
        return unauthorised();
    }
    axum::Json(serde_json::json!({"account": "demo"})).into_response()
}

#[derive(serde::Deserialize)]
struct ExportQuery {
    date: String,
}

async fn export(
    State(tenant): State<Arc<Tenant>>,
    Path(dataset): Path<String>,
    Query(query): Query<ExportQuery>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&tenant, &headers) {
        return unauthorised();
    }
    let Ok(day) = chrono::NaiveDate::parse_from_str(&query.date, "%Y-%m-%d") else {
        return (StatusCode::BAD_REQUEST, "date must be YYYY-MM-DD").into_response();
    };
    let Some((body, _)) = synth::export(&dataset, day) else {
        return (StatusCode::NOT_FOUND, "no such dataset").into_response();
    };
    let fault = {
        let mut faults = tenant.faults.lock().expect("faults");
        let next = faults.iter().position(|(d, _)| *d == dataset);
        next.map(|index| faults.remove(index).1)
    };
    if fault.is_some() {
        tenant.faults_injected.fetch_add(1, Ordering::SeqCst);
    }
    let content_type = if dataset == "response" { "application/json" } else { "text/csv" };
    match fault {
        None => loopback::download_response(&body, content_type, 512, None),
        Some(Fault::RateLimit { seconds }) => {
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, seconds.to_string())], "slow down")
                .into_response()
        }
        Some(Fault::Status(code)) => {
            (StatusCode::from_u16(code).expect("a status"), "try again").into_response()
        }
        Some(Fault::Reset(bytes)) => {
            loopback::download_response(&body, content_type, 512, Some(BodyCut::Reset(bytes)))
        }
        Some(Fault::Truncate(bytes)) => {
            loopback::download_response(&body, content_type, 512, Some(BodyCut::Truncate(bytes)))
        }
    }
}
