//! Moving a window's staged files into the lake, replacing whatever the window had before.
//!
//! A window's files are first written under `_cxlake/staging/<run-id>/` (invisible to readers).
//! Only when every dataset of the window has been decoded and written without fault are they
//! published: each staged file is renamed to its final `part-NNNNN.parquet` name (an atomic
//! rename on local disk; server-side copy + delete on S3, where each object appears whole), then
//! every other object in the partition — parts of a previous, larger run, leftovers of a crash —
//! is deleted. Readers therefore never see a partial file, and after publishing the partition
//! holds exactly the new files. Between the first rename and the last delete a reader may see a
//! mix of old and new parts of that one window; the window record stays `publishing` until the
//! end, so a crash there is redone by the next run (atomic multi-file swaps need a table
//! format, which is what `--format delta` is for).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::layout;
use super::parquet::WrittenFile;
use super::{Destination, SinkError};

/// Publishes staged files of one dataset and window; returns the files at their final paths.
pub async fn publish_partition(
    dest: &Destination,
    source: &str,
    dataset: &str,
    date: NaiveDate,
    staged: &[WrittenFile],
) -> Result<Vec<WrittenFile>, SinkError> {
    publish_dir(dest, &layout::partition_dir(source, dataset, date), staged).await
}

/// Publishes staged files as the only files of `final_dir` (a partition or a current table).
pub async fn publish_dir(
    dest: &Destination,
    final_dir: &str,
    staged: &[WrittenFile],
) -> Result<Vec<WrittenFile>, SinkError> {
    let mut published = Vec::with_capacity(staged.len());
    for (index, file) in staged.iter().enumerate() {
        let from = dest.path(&file.path);
        let to_relative = format!("{final_dir}/{}", layout::part_file_name(index));
        let to = dest.path(&to_relative);
        dest.store.rename(&from, &to).await.map_err(|e| SinkError::store(&from, e))?;
        published.push(WrittenFile { path: to_relative, ..file.clone() });
    }
    let keep: BTreeSet<String> = published.iter().map(|f| f.path.clone()).collect();
    delete_except(dest, final_dir, &keep).await?;
    Ok(published)
}

/// Moves staged files into `final_dir` under names unique to the run, next to what is there
/// (a current table's segments); returns the files at their final paths, in order.
pub async fn publish_unique(
    dest: &Destination,
    final_dir: &str,
    staged: &[WrittenFile],
    run_id: &str,
) -> Result<Vec<WrittenFile>, SinkError> {
    let mut published = Vec::with_capacity(staged.len());
    for (index, file) in staged.iter().enumerate() {
        let from = dest.path(&file.path);
        let to_relative = format!("{final_dir}/{}", layout::unique_part_file_name(index, run_id));
        let to = dest.path(&to_relative);
        dest.store.rename(&from, &to).await.map_err(|e| SinkError::store(&from, e))?;
        published.push(WrittenFile { path: to_relative, ..file.clone() });
    }
    Ok(published)
}

/// Every object under `dir`, as paths relative to the lake root.
pub async fn list_files(dest: &Destination, dir: &str) -> Result<Vec<String>, SinkError> {
    let prefix = dest.path(dir);
    let existing: Vec<_> =
        dest.store.list(Some(&prefix)).try_collect().await.map_err(|e| SinkError::store(&prefix, e))?;
    Ok(existing.iter().map(|meta| dest.relative(&meta.location)).collect())
}

/// Names of the directories directly under `dir` (none when it does not exist).
pub async fn child_dirs(dest: &Destination, dir: &str) -> Result<Vec<String>, SinkError> {
    let prefix = dest.path(dir);
    let listing = match dest.store.list_with_delimiter(Some(&prefix)).await {
        Ok(listing) => listing,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(SinkError::store(&prefix, e)),
    };
    Ok(listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
}

/// True when anything exists under `dir`.
pub async fn has_objects(dest: &Destination, dir: &str) -> Result<bool, SinkError> {
    let prefix = dest.path(dir);
    let first = dest.store.list(Some(&prefix)).try_next().await.map_err(|e| SinkError::store(&prefix, e))?;
    Ok(first.is_some())
}

/// Deletes every object under `dir` whose relative path is not in `keep`.
pub async fn delete_except(
    dest: &Destination,
    dir: &str,
    keep: &BTreeSet<String>,
) -> Result<usize, SinkError> {
    let mut deleted = 0;
    for relative in list_files(dest, dir).await? {
        if !keep.contains(&relative) {
            let path = dest.path(&relative);
            match dest.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(SinkError::store(&path, e)),
            }
        }
    }
    Ok(deleted)
}

/// Removes everything under `dir` (staging of a failed or finished window).
pub async fn delete_dir(dest: &Destination, dir: &str) -> Result<usize, SinkError> {
    delete_except(dest, dir, &BTreeSet::new()).await
}
