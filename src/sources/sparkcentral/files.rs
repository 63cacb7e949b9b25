//! Sparkcentral's scheduled-export file names: `[orgId][exportType][from][to][uuid].csv` for a
//! range export, `[orgId][exportType][at][uuid].csv` for a snapshot (open conversations), each
//! stamp `ddMMyyyyHHmmss` in the export's own time zone.
//!
//! The document shows the parts in brackets without saying what separates them, and writes the
//! stamp `ddMMyyyHHmmss` (Java's `yyy`, which prints the full year). So names are read leniently:
//! the export type is found by name (either separator, any case), stamps are the runs of 12, 13
//! or 14 digits after it (two-, three- or four-digit years), the uuid is what follows. A name
//! that does not end in `.csv` (a `.part` upload, a temporary name) is not an export and is
//! ignored; a `.csv` whose parts cannot be found is refused with a message naming it.
//!
//! The type comes from the name, so a file lands wherever it sits: in the document's per-type
//! folders or in a subdirectory per scheduled export. Two types the document's path table
//! omits (Virtual Agents, Contact Attributes) are recognised by `virtual-agent(s)` and
//! `contact-attribute(s)`; a name with no type at all is read as its folder's type when the
//! folder is configured for one.

use chrono::{NaiveDate, NaiveDateTime};

/// The twelve export types: (folder of the document's path table, dataset). The last two are
/// not in that table: their folders are our guess (configurable).
pub const EXPORT_TYPES: [(&str, &str); 12] = [
    ("resolved-conversation", "resolved_conversation"),
    ("open-conversation", "open_conversation"),
    ("contact", "contact"),
    ("message", "message"),
    ("response-times", "response_times"),
    ("tag", "tag"),
    ("team", "team"),
    ("topic", "topic"),
    ("user", "user"),
    ("user-presence", "user_presence"),
    ("virtual-agent", "virtual_agent"),
    ("contact-attribute", "contact_attribute"),
];

/// Other spellings of a type in file names: plurals of the two types the path table omits.
const ALIASES: [(&str, &str); 2] =
    [("virtual-agents", "virtual_agent"), ("contact-attributes", "contact_attribute")];

/// The folder of the document's path table (or our guess) for `dataset`.
pub fn type_folder(dataset: &str) -> Option<&'static str> {
    EXPORT_TYPES.iter().find(|(_, d)| *d == dataset).map(|(folder, _)| *folder)
}

/// The dataset a folder of the path table holds, if it is one.
pub fn dataset_of_folder(folder: &str) -> Option<&'static str> {
    EXPORT_TYPES.iter().find(|(f, _)| *f == folder).map(|(_, dataset)| *dataset)
}

/// What a file covers, in the export's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    /// `[from, to)`.
    Range { from: NaiveDateTime, to: NaiveDateTime },
    /// A snapshot taken at one moment (open conversations).
    Snapshot { at: NaiveDateTime },
}

impl Span {
    /// The calendar day (as written, in the export's zone) whose partition holds the file.
    pub fn day(&self) -> NaiveDate {
        match self {
            Span::Range { from, .. } => from.date(),
            Span::Snapshot { at } => at.date(),
        }
    }
}

/// A parsed export file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub org_id: String,
    /// The dataset it holds (`resolved_conversation`).
    pub dataset: &'static str,
    pub span: Span,
    pub uuid: String,
}

