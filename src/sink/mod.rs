//! Everything that writes to the destination: where objects go ([`layout`]), how a destination
//! URL becomes an object store ([`store`]), how batches become Parquet part files ([`parquet`]),
//! and how a window's files replace the previous ones ([`commit`]).
//!
//! All I/O goes through `object_store`, so local disk and S3-compatible stores follow the same
//! code path and the same guarantees: an object is either absent or complete, never partial.

pub mod commit;
pub mod delta;
pub mod dictionary;
pub mod layout;
pub mod lease;
pub mod parquet;
pub mod raw;
pub mod resilient;
pub mod retry_after;
pub mod row_groups;
pub mod s3_uploads;
pub mod store;
pub mod table;

pub use store::Destination;

/// `--format`: how a dataset's files are organised under `<dest>/<source>/<dataset>/`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Hive-partitioned Parquet files, `date=YYYY-MM-DD/part-NNNNN.parquet`
    #[default]
    Parquet,
    /// A Delta Lake table partitioned by `date`; each window is one atomic commit
    Delta,
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Delta => "delta",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error("invalid destination `{dest}`: {message}")]
    InvalidDestination { dest: String, message: String },
    #[error("object store error at {path}: {source}")]
    Store { path: String, source: object_store::Error },
    #[error("parquet error writing {path}: {source}")]
    Parquet { path: String, source: ::parquet::errors::ParquetError },
    #[error(transparent)]
    Delta(#[from] delta::DeltaError),
    #[error("{path}: {message}")]
    Local { path: String, message: String },
    #[error("bookkeeping file {path} is corrupt: {message}; move it aside and rerun the affected window")]
    CorruptState { path: String, message: String },
}

impl SinkError {
    pub(crate) fn store(path: &object_store::path::Path, source: object_store::Error) -> SinkError {
        SinkError::Store { path: path.to_string(), source }
    }
}

/// Test hook: `CXLAKE_FAILPOINT=<name>` aborts the process at that point, with no cleanup, as
/// `kill -9` would — so the crash tests can stop exactly between the data files and the commit.
pub(crate) fn crash_if_asked(point: &str) {
    if std::env::var("CXLAKE_FAILPOINT").is_ok_and(|asked| asked == point) {
        eprintln!("CXLAKE_FAILPOINT={point}: aborting here");
        std::process::abort();
    }
}
