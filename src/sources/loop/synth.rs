//! The deterministic Loop tenant behind the emulator: conversations of shared inboxes, each
//! reported on the UTC day it was created and again on a later day when it changed (a reopened
//! or resolved conversation is exported again, so `loop.report` is an entities dataset). Every
//! value derives from the seed, the day and the conversation's number alone, so a test can ask
//! what any day's report must hold, independently of client and decoders.
//!
//! [`ReportRow`] is the typed truth; [`ReportRow::cells`] is the report as Loop writes it: JSON
//! keys in camelCase, sheet headers in Title Case, times in the request's time zone (always UTC
//! here), and free text with every hard case of [`chat_text`].

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::sources::synthetic::{chat_text, person_name, uuid_like, Rng};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopSynthConfig {
    pub seed: u64,
    pub conversations_per_day: usize,
    pub tenant: LoopTenant,
}

impl Default for LoopSynthConfig {
    fn default() -> Self {
        LoopSynthConfig { seed: 0x6c6f_6f70, conversations_per_day: 40, tenant: LoopTenant::Documented }
    }
}

/// How this tenant's report differs from what our declaration expects (Loop publishes no column
/// list). The typed rows are the same; only the report's spelling changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LoopTenant {
    /// The columns our declaration knows (and one custom field).
    #[default]
    Documented,
    /// `tags` as a JSON list of names instead of one comma-separated text (in a workbook, the
    /// list's JSON text in the cell).
    TagsAsList,
    /// Seven more undeclared columns ([`DRIFTED_COLUMNS`]), and `messageCount` with a fraction
    /// on every fourth conversation (an average, for this tenant): a value `Int64` cannot hold.
    Drifted,
}

/// The columns a [`LoopTenant::Drifted`] report adds: (JSON key, sheet header).
pub const DRIFTED_COLUMNS: &[(&str, &str)] = &[
    ("priority", "Priority"),
    ("language", "Language"),
    ("npsScore", "NPS Score"),
    ("slaBreached", "SLA Breached"),
    ("queueTimeSeconds", "Queue Time (Seconds)"),
    ("csatComment", "CSAT Comment"),
    ("reopenedAt", "Reopened At"),
];

/// What a [`LoopTenant::Drifted`] report says of a conversation beyond the documented columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Drifted {
    pub priority: &'static str,
    pub language: &'static str,
    pub nps_score: Option<i64>,
    pub sla_breached: bool,
    pub queue_time_seconds: f64,
    pub csat_comment: Option<String>,
    pub reopened_at: Option<DateTime<Utc>>,
    /// `messageCount` as this tenant sends it: the count, plus a half on every fourth conversation.
    pub message_count_sent: f64,
}

const INBOXES: &[&str] = &["Support", "Billing", "Sales, EMEA", "VIP \"Gold\""];
const CHANNELS: &[&str] = &["email", "chat", "whatsapp", "sms"];
const TAGS: &[&str] = &["refund", "bug", "urgent", "feedback", "delivery", "vip"];

/// A typed cell value of the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Time(DateTime<Utc>),
    /// A list of texts: an array in JSON, its JSON text in a workbook's cell.
    List(Vec<String>),
}

/// One row of the report (one conversation as of the report's day).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub conversation_id: String,
    pub subject: String,
    pub shared_inbox: &'static str,
    pub channel: &'static str,
    pub status: &'static str,
    pub assignee_email: Option<String>,
    pub customer_email: String,
    pub customer_name: String,
    pub tags: Vec<&'static str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub message_count: i64,
    pub comment_count: i64,
    pub satisfaction_score: Option<f64>,
    pub spam: bool,
    pub last_message: String,
    /// Not in any document: a custom field this tenant added. Lands in `_extra`.
    pub custom_region: &'static str,
    /// How the report spells the row.
    pub tenant: LoopTenant,
    /// With [`LoopTenant::Drifted`]: the tenant's further columns.
    pub drifted: Option<Drifted>,
}

/// The report's columns for a tenant: (JSON key, sheet header).
pub fn columns(tenant: LoopTenant) -> Vec<(&'static str, &'static str)> {
    let mut all = COLUMNS.to_vec();
    if tenant == LoopTenant::Drifted {
        all.extend_from_slice(DRIFTED_COLUMNS);
    }
    all
}