impl ExportFile {
    /// The scheduled export's series: the uuid's canonical `8-4-4-4-12` part when it has one
    /// (whatever follows it tells files of one export apart), else the whole uuid.
    pub fn series(&self) -> &str {
        let uuid = self.uuid.as_str();
        let groups = [8, 4, 4, 4, 12];
        let mut at = 0;
        for (i, len) in groups.iter().enumerate() {
            let Some(part) = uuid.get(at..at + len) else { return uuid };
            if !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return uuid;
            }
            at += len;
            if i < groups.len() - 1 {
                if uuid.as_bytes().get(at) != Some(&b'-') {
                    return uuid;
                }
                at += 1;
            }
        }
        &uuid[..at]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read export file name `{name}`: {reason}; expected [orgId][exportType][from ddMMyyyyHHmmss][to ddMMyyyyHHmmss][uuid].csv")]
pub struct NameError {
    pub name: String,
    pub reason: String,
}

/// Parses a file name; `Ok(None)` for a name that is not a finished export (not `.csv`).
pub fn parse_file_name(name: &str) -> Result<Option<ExportFile>, NameError> {
    parse_file_name_in(name, None)
}

/// Parses a file name found in a folder configured for `folder_dataset`: a name that names no
/// export type is read as that type (`[orgId][from][to][uuid].csv`).
pub fn parse_file_name_in(
    name: &str,
    folder_dataset: Option<&'static str>,
) -> Result<Option<ExportFile>, NameError> {
    let Some(stem) = name.strip_suffix(".csv").or_else(|| name.strip_suffix(".CSV")) else {
        return Ok(None);
    };
    let fail = |reason: &str| NameError { name: name.to_string(), reason: reason.to_string() };
    // Compare with `-` and `_` as one separator and without case.
    let folded: String = stem.chars().map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() }).collect();
    // The longest type name that occurs wins (`user-presence` over `user`).
    let named = EXPORT_TYPES
        .iter()
        .chain(ALIASES.iter())
        .filter_map(|(spelling, dataset)| folded.find(spelling).map(|at| (at, spelling.len(), *dataset)))
        .max_by_key(|(at, len, _)| (*len, usize::MAX - at));
    let (org_id, dataset, rest) = match (named, folder_dataset) {
        (Some((start, len, dataset)), _) => {
            let org_id = stem[..start].trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
            (org_id, dataset, &stem[start + len..])
        }
        (None, Some(dataset)) => {
            let org_len = stem.bytes().take_while(|b| b.is_ascii_alphanumeric()).count();
            (stem[..org_len].to_string(), dataset, &stem[org_len..])
        }
        (None, None) => return Err(fail("no export type in it")),
    };
    if org_id.is_empty() {
        return Err(fail("no organisation id before the export type"));
    }
    let mut stamps = Vec::new();
    let mut position = 0;
    let bytes = rest.as_bytes();
    while stamps.len() < 2 {
        // Separators between the parts; a letter or a short number starts the uuid.
        let separators = bytes[position..].iter().take_while(|b| !b.is_ascii_alphanumeric()).count();
        let run = bytes[position + separators..].iter().take_while(|b| b.is_ascii_digit()).count();
        let followed_by_more =
            bytes.get(position + separators + run).is_some_and(|b| b.is_ascii_alphanumeric());
        if !(12..=14).contains(&run) || followed_by_more {
            break;
        }
        position += separators;
        stamps.push(
            parse_stamp(&rest[position..position + run])
                .ok_or_else(|| fail("a date stamp is not a valid ddMMyyyyHHmmss"))?,
        );
        position += run;
    }
    let uuid = rest[position..].trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if uuid.is_empty() {
        return Err(fail("no uuid after the date stamps"));
    }
    let span = match stamps[..] {
        // Local stamps: when the clocks go back within an export's span, its `to` may read as
        // early as an hour before its `from` (an hourly export of the repeated hour: 02:00 → 02:00).
        [from, to] if to >= from - chrono::Duration::hours(1) => Span::Range { from, to },
        [_, _] => return Err(fail("its `to` is more than an hour before its `from`")),
        [at] => Span::Snapshot { at },
        _ => return Err(fail("no date stamp after the export type")),
    };
    Ok(Some(ExportFile { org_id, dataset, span, uuid }))
}

