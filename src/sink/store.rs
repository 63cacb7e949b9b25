//! Turning a `--dest` value into an object store plus a root prefix.
//!
//! `s3://bucket/prefix` is configured from the standard `AWS_*` environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`, keys, session tokens), exactly as the AWS
//! CLI, DuckDB's httpfs and Spark read them. Anything else is a local directory, created if
//! needed. Like object_store's own `parse_url_opts`, the rest of cxlake only sees `ObjectStore`.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use super::SinkError;

/// A destination lake: an object store and the prefix inside it that is the lake's root.
#[derive(Clone)]
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    pub root: Path,
    /// What the user typed, for messages (never contains credentials).
    pub display: String,
    /// Local directory of the lake, when it is on local disk.
    pub local_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination").field("display", &self.display).finish()
    }
}

impl Destination {
    pub fn parse(dest: &str) -> Result<Destination, SinkError> {
        let invalid = |message: String| SinkError::InvalidDestination { dest: dest.to_string(), message };
        if let Some(rest) = dest.strip_prefix("s3://").or_else(|| dest.strip_prefix("s3a://")) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket name; write s3://BUCKET/optional/prefix".into()));
            }
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| invalid(format!("{e}; check the AWS_* environment variables")))?;
            let root =
                Path::parse(prefix.trim_matches('/')).map_err(|e| invalid(format!("bad prefix: {e}")))?;
            return Ok(Destination {
                store: Arc::new(store),
                root,
                display: dest.to_string(),
                local_dir: None,
            });
        }
        if dest.contains("://") && !dest.starts_with("file://") {
            return Err(invalid("unsupported scheme; use a local directory or s3://bucket/prefix".into()));
        }
        let dir = std::path::PathBuf::from(dest.strip_prefix("file://").unwrap_or(dest));
        std::fs::create_dir_all(&dir).map_err(|e| invalid(format!("cannot create directory: {e}")))?;
        let dir = dir.canonicalize().map_err(|e| invalid(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| invalid(e.to_string()))?;
        Ok(Destination {
            store: Arc::new(store),
            root: Path::default(),
            display: dest.to_string(),
            local_dir: Some(dir),
        })
    }

    /// Joins `relative` (slash separated, already validated) onto the lake root.
    pub fn path(&self, relative: &str) -> Path {
        let mut path = self.root.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// The path of `full` relative to the lake root, as stored in bookkeeping files.
    pub fn relative(&self, full: &Path) -> String {
        match full.prefix_match(&self.root) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
            None => full.to_string(),
        }
    }
}
