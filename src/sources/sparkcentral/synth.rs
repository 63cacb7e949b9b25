//! The deterministic Sparkcentral tenant behind the emulator: for every local day, one export file
//! per type (open conversations as a noon snapshot; messages hourly, 23 to 25 files a day, the
//! repeated autumn hour's two under one local name), rows whose values derive from the seed, the
//! day and the row alone. Instants are generated in UTC first and then written as the export
//! writes them — local to the zone, without offset — so a test knows each value's true instant
//! independently of the decoder. The drop tree adds what a real folder has: a file replaced by a
//! newer one for the same span, a header-only file, a half-uploaded `.part`.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::sources::synthetic::{chat_text, person_name, Rng};

/// What the tenant puts in a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Id,
    Label,
    FreeText,
    Url,
    Count,
    Seconds,
    LocalTime,
    List,
    /// Response Times: the start, the end (times of day) and the seconds between them.
    IntervalFrom,
    IntervalTo,
    IntervalSeconds,
}

/// One export type: its dataset, folder under `/export`, and columns (header, column, kind).
#[derive(Debug)]
pub struct ExportType {
    pub dataset: &'static str,
    pub folder: &'static str,
    pub columns: &'static [(&'static str, &'static str, Kind)],
}

// Generated from the document's header tables (one entry per export type): the header as the
// file writes it, the column it lands in, and what kind of value the tenant puts there.
pub const TYPES: &[ExportType] = &[
    ExportType {
        dataset: "resolved_conversation",
        folder: "resolved-conversation",
        columns: &[
            ("Conversation ID", "conversation_id", Kind::Id),
            ("Medium", "medium", Kind::Label),
            ("Channel", "channel", Kind::Label),
            ("Channel Display Name", "channel_display_name", Kind::Label),
            ("Contact Profile ID", "contact_profile_id", Kind::Id),
            ("Contact Primary identifier", "contact_primary_identifier", Kind::FreeText),
            ("Contact Secondary identifier", "contact_secondary_identifier", Kind::FreeText),
            ("Created at (Date / Time)", "created_at_date_time", Kind::LocalTime),
            ("Last Status Change Agent ID", "last_status_change_agent_id", Kind::Id),
            ("Last Status Change Agent Name", "last_status_change_agent_name", Kind::FreeText),
            ("Last Status Change Agent Reference", "last_status_change_agent_reference", Kind::Id),
            ("Last Status Change Team ID", "last_status_change_team_id", Kind::Id),
            ("Last Status Change Team Name", "last_status_change_team_name", Kind::Label),
            ("Current Status", "current_status", Kind::Label),
            ("Resolved By", "resolved_by", Kind::Label),
            ("Resolve Reason", "resolve_reason", Kind::Label),
            ("Resolve Comment", "resolve_comment", Kind::FreeText),
            ("Resolve Trigger", "resolve_trigger", Kind::Label),
            ("Resolved At (Date / Time)", "resolved_at_date_time", Kind::LocalTime),
            ("Resolved Agent ID", "resolved_agent_id", Kind::Id),
            ("Resolved Agent Name", "resolved_agent_name", Kind::FreeText),
            ("Resolved Agent Reference", "resolved_agent_reference", Kind::Id),
            ("Number of Inbound Messages", "number_of_inbound_messages", Kind::Count),
            ("Number of Outbound Messages", "number_of_outbound_messages", Kind::Count),
            ("First Response Time (s)", "first_response_time_s", Kind::Seconds),
            ("Handle Time (s)", "handle_time_s", Kind::Seconds),
            ("No-Reply Time (s)", "no_reply_time_s", Kind::Seconds),
            ("Cherry-Picking Time (s)", "cherry_picking_time_s", Kind::Seconds),
            ("Resolution Time (s)", "resolution_time_s", Kind::Seconds),
            ("Topic IDs", "topic_ids", Kind::List),
            ("Topic Names", "topic_names", Kind::List),
            ("Conversation URL", "conversation_url", Kind::Url),
            ("Last Updated", "last_updated", Kind::LocalTime),
            ("Language", "language", Kind::Label),
            ("CSAT Score", "csat_score", Kind::Count),
            ("CSAT Completed Status", "csat_completed_status", Kind::Label),
            ("CSAT Follow-up Question", "csat_follow_up_question", Kind::Label),
            ("CSAT Follow-up Answer", "csat_follow_up_answer", Kind::FreeText),
        ],
    },
    ExportType {
        dataset: "open_conversation",
        folder: "open-conversation",
        columns: &[
            ("Conversation ID", "conversation_id", Kind::Id),
            ("Medium", "medium", Kind::Label),
            ("Channel", "channel", Kind::Label),
            ("Channel Display Name", "channel_display_name", Kind::Label),
            ("Contact Profile ID", "contact_profile_id", Kind::Id),
            ("Contact Primary identifier", "contact_primary_identifier", Kind::FreeText),
            ("Contact Secondary identifier", "contact_secondary_identifier", Kind::FreeText),
            ("Created at (Date / Time)", "created_at_date_time", Kind::LocalTime),
            ("Last Status Change Agent ID", "last_status_change_agent_id", Kind::Id),
            ("Last Status Change Agent Name", "last_status_change_agent_name", Kind::FreeText),
            ("Last Status Change Agent Reference", "last_status_change_agent_reference", Kind::Id),
            ("Last Status Change Team ID", "last_status_change_team_id", Kind::Id),
            ("Last Status Change Team Name", "last_status_change_team_name", Kind::Label),
            ("Current Status", "current_status", Kind::Label),
            ("Resolved By", "resolved_by", Kind::Label),
            ("Resolved At (Date / Time)", "resolved_at_date_time", Kind::LocalTime),
            ("Resolve Agent ID", "resolve_agent_id", Kind::Id),
            ("Resolve Agent Name", "resolve_agent_name", Kind::FreeText),
            ("Resolved Agent Reference", "resolved_agent_reference", Kind::Id),
            ("Number of Inbound Messages", "number_of_inbound_messages", Kind::Count),
            ("Number of Outbound Messages", "number_of_outbound_messages", Kind::Count),
            ("First Response Time (s)", "first_response_time_s", Kind::Seconds),
            ("Handle Time (s)", "handle_time_s", Kind::Seconds),
            ("No-Reply Time (s)", "no_reply_time_s", Kind::Seconds),
            ("Cherry-Picking Time (s)", "cherry_picking_time_s", Kind::Seconds),
            ("Resolution Time (s)", "resolution_time_s", Kind::Seconds),
            ("Topic IDs", "topic_ids", Kind::List),
            ("Topic Names", "topic_names", Kind::List),
            ("Conversation URL", "conversation_url", Kind::Url),
            ("Last Updated", "last_updated", Kind::LocalTime),
            ("Language", "language", Kind::Label),
        ],
    },
    ExportType {
        dataset: "message",
        folder: "message",
        columns: &[
            ("Message ID", "message_id", Kind::Id),
            ("Created at (Date / Time)", "created_at_date_time", Kind::LocalTime),
            ("Conversation ID", "conversation_id", Kind::Id),
            ("Medium", "medium", Kind::Label),
            ("Channel", "channel", Kind::Label),
            ("Channel Display Name", "channel_display_name", Kind::Label),
            ("Contact Profile ID", "contact_profile_id", Kind::Id),
            ("Contact Primary Identifier", "contact_primary_identifier", Kind::FreeText),
            ("Contact Secondary identifier", "contact_secondary_identifier", Kind::FreeText),
            ("Message Type", "message_type", Kind::Label),
            ("Origin", "origin", Kind::Label),
            ("Outbound Message Type", "outbound_message_type", Kind::Label),
            ("Direction", "direction", Kind::Label),
            ("Agent ID", "agent_id", Kind::Id),
            ("Agent Name", "agent_name", Kind::FreeText),
            ("Agent Reference", "agent_reference", Kind::Id),
            ("Team ID", "team_id", Kind::Id),
            ("Team Name", "team_name", Kind::Label),
            ("Tag IDs", "tag_ids", Kind::List),
            ("Tag Names", "tag_names", Kind::List),
            ("Content", "content", Kind::FreeText),
            ("Conversation URL", "conversation_url", Kind::Url),
            ("Post URL", "post_url", Kind::Url),
            ("Last Updated", "last_updated", Kind::LocalTime),
            ("Deleted at", "deleted_at", Kind::LocalTime),
        ],
    },
    ExportType {
        dataset: "team",
        folder: "team",
        columns: &[
            ("Created At", "created_at", Kind::LocalTime),
            ("Team ID", "team_id", Kind::Id),
            ("Team Name", "team_name", Kind::Label),
            ("Resolves With Reply", "resolves_with_reply", Kind::Count),
            ("Resolves without Reply", "resolves_without_reply", Kind::Count),
            ("Avg. First Response Time (s)", "avg_first_response_time_s", Kind::Seconds),
            ("Avg. Resolution Time (s)", "avg_resolution_time_s", Kind::Seconds),
            ("Total Handle Time (s)", "total_handle_time_s", Kind::Seconds),
            ("Total No-Reply Time (s)", "total_no_reply_time_s", Kind::Seconds),
            ("Total Cherry-Picking Time (s)", "total_cherry_picking_time_s", Kind::Seconds),
            ("Avg. Handle Time (s)", "avg_handle_time_s", Kind::Seconds),
            ("Contacts Helped", "contacts_helped", Kind::Count),
        ],
    },
    ExportType {
        dataset: "contact",
        folder: "contact",
        columns: &[
            ("Contact Profile ID", "contact_profile_id", Kind::Id),
            ("Medium", "medium", Kind::Label),
            ("Primary identifier", "primary_identifier", Kind::FreeText),
            ("Secondary identifier", "secondary_identifier", Kind::FreeText),
            ("Created At", "created_at", Kind::LocalTime),
            ("Number of Conversations", "number_of_conversations", Kind::Count),
            ("Number of Inbound Messages", "number_of_inbound_messages", Kind::Count),
            ("Number of Outbound Messages", "number_of_outbound_messages", Kind::Count),
            ("Last Updated", "last_updated", Kind::LocalTime),
        ],
    },
    ExportType {
        dataset: "topic",
        folder: "topic",
        columns: &[
            ("Topic ID", "topic_id", Kind::Id),
            ("Topic Name", "topic_name", Kind::Label),
            ("Total Conversations", "total_conversations", Kind::Count),
            ("Total Current Conversations", "total_current_conversations", Kind::Count),
            ("Medium", "medium", Kind::Label),
            ("Channel", "channel", Kind::Label),
            ("Channel Display Name", "channel_display_name", Kind::Label),
        ],
    },
    ExportType {
        dataset: "tag",
        folder: "tag",
        columns: &[
            ("Tag ID", "tag_id", Kind::Id),
            ("Tag Name", "tag_name", Kind::Label),
            ("Total Contacts", "total_contacts", Kind::Count),
            ("Total Messages", "total_messages", Kind::Count),
            ("Total Current Messages", "total_current_messages", Kind::Count),
            ("Medium", "medium", Kind::Label),
            ("Channel", "channel", Kind::Label),
            ("Channel Display Name", "channel_display_name", Kind::Label),
        ],
    },
    ExportType {
        dataset: "user_presence",
        folder: "user-presence",
        columns: &[
            ("User ID", "user_id", Kind::Id),
            ("User Name", "user_name", Kind::FreeText),
            ("User Email Address", "user_email_address", Kind::FreeText),
            ("Type", "type", Kind::Label),
            ("Away State", "away_state", Kind::Label),
            ("From", "from", Kind::LocalTime),
            ("To", "to", Kind::LocalTime),
            ("Duration (s)", "duration_s", Kind::Seconds),
        ],
    },
    ExportType {
        dataset: "response_times",
        folder: "response-times",
        columns: &[
            ("Conversation ID", "conversation_id", Kind::Id),
            ("Medium", "medium", Kind::Label),
            ("Sender Channel", "sender_channel", Kind::Label),
            ("Sender Channel Display Name", "sender_channel_display_name", Kind::Label),
            ("Contact Profile ID", "contact_profile_id", Kind::Id),
            ("Started By", "started_by", Kind::Label),
            ("Handover Reason", "handover_reason", Kind::Label),
            ("From", "from", Kind::IntervalFrom),
            ("To", "to", Kind::IntervalTo),
            ("Agent Response Time (s)", "agent_response_time_s", Kind::IntervalSeconds),
            ("Replying Agent ID", "replying_agent_id", Kind::Id),
            ("Replying Agent Name", "replying_agent_name", Kind::FreeText),
            ("Replying Agent Reference", "replying_agent_reference", Kind::Id),
            ("Inbound Message ID", "inbound_message_id", Kind::Id),
            ("Outbound Message ID", "outbound_message_id", Kind::Id),
            ("Conversation URL", "conversation_url", Kind::Url),
        ],
    },
    ExportType {
        dataset: "user",
        folder: "user",
        columns: &[
            ("Created At", "created_at", Kind::LocalTime),
            ("User ID", "user_id", Kind::Id),
            ("User  Name", "user_name", Kind::FreeText),
            ("User Email Address", "user_email_address", Kind::FreeText),
            ("User Reference", "user_reference", Kind::Id),
            ("Available Time (s)", "available_time_s", Kind::Seconds),
            ("Away Time (s)", "away_time_s", Kind::Seconds),
            ("Contacts Handled", "contacts_handled", Kind::Count),
            ("Avg. Handle Time (s)", "avg_handle_time_s", Kind::Seconds),
            ("Handle Time (s)", "handle_time_s", Kind::Seconds),
            ("No-Reply Time (s)", "no_reply_time_s", Kind::Seconds),
            ("Cherry-Picking Time (s)", "cherry_picking_time_s", Kind::Seconds),
            ("Replies", "replies", Kind::Count),
            ("Resolves With Reply", "resolves_with_reply", Kind::Count),
            ("Resolves No-Reply", "resolves_no_reply", Kind::Count),
            ("Tags Added", "tags_added", Kind::Count),
        ],
    },
    ExportType {
        dataset: "virtual_agent",
        folder: "virtual-agent",
        columns: &[
            ("Agent ID", "agent_id", Kind::Id),
            ("Agent Name", "agent_name", Kind::Label),
            ("Medium", "medium", Kind::Label),
            ("Channel", "channel", Kind::Label),
            ("Channel Display Name", "channel_display_name", Kind::Label),
            ("Total Conversations", "total_conversations", Kind::Count),
            ("Handover to Agent", "handover_to_agent", Kind::Count),
            ("Handover due to error", "handover_due_to_error", Kind::Count),
            ("Resolved", "resolved", Kind::Count),
            ("Total Conversations with Topic", "total_conversations_with_topic", Kind::Count),
            ("Total Messages Tagged", "total_messages_tagged", Kind::Count),
            ("Total Tags Applied", "total_tags_applied", Kind::Count),
        ],
    },
    ExportType {
        dataset: "contact_attribute",
        folder: "contact-attribute",
        columns: &[
            ("Contact Profile ID", "contact_profile_id", Kind::Id),
            ("Contact Primary Identifier", "contact_primary_identifier", Kind::FreeText),
            ("Contact Secondary Identifier", "contact_secondary_identifier", Kind::FreeText),
            ("Attribute ID", "attribute_id", Kind::Id),
            ("Attribute Name", "attribute_name", Kind::Label),
            ("Attribute Value", "attribute_value", Kind::FreeText),
            ("Attribute Type", "attribute_type", Kind::Label),
        ],
    },
];

