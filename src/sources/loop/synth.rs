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
}

impl Default for LoopSynthConfig {
    fn default() -> Self {
        LoopSynthConfig { seed: 0x6c6f_6f70, conversations_per_day: 40 }
    }
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
}

/// The report's columns: (JSON key, sheet header).
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

impl ReportRow {
    /// The row's cells in [`COLUMNS`] order.
    pub fn cells(&self) -> Vec<Value> {
        let text = |s: &str| Value::Text(s.to_string());
        let time = |t: Option<DateTime<Utc>>| t.map_or(Value::Null, Value::Time);
        let seconds = |t: Option<DateTime<Utc>>| {
            t.map_or(Value::Null, |t| Value::Int((t - self.created_at).num_seconds()))
        };
        vec![
            text(&self.conversation_id),
            text(&self.subject),
            text(self.shared_inbox),
            text(self.channel),
            text(self.status),
            self.assignee_email.as_deref().map_or(Value::Null, text),
            text(&self.customer_email),
            text(&self.customer_name),
            text(&self.tags.join(", ")),
            Value::Time(self.created_at),
            Value::Time(self.updated_at),
            time(self.first_response_at),
            time(self.resolved_at),
            seconds(self.first_response_at),
            seconds(self.resolved_at),
            Value::Int(self.message_count),
            Value::Int(self.comment_count),
            self.satisfaction_score.map_or(Value::Null, Value::Float),
            Value::Bool(self.spam),
            text(&self.last_message),
            text(self.custom_region),
        ]
    }
}

/// The report as a JSON array: camelCase keys, RFC 3339 times, `null` for no value.
pub fn render_json(rows: &[ReportRow]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let object = COLUMNS.iter().zip(row.cells()).map(|((key, _), value)| {
                let json = match value {
                    Value::Null => serde_json::Value::Null,
                    Value::Text(t) => t.into(),
                    Value::Int(i) => i.into(),
                    Value::Float(f) => f.into(),
                    Value::Bool(b) => b.into(),
                    Value::Time(t) => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string().into(),
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
