//! The `cxlake` binary: parse, run, report, exit with a code that says what happened.

#[global_allocator]
static HEAP: cxlake::heap::CountingAllocator = cxlake::heap::CountingAllocator;

fn main() {
    // Like other command-line tools, end quietly when stdout is a closed pipe (`cxlake … | head`)
    // instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    cxlake::heap::tune_allocator();
    let cli = cxlake::cli::parse(std::env::args_os().collect());
    cxlake::logging::init(&cli);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts");
    let code = match runtime.block_on(cxlake::cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", cxlake::cli::render_error(&error));
            cxlake::cli::exit_code_of(&error)
        }
    };
    // Dropping the runtime waits for blocking tasks; a finished run has none worth waiting for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