/// Key columns: never empty, and for entity types the same ids every day (snapshots).
const KEYS: &[&str] = &[
    "conversation_id",
    "message_id",
    "outbound_message_id",
    "team_id",
    "contact_profile_id",
    "topic_id",
    "tag_id",
    "user_id",
    "type",
    "from",
    "channel",
    "agent_id",
    "attribute_id",
];
const ENTITIES: &[&str] =
    &["open_conversation", "contact", "team", "topic", "tag", "user", "virtual_agent", "contact_attribute"];
const LABELS: &[&str] = &["Alpha", "Beta, Inc.", "Gamma \"G\"", "Δelta", "Échange", "チーム", "Ops  Team "];

/// A generated value: what the file says, and what the lake must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    /// The true instant (the lake holds this; the file its local spelling).
    Time(DateTime<Utc>),
    List(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparkcentralSynthConfig {
    pub seed: u64,
    pub rows_per_file: usize,
    pub org_id: u64,
}

impl Default for SparkcentralSynthConfig {
    fn default() -> Self {
        SparkcentralSynthConfig { seed: 0x5350_4b43, rows_per_file: 12, org_id: 5512 }
    }
}

pub fn export_type(dataset: &str) -> Option<&'static ExportType> {
    TYPES.iter().find(|t| t.dataset == dataset)
}

