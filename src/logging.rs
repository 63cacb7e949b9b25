//! Where log lines and progress go: text or JSON lines on standard error, and on a terminal
//! progress bars drawn by indicatif above them (a log line suspends the bars while it prints,
//! so neither tears the other).
//!
//! JSON lines carry the fields of every span the event happened in — `run_id` and `source`
//! (the run), `window`, `dataset` — flattened with the event's own fields, one object per
//! line, as Loki, CloudWatch and Datadog ingest them.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter};

use crate::cli::{Cli, LogFormat, ProgressMode};
use crate::progress::TARGET;

/// Installs the subscriber the command line asks for.
pub fn init(cli: &Cli) {
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let bars = match cli.progress {
        // Drawn whatever stderr is (indicatif's own stderr target hides itself off a terminal).
        ProgressMode::Always => Some(MultiProgress::with_draw_target(ProgressDrawTarget::term_like(
            Box::new(console::Term::stderr()),
        ))),
        ProgressMode::Never => None,
        ProgressMode::Auto => (stderr_is_terminal && cli.log_format == LogFormat::Text)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8))),
    };
    let writer = StderrWriter { bars: bars.clone() };
    let directives = filter_directives(&cli.log);
    let env_filter =
        || EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(filter_directives("info")));
    let not_progress = filter::filter_fn(|meta| meta.target() != TARGET);
    let (text, json) = match cli.log_format {
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(stderr_is_terminal)
                .with_target(false)
                .with_filter(env_filter())
                .with_filter(not_progress);
            (Some(layer), None)
        }
        LogFormat::Json => {
            (None, Some(JsonLayer { writer }.with_filter(env_filter()).with_filter(not_progress)))
        }
    };
    let progress = bars.map(|bars| {
        ProgressLayer { bars, state: Mutex::new(BarState::default()) }
            .with_filter(filter::filter_fn(|meta| meta.target() == TARGET))
    });
    tracing_subscriber::registry().with(text).with(json).with(progress).init();
}

/// The filter for `--log`: a bare level is cxlake's own events at that level and its
/// dependencies' (deltalake, hyper, aws, russh) at WARN at most — their INFO lines (a Delta
/// snapshot per read, with its schema) would bury ours. delta-rs warns, then errors, when a commit
/// it was told not to retry meets a newer version; cxlake retries that commit itself (and reports
/// a commit that finally fails), so its transaction module is left out. Anything else
/// (`deltalake=debug,cxlake=info`) is taken as the user wrote it.
pub fn filter_directives(log: &str) -> String {
    let level = log.trim().to_ascii_lowercase();
    match level.as_str() {
        "off" | "error" => level,
        "warn" | "info" | "debug" | "trace" => {
            format!("warn,cxlake={level},deltalake_core::kernel::transaction=off")
        }
        _ => log.to_string(),
    }
}

/// Standard error, one whole line at a time, printed above the progress bars when they show.
#[derive(Clone)]
struct StderrWriter {
    bars: Option<MultiProgress>,
}

struct LineWriter {
    bars: Option<MultiProgress>,
    buffer: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        let print = || {
            let _ = std::io::stderr().lock().write_all(&buffer);
        };
        match &self.bars {
            Some(bars) => bars.suspend(print),
            None => print(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { bars: self.bars.clone(), buffer: Vec::with_capacity(256) }
    }
}

/// Collects fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
}

/// A span's fields, kept in its extensions.
struct SpanFields(Map<String, Value>);

/// `--log-format json`: one JSON object per event.
struct JsonLayer {
    writer: StderrWriter,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        line.insert("timestamp".into(), Value::String(now));
        line.insert("level".into(), Value::String(event.metadata().level().as_str().to_lowercase()));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        line.extend(fields);
        let mut text = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        text.push(b'\n');
        let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&self.writer);
        let _ = writer.write_all(&text);
    }
}

/// The bars of the runs in progress.
#[derive(Default)]
struct BarState {
    bar: Option<ProgressBar>,
    downloaded: u64,
    rows: u64,
    state: String,
}

impl BarState {
    fn message(&self) -> String {
        format!(
            "{} · {:.1} MB downloaded · {} rows",
            if self.state.is_empty() { "starting" } else { &self.state },
            self.downloaded as f64 / 1e6,
            self.rows
        )
    }
}

/// Draws progress events as bars: one per source run.
struct ProgressLayer {
    bars: MultiProgress,
    state: Mutex<BarState>,
}

impl<S: Subscriber> Layer<S> for ProgressLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let text = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        let number = |name: &str| fields.get(name).and_then(Value::as_u64).unwrap_or(0);
        let mut state = self.state.lock().expect("progress state");
        match text("message").as_str() {
            "run_started" => {
                let style = ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} windows  {msg}  ({elapsed}, ETA {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                let bar = self.bars.add(ProgressBar::new(number("windows")).with_style(style));
                bar.set_prefix(text("source"));
                bar.enable_steady_tick(Duration::from_millis(250));
                *state = BarState { bar: Some(bar), ..BarState::default() };
            }
            "export_state" => state.state = format!("{}: {}", text("window"), text("state")),
            "export_polled" => {
                let id = text("export");
                state.state = format!("export {}: {}", id.get(..8).unwrap_or(&id), text("state"));
            }
            "downloaded" => state.downloaded += number("bytes"),
            "window_done" => {
                state.rows += number("rows");
                state.state = format!("{}: {}", text("window"), text("outcome"));
                if let Some(bar) = &state.bar {
                    bar.inc(1);
                }
            }
            "run_finished" => {
                // The final state stays as a plain line; the bar goes, so what follows starts on a line of its own.
                if let Some(bar) = state.bar.take() {
                    let line = format!(
                        "{:>12} {}/{} windows  {}  ({:.1} s)",
                        bar.prefix(),
                        bar.position(),
                        bar.length().unwrap_or(0),
                        state.message(),
                        bar.elapsed().as_secs_f64()
                    );
                    bar.finish_and_clear();
                    self.bars.suspend(|| eprintln!("{line}"));
                }
                return;
            }
            _ => {}
        }
        if let Some(bar) = &state.bar {
            bar.set_message(state.message());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_is_ours_and_dependencies_stay_at_warn() {
        assert_eq!(filter_directives("info"), "warn,cxlake=info,deltalake_core::kernel::transaction=off");
        assert_eq!(filter_directives(" DEBUG "), "warn,cxlake=debug,deltalake_core::kernel::transaction=off");
        assert_eq!(filter_directives("error"), "error");
        assert_eq!(filter_directives("deltalake=debug,cxlake=info"), "deltalake=debug,cxlake=info");
        for text in ["info", "warn", "trace", "off", "hyper=debug"] {
            assert!(EnvFilter::try_new(filter_directives(text)).is_ok(), "{text}");
        }
    }
}
