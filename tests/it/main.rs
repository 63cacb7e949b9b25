//! All integration tests in one binary (one link, as delta-rs does): the client against the
//! emulator, end-to-end syncs on local disk and on a real S3-compatible server, the command line,
//! and DuckDB reading the lake back.

mod badinput;
mod cli;
mod client;
mod common;
mod conformance;
mod convert;
mod crash;
mod current;
mod dbt;
mod delta;
mod dixa;
mod drift;
mod duckdb;
mod fault_proxy;
mod faults;
mod forget;
mod khoros;
mod lakewide;
mod lifecycle;
mod lineage;
mod lock;
mod loop_report;
mod operate;
mod pii;
mod property;
mod raw;
mod readers;
mod s3;
mod s3_crash;
mod s3_faults;
mod security;
mod sftp;
mod soak;
mod sparkcentral;
mod sync;
mod workers;