/// The UTC instant of local midnight starting `day` (the earlier one if ambiguous).
pub fn local_midnight(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let local = day.and_hms_opt(0, 0, 0).expect("midnight");
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => (local + Duration::hours(1)).and_utc(),
    }
}

/// What the lake holds for an instant written as local time: the instant itself, unless it is
/// the later of a repeated hour's two (a local time without offset cannot say so: the earlier).
pub fn as_read_back(t: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&t.with_timezone(&zone).naive_local()) {
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        _ => t,
    }
}

/// What the lake holds for local time `t` of `row` (of `dataset`, local `day`): as
/// [`as_read_back`], except in the hourly file of the repeated hour's second occurrence, which
/// the listing recognises: there a repeated-hour time is the later instant.
pub fn read_back_in_file(
    dataset: &str,
    day: NaiveDate,
    row: &[Value],
    t: DateTime<Utc>,
    zone: Tz,
) -> DateTime<Utc> {
    if is_hourly(dataset) {
        let start = local_midnight(day, zone) + Duration::hours(hour_of(dataset, row, day, zone).max(0));
        let second_occurrence = matches!(
            zone.from_local_datetime(&start.with_timezone(&zone).naive_local()),
            LocalResult::Ambiguous(_, later) if later.with_timezone(&Utc) == start
        );
        if second_occurrence {
            return match zone.from_local_datetime(&t.with_timezone(&zone).naive_local()) {
                LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
                _ => t,
            };
        }
    }
    as_read_back(t, zone)
}

