//! A fault proxy between cxlake and SeaweedFS, on loopback: S3 requests pass through, and a share
//! of them, by operation, meet what object stores do under load — a 503 SlowDown, a 500, a
//! connection reset *after* the server executed the request (the answer lost), or a delay.
//! Requests keep their Host header, so their SigV4 signatures still verify upstream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// What an S3 request does, as the proxy tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    PartUpload,
    CreateMultipart,
    CompleteMultipart,
    AbortMultipart,
    CreateOnlyPut,
    Put,
    List,
    BulkDelete,
    Delete,
    Get,
    Head,
}

fn classify(request: &Request<Incoming>) -> Op {
    let query = request.uri().query().unwrap_or_default();
    let has = |key: &str| query.split('&').any(|p| p == key || p.starts_with(&format!("{key}=")));
    match request.method().as_str() {
        "PUT" if has("partNumber") => Op::PartUpload,
        "PUT" if request.headers().contains_key("if-none-match") => Op::CreateOnlyPut,
        "PUT" => Op::Put,
        "POST" if has("uploads") => Op::CreateMultipart,
        "POST" if has("uploadId") => Op::CompleteMultipart,
        "POST" if has("delete") => Op::BulkDelete,
        "DELETE" if has("uploadId") => Op::AbortMultipart,
        "DELETE" => Op::Delete,
        "HEAD" => Op::Head,
        _ if has("list-type") || request.uri().path().trim_end_matches('/').matches('/').count() <= 1 => {
            Op::List
        }
        _ => Op::Get,
    }
}

/// A fault the proxy injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    SlowDown,
    InternalError,
    /// The request reaches the server and is executed; its answer never comes back.
    ResetAfterExecution,
    Delay,
    /// 403 AccessDenied: a bucket policy that refuses the operation (deletes, in an append-only bucket).
    AccessDenied,
}

/// Which requests meet a fault: `rate` of those whose operation is in `ops` (all when empty),
/// the fault drawn from `faults` in turn.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub rate: f64,
    pub ops: Vec<Op>,
    pub faults: Vec<Fault>,
    pub seed: u64,
    /// How long a `Delay` holds a request.
    pub delay: std::time::Duration,
    /// The `Retry-After` (seconds) a SlowDown carries, if any.
    pub retry_after: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub requests: BTreeMap<Op, u64>,
    pub injected: BTreeMap<(Op, Fault), u64>,
    /// For each SlowDown that carried `Retry-After`: how long until the same request came again.
    pub came_back_after: Vec<std::time::Duration>,
}

pub struct FaultProxy {
    pub port: u16,
    pub counts: Arc<Mutex<Counts>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// The endpoint to give cxlake (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points cxlake at `s3` through this proxy.
    pub fn s3_env(&self, s3: &crate::common::S3) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = s3
            .env()
            .into_iter()
            .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        env.push(("AWS_ENDPOINT_URL".into(), self.endpoint()));
        env
    }

    pub fn injected(&self) -> u64 {
        self.counts.lock().unwrap().injected.values().sum()
    }

    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`) on a free loopback port.
    pub async fn start(upstream: &str, plan: FaultPlan) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts: Arc<Mutex<Counts>> = Arc::default();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            plan,
            rng: Mutex::new(cxlake::sources::synthetic::Rng::new(0)),
            turn: Mutex::new(0),
            counts: counts.clone(),
            slowed: Mutex::default(),
        });
        *state.rng.lock().unwrap() = cxlake::sources::synthetic::Rng::new(state.plan.seed);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { state.handle(request).await }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    // A reset after execution is a service error: the connection closes unanswered.
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        FaultProxy { port, counts, task }
    }
}

struct State {
    upstream: String,
    client: reqwest::Client,
    plan: FaultPlan,
    rng: Mutex<cxlake::sources::synthetic::Rng>,
    turn: Mutex<usize>,
    counts: Arc<Mutex<Counts>>,
    /// Requests answered SlowDown with `Retry-After`, by method and URI: when.
    slowed: Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Why the proxy answers nothing: an injected reset, or the upstream failing.
#[derive(Debug)]
struct NoAnswer(String);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoAnswer {}

fn s3_error(status: u16, code: &str, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>");
    let mut response = Response::builder().status(status).header("content-type", "application/xml");
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}

impl State {
    fn draw(&self, op: Op) -> Option<Fault> {
        let eligible = self.plan.ops.is_empty() || self.plan.ops.contains(&op);
        let hit =
            eligible && (self.rng.lock().unwrap().below(1_000_000) as f64) < self.plan.rate * 1_000_000.0;
        let fault = hit.then(|| {
            let mut turn = self.turn.lock().unwrap();
            *turn += 1;
            self.plan.faults[*turn % self.plan.faults.len()]
        });
        let mut counts = self.counts.lock().unwrap();
        *counts.requests.entry(op).or_default() += 1;
        if let Some(fault) = fault {
            *counts.injected.entry((op, fault)).or_default() += 1;
        }
        fault
    }

    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, NoAnswer> {
        let failed = |e: &dyn std::fmt::Display| NoAnswer(e.to_string());
        let op = classify(&request);
        let key = format!("{} {}", request.method(), request.uri());
        if let Some(at) = self.slowed.lock().unwrap().remove(&key) {
            self.counts.lock().unwrap().came_back_after.push(at.elapsed());
        }
        let fault = self.draw(op);
        match fault {
            Some(Fault::SlowDown) => {
                if self.plan.retry_after.is_some() {
                    self.slowed.lock().unwrap().insert(key, std::time::Instant::now());
                }
                return Ok(s3_error(503, "SlowDown", self.plan.retry_after));
            }
            Some(Fault::InternalError) => return Ok(s3_error(500, "InternalError", None)),
            Some(Fault::AccessDenied) => return Ok(s3_error(403, "AccessDenied", None)),
            Some(Fault::Delay) => tokio::time::sleep(self.plan.delay).await,
            _ => {}
        }
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(|e| failed(&e))?.to_bytes();
        let url =
            format!("{}{}", self.upstream, parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let mut forwarded = self.client.request(parts.method.clone(), url).body(body);
        for (name, value) in &parts.headers {
            if !matches!(name.as_str(), "connection" | "transfer-encoding" | "content-length") {
                forwarded = forwarded.header(name, value);
            }
        }
        let answer = forwarded.send().await.map_err(|e| failed(&e))?;
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = answer.bytes().await.map_err(|e| failed(&e))?;
        if fault == Some(Fault::ResetAfterExecution) {
            return Err(NoAnswer("injected: executed, and the answer is lost".into()));
        }
        let mut response = Response::builder().status(status);
        for (name, value) in &headers {
            // A HEAD's length is the object's, not its empty body's: kept as the server said.
            let length = name.as_str() == "content-length";
            if !matches!(name.as_str(), "connection" | "transfer-encoding") && (!length || op == Op::Head) {
                response = response.header(name, value);
            }
        }
        Ok(response.body(Full::new(bytes)).unwrap())
    }
}