/// The report's documented columns: (JSON key, sheet header).
pub const COLUMNS: &[(&str, &str)] = &[
    ("conversationId", "Conversation ID"),
    ("subject", "Subject"),
    ("sharedInbox", "Shared Inbox"),
    ("channel", "Channel"),
    ("status", "Status"),
    ("assigneeEmail", "Assignee Email"),
    ("customerEmail", "Customer Email"),
    ("customerName", "Customer Name"),
    ("tags", "Tags"),
    ("createdAt", "Created At"),
    ("updatedAt", "Updated At"),
    ("firstResponseAt", "First Response At"),
    ("resolvedAt", "Resolved At"),
    ("firstResponseTimeSeconds", "First Response Time (Seconds)"),
    ("resolutionTimeSeconds", "Resolution Time (Seconds)"),
    ("messageCount", "Message Count"),
    ("commentCount", "Comment Count"),
    ("satisfactionScore", "Satisfaction Score"),
    ("spam", "Spam"),
    ("lastMessage", "Last Message"),
    ("customRegion", "Custom: Region"),
];

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// Conversation `n` created on `created`, as of its first report (`revision` 0) or its update
/// on the next day (`revision` 1).
fn conversation(config: LoopSynthConfig, created: NaiveDate, n: usize, revision: u32) -> ReportRow {
    let mut rng = Rng::derive(&[config.seed, created.num_days_from_ce() as u64, n as u64]);
    let conversation_id = uuid_like(&mut rng);
    let created_at = day_start(created) + Duration::seconds(rng.below(86_400) as i64);
    let first_response_at =
        rng.chance(80).then(|| created_at + Duration::seconds(rng.range(20, 6 * 3600) as i64));
    let customer_name = person_name(&mut rng);
    let customer_email = format!("customer{}@example.org", rng.below(100_000));
    let assignee_email = rng.chance(85).then(|| format!("agent{}@example.com", rng.below(30)));
    let tags: Vec<&'static str> = (0..rng.below(3)).map(|_| rng.pick(TAGS)).collect();
    let mut row = ReportRow {
        conversation_id,
        subject: chat_text(&mut rng),
        shared_inbox: rng.pick(INBOXES),
        channel: rng.pick(CHANNELS),
        status: "Open",
        assignee_email,
        customer_email,
        customer_name,
        tags,
        created_at,
        updated_at: created_at,
        first_response_at: first_response_at.filter(|t| t.date_naive() == created),
        resolved_at: None,
        message_count: rng.range(1, 12) as i64,
        comment_count: rng.below(4) as i64,
        satisfaction_score: None,
        spam: rng.chance(3),
        last_message: chat_text(&mut rng),
        custom_region: rng.pick(&["EU", "US", "APAC"]),
        tenant: config.tenant,
        drifted: None,
    };
    if revision == 1 {
        let mut later = Rng::derive(&[config.seed, created.num_days_from_ce() as u64, n as u64, 1]);
        let updated_at = day_start(created.succ_opt().expect("a next day"))
            + Duration::seconds(later.below(86_400) as i64);
        row.updated_at = updated_at;
        row.status = "Resolved";
        row.resolved_at = Some(updated_at);
        row.first_response_at = row.first_response_at.or(Some(updated_at));
        row.message_count += later.range(1, 5) as i64;
        row.satisfaction_score = later.chance(60).then(|| later.range(10, 50) as f64 / 10.0);
        row.last_message = chat_text(&mut later);
    }
    if config.tenant == LoopTenant::Drifted {
        // Its own stream: the documented values stay what they are for every tenant.
        let mut d =
            Rng::derive(&[config.seed, created.num_days_from_ce() as u64, n as u64, 7, revision as u64]);
        let fraction = if n.is_multiple_of(4) { 0.5 } else { 0.0 };
        row.drifted = Some(Drifted {
            priority: d.pick(&["low", "normal", "high"]),
            language: d.pick(&["en", "da", "ja"]),
            nps_score: d.chance(70).then(|| d.range(0, 10) as i64),
            sla_breached: d.chance(15),
            queue_time_seconds: d.range(0, 4000) as f64 / 4.0,
            csat_comment: d.chance(50).then(|| chat_text(&mut d)),
            reopened_at: (revision == 1 && d.chance(30)).then(|| row.updated_at - Duration::seconds(60)),
            message_count_sent: row.message_count as f64 + fraction,
        });
    }
    row
}

/// Whether conversation `n` of `created` is updated (and reported again) on the next day.
fn updated_next_day(config: LoopSynthConfig, created: NaiveDate, n: usize) -> bool {
    Rng::derive(&[config.seed, created.num_days_from_ce() as u64, n as u64, 2]).chance(25)
}

/// The report of `day`: the conversations created that day, then those of the day before that
/// changed on it.
pub fn day_rows(config: LoopSynthConfig, day: NaiveDate) -> Vec<ReportRow> {
    let created = (0..config.conversations_per_day).map(|n| conversation(config, day, n, 0));
    let previous = day.pred_opt().expect("a previous day");
    let updated = (0..config.conversations_per_day)
        .filter(|n| updated_next_day(config, previous, *n))
        .map(|n| conversation(config, previous, n, 1));
    created.chain(updated).collect()
}