/// The rows of `dataset` for local `day` (`revision` 1: the replacing file's version).
pub fn day_rows(
    config: SparkcentralSynthConfig,
    dataset: &str,
    day: NaiveDate,
    zone: Tz,
    revision: u64,
) -> Vec<Vec<Value>> {
    let start = local_midnight(day, zone);
    let end = local_midnight(day.succ_opt().expect("a next day"), zone);
    rows_between(config, dataset, start, end, day.num_days_from_ce_u64(), revision)
}

/// The rows of a `dataset` file covering `[start, end)`: every local time inside it. `stream`
/// and `revision` seed the values (a day's number for the drop tree; any number for another
/// export's file), `stream` also the ids of event rows.
pub fn rows_between(
    config: SparkcentralSynthConfig,
    dataset: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    stream: u64,
    revision: u64,
) -> Vec<Vec<Value>> {
    let Some(export) = export_type(dataset) else { return Vec::new() };
    let length = (end - start).num_milliseconds().max(1);
    let entity = ENTITIES.contains(&dataset);
    (0..config.rows_per_file)
        .map(|row| {
            let mut rng = Rng::derive(&[config.seed, stream, row as u64, revision, dataset.len() as u64]);
            let to = start + Duration::milliseconds(rng.below(length as u64) as i64);
            let response_ms = rng.range(1, 7_200_000) as i64;
            export
                .columns
                .iter()
                .map(|(_, column, kind)| {
                    let key = KEYS.contains(column);
                    let nullable = !key && rng.chance(8);
                    let n = if entity && key { row as u64 } else { stream * 1000 + row as u64 };
                    match kind {
                        Kind::Id => Value::Text(format!("{}-{n}", &column[..column.len().min(4)])),
                        _ if nullable
                            && matches!(
                                kind,
                                Kind::Label | Kind::FreeText | Kind::LocalTime | Kind::List | Kind::Url
                            ) =>
                        {
                            Value::Null
                        }
                        Kind::Label => Value::Text(rng.pick(LABELS).to_string()),
                        Kind::FreeText => Value::Text(if rng.chance(50) {
                            person_name(&mut rng)
                        } else {
                            chat_text(&mut rng)
                        }),
                        Kind::Url => Value::Text(format!("https://app.sparkcentral.com/conversations/{n}")),
                        Kind::Count => Value::Int(rng.below(60) as i64),
                        Kind::Seconds => Value::Float(rng.below(40_000) as f64 / 4.0),
                        Kind::LocalTime => {
                            Value::Time(start + Duration::milliseconds(rng.below(length as u64) as i64))
                        }
                        Kind::List => Value::List(
                            (0..rng.below(4))
                                .map(|i| format!("{}{}", &column[..3], rng.below(9) + i))
                                .collect(),
                        ),
                        Kind::IntervalTo => Value::Time(to),
                        Kind::IntervalFrom => Value::Time(to - Duration::milliseconds(response_ms)),
                        Kind::IntervalSeconds => Value::Float(response_ms as f64 / 1000.0),
                    }
                })
                .collect()
        })
        .collect()
}

