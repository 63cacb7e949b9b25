//! Sparkcentral's drop folder as cxlake sees it: the export files under `/export/`, in the
//! document's per-type folders or one subdirectory per scheduled export, on the SFTP server
//! ([`super::sftp`]) or in a local mirror of the tree (files synced there by other means). Each
//! file is known by its parsed name, size and modification time; the files of one local day are
//! a window.
//!
//! **Every scheduled export is its own stream.** In a subdirectory of its own, an export is its
//! folder; in a folder several exports share (the document's per-type folders, or the root),
//! it is the folder and the uuid series of its names. Files of different exports never replace
//! each other; of one export's files for one span, the newest counts (a re-delivery).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use sha2::Digest;

use super::files::{dataset_of_folder, parse_file_name_in, ExportFile, Span};
use super::sftp::{RemoteEntry, SftpDrop, SftpError};
use crate::schema::local_time::Fold;
use crate::schema::FileFacts;
use crate::sources::SourceError;

/// How the drop tree is read: the zone of each export and the type of folders whose file names
/// name none.
#[derive(Debug, Clone)]
pub struct TreeConfig {
    /// The zone of every export not configured otherwise (`--timezone`).
    pub default_zone: chrono_tz::Tz,
    /// Zones by folder or by uuid series (`--export-timezone KEY=ZONE`).
    pub zones: BTreeMap<String, chrono_tz::Tz>,
    /// Folder → dataset, for names that name no type (`--type-folder DATASET=FOLDER`); the path
    /// table's folders (and ours for the two types it omits) need none.
    pub type_folders: BTreeMap<String, &'static str>,
}

impl TreeConfig {
    pub fn new(default_zone: chrono_tz::Tz) -> TreeConfig {
        TreeConfig { default_zone, zones: BTreeMap::new(), type_folders: BTreeMap::new() }
    }

    fn folder_dataset(&self, folder: &str) -> Option<&'static str> {
        self.type_folders.get(folder).copied().or_else(|| dataset_of_folder(folder))
    }

    /// The zone of the export in `folder` with `series`.
    pub fn zone_for(&self, folder: &str, series: &str) -> chrono_tz::Tz {
        self.zones.get(folder).or_else(|| self.zones.get(series)).copied().unwrap_or(self.default_zone)
    }

    /// Whether several exports may share `folder` (the root, a per-type folder of the path
    /// table, or one configured for a type): their uuid series tell them apart.
    fn is_shared(&self, folder: &str) -> bool {
        folder.is_empty() || self.folder_dataset(folder).is_some()
    }

    /// The id of the export that wrote `file` into `folder`.
    pub fn export_id(&self, folder: &str, file: &ExportFile) -> String {
        if self.is_shared(folder) {
            format!("{folder}/{}", file.series())
        } else {
            folder.to_string()
        }
    }
}

/// One export file in the drop folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropFile {
    pub name: String,
    /// The folder under the root it sits in (empty: the root itself).
    pub folder: String,
    pub parsed: ExportFile,
    pub size: u64,
    pub modified: SystemTime,
    /// In the repeated hour of an autumn DST change, an hourly export is written twice under
    /// the same local span: which occurrence this file is.
    pub fold: Fold,
    /// The scheduled export that wrote it.
    pub export_id: String,
    /// That export's zone.
    pub zone: chrono_tz::Tz,
}

impl DropFile {
    /// `folder/name`, relative to the tree's root.
    pub fn relative(&self) -> String {
        if self.folder.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.folder, self.name)
        }
    }

    /// The export and the UTC period the file covers (a snapshot's moment twice).
    pub fn facts(&self, default_zone: chrono_tz::Tz) -> FileFacts {
        let (from, to) = match self.parsed.span {
            Span::Range { from, to } => {
                let start = resolve(from, self.zone, self.fold);
                // An hourly file of the repeated DST hour (its occurrence known, or written
                // 02:00 → 02:00) is one real hour whatever its local stamps say.
                let end = if self.fold != Fold::Unknown || to <= from {
                    start + chrono::Duration::hours(1)
                } else {
                    resolve(to, self.zone, Fold::Unknown)
                };
                (start, end)
            }
            Span::Snapshot { at } => {
                let at = resolve(at, self.zone, self.fold);
                (at, at)
            }
        };
        FileFacts {
            export_id: self.export_id.clone(),
            frequency: FileFacts::frequency_of(from, to).to_string(),
            period_from: from,
            period_to: to,
            timezone: (self.zone != default_zone).then(|| self.zone.name().to_string()),
        }
    }
}

