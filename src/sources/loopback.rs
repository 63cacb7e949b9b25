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

/// Reads a `--faults` TOML scenario (`[[faults]]` tables) of an emulator.
pub fn load_scenario<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SetupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SetupError(format!("cannot read --faults {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| SetupError(format!("--faults {}: {e}", path.display())))
}