trait DaysFromCe {
    fn num_days_from_ce_u64(&self) -> u64;
}

impl DaysFromCe for NaiveDate {
    fn num_days_from_ce_u64(&self) -> u64 {
        chrono::Datelike::num_days_from_ce(self) as u64
    }
}

/// The CSV of `rows` as Sparkcentral writes it: the documented headers, local times.
pub fn render(dataset: &str, rows: &[Vec<Value>], zone: Tz) -> Vec<u8> {
    let export = export_type(dataset).expect("a known export type");
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    writer.write_record(export.columns.iter().map(|(h, _, _)| *h)).expect("writing to a Vec");
    for row in rows {
        let fields = export.columns.iter().zip(row).map(|((_, _, kind), value)| match value {
            Value::Null => String::new(),
            Value::Text(t) => t.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::List(items) => items.join(", "),
            Value::Time(t) => {
                let local = t.with_timezone(&zone);
                match kind {
                    Kind::IntervalFrom | Kind::IntervalTo => local.format("%H:%M:%S:%3f").to_string(),
                    _ => local.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                }
            }
        });
        writer.write_record(fields).expect("writing to a Vec");
    }
    writer.into_inner().expect("flushing a Vec")
}

fn stamp(day: NaiveDate, hour: u32) -> String {
    format!("{}{:02}0000", day.format("%d%m%Y"), hour)
}