/// `ddMMyyyyHHmmss`, or with a two- or three-digit year (taken as 20yy / 2yyy).
fn parse_stamp(digits: &str) -> Option<NaiveDateTime> {
    let n = |range: std::ops::Range<usize>| digits.get(range)?.parse::<u32>().ok();
    let year_digits = digits.len() - 10;
    let (day, month) = (n(0..2)?, n(2..4)?);
    let year = n(4..4 + year_digits)? as i32;
    let year = match year_digits {
        2 => 2000 + year,
        3 => 2000 + year % 1000,
        _ => year,
    };
    let t = 4 + year_digits;
    NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(n(t..t + 2)?, n(t + 2..t + 4)?, n(t + 4..t + 6)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_types_the_path_table_omits_and_a_folder_fallback_and_the_uuid_series() {
        let va =
            parse_file_name("5512_virtual-agents_01032024000000_02032024000000_ab.csv").unwrap().unwrap();
        assert_eq!(va.dataset, "virtual_agent");
        let ca =
            parse_file_name("5512_contact_attribute_01032024000000_02032024000000_ab.csv").unwrap().unwrap();
        assert_eq!(ca.dataset, "contact_attribute", "the longer type wins over `contact`");
        assert!(parse_file_name("5512_01032024000000_02032024000000_ab.csv").is_err());
        let bots = parse_file_name_in("5512_01032024000000_02032024000000_ab.csv", Some("virtual_agent"))
            .unwrap()
            .unwrap();
        assert_eq!((bots.dataset, bots.org_id.as_str(), bots.uuid.as_str()), ("virtual_agent", "5512", "ab"));
        let uuid = "3f2c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e";
        let hourly = parse_file_name(&format!("1_message_01032024010000_01032024020000_{uuid}-h01.csv"))
            .unwrap()
            .unwrap();
        assert_eq!(hourly.series(), uuid);
        let plain = parse_file_name("1_message_01032024010000_01032024020000_abc-1.csv").unwrap().unwrap();
        assert_eq!(plain.series(), "abc-1", "no canonical uuid: the whole of it");
    }

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn range_and_snapshot_names_in_every_spelling() {
        let uuid = "3f2c1a9e-5b7d-4c1e-9a0b-2d4e6f8a0c1e";
        for name in [
            format!("5512_resolved-conversation_01032024000000_02032024000000_{uuid}.csv"),
            format!("[5512][resolved-conversation][01032024000000][02032024000000][{uuid}].csv"),
            format!("5512_RESOLVED_CONVERSATION_0103024000000_0203024000000_{uuid}.csv"),
            format!("5512-resolved-conversation-010324000000-020324000000-{uuid}.csv"),
        ] {
            let file = parse_file_name(&name).unwrap().unwrap();
            assert_eq!(file.org_id, "5512", "{name}");
            assert_eq!(file.dataset, "resolved_conversation", "{name}");
            assert_eq!(
                file.span,
                Span::Range { from: at("2024-03-01 00:00:00"), to: at("2024-03-02 00:00:00") },
                "{name}"
            );
            assert_eq!(file.uuid, uuid, "{name}");
        }
        let hourly =
            parse_file_name("77_user-presence_31032024020000_31032024030000_abc.csv").unwrap().unwrap();
        assert_eq!(hourly.dataset, "user_presence", "the longer type wins over `user`");
        assert_eq!(hourly.span.day(), at("2024-03-31 00:00:00").date());
        let snapshot = parse_file_name("77_open-conversation_05032024143000_f00d.csv").unwrap().unwrap();
        assert_eq!(snapshot.span, Span::Snapshot { at: at("2024-03-05 14:30:00") });
    }

    #[test]
    fn unfinished_files_are_ignored_and_junk_is_refused_by_name() {
        assert_eq!(parse_file_name("77_tag_01032024000000_02032024000000_x.csv.part").unwrap(), None);
        assert_eq!(parse_file_name(".77_tag.tmp").unwrap(), None);
        for junk in [
            "notes.csv",
            "77_tag_x.csv",
            "tag_01032024000000_02032024000000_x.csv",
            "77_tag_01032024000000_02032024000000.csv",
            "77_tag_32032024000000_02042024000000_x.csv",
            "77_tag_02032024000000_01032024000000_x.csv",
        ] {
            let err = parse_file_name(junk).unwrap_err();
            assert!(err.to_string().contains(junk), "{err}");
        }
    }

    #[test]
    fn the_repeated_hours_first_export_may_end_when_it_starts() {
        let first = parse_file_name("77_message_27102024020000_27102024020000_x.csv").unwrap().unwrap();
        assert_eq!(
            first.span,
            Span::Range { from: at("2024-10-27 02:00:00"), to: at("2024-10-27 02:00:00") }
        );
        assert!(
            parse_file_name("77_message_27102024030000_27102024013000_x.csv").is_err(),
            "over an hour back"
        );
    }
}
