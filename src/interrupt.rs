//! Ctrl-C and SIGTERM during a run that lands windows: the first signal asks the run to stop
//! taking new windows — the ones in flight finish and commit (or fail) as usual, the summary is
//! printed, the run report says it was interrupted, staging and spool are cleaned — and a second
//! signal exits at once (what it leaves in staging is swept by the next run). A leaf: the
//! pipeline asks [`requested`], the command line installs [`listen`].

use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::report::exit_code::INTERRUPTED as EXIT_CODE;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether a stop was asked for: no new window is started after it.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Asks the run to stop taking new windows (what the first signal does).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Listens for SIGINT and SIGTERM for the rest of the process: the first asks the run to stop
/// taking new windows, the second exits at once.
pub fn listen() {
    tokio::spawn(async {
        let mut first = true;
        loop {
            if !next_signal().await {
                return;
            }
            if first {
                first = false;
                request();
                tracing::warn!("Interrupted: no new window is started; the windows in flight finish and commit. Press Ctrl-C again to stop at once (the next run sweeps what that leaves)");
            } else {
                eprintln!("interrupted again: stopping now");
                std::process::exit(EXIT_CODE);
            }
        }
    });
}

/// Waits for SIGINT or SIGTERM; false when signals cannot be listened for.
async fn next_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut interrupt), Ok(mut terminate)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return false;
        };
        tokio::select! {
            _ = interrupt.recv() => true,
            _ = terminate.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