/// The file name of `dataset`'s export for `day` (`uuid` tells two versions apart).
pub fn file_name(config: SparkcentralSynthConfig, dataset: &str, day: NaiveDate, uuid: &str) -> String {
    let export = export_type(dataset).expect("a known export type");
    let org = config.org_id;
    if dataset == "open_conversation" {
        format!("{org}_{}_{}_{uuid}.csv", export.folder, stamp(day, 12))
    } else {
        let next = day.succ_opt().expect("a next day");
        format!("{org}_{}_{}_{}_{uuid}.csv", export.folder, stamp(day, 0), stamp(next, 0))
    }
}

/// The uuid of the tenant's scheduled export of `dataset`: the same in each of its files (a
/// series; a suffix tells files of one span apart).
pub fn export_uuid(config: SparkcentralSynthConfig, dataset: &str) -> String {
    let index = TYPES.iter().position(|t| t.dataset == dataset).unwrap_or(usize::MAX);
    format!("{index:08x}-0000-4000-8000-{:012x}", config.seed % 1_000_000)
}

/// The export type the tenant schedules hourly (the others run daily).
pub const HOURLY: &str = "message";

/// Whether `dataset` is exported hourly (the repeated autumn hour's two files say which
/// occurrence they hold).
pub fn is_hourly(dataset: &str) -> bool {
    dataset == HOURLY
}

