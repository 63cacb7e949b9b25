//! Sparkcentral's drop folder as cxlake sees it: the export files under `/export/<type>/`, read
//! from a local mirror of the tree (files synced there by other means). Each file is known by
//! its parsed name, size and modification time; the files of one local day are a window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::NaiveDate;
use sha2::Digest;

use super::files::{parse_file_name, ExportFile, Span, EXPORT_TYPES};

/// One export file in the drop folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropFile {
    pub name: String,
    pub path: PathBuf,
    pub parsed: ExportFile,
    pub size: u64,
    pub modified: SystemTime,
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
    /// Lists `root/<folder>/` for each of `datasets`.
    pub fn read(root: &Path, datasets: &[String]) -> std::io::Result<Listing> {
        let mut newest: BTreeMap<(&'static str, Span), DropFile> = BTreeMap::new();
        let mut refused = Vec::new();
        for (folder, dataset) in EXPORT_TYPES.iter().filter(|(_, d)| datasets.iter().any(|s| s == d)) {
            let dir = root.join(folder);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let parsed = match parse_file_name(&name) {
                    Ok(Some(parsed)) if parsed.dataset == *dataset => parsed,
                    Ok(Some(_)) => {
                        refused.push(format!(
                            "{folder}/{name}: its name says another export type than its folder"
                        ));
                        continue;
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        refused.push(format!("{folder}/{name}: {e}"));
                        continue;
                    }
                };
                let meta = entry.metadata()?;
                if !meta.is_file() {
                    continue;
                }
                let file = DropFile {
                    name,
                    path: entry.path(),
                    parsed,
                    size: meta.len(),
                    modified: meta.modified()?,
                };
                let slot = (*dataset, file.parsed.span);
                match newest.get(&slot) {
                    Some(kept) if (kept.modified, &kept.name) >= (file.modified, &file.name) => {}
                    _ => {
                        newest.insert(slot, file);
                    }
                }
            }
        }
        // The map's (type, span) order is the order a day's files become parts.
        let mut days: BTreeMap<NaiveDate, Vec<DropFile>> = BTreeMap::new();
        for file in newest.into_values() {
            days.entry(file.parsed.span.day()).or_default().push(file);
        }
        Ok(Listing { days, refused })
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

    /// Whether a file changed within `settle` (still being written, or just synced): its day
    /// waits for the next run.
    pub fn unsettled(files: &[DropFile], settle: Duration) -> Option<&DropFile> {
        let now = SystemTime::now();
        files.iter().find(|f| now.duration_since(f.modified).unwrap_or_default() < settle)
    }
}
