//! Turning a `--dest` value into an object store plus a root prefix.
//!
//! `s3://bucket/prefix` is configured from the standard `AWS_*` environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`, keys, session tokens), exactly as the AWS
//! CLI, DuckDB's httpfs and Spark read them. Anything else is a local directory, created if
//! needed. Like object_store's own `parse_url_opts`, the rest of cxlake only sees `ObjectStore`.

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use super::s3_uploads::S3Bucket;
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
    /// The bucket, when the lake is on S3 (for what `object_store` cannot do: list uploads).
    pub s3: Option<S3Bucket>,
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
            // object_store's retries, made to wait as long as a `Retry-After` asks.
            let builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_http_connector(super::retry_after::RetryAfterConnector::default());
            let region =
                builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
            let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
            let store = Arc::new(
                builder
                    .build()
                    .map_err(|e| invalid(format!("{e}; check the AWS_* environment variables")))?,
            );
            let root =
                Path::parse(prefix.trim_matches('/')).map_err(|e| invalid(format!("bad prefix: {e}")))?;
            let s3 = S3Bucket { store: store.clone(), bucket: bucket.to_string(), region, endpoint };
            // Calls that lose their answer are retried where it is safe (see `resilient`).
            let store =
                Arc::new(super::resilient::Resilient::new(store, super::resilient::StorageRetry::from_env()));
            return Ok(Destination { store, root, display: dest.to_string(), local_dir: None, s3: Some(s3) });
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
            s3: None,
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

    /// Where `relative` is for a reader anywhere (DuckDB, dbt, a catalog): an absolute local path,
    /// or an `s3://bucket/key` URL.
    pub fn location(&self, relative: &str) -> String {
        match (&self.local_dir, &self.s3) {
            (Some(root), _) => root.join(relative).display().to_string(),
            (None, Some(s3)) => format!("s3://{}/{}", s3.bucket, self.path(relative)),
            (None, None) => relative.to_string(),
        }
    }

    /// Where `relative` is, as a user would name it: the lake's display root joined with it.
    pub fn display_path(&self, relative: &str) -> String {
        format!("{}/{relative}", self.display.trim_end_matches('/'))
    }

    /// The path of `full` relative to the lake root, as stored in bookkeeping files.
    pub fn relative(&self, full: &Path) -> String {
        match full.prefix_match(&self.root) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
            None => full.to_string(),
        }
    }
}