/// The export and period of the drop tree's file that holds `row` of `dataset`'s local `day`, as
/// the lake must carry them: (export id, frequency, period from, period to), instants in UTC.
pub fn row_period(
    config: SparkcentralSynthConfig,
    dataset: &str,
    day: NaiveDate,
    row: &[Value],
    zone: Tz,
) -> (String, &'static str, DateTime<Utc>, DateTime<Utc>) {
    let folder = export_type(dataset).map_or("", |t| t.folder);
    let export_id = format!("{folder}/{}", export_uuid(config, dataset));
    let start = local_midnight(day, zone);
    let end = local_midnight(day.succ_opt().expect("a next day"), zone);
    if dataset == "open_conversation" {
        let noon = start + Duration::hours(12);
        let noon = match zone.from_local_datetime(&day.and_hms_opt(12, 0, 0).expect("noon")) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => noon,
        };
        return (export_id, "snapshot", noon, noon);
    }
    if is_hourly(dataset) {
        let hours = (end - start).num_hours();
        let from = start + Duration::hours(hour_of(dataset, row, day, zone).clamp(0, hours - 1));
        return (export_id, "hourly", from, from + Duration::hours(1));
    }
    (export_id, "daily", start, end)
}

/// The hour of the local day (counted in real hours from local midnight: 23 or 25 on a DST
/// change day) whose hourly file holds `row`: the hour of its first local time, 0 without one.
fn hour_of(dataset: &str, row: &[Value], day: NaiveDate, zone: Tz) -> i64 {
    let Some(export) = export_type(dataset) else { return 0 };
    let first_local = export.columns.iter().position(|(_, _, kind)| *kind == Kind::LocalTime);
    match first_local.map(|i| &row[i]) {
        Some(Value::Time(t)) => (*t - local_midnight(day, zone)).num_hours(),
        _ => 0,
    }
}

/// The hourly files of `rows` (local `day`): (local from, local to, rows), one per real hour.
fn hourly_files(
    dataset: &str,
    rows: Vec<Vec<Value>>,
    day: NaiveDate,
    zone: Tz,
) -> Vec<(chrono::NaiveDateTime, chrono::NaiveDateTime, Vec<Vec<Value>>)> {
    let start = local_midnight(day, zone);
    let hours = (local_midnight(day.succ_opt().expect("a next day"), zone) - start).num_hours();
    let mut files: Vec<_> = (0..hours)
        .map(|h| {
            let from = start + Duration::hours(h);
            let local = |t: DateTime<Utc>| t.with_timezone(&zone).naive_local();
            (local(from), local(from + Duration::hours(1)), Vec::new())
        })
        .collect();
    for row in rows {
        let hour = hour_of(dataset, &row, day, zone).clamp(0, hours - 1) as usize;
        files[hour].2.push(row);
    }
    files
}

