//! A sixth source that lives only in the tests, run through the whole conformance suite: the
//! proof that a platform is one registry entry. This binary is both sides of the suite: run by
//! `cargo test`, it runs every property against Pollster (`pollster/`), starting itself as the
//! command line; started with [`AS_CLI`] set, it *is* the command line — `cxlake::cli::main` with
//! the built-in platforms and Pollster (`registry`), exactly what `src/main.rs` runs without it.
//!
//! A harness of its own (`harness = false`): libtest cannot run a test binary as a CLI.

// The shared helpers serve the integration tests too; this suite uses some of them.
#![allow(dead_code)]

#[global_allocator]
static HEAP: cxlake::heap::CountingAllocator = cxlake::heap::CountingAllocator;

#[path = "../it/common.rs"]
mod common;
#[path = "../it/fault_proxy.rs"]
mod fault_proxy;
#[path = "../it/conformance/properties.rs"]
#[macro_use]
mod properties;
mod pollster;
mod under_test;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use cxlake::cli::Registry;

/// Set when this binary is started as the command line.
const AS_CLI: &str = "CXLAKE_SIXTH_SOURCE_AS_CLI";

/// The built-in platforms and Pollster: the one registry line a source costs.
fn registry() -> Registry {
    Registry::builtin().with::<pollster::PollsterPlatform>()
}

type Property = Pin<Box<dyn Future<Output = ()>>>;

/// Every property of the suite, by name, for `$source`.
macro_rules! property_list {
    ($source:ty ; $($property:ident),* $(,)?) => {
        vec![$( (stringify!($property), Box::pin(properties::$property::<$source>()) as Property) ),*]
    };
}

fn main() {
    if std::env::var_os(AS_CLI).is_some() {
        std::process::exit(cxlake::cli::main(registry()));
    }
    cxlake::cli::install(registry());
    common::use_cli(std::env::current_exe().expect("this binary's path"), (AS_CLI, "1"));
    // libtest's arguments, in so far as they matter here: `--list`, and a name filter.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let filter = args.iter().find(|a| !a.starts_with('-') && a.parse::<u64>().is_err()).cloned();
    let all: Vec<(&str, Property)> = with_properties!(property_list! { under_test::PollsterUnderTest });
    let selected: Vec<(&str, Property)> = all
        .into_iter()
        .filter(|(name, _)| filter.as_ref().is_none_or(|f| name.contains(f.as_str())))
        .collect();
    if list {
        for (name, _) in &selected {
            println!("pollster::{name}: test");
        }
        return;
    }
    println!("\nrunning {} conformance properties for the test-only source pollster", selected.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, property) in selected {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let begun = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(property)));
        drop(runtime);
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test pollster::{name} ... {verdict} ({:.1} s)", begun.elapsed().as_secs_f64());
        if outcome.is_err() {
            failed.push(name);
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {} failed; finished in {:.1} s",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failures: {}", failed.join(", "));
        std::process::exit(101);
    }
}
