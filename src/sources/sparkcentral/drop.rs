//! Sparkcentral's drop folder as cxlake sees it: the export files under `/export/<type>/`, on
//! the SFTP server ([`super::sftp`]) or in a local mirror of the tree (files synced there by
//! other means). Each file is known by its parsed name, size and modification time; the files
//! of one local day are a window.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use sha2::Digest;

use super::files::{parse_file_name, ExportFile, Span, EXPORT_TYPES};
use super::sftp::{RemoteEntry, SftpDrop, SftpError};
use crate::schema::local_time::Fold;
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
    /// In the repeated hour of an autumn DST change, an hourly export is written twice under
    /// the same local span: which occurrence this file is.
    pub fold: Fold,
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

    /// Lists the folders of `datasets`, whose exports were configured in `zone`.
    pub async fn list(&self, datasets: &[String], zone: chrono_tz::Tz) -> Result<Listing, SourceError> {
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
        Ok(Listing::build(entries, zone))
    }

    /// Folders under the root that are no export type cxlake knows (Virtual Agents, Contact
    /// Attributes, …): reported, their files left alone.
    pub async fn unknown_folders(&self) -> Result<Vec<String>, SourceError> {
        let entries = match self {
            DropStore::Local(root) => list_local(root)
                .map_err(|e| SourceError::Local(format!("cannot list {}: {e}", root.display())))?,
            DropStore::Sftp(sftp) => sftp.list("").await.map_err(source_error)?,
        };
        let Some(entries) = entries else {
            return Err(SourceError::Rejected(format!("{} does not exist; check --source", self.describe())));
        };
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_file && !e.name.starts_with('.'))
            .filter(|e| !EXPORT_TYPES.iter().any(|(folder, _)| *folder == e.name))
            .map(|e| e.name)
            .collect())
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

/// Whether `span`'s local end is not after its start: the clocks went back within it.
fn ends_by_its_start(span: Span) -> bool {
    matches!(span, Span::Range { from, to } if to <= from)
}

/// Whether `span` is an hourly (or shorter) export starting in a local hour that happens twice.
fn in_repeated_hour(span: Span, zone: chrono_tz::Tz) -> bool {
    use chrono::TimeZone;
    match span {
        Span::Range { from, to } => {
            to - from <= chrono::Duration::hours(1)
                && matches!(zone.from_local_datetime(&from), chrono::LocalResult::Ambiguous(..))
        }
        Span::Snapshot { .. } => false,
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
    /// names that cannot be read are refused (with the reason). Of the files of one (type,
    /// span), the newest counts (a new file replaces the old one's rows), except for an hourly
    /// span that starts in the repeated hour of an autumn DST change in `zone`: that hour
    /// happens twice, and its two exports carry the same local span, so the two newest count,
    /// the older as the first occurrence.
    pub fn build(
        entries: impl IntoIterator<Item = (&'static str, &'static str, RemoteEntry)>,
        zone: chrono_tz::Tz,
    ) -> Listing {
        let mut by_span: BTreeMap<(&'static str, Span), Vec<DropFile>> = BTreeMap::new();
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
            let file = DropFile {
                name,
                folder,
                parsed,
                size: entry.size,
                modified: entry.modified,
                fold: Fold::Unknown,
            };
            by_span.entry((dataset, file.parsed.span)).or_default().push(file);
        }
        // Exports that name the repeated hour's first occurrence by its real end (02:00 → 02:00)
        // name the second 02:00 → 03:00: such a day's spans say which occurrence they are.
        let first_by_its_end: BTreeSet<(&str, NaiveDate)> = by_span
            .keys()
            .filter(|(_, span)| in_repeated_hour(*span, zone) && ends_by_its_start(*span))
            .map(|(dataset, span)| (*dataset, span.day()))
            .collect();
        // The map's (type, span) order is the order a day's files become parts.
        let mut days: BTreeMap<NaiveDate, Vec<DropFile>> = BTreeMap::new();
        for ((dataset, span), mut files) in by_span {
            files.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
            let repeated = in_repeated_hour(span, zone);
            let mut counted = if repeated && files.len() >= 2 {
                // Both occurrences under one local name: the older file is the first.
                if files.len() > 2 {
                    tracing::warn!(file = %files[0].relative(), count = files.len(), "More than two files for one span of the repeated DST hour; the two newest count");
                }
                let mut two = files.split_off(files.len() - 2);
                two[0].fold = Fold::Earlier;
                two[1].fold = Fold::Later;
                two
            } else {
                files.split_off(files.len() - 1)
            };
            if repeated && counted.len() == 1 {
                counted[0].fold = if ends_by_its_start(span) {
                    Fold::Earlier
                } else if first_by_its_end.contains(&(dataset, span.day())) {
                    Fold::Later
                } else {
                    Fold::Unknown
                };
            }
            days.entry(span.day()).or_default().extend(counted);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, age_secs: u64) -> (&'static str, &'static str, RemoteEntry) {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age_secs);
        ("message", "message", RemoteEntry { name: name.into(), is_file: true, size: 10, modified })
    }

    fn folds(listing: &Listing) -> Vec<(String, Fold)> {
        listing.days.values().flatten().map(|f| (f.name.clone(), f.fold)).collect()
    }

    #[test]
    fn a_newer_file_replaces_an_older_one_of_its_span_but_not_in_the_repeated_hour() {
        let zone: chrono_tz::Tz = "Europe/Brussels".parse().unwrap();
        let listing = Listing::build(
            [
                entry("1_message_27102024010000_27102024020000_old.csv", 50),
                entry("1_message_27102024010000_27102024020000_new.csv", 40),
                entry("1_message_27102024020000_27102024030000_b.csv", 20),
                entry("1_message_27102024020000_27102024030000_a.csv", 30),
                entry("1_message_29102023020000_29102023030000_y.csv", 30),
                entry("1_message_29102023020000_29102023020000_z.csv", 20),
                entry("1_message_31102021020000_31102021030000_w.csv", 20),
                entry("1_message_31032024010000_31032024030000_s.csv", 20),
            ],
            zone,
        );
        assert_eq!(
            folds(&listing),
            [
                ("1_message_31102021020000_31102021030000_w.csv".to_string(), Fold::Unknown),
                ("1_message_29102023020000_29102023020000_z.csv".to_string(), Fold::Earlier),
                ("1_message_29102023020000_29102023030000_y.csv".to_string(), Fold::Later),
                ("1_message_31032024010000_31032024030000_s.csv".to_string(), Fold::Unknown),
                ("1_message_27102024010000_27102024020000_new.csv".to_string(), Fold::Unknown),
                ("1_message_27102024020000_27102024030000_a.csv".to_string(), Fold::Earlier),
                ("1_message_27102024020000_27102024030000_b.csv".to_string(), Fold::Later),
            ]
        );
    }
}
