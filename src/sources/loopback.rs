//! What every emulator shares: binding 127.0.0.1 only, serving a router until shut down (or
//! dropped), and reading a `--faults` scenario file.

use std::net::SocketAddr;
use std::path::Path;

use url::Url;

use super::SetupError;

/// Binds `127.0.0.1:port` (0 picks a free port); returns the listener and its base URL.
pub async fn bind(port: u16) -> std::io::Result<(tokio::net::TcpListener, Url)> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    let base_url = Url::parse(&format!("http://{addr}/")).expect("loopback URL parses");
    Ok((listener, base_url))
}

/// A router served on a loopback listener. Dropping it (or [`LoopbackServer::shutdown`]) stops it.
pub struct LoopbackServer {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LoopbackServer {
    pub fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> LoopbackServer {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "Emulator server stopped");
            }
        });
        LoopbackServer { shutdown: Some(tx), task: Some(task) }
    }

    /// Runs until the server stops (for `cxlake emulator`, until Ctrl-C).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The faults of an emulator's `--faults` TOML scenario (`[[faults]]` tables), none without one.
pub fn scenario_faults<E, K>(path: Option<&Path>) -> Result<Vec<Fault<E, K>>, SetupError>
where
    E: serde::de::DeserializeOwned,
    K: serde::de::DeserializeOwned,
{
    let Some(path) = path else { return Ok(Vec::new()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| SetupError(format!("cannot read --faults {}: {e}", path.display())))?;
    let scenario: FaultScenario<E, K> =
        toml::from_str(&text).map_err(|e| SetupError(format!("--faults {}: {e}", path.display())))?;
    Ok(scenario.faults)
}

/// An emulator's endpoint kinds, for faults: one of them, or `any`.
pub trait FaultEndpoint: Copy + PartialEq {
    fn is_any(self) -> bool;
}

/// One injected fault: `kind` on the next `times` requests to `endpoint` (default once).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault<E, K> {
    pub endpoint: E,
    #[serde(flatten)]
    pub kind: K,
    #[serde(default = "once")]
    pub times: u32,
}

fn once() -> u32 {
    1
}

/// A `--faults` scenario file: `[[faults]]` tables, injected in order.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultScenario<E, K> {
    #[serde(default = "Vec::new")]
    pub faults: Vec<Fault<E, K>>,
}

/// The faults an emulator still has to inject, each with the times it has left.
#[derive(Debug, Clone)]
pub struct FaultQueue<E, K> {
    left: Vec<(Fault<E, K>, u32)>,
}

impl<E, K> Default for FaultQueue<E, K> {
    fn default() -> Self {
        FaultQueue { left: Vec::new() }
    }
}

impl<E: FaultEndpoint, K: Clone> FaultQueue<E, K> {
    pub fn new(faults: &[Fault<E, K>]) -> Self {
        FaultQueue { left: faults.iter().map(|f| (f.clone(), f.times)).collect() }
    }

    /// The next fault for a request to `endpoint`, consuming one of its times.
    pub fn take(&mut self, endpoint: E) -> Option<K> {
        let slot = self
            .left
            .iter_mut()
            .find(|(f, left)| *left > 0 && (f.endpoint == endpoint || f.endpoint.is_any()))?;
        slot.1 -= 1;
        Some(slot.0.kind.clone())
    }
}

/// How an injected fault breaks a download's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCut {
    /// The connection resets after this many bytes (the declared length says more were due).
    Reset(u64),
    /// The body ends cleanly after this many bytes, with no length declared: only the file's
    /// own structure (a JSON array's closing `]`, a workbook's central directory) tells.
    Truncate(u64),
}

/// A `200` download of `body` in `chunk`-byte pieces, cut as `cut` says.
pub fn download_response(
    body: &[u8],
    content_type: &str,
    chunk: usize,
    cut: Option<BodyCut>,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    let total = body.len();
    let limit = match cut {
        Some(BodyCut::Reset(bytes) | BodyCut::Truncate(bytes)) => {
            usize::try_from(bytes).unwrap_or(total).min(total)
        }
        None => total,
    };
    let chunk = chunk.max(1);
    let mut parts: Vec<Result<bytes::Bytes, std::io::Error>> = (0..limit)
        .step_by(chunk)
        .map(|start| Ok(bytes::Bytes::copy_from_slice(&body[start..(start + chunk).min(limit)])))
        .collect();
    if matches!(cut, Some(BodyCut::Reset(_))) && limit < total {
        parts.push(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")));
    }
    let mut response =
        axum::response::Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, content_type);
    if !matches!(cut, Some(BodyCut::Truncate(_))) {
        response = response.header(header::CONTENT_LENGTH, total);
    }
    response.body(axum::body::Body::from_stream(futures::stream::iter(parts))).expect("a valid response")
}