/// The report of `[start, end)`, whatever zone its bounds are midnights of: each conversation
/// created or updated in the range once, as it stood at the range's end — those created in it
/// first (by creation day, then number), then those only updated in it. For a UTC day this is
/// [`day_rows`].
pub fn report_rows(config: LoopSynthConfig, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<ReportRow> {
    let (Some(first), Some(last)) = (start.date_naive().pred_opt(), end.date_naive().succ_opt()) else {
        return Vec::new();
    };
    let inside = |t: DateTime<Utc>| start <= t && t < end;
    let mut created = Vec::new();
    let mut updated = Vec::new();
    for day in first.iter_days().take_while(|d| *d <= last) {
        for n in 0..config.conversations_per_day {
            let original = conversation(config, day, n, 0);
            let update = updated_next_day(config, day, n).then(|| conversation(config, day, n, 1));
            let update_inside = update.as_ref().is_some_and(|u| inside(u.updated_at));
            if inside(original.created_at) {
                match update {
                    Some(u) if u.updated_at < end => created.push(u),
                    _ => created.push(original),
                }
            } else if update_inside {
                updated.extend(update);
            }
        }
    }
    created.extend(updated);
    created
}

impl ReportRow {
    /// The row's cells in [`columns`] order for its tenant.
    pub fn cells(&self) -> Vec<Value> {
        let text = |s: &str| Value::Text(s.to_string());
        let time = |t: Option<DateTime<Utc>>| t.map_or(Value::Null, Value::Time);
        let seconds = |t: Option<DateTime<Utc>>| {
            t.map_or(Value::Null, |t| Value::Int((t - self.created_at).num_seconds()))
        };
        let mut cells = vec![
            text(&self.conversation_id),
            text(&self.subject),
            text(self.shared_inbox),
            text(self.channel),
            text(self.status),
            self.assignee_email.as_deref().map_or(Value::Null, text),
            text(&self.customer_email),
            text(&self.customer_name),
            if self.tenant == LoopTenant::TagsAsList {
                Value::List(self.tags.iter().map(|t| t.to_string()).collect())
            } else {
                text(&self.tags.join(", "))
            },
            Value::Time(self.created_at),
            Value::Time(self.updated_at),
            time(self.first_response_at),
            time(self.resolved_at),
            seconds(self.first_response_at),
            seconds(self.resolved_at),
            match &self.drifted {
                Some(d) if d.message_count_sent.fract() != 0.0 => Value::Float(d.message_count_sent),
                _ => Value::Int(self.message_count),
            },
            Value::Int(self.comment_count),
            self.satisfaction_score.map_or(Value::Null, Value::Float),
            Value::Bool(self.spam),
            text(&self.last_message),
            text(self.custom_region),
        ];
        if let Some(d) = &self.drifted {
            cells.extend([
                text(d.priority),
                text(d.language),
                d.nps_score.map_or(Value::Null, Value::Int),
                Value::Bool(d.sla_breached),
                Value::Float(d.queue_time_seconds),
                d.csat_comment.as_deref().map_or(Value::Null, text),
                d.reopened_at.map_or(Value::Null, Value::Time),
            ]);
        }
        cells
    }
}

/// The report as a JSON array: camelCase keys, RFC 3339 times with `zone`'s offset, `null` for
/// no value.
pub fn render_json(rows: &[ReportRow], zone: chrono_tz::Tz) -> Vec<u8> {
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let object = columns(row.tenant).into_iter().zip(row.cells()).map(|((key, _), value)| {
                let json = match value {
                    Value::Null => serde_json::Value::Null,
                    Value::Text(t) => t.into(),
                    Value::Int(i) => i.into(),
                    Value::Float(f) => f.into(),
                    Value::Bool(b) => b.into(),
                    Value::Time(t) => {
                        t.with_timezone(&zone).format("%Y-%m-%dT%H:%M:%S%:z").to_string().into()
                    }
                    Value::List(items) => items.into(),
                };
                (key.to_string(), json)
            });
            serde_json::Value::Object(object.collect())
        })
        .collect();
    serde_json::to_vec(&records).expect("JSON serialises")
}

/// The id Loop gives a tag (the emulator's tenant: `tag-<name>`).
pub fn tag_id(tag: &str) -> String {
    format!("tag-{tag}")
}

/// The id Loop gives a shared inbox (the emulator's tenant: `inbox-<n>`).
pub fn inbox_id(inbox: &str) -> String {
    format!("inbox-{}", INBOXES.iter().position(|i| *i == inbox).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_of_a_utc_day_is_that_days_rows_and_a_zoned_day_reports_each_conversation_once() {
        let config = LoopSynthConfig::default();
        let day = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap();
        let window = crate::window::Window::new(day);
        assert_eq!(report_rows(config, window.start(), window.end()), day_rows(config, day));
        let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let (start, end) = (window.start_in(tokyo), window.end_in(tokyo));
        let rows = report_rows(config, start, end);
        let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.conversation_id.as_str()).collect();
        assert_eq!(ids.len(), rows.len(), "each conversation once");
        let inside = |t: DateTime<Utc>| start <= t && t < end;
        assert!(rows.iter().all(|r| inside(r.created_at) || inside(r.updated_at)));
        assert!(rows.iter().all(|r| r.updated_at < end), "as it stood at the range's end");
    }
}
