//! A current table's manifest, `_cxlake/current/<source>/<dataset>/manifest.json`: which window
//! contents the table reflects, and its segments — the files written for one date by one refresh,
//! each with a key filter. It is what makes a refresh incremental: the windows whose contents
//! differ from the manifest's are the only history read, and the segments whose date changed or
//! whose filter may hold a changed key are the only part of the table rewritten.
//!
//! For plain Parquet the manifest is the commit point: files it does not list are leftovers of
//! a crash and are deleted by the next refresh. For Delta the table's log is, and the manifest
//! records the version it describes; a table at another version is rebuilt in full.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::KeyFilter;
use crate::schema::DatasetSchema;
use crate::sink::parquet::WrittenFile;
use crate::sink::{layout, Destination, SinkError};
use crate::state::StateStore;

/// Bumped when the manifest or segment layout changes: an older manifest means a full rebuild.
const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub format_version: u32,
    /// The table's columns, key and version: a different schema means a full rebuild.
    pub table_schema: String,
    /// With `--format delta`: the table version this manifest describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<u64>,
    /// The windows the table reflects, each with a fingerprint of its files.
    pub windows: BTreeMap<NaiveDate, String>,
    pub segments: Vec<Segment>,
    /// Windows with rows that share a key and a version (the declared key may not identify a
    /// row): how many such rows, and one key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub duplicate_keys: BTreeMap<NaiveDate, DuplicateKeys>,
}

/// Rows of one window that repeat an earlier row's key and version: the current table keeps the
/// last of them in file order, and the declared key may not identify a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateKeys {
    pub rows: u64,
    /// One such key, its columns' values joined with `, `.
    pub example: String,
}

/// The files one refresh wrote for one date: every row in them has that `date`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Segment {
    /// `<date>-<run-id>`, which also names its key filter.
    pub id: String,
    pub date: NaiveDate,
    pub files: Vec<WrittenFile>,
}

impl Segment {
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

impl Manifest {
    pub fn new(
        schema: &DatasetSchema,
        windows: BTreeMap<NaiveDate, String>,
        segments: Vec<Segment>,
    ) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            table_schema: table_schema_fingerprint(schema),
            delta_version: None,
            windows,
            segments,
            duplicate_keys: BTreeMap::new(),
        }
    }

    pub fn rows(&self) -> u64 {
        self.segments.iter().map(Segment::rows).sum()
    }

    pub fn files(&self) -> impl Iterator<Item = &WrittenFile> {
        self.segments.iter().flat_map(|s| s.files.iter())
    }
}

/// A fingerprint of what a current table's files look like and how rows are chosen.
fn table_schema_fingerprint(schema: &DatasetSchema) -> String {
    // With the load columns: a table written before them is rebuilt once to have them.
    let columns: Vec<String> = super::current_schema(schema)
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    let description = format!("{columns:?}|key={:?}|version={:?}", schema.key, schema.version);
    hex::encode(&Sha256::digest(description.as_bytes())[..16])
}

/// A fingerprint of a window's files: equal exactly when the window holds the same files.
pub(super) fn window_fingerprint<'a>(files: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = files.into_iter().collect();
    names.sort_unstable();
    hex::encode(&Sha256::digest(names.join("\n").as_bytes())[..16])
}

/// The manifest, or `None` when the table must be rebuilt in full: no manifest (a new table, or
/// one written before manifests), or another format version or schema.
pub(super) async fn load(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
) -> Result<Option<Manifest>, SinkError> {
    let state = StateStore::new(dest.clone());
    let file = layout::current_manifest_file(source, &schema.dataset);
    let manifest: Manifest = match state.get_json(&file).await {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return Ok(None),
        Err(SinkError::CorruptState { path, message }) => {
            tracing::warn!(%path, %message, "Unreadable current-table manifest; rebuilding the table in full");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if manifest.format_version != FORMAT_VERSION || manifest.table_schema != table_schema_fingerprint(schema)
    {
        tracing::info!(dataset = %schema.dataset, "The current table was built with another schema; rebuilding it in full");
        return Ok(None);
    }
    Ok(Some(manifest))
}

/// The duplicate keys a dataset's current table found per window, whatever its schema (for
/// `status` and `drift`); empty without a manifest.
pub async fn duplicate_keys(
    dest: &Destination,
    source: &str,
    dataset: &str,
) -> Result<BTreeMap<NaiveDate, DuplicateKeys>, SinkError> {
    let state = StateStore::new(dest.clone());
    match state.get_json::<Manifest>(&layout::current_manifest_file(source, dataset)).await {
        Ok(Some(manifest)) => Ok(manifest.duplicate_keys),
        Ok(None) | Err(SinkError::CorruptState { .. }) => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// The files a dataset's current table is made of now, by its manifest (paths relative to the
/// lake root), whatever its schema; empty without a manifest.
pub async fn table_files(dest: &Destination, source: &str, dataset: &str) -> Result<Vec<String>, SinkError> {
    let state = StateStore::new(dest.clone());
    match state.get_json::<Manifest>(&layout::current_manifest_file(source, dataset)).await {
        Ok(Some(manifest)) => Ok(manifest.files().map(|f| f.path.clone()).collect()),
        Ok(None) | Err(SinkError::CorruptState { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The key filters of the manifest's segments, in its order; `None` (rebuild in full) when one
/// is missing or unreadable. Read only when a refresh has changes to apply.
pub(super) async fn load_filters(
    dest: &Destination,
    source: &str,
    dataset: &str,
    manifest: &Manifest,
) -> Result<Option<Vec<KeyFilter>>, SinkError> {
    let reads: Vec<_> = manifest
        .segments
        .iter()
        .map(|segment| {
            let path = dest.path(&layout::current_key_filter_file(source, dataset, &segment.id));
            async move {
                match object_store::ObjectStoreExt::get(&dest.store, &path).await {
                    Ok(result) => {
                        let bytes = result.bytes().await.map_err(|e| SinkError::store(&path, e))?;
                        Ok(KeyFilter::from_bytes(&bytes))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(SinkError::store(&path, e)),
                }
            }
        })
        .collect();
    let filters: Vec<Option<KeyFilter>> =
        futures::StreamExt::collect::<Vec<_>>(futures::StreamExt::buffered(futures::stream::iter(reads), 16))
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
    match filters.into_iter().collect::<Option<Vec<KeyFilter>>>() {
        Some(filters) => Ok(Some(filters)),
        None => {
            tracing::warn!(%dataset, "A key filter of the current table is missing or unreadable; rebuilding it in full");
            Ok(None)
        }
    }
}

pub(super) async fn save(
    dest: &Destination,
    source: &str,
    dataset: &str,
    manifest: &Manifest,
) -> Result<(), SinkError> {
    StateStore::new(dest.clone()).put_json(&layout::current_manifest_file(source, dataset), manifest).await
}
