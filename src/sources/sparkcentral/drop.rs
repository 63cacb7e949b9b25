//! Sparkcentral's drop folder as cxlake sees it: the export files under `/export/<type>/`, on
//! the SFTP server ([`super::sftp`]) or in a local mirror of the tree (files synced there by
//! other means). Each file is known by its parsed name, size and modification time; the files
//! of one local day are a window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use sha2::Digest;

use super::files::{parse_file_name, ExportFile, Span, EXPORT_TYPES};
use super::sftp::{RemoteEntry, SftpDrop, SftpError};
use crate::sources::SourceError;

/// One export file in the drop folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropFile {
    pub name: String,
    /// The export type's folder (`resolved-conversation`).
    pub folder: &'static str,
    pub parsed: ExportFile,
    pub size: u64,
    pub modified: SystemTime,
}

impl DropFile {
    /// `folder/name`, relative to the tree's root.
    pub fn relative(&self) -> String {
        format!("{}/{}", self.folder, self.name)
    }
}

/// Where the tree is.
#[derive(Debug)]
pub enum DropStore {
    Local(PathBuf),
    Sftp(SftpDrop),
}

impl DropStore {
    /// The tree as messages name it.
    pub fn describe(&self) -> String {
        match self {
            DropStore::Local(root) => root.display().to_string(),
            DropStore::Sftp(sftp) => sftp.target().to_string(),
        }
    }

    /// Lists the folders of `datasets`.
    pub async fn list(&self, datasets: &[String]) -> Result<Listing, SourceError> {
        let mut entries = Vec::new();
        for (folder, dataset) in EXPORT_TYPES.iter().filter(|(_, d)| datasets.iter().any(|s| s == d)) {
            let found = match self {
                DropStore::Local(root) => list_local(&root.join(folder)).map_err(|e| {
                    SourceError::Local(format!("cannot list {}: {e}", root.join(folder).display()))
                })?,
                DropStore::Sftp(sftp) => sftp.list(folder).await.map_err(source_error)?,
            };
            entries.extend(found.into_iter().flatten().map(|entry| (*folder, *dataset, entry)));
        }
        Ok(Listing::build(entries))
    }

    /// Copies `file` to `dest`; refuses a file that changed since it was listed (it is still
    /// being written: its day is retried by the next run).
    pub async fn fetch(&self, file: &DropFile, dest: &Path) -> Result<u64, SourceError> {
        let (bytes, after) = match self {
            DropStore::Local(root) => {
                let path = root.join(file.folder).join(&file.name);
                let bytes = std::fs::copy(&path, dest)
                    .map_err(|e| SourceError::Local(format!("cannot copy {}: {e}", path.display())))?;
                let meta = std::fs::metadata(&path)
                    .map_err(|e| SourceError::Local(format!("cannot read {}: {e}", path.display())))?;
                (bytes, (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
            }
            DropStore::Sftp(sftp) => {
                let (bytes, after) = sftp.download(&file.relative(), dest).await.map_err(source_error)?;
                (bytes, (after.size, after.modified))
            }
        };
        if bytes != file.size || after != (file.size, file.modified) {
            return Err(SourceError::Transfer(format!(
                "{} changed while it was being read ({} bytes listed, {bytes} read, {} now): it is still being written; its day is read again by the next run",
                file.relative(),
                file.size,
                after.0
            )));
        }
        Ok(bytes)
    }
}

/// A local folder's entries; `None` when it does not exist.
fn list_local(dir: &Path) -> std::io::Result<Option<Vec<RemoteEntry>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        found.push(RemoteEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            is_file: meta.is_file(),
            size: meta.len(),
            modified: meta.modified()?,
        });
    }
    Ok(Some(found))
}

/// SFTP failures as source failures: a refused host key or login stops the run (exit 2).
fn source_error(error: SftpError) -> SourceError {
    match error {
        SftpError::HostKey(m) | SftpError::Auth(m) => SourceError::Unauthorized(m),
        SftpError::Missing(m) => SourceError::Rejected(m),
        SftpError::Transfer(m) => SourceError::Transfer(m),
        SftpError::Local(m) => SourceError::Local(m),
    }
}

/// The files that count, by local day: for each (type, span) only the newest file (a new file
/// for the same span replaces the old one's rows), in span order.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub days: BTreeMap<NaiveDate, Vec<DropFile>>,
    /// Files whose names could not be read (refused, with the reason, and left alone).
    pub refused: Vec<String>,
}

impl Listing {
    /// The listing of `(folder, dataset, entry)`s: names that are no export are left out,
    /// names that cannot be read are refused (with the reason).
    pub fn build(entries: impl IntoIterator<Item = (&'static str, &'static str, RemoteEntry)>) -> Listing {
        let mut newest: BTreeMap<(&'static str, Span), DropFile> = BTreeMap::new();
        let mut refused = Vec::new();
        for (folder, dataset, entry) in entries {
            let name = entry.name;
            let parsed = match parse_file_name(&name) {
                Ok(Some(parsed)) if parsed.dataset == dataset => parsed,
                Ok(Some(_)) => {
                    refused
                        .push(format!("{folder}/{name}: its name says another export type than its folder"));
                    continue;
                }
                Ok(None) => continue,
                Err(e) => {
                    refused.push(format!("{folder}/{name}: {e}"));
                    continue;
                }
            };
            if !entry.is_file {
                continue;
            }
            let file = DropFile { name, folder, parsed, size: entry.size, modified: entry.modified };
            let slot = (dataset, file.parsed.span);
            match newest.get(&slot) {
                Some(kept) if (kept.modified, &kept.name) >= (file.modified, &file.name) => {}
                _ => {
                    newest.insert(slot, file);
                }
            }
        }
        // The map's (type, span) order is the order a day's files become parts.
        let mut days: BTreeMap<NaiveDate, Vec<DropFile>> = BTreeMap::new();
        for file in newest.into_values() {
            days.entry(file.parsed.span.day()).or_default().push(file);
        }
        Listing { days, refused }
    }

    /// A fingerprint of a day's files (names, sizes, modification times): a day whose files are
    /// the ones recorded is not read again.
    pub fn fingerprint(files: &[DropFile]) -> String {
        let mut digest = sha2::Sha256::new();
        for file in files {
            let modified =
                file.modified.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis();
            digest.update(format!("{}\n{}\n{}\n", file.name, file.size, modified).as_bytes());
        }
        format!("files:{}", &hex::encode(digest.finalize())[..24])
    }

    /// A file of `files` (one day) that is not the same in `again`, a later listing: its size
    /// or time changed (still being written, whatever the server's clock says), it is gone, or
    /// another file of the day appeared.
    pub fn changed_since<'a>(files: &'a [DropFile], again: &'a Listing) -> Option<&'a DropFile> {
        let day = files.first()?.parsed.span.day();
        let later = again.days.get(&day).map(Vec::as_slice).unwrap_or_default();
        files.iter().find(|f| !later.contains(f)).or_else(|| later.iter().find(|f| !files.contains(f)))
    }

    /// Whether a file changed within `settle` (still being written, or just synced): its day
    /// waits for the next run.
    pub fn unsettled(files: &[DropFile], settle: Duration) -> Option<&DropFile> {
        let now = SystemTime::now();
        files.iter().find(|f| now.duration_since(f.modified).unwrap_or_default() < settle)
    }
}
