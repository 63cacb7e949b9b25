//! Progress events: what a terminal's progress bars show (windows done of total, the current
//! export's state, bytes downloaded, rows written). They are `tracing` events on their own
//! target at TRACE level, so the pipeline and the sources report progress without knowing
//! whether anything draws it; `crate::logging` turns them into bars on a terminal and leaves
//! them out of the logs.

/// The events' target.
pub const TARGET: &str = "cxlake_progress";

/// A run of `source` begins with `windows` windows to do.
pub fn run_started(source: &str, windows: usize) {
    tracing::trace!(target: TARGET, source, windows = windows as u64, "run_started");
}

/// The state of a window's export at the platform (created, PROCESSING, downloading, …).
pub fn export_state(window: &dyn std::fmt::Display, state: &str) {
    tracing::trace!(target: TARGET, window = %window, state, "export_state");
}

/// An export still being prepared at the platform, by its id (polling knows no window).
pub fn export_polled(export_id: &str, state: &str) {
    tracing::trace!(target: TARGET, export = export_id, state, "export_polled");
}

/// Bytes of export files a window downloaded.
pub fn downloaded(bytes: u64) {
    tracing::trace!(target: TARGET, bytes, "downloaded");
}

/// A window ended (committed, failed, or done by another run) with `rows` written.
pub fn window_done(window: &dyn std::fmt::Display, rows: u64, outcome: &str) {
    tracing::trace!(target: TARGET, window = %window, rows, outcome, "window_done");
}

/// The run of `source` ended.
pub fn run_finished(source: &str) {
    tracing::trace!(target: TARGET, source, "run_finished");
}
