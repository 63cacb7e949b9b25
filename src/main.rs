//! The `cxlake` binary: parse, run, report, exit with a code that says what happened.

use std::io::IsTerminal;


fn main() {
    // Like other command-line tools, end quietly when stdout is a closed pipe (`cxlake … | head`)
    // instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cxlake::cli::parse(std::env::args_os().collect());
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    let code = match runtime.block_on(cxlake::cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            cxlake::cli::exit_code_of(&error)
        }
    };
    // Dropping the runtime waits for blocking tasks; a finished run has none worth waiting for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
