//! What a command prints on stdout. A reader that goes away (`cxlake status | head`) ends the
//! output, not the run: what is left to print is dropped, and the exit code still says what the
//! command did.
//!
//! SIGPIPE stays ignored, as Rust leaves it. With its default action a write to any closed
//! connection kills the process: an S3 server that answers 503 before reading an upload's body
//! and closes the connection would end a sync mid-window, with no message.

use std::io::Write;

/// Writes `args` to stdout; a closed stdout is not an error.
pub fn print(args: std::fmt::Arguments) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// A writer that notes whether its reader went away, for the commands that stream their output
/// (`synth`): a platform's generator reports a failed write in its own words.
pub struct Watched<W> {
    inner: W,
    pub reader_gone: bool,
}

impl<W: Write> Watched<W> {
    pub fn new(inner: W) -> Watched<W> {
        Watched { inner, reader_gone: false }
    }

    fn noted<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result {
            self.reader_gone |= e.kind() == std::io::ErrorKind::BrokenPipe;
        }
        result
    }
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.noted(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.noted(result)
    }
}

/// `print!` for a command's output (see the module's header).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::print(format_args!($($arg)*))
    };
}

/// `println!` for a command's output (see the module's header).
macro_rules! outln {
    () => {
        $crate::cli::output::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