/// What the drop tree holds for `dataset` on `day`: the rows of the file that counts (the
/// newest; none for the header-only file), in the order of the day's files.
pub fn expected_rows(
    config: SparkcentralSynthConfig,
    dataset: &str,
    day: NaiveDate,
    first: NaiveDate,
    zone: Tz,
) -> Vec<Vec<Value>> {
    let offset = (day - first).num_days();
    if offset == 3 && dataset == "user_presence" {
        return Vec::new();
    }
    let revision = u64::from(offset == 1 && dataset == "team");
    let rows = day_rows(config, dataset, day, zone, revision);
    if is_hourly(dataset) {
        return hourly_files(dataset, rows, day, zone).into_iter().flat_map(|(_, _, rows)| rows).collect();
    }
    rows
}

/// Writes `days` local days from `first` of every export type under `root/<folder>/`: the team
/// file of the second day twice (the newer one replaces the older), a header-only user-presence
/// file on the fourth, and a half-uploaded `.part` next to them. Returns the files written.
pub fn write_drop_tree(
    config: SparkcentralSynthConfig,
    root: &Path,
    first: NaiveDate,
    days: u32,
    zone: Tz,
) -> std::io::Result<usize> {
    let mut written = 0;
    for offset in 0..days {
        let day = first + Duration::days(offset.into());
        for export in TYPES {
            let dir = root.join(export.folder);
            std::fs::create_dir_all(&dir)?;
            let uuid = export_uuid(config, export.dataset);
            if offset == 1 && export.dataset == "team" {
                // The first version, then the one that replaces it (newer, another uuid).
                let older = day_rows(config, export.dataset, day, zone, 0);
                let path = dir.join(file_name(config, export.dataset, day, &format!("{uuid}-old")));
                std::fs::write(&path, render(export.dataset, &older, zone))?;
                let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
                std::fs::File::options().write(true).open(&path)?.set_modified(an_hour_ago)?;
                written += 1;
            }
            let rows = expected_rows(config, export.dataset, day, first, zone);
            if is_hourly(export.dataset) {
                written += write_hourly(config, export.dataset, &dir, day, &uuid, rows, zone)?;
                continue;
            }
            let path = dir.join(file_name(config, export.dataset, day, &uuid));
            let mut file = std::fs::File::create(&path)?;
            file.write_all(&render(export.dataset, &rows, zone))?;
            // Settled: written a while ago, as a finished scheduled export is.
            file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))?;
            written += 1;
        }
    }
    let part = root.join("message").join(format!("{}_message_upload.csv.part", config.org_id));
    std::fs::write(part, b"Message ID,Created at (Date / Time)\r\nhalf")?;
    Ok(written)
}

/// Writes a day of `dataset` as hourly files, each modified a second after the one before (on
/// the autumn change day, the repeated hour's two files share their local name but for the uuid).
fn write_hourly(
    config: SparkcentralSynthConfig,
    dataset: &str,
    dir: &Path,
    day: NaiveDate,
    uuid: &str,
    rows: Vec<Vec<Value>>,
    zone: Tz,
) -> std::io::Result<usize> {
    let export = export_type(dataset).expect("a known export type");
    let files = hourly_files(dataset, rows, day, zone);
    let count = files.len();
    for (hour, (from, to, rows)) in files.into_iter().enumerate() {
        let stamp = |t: chrono::NaiveDateTime| t.format("%d%m%Y%H%M%S").to_string();
        let name = format!(
            "{}_{}_{}_{}_{uuid}-h{hour:02}.csv",
            config.org_id,
            export.folder,
            stamp(from),
            stamp(to)
        );
        let mut file = std::fs::File::create(dir.join(name))?;
        file.write_all(&render(dataset, &rows, zone))?;
        let age = std::time::Duration::from_secs(600 + (count - hour) as u64);
        file.set_modified(std::time::SystemTime::now() - age)?;
    }
    Ok(count)
}