/// A local time of `zone` as an instant: the occurrence `fold` names in a repeated hour (the
/// earlier when unknown), the hour after in a skipped one.
fn resolve(local: NaiveDateTime, zone: chrono_tz::Tz, fold: Fold) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(earlier, later) => {
            if fold == Fold::Later { later } else { earlier }.with_timezone(&Utc)
        }
        chrono::LocalResult::None => resolve(local + chrono::Duration::hours(1), zone, fold),
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

    /// Lists the tree: the files at its root and in each folder under it (the document's
    /// per-type folders, or a subdirectory per scheduled export), keeping those of `datasets`.
    pub async fn list(&self, datasets: &[String], config: &TreeConfig) -> Result<Listing, SourceError> {
        let root = self.entries("").await?.ok_or_else(|| {
            SourceError::Rejected(format!("{} does not exist; check --source", self.describe()))
        })?;
        let mut entries: Vec<(String, RemoteEntry)> = Vec::new();
        for entry in root {
            if entry.name.starts_with('.') {
                continue;
            }
            if entry.is_file {
                entries.push((String::new(), entry));
            } else {
                let found = self.entries(&entry.name).await?.unwrap_or_default();
                entries.extend(found.into_iter().map(|file| (entry.name.clone(), file)));
            }
        }
        Ok(Listing::build(entries, config, datasets))
    }

    /// The folders under the root (for `cxlake check`).
    pub async fn folders(&self) -> Result<Vec<String>, SourceError> {
        let entries = self.entries("").await?.ok_or_else(|| {
            SourceError::Rejected(format!("{} does not exist; check --source", self.describe()))
        })?;
        Ok(entries.into_iter().filter(|e| !e.is_file && !e.name.starts_with('.')).map(|e| e.name).collect())
    }

    /// The entries of `relative` (the root when empty); `None` when it does not exist.
    async fn entries(&self, relative: &str) -> Result<Option<Vec<RemoteEntry>>, SourceError> {
        match self {
            DropStore::Local(root) => {
                let dir = if relative.is_empty() { root.clone() } else { root.join(relative) };
                list_local(&dir)
                    .map_err(|e| SourceError::Local(format!("cannot list {}: {e}", dir.display())))
            }
            DropStore::Sftp(sftp) => sftp.list(relative).await.map_err(source_error),
        }
    }

    /// Copies `file` to `dest`; refuses a file that changed since it was listed (it is still
    /// being written: its day is retried by the next run).
    pub async fn fetch(&self, file: &DropFile, dest: &Path) -> Result<u64, SourceError> {
        let (bytes, after) = match self {
            DropStore::Local(root) => {
                let path = root.join(file.relative());
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

/// The files that count, by local day: for each export and span only the newest file (a
/// re-delivery replaces the older one's rows), in (export, type, span) order.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub days: BTreeMap<NaiveDate, Vec<DropFile>>,
    /// Files whose names could not be read (refused, with the reason, and left alone).
    pub refused: Vec<String>,
}

impl Listing {
    /// The listing of `(folder, entry)`s of `datasets`: names that are no export are left out,
    /// names that cannot be read are refused (with the reason). Of one export's files for one
    /// span the newest counts, except for an hourly span that starts in the repeated hour of an
    /// autumn DST change in the export's zone: that hour happens twice, and its two exports
    /// carry the same local span, so the two newest count, the older as the first occurrence.
    pub fn build(
        entries: impl IntoIterator<Item = (String, RemoteEntry)>,
        config: &TreeConfig,
        datasets: &[String],
    ) -> Listing {
        let mut by_span: BTreeMap<(String, &'static str, Span), Vec<DropFile>> = BTreeMap::new();
        let mut refused = Vec::new();
        for (folder, entry) in entries {
            let name = entry.name;
            let parsed = match parse_file_name_in(&name, config.folder_dataset(&folder)) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => continue,
                Err(e) => {
                    let at = if folder.is_empty() { String::new() } else { format!("{folder}/") };
                    refused.push(format!("{at}{name}: {e}"));
                    continue;
                }
            };
            if !entry.is_file || !datasets.iter().any(|d| d == parsed.dataset) {
                continue;
            }
            let export_id = config.export_id(&folder, &parsed);
            let zone = config.zone_for(&folder, parsed.series());
            let file = DropFile {
                name,
                folder,
                parsed,
                size: entry.size,
                modified: entry.modified,
                fold: Fold::Unknown,
                export_id,
                zone,
            };
            by_span
                .entry((file.export_id.clone(), file.parsed.dataset, file.parsed.span))
                .or_default()
                .push(file);
        }
        // Several exports of one type and span in one folder are kept apart by their uuid
        // series (channel sets, zones, frequencies): said once, as it doubles what that folder lands.
        let mut sharing: BTreeMap<(String, &str, Span), BTreeSet<&str>> = BTreeMap::new();
        for ((export_id, dataset, span), files) in &by_span {
            let folder = files[0].folder.clone();
            sharing.entry((folder, dataset, *span)).or_default().insert(export_id.as_str());
        }
        let mut said = BTreeSet::new();
        for ((folder, dataset, _), exports) in &sharing {
            if exports.len() > 1 && said.insert((folder.clone(), *dataset)) {
                tracing::info!(folder = %folder, dataset = %dataset, exports = exports.len(), "Several scheduled exports of one type write into one folder; each lands as its own export (export_id), none replaces another");
            }
        }
        // Exports that name the repeated hour's first occurrence by its real end (02:00 → 02:00)
        // name the second 02:00 → 03:00: such a day's spans say which occurrence they are.
        let first_by_its_end: BTreeSet<(String, &str, NaiveDate)> = by_span
            .iter()
            .filter(|((_, _, span), files)| {
                in_repeated_hour(*span, files[0].zone) && ends_by_its_start(*span)
            })
            .map(|((export_id, dataset, span), _)| (export_id.clone(), *dataset, span.day()))
            .collect();
        // The map's (export, type, span) order is the order a day's files become parts.
        let mut days: BTreeMap<NaiveDate, Vec<DropFile>> = BTreeMap::new();
        for ((export_id, dataset, span), mut files) in by_span {
            files.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
            let repeated = in_repeated_hour(span, files[0].zone);
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
                } else if first_by_its_end.contains(&(export_id, dataset, span.day())) {
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

    fn entry(name: &str, age_secs: u64) -> (String, RemoteEntry) {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age_secs);
        ("message".to_string(), RemoteEntry { name: name.into(), is_file: true, size: 10, modified })
    }

    fn folds(listing: &Listing) -> Vec<(String, Fold)> {
        listing.days.values().flatten().map(|f| (f.name.clone(), f.fold)).collect()
    }

    #[test]
    fn a_newer_file_replaces_an_older_one_of_its_export_and_span_but_not_in_the_repeated_hour() {
        let zone: chrono_tz::Tz = "Europe/Brussels".parse().unwrap();
        // One hourly export (one uuid series; a suffix per file) in the shared `message` folder.
        let u = "3f2c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e";
        let name = |span: &str, suffix: &str| format!("1_message_{span}_{u}-{suffix}.csv");
        let listing = Listing::build(
            [
                entry(&name("27102024010000_27102024020000", "old"), 50),
                entry(&name("27102024010000_27102024020000", "new"), 40),
                entry(&name("27102024020000_27102024030000", "b"), 20),
                entry(&name("27102024020000_27102024030000", "a"), 30),
                entry(&name("29102023020000_29102023030000", "y"), 30),
                entry(&name("29102023020000_29102023020000", "z"), 20),
                entry(&name("31102021020000_31102021030000", "w"), 20),
                entry(&name("31032024010000_31032024030000", "s"), 20),
            ],
            &TreeConfig::new(zone),
            &["message".to_string()],
        );
        assert_eq!(
            folds(&listing),
            [
                (name("31102021020000_31102021030000", "w"), Fold::Unknown),
                (name("29102023020000_29102023020000", "z"), Fold::Earlier),
                (name("29102023020000_29102023030000", "y"), Fold::Later),
                (name("31032024010000_31032024030000", "s"), Fold::Unknown),
                (name("27102024010000_27102024020000", "new"), Fold::Unknown),
                (name("27102024020000_27102024030000", "a"), Fold::Earlier),
                (name("27102024020000_27102024030000", "b"), Fold::Later),
            ]
        );
        let export_ids: BTreeSet<&str> =
            listing.days.values().flatten().map(|f| f.export_id.as_str()).collect();
        assert_eq!(export_ids, BTreeSet::from([format!("message/{u}").as_str()]));
        // The repeated hour's two files cover one real hour each, an hour apart.
        let day = NaiveDate::from_ymd_opt(2024, 10, 27).unwrap();
        let repeated: Vec<FileFacts> =
            listing.days[&day].iter().filter(|f| f.fold != Fold::Unknown).map(|f| f.facts(zone)).collect();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            (repeated[0].period_from, repeated[0].period_to),
            (t("2024-10-27T00:00:00Z"), t("2024-10-27T01:00:00Z"))
        );
        assert_eq!(
            (repeated[1].period_from, repeated[1].period_to),
            (t("2024-10-27T01:00:00Z"), t("2024-10-27T02:00:00Z"))
        );
        assert!(repeated.iter().all(|f| f.frequency == "hourly" && f.timezone.is_none()));
    }

    #[test]
    fn exports_are_told_apart_by_folder_or_by_uuid_series_in_a_shared_folder() {
        let zone: chrono_tz::Tz = "Europe/Brussels".parse().unwrap();
        let mut config = TreeConfig::new(zone);
        config.zones.insert("us-daily".into(), "America/New_York".parse().unwrap());
        let at = |folder: &str, name: &str, age: u64| {
            let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age);
            (folder.to_string(), RemoteEntry { name: name.into(), is_file: true, size: 10, modified })
        };
        let (a, b) = ("aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002");
        let span = "01032024000000_02032024000000";
        let listing = Listing::build(
            [
                // Two exports of one type and span in the path table's folder (two channel sets).
                at("team", &format!("1_team_{span}_{a}.csv"), 10),
                at("team", &format!("1_team_{span}_{b}.csv"), 20),
                // An export in a subdirectory of its own, in another zone; a re-delivery of its span.
                at("us-daily", &format!("1_team_{span}_x1.csv"), 30),
                at("us-daily", &format!("1_team_{span}_x2.csv"), 5),
                // A name that names no type, in a folder configured for none: refused.
                at("misc", &format!("1_{span}_c.csv"), 10),
            ],
            &config,
            &["team".to_string()],
        );
        let files: Vec<(String, &str)> =
            listing.days.values().flatten().map(|f| (f.export_id.clone(), f.name.as_str())).collect();
        assert_eq!(
            files,
            [
                (format!("team/{a}"), format!("1_team_{span}_{a}.csv").as_str()),
                (format!("team/{b}"), format!("1_team_{span}_{b}.csv").as_str()),
                ("us-daily".to_string(), format!("1_team_{span}_x2.csv").as_str()),
            ]
        );
        assert_eq!(listing.refused.len(), 1, "{:?}", listing.refused);
        let us = listing.days.values().flatten().find(|f| f.export_id == "us-daily").unwrap().facts(zone);
        assert_eq!(us.timezone.as_deref(), Some("America/New_York"));
        assert_eq!(us.period_from.to_rfc3339(), "2024-03-01T05:00:00+00:00");
        assert_eq!(us.frequency, "daily");
    }
}
