//! The deterministic synthetic Dixa tenant behind the emulator, and the tests' expected data.
//!
//! The same `(seed, scale)` always gives the same conversations and messages, so a test asks the
//! generator which records a window must hold instead of storing fixtures. Records are
//! `serde_json::Value`s exactly as the API sends them (epoch-millisecond numbers, nested lists
//! and objects, fields absent or `null`), generated lazily one conversation at a time, so a
//! gigabyte response costs no memory.
//!
//! What makes it hard on a loader, on purpose: the first conversation of every day is created at
//! exactly 00:00:00.000 and another one is last updated at exactly midnight (each must land in
//! exactly one window); a quarter of the conversations are updated again the next day (the
//! current table must keep the later state); every documented field appears, including the
//! deprecated ones; `ratings`, `custom_fields` (values both a string and a list of strings) and
//! `tags_info` objects are nested; message text has commas, quotes, CR/LF, emoji and CJK, and
//! about 1 % of messages are over 10 KB; and, unless turned off, some records carry fields the
//! document does not list (at the top level and inside ratings), as the live API does.
//!
//! Versions model a tenant observed over time: an export answers with each conversation's state
//! as of the end of the requested range (its latest update before then).

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::sources::synthetic::{chat_text, person_name, uuid_like, Rng};

/// Size and seed of the synthetic tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DixaSynthConfig {
    pub seed: u64,
    /// Mean conversations created per day (the actual count varies ±10 % by day).
    pub conversations_per_day: usize,
    /// Include fields the document does not list (they must land in `_extra`).
    pub undocumented_fields: bool,
    /// Send what Dixa's own Exports reference describes where our declaration follows the public
    /// connectors: `tags_info` as a list of tag names (not objects), and the durations as
    /// whole-valued numbers with a fraction (`5400.0`).
    pub reference_shapes: bool,
}

impl Default for DixaSynthConfig {
    fn default() -> Self {
        DixaSynthConfig {
            seed: 7,
            conversations_per_day: 40,
            undocumented_fields: true,
            reference_shapes: false,
        }
    }
}

/// A duration as this tenant spells it: an integer, or (reference shapes) a whole float.
fn duration_value(config: &DixaSynthConfig, seconds: i64) -> Value {
    if config.reference_shapes {
        json!(seconds as f64)
    } else {
        json!(seconds)
    }
}

const DAY_MS: i64 = 86_400_000;
const STREAM_DAY: u64 = 11;
const STREAM_CONVERSATION: u64 = 12;
const STREAM_VERSION: u64 = 13;
const STREAM_MESSAGE: u64 = 14;

const CHANNELS: &[&str] = &["email", "widgetchat", "pstnphone", "voicemail", "contactform", "messenger"];
const QUEUES: &[(&str, &str)] = &[
    ("7d0c1a52-3f4e-4c53-9d1e-5a1d0d7c9a01", "Billing"),
    ("1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b", "Technical support"),
    ("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "Returns, refunds & exchanges"),
];
const AGENTS: &[(&str, &str)] = &[
    ("a1a1a1a1-0000-4000-8000-000000000001", "Søren Kierkegaard"),
    ("a1a1a1a1-0000-4000-8000-000000000002", "Mei Chen"),
    ("a1a1a1a1-0000-4000-8000-000000000003", "José O'Brien"),
    ("a1a1a1a1-0000-4000-8000-000000000004", "Aiko \"Ace\" Tanaka"),
];
const TAGS: &[(&str, &str)] =
    &[("t-001", "refund"), ("t-002", "vip, priority"), ("t-003", "bug 🐛"), ("t-004", "配送")];
const STATUSES: &[&str] = &["open", "pending", "awaitingpending"];
const COUNTRIES: &[&str] = &["DK", "CZ", "JP", "US", "DE"];

fn epoch_day(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days()
}

fn day_start_ms(date: NaiveDate) -> i64 {
    epoch_day(date) * DAY_MS
}

fn date_of_ms(ms: i64) -> NaiveDate {
    Utc.timestamp_millis_opt(ms.div_euclid(DAY_MS) * DAY_MS).single().expect("in range").date_naive()
}

/// One conversation of the tenant: when it was created and when it was updated.
#[derive(Debug, Clone)]
pub struct ConversationSeed {
    pub id: i64,
    pub created_ms: i64,
    /// `updated_at` of each version, oldest first.
    pub versions: Vec<i64>,
    /// `created_at` of each message, oldest first.
    pub messages: Vec<i64>,
}

/// The conversations created on `date`.
pub fn day_plan(config: &DixaSynthConfig, date: NaiveDate) -> Vec<ConversationSeed> {
    let day = epoch_day(date);
    let start = day * DAY_MS;
    let mut rng = Rng::derive(&[config.seed, STREAM_DAY, day as u64]);
    let mean = config.conversations_per_day as u64;
    let count = if mean == 0 { 0 } else { mean - mean / 10 + rng.below(mean / 5 + 1) } as usize;
    (0..count)
        .map(|i| {
            let mut rng = Rng::derive(&[config.seed, STREAM_CONVERSATION, day as u64, i as u64]);
            let created_ms = match i {
                0 => start,                  // exactly at midnight
                1 => start + DAY_MS - 1,     // the last millisecond of the day
                2 => start + 23 * 3_600_000, // updated exactly at the next midnight (below)
                _ => start + rng.below(DAY_MS as u64) as i64,
            };
            let first_update =
                if i == 2 { start + DAY_MS } else { created_ms + rng.below(3 * 3_600_000) as i64 };
            let mut versions = vec![first_update];
            if rng.chance(25) {
                versions.push(first_update + DAY_MS + rng.below(6 * 3_600_000) as i64);
            }
            let mut messages = Vec::new();
            let mut at = created_ms;
            for _ in 0..rng.range(1, 6) {
                messages.push(at);
                at += rng.range(30_000, 2 * 3_600_000) as i64;
            }
            // Conversation ids are Dixa's int32 csids: unique per day and index.
            let id = (day - 18_262) * 100_000 + i as i64 + 1;
            ConversationSeed { id, created_ms, versions, messages }
        })
        .collect()
}

/// Strict bounds, as the API's `*_after` / `*_before` filters: `after < t < before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub after: i64,
    pub before: i64,
}

impl Range {
    pub fn contains(&self, ms: i64) -> bool {
        self.after < ms && ms < self.before
    }
}

/// The filters of `GET /v1/conversation_export`, all applied together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub created: Option<Range>,
    pub updated: Option<Range>,
    pub closed: Option<Range>,
    pub last_message_created: Option<Range>,
    pub csids: Option<Vec<i64>>,
}

impl ConversationFilter {
    fn ranges(&self) -> impl Iterator<Item = Range> + '_ {
        [self.created, self.updated, self.closed, self.last_message_created].into_iter().flatten()
    }
}

fn pick_pair<'a>(rng: &mut Rng, items: &'a [(&'a str, &'a str)]) -> (&'a str, &'a str) {
    items[rng.below(items.len() as u64) as usize]
}

/// A chat message (see [`chat_text`]); about 1 % of them long, over 10 KB.
fn message_text(rng: &mut Rng) -> String {
    if !rng.chance(1) {
        return chat_text(rng);
    }
    let parts: Vec<String> = (0..200).map(|_| chat_text(rng)).collect();
    parts.join("\n")
}

fn email_of(name: &str, rng: &mut Rng) -> String {
    let local: String =
        name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    format!("{local}.{}@example.com", rng.below(1000))
}

/// A conversation's state at its version `version` (0-based).
pub fn conversation_record(config: &DixaSynthConfig, seed: &ConversationSeed, version: usize) -> Value {
    let mut rng = Rng::derive(&[config.seed, STREAM_CONVERSATION, seed.id as u64]);
    let channel = rng.pick(CHANNELS);
    let requester = person_name(&mut rng);
    let (queue_id, queue_name) = pick_pair(&mut rng, QUEUES);
    let (agent_id, agent_name) = pick_pair(&mut rng, AGENTS);
    let mut v = Rng::derive(&[config.seed, STREAM_VERSION, seed.id as u64, version as u64]);
    let updated = seed.versions[version];
    let last = version + 1 == seed.versions.len() && seed.versions.len() > 1;
    let closed = last || v.chance(40);
    let queued = seed.created_ms + 1_000;
    let assigned = queued + v.range(1_000, 600_000) as i64;
    let closed_at = closed.then(|| updated - v.below(60_000) as i64);
    let mut r = Map::new();
    r.insert("id".into(), json!(seed.id));
    r.insert("created_at".into(), json!(seed.created_ms));
    r.insert("initial_channel".into(), json!(channel));
    r.insert("requester_id".into(), json!(uuid_like(&mut rng)));
    r.insert("requester_name".into(), json!(requester));
    r.insert("requester_email".into(), json!(email_of(&requester, &mut rng)));
    r.insert(
        "requester_additional_emails".into(),
        if rng.chance(20) { json!([email_of(&requester, &mut rng)]) } else { json!([]) },
    );
    r.insert("requester_phone_number".into(), json!(format!("+45 {:08}", rng.below(100_000_000))));
    r.insert("requester_additional_phone_numbers".into(), json!([]));
    r.insert("queued_at".into(), json!(queued));
    r.insert("queue_id".into(), json!(queue_id));
    r.insert("queue_name".into(), json!(queue_name));
    r.insert("closed_at".into(), closed_at.map_or(Value::Null, |c| json!(c)));
    let mut ratings = Vec::new();
    if closed && v.chance(60) {
        let mut rating = json!({
            "id": uuid_like(&mut v),
            "rating_score": v.range(1, 5),
            "rating_message": message_text(&mut v),
            "rating_type": "Csat",
            "rating_status": "Rated",
            "rating_language": v.pick(&["en", "da", "ja"]),
            "user_id": r["requester_id"].clone(),
            "agent_id": agent_id,
            "rating_created_timestamp": updated - 5_000,
            "rating_offered_timestamp": updated - 4_000,
            "rating_rated_timestamp": updated - 1_000,
            "rating_modified_timestamp": updated - 1_000,
            "rating_scheduled_timestamp": null,
        });
        if config.undocumented_fields && seed.id % 3 == 0 {
            rating["rating_comment_sentiment"] = json!("positive");
        }
        ratings.push(rating);
        if v.chance(30) {
            ratings.push(json!({
                "id": uuid_like(&mut v),
                "rating_score": v.range(0, 1),
                "rating_type": "ThumbsUpOrDown",
                "rating_status": "Scheduled",
                "rating_scheduled_timestamp": updated - 3_000,
                "rating_scheduled_for_timestamp": updated + 3_600_000,
                "rating_unscheduled_timestamp": null,
                "rating_cancelled_timestamp": updated - 2_000,
            }));
        }
    }
    r.insert("ratings".into(), Value::Array(ratings));
    r.insert("direction".into(), json!(if rng.chance(85) { "inbound" } else { "outbound" }));
    r.insert("assigned_at".into(), json!(assigned));
    r.insert("assignee_id".into(), json!(agent_id));
    r.insert("assignee_name".into(), json!(agent_name));
    r.insert("assignee_email".into(), json!(email_of(agent_name, &mut rng)));
    if rng.chance(50) {
        r.insert("assignee_phone_number".into(), json!(format!("+45 {:08}", rng.below(100_000_000))));
    }
    match channel {
        "pstnphone" | "voicemail" => {
            r.insert("to_provisioned_phone_number_id".into(), json!("+4570707070"));
            r.insert("to_provisioned_phone_number_name".into(), json!("Hotline DK"));
            r.insert("from_provisioned_phone_number_id".into(), json!("+4570707071"));
            r.insert("from_provisioned_phone_number_name".into(), json!("Outbound DK"));
            r.insert("transferee_number".into(), json!("+4512345678"));
        }
        "email" | "contactform" => {
            r.insert("dixa_email_integration_id".into(), json!("support@example.com"));
            r.insert("dixa_email_integration_sender_name".into(), json!("Support, \"Example\" Inc."));
            r.insert("forwarding_email".into(), json!("fwd@example.com"));
            r.insert("subject".into(), json!(message_text(&mut rng)));
        }
        "messenger" => {
            r.insert("facebook_page_id".into(), json!("1029384756"));
            r.insert("facebook_page_name".into(), json!("Example DK"));
        }
        _ => {
            r.insert("widget_id".into(), json!("5b8c7e3a-0d6f-4b1e-9a2c-3f4d5e6a7b8c"));
            r.insert("widget_name".into(), json!("Web chat 💬"));
        }
    }
    let tag_count = v.below(3) as usize;
    let tags: Vec<(&str, &str)> = (0..tag_count).map(|i| TAGS[(seed.id as usize + i) % TAGS.len()]).collect();
    r.insert("tags".into(), json!(tags.iter().map(|t| t.1).collect::<Vec<_>>()));
    let tags_info = if config.reference_shapes {
        tags.iter().map(|(_, name)| json!(name)).collect()
    } else {
        tags.iter()
            .map(|(id, name)| json!({"id": id, "name": name, "is_deactivated": *id == "t-004"}))
            .collect()
    };
    r.insert("tags_info".into(), Value::Array(tags_info));
    r.insert(
        "conversation_wrapup_notes".into(),
        if closed { json!([message_text(&mut v)]) } else { json!([]) },
    );
    if v.chance(20) {
        r.insert("transferee_name".into(), json!(queue_name));
        r.insert("transfer_time".into(), json!(assigned + 30_000));
    }
    r.insert("originating_country".into(), json!(rng.pick(COUNTRIES)));
    r.insert("updated_at".into(), json!(updated));
    let last_message =
        seed.messages.iter().copied().filter(|m| *m <= updated).max().unwrap_or(seed.created_ms);
    r.insert("last_message_created_at".into(), json!(last_message));
    r.insert("status".into(), json!(if closed { "closed" } else { v.pick(STATUSES) }));
    if seed.id % 17 == 0 {
        r.insert("anonymized_at".into(), json!(updated - 500));
    }
    let mut custom = vec![json!({
        "attribute_id": "ca-1", "identifier": "order_number", "name": "Order number",
        "value": format!("A-{}", seed.id), "data_type": "Text", "archived": false
    })];
    if rng.chance(50) {
        custom.push(json!({
            "attribute_id": "ca-2", "identifier": "products", "name": "Products",
            "value": ["Phone", "Case, leather"], "data_type": "Select", "archived": seed.id % 2 == 0
        }));
    }
    r.insert("custom_fields".into(), Value::Array(custom));
    r.insert("exports_handling_duration".into(), duration_value(config, v.range(0, 7200) as i64));
    if seed.id % 11 == 0 {
        r.insert("link_type".into(), json!("follow_up"));
        r.insert("linked_at".into(), json!(seed.created_ms + 2_000));
        r.insert("linked_to".into(), json!(seed.id - 1));
    }
    if closed {
        r.insert("rating_score".into(), json!(v.range(0, 1)));
        r.insert("rating_message".into(), json!("Thanks, all good 👍"));
        r.insert(
            "total_duration".into(),
            duration_value(config, (closed_at.unwrap_or(updated) - seed.created_ms) / 1000),
        );
        r.insert(
            "handling_duration".into(),
            duration_value(config, (closed_at.unwrap_or(updated) - assigned) / 1000),
        );
    } else {
        r.insert("rating_score".into(), Value::Null);
    }
    if config.undocumented_fields && seed.id % 4 == 0 {
        r.insert("sla_policy".into(), json!({"name": "Gold", "breached": seed.id % 8 == 0}));
    }
    Value::Object(r)
}

/// The message `index` of a conversation.
pub fn message_record(config: &DixaSynthConfig, seed: &ConversationSeed, index: usize) -> Value {
    let mut conv = Rng::derive(&[config.seed, STREAM_CONVERSATION, seed.id as u64]);
    let channel = conv.pick(CHANNELS);
    let requester = person_name(&mut conv);
    let mut rng = Rng::derive(&[config.seed, STREAM_MESSAGE, seed.id as u64, index as u64]);
    let inbound = index.is_multiple_of(2);
    let author = if inbound { requester } else { AGENTS[seed.id as usize % AGENTS.len()].1.to_string() };
    let mut m = Map::new();
    m.insert("id".into(), json!(uuid_like(&mut rng)));
    m.insert("csid".into(), json!(seed.id));
    m.insert("created_at".into(), json!(seed.messages[index]));
    m.insert("initial_channel".into(), json!(channel));
    m.insert("author_name".into(), json!(author));
    m.insert("author_email".into(), json!(email_of(&author, &mut rng)));
    m.insert("direction".into(), json!(if inbound { "inbound" } else { "outbound" }));
    match channel {
        "pstnphone" => {
            m.insert("from_phone_number".into(), json!("+4512345678"));
            m.insert("to_phone_number".into(), json!("+4570707070"));
            m.insert("duration".into(), json!(rng.range(5, 1800)));
            m.insert(
                "recording_url".into(),
                json!(format!("https://recordings.example.com/{}.mp3", uuid_like(&mut rng))),
            );
        }
        "voicemail" => {
            m.insert("from_phone_number".into(), json!("+4512345678"));
            m.insert("to_phone_number".into(), json!("+4570707070"));
            m.insert("duration".into(), json!(rng.range(5, 120)));
            m.insert(
                "voicemail_url".into(),
                json!(format!("https://voicemail.example.com/{}.wav", uuid_like(&mut rng))),
            );
        }
        "email" => {
            m.insert("text".into(), json!(message_text(&mut rng)));
            m.insert("to".into(), json!(["support@example.com"]));
            m.insert("from".into(), json!(email_of(&author, &mut rng)));
            m.insert(
                "cc".into(),
                if rng.chance(30) {
                    json!(["boss@example.com", "team, sales <sales@example.com>"])
                } else {
                    json!([])
                },
            );
            m.insert("bcc".into(), json!([]));
            m.insert(
                "attached_files".into(),
                if rng.chance(25) {
                    json!([format!("https://files.example.com/{}/invoice.pdf", uuid_like(&mut rng))])
                } else {
                    json!([])
                },
            );
        }
        "widgetchat" => {
            m.insert("text".into(), json!(message_text(&mut rng)));
            m.insert("is_automated_message".into(), json!(index == 0 && rng.chance(50)));
            if index == 0 {
                m.insert("chat_input_question".into(), json!("How can we help?"));
                m.insert("chat_input_answer".into(), json!("None of the above"));
                m.insert("chat_menu_text".into(), json!("Please input your order number."));
            }
        }
        _ => {
            // Contact form and Messenger: free text plus a free-form submission object.
            m.insert("text".into(), json!(message_text(&mut rng)));
            m.insert(
                "form_submission".into(),
                json!({"name": author, "email": email_of(&author, &mut rng), "phone": "+4512345678",
                       "answers": {"topic": "Returns", "consent": true, "rating": 4}}),
            );
        }
    }
    Value::Object(m)
}

/// The conversations `GET /v1/conversation_export` answers for `filter`, each in its state as
/// of the end of the requested range.
pub fn conversations(config: DixaSynthConfig, filter: ConversationFilter) -> impl Iterator<Item = Value> {
    let as_of = filter.ranges().map(|r| r.before).min().unwrap_or(i64::MAX);
    let (first, last) =
        match (filter.ranges().map(|r| r.after).max(), filter.ranges().map(|r| r.before).min()) {
            // Created at most ~2 days before its last update or close.
            (Some(after), Some(before)) => {
                (date_of_ms(after.max(0)) - chrono::Days::new(3), date_of_ms(before))
            }
            _ => {
                let ids = filter.csids.clone().unwrap_or_default();
                let day = |id: i64| {
                    NaiveDate::from_ymd_opt(2020, 1, 1).expect("date")
                        + chrono::Days::new((id / 100_000) as u64)
                };
                let first = ids.iter().copied().map(day).min().unwrap_or(NaiveDate::MAX);
                let last = ids.iter().copied().map(day).max().unwrap_or(NaiveDate::MIN);
                (first, last)
            }
        };
    first.iter_days().take_while(move |d| *d <= last).flat_map(move |date| {
        let filter = filter.clone();
        day_plan(&config, date).into_iter().filter_map(move |seed| {
            if filter.csids.as_ref().is_some_and(|ids| !ids.contains(&seed.id)) {
                return None;
            }
            let version = seed.versions.iter().rposition(|u| *u < as_of).unwrap_or(0);
            let record = conversation_record(&config, &seed, version);
            let ms = |field: &str| record.get(field).and_then(Value::as_i64);
            let keep = |range: Option<Range>, field: &str| match range {
                None => true,
                Some(range) => ms(field).is_some_and(|t| range.contains(t)),
            };
            (keep(filter.created, "created_at")
                && keep(filter.updated, "updated_at")
                && keep(filter.closed, "closed_at")
                && keep(filter.last_message_created, "last_message_created_at"))
            .then_some(record)
        })
    })
}

/// The messages `GET /v1/message_export` answers for `created` (strict bounds).
pub fn messages(config: DixaSynthConfig, created: Range) -> impl Iterator<Item = Value> {
    // Messages come at most ~12 h after their conversation was created.
    let first = date_of_ms(created.after.max(0)) - chrono::Days::new(1);
    let last = date_of_ms(created.before);
    first.iter_days().take_while(move |d| *d <= last).flat_map(move |date| {
        day_plan(&config, date).into_iter().flat_map(move |seed| {
            (0..seed.messages.len())
                .filter(|&i| created.contains(seed.messages[i]))
                .map(|i| message_record(&config, &seed, i))
                .collect::<Vec<_>>()
        })
    })
}

/// The window `[day 00:00, next day 00:00)` as the API's strict bounds: `after` one millisecond
/// before midnight, `before` at the next midnight, so a record stamped exactly at midnight
/// belongs to exactly one window.
pub fn day_range(date: NaiveDate) -> Range {
    let start = day_start_ms(date);
    Range { after: start - 1, before: start + DAY_MS }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn generation_is_deterministic() {
        let config = DixaSynthConfig::default();
        let filter = ConversationFilter { updated: Some(day_range(day("2024-03-02"))), ..Default::default() };
        let a: Vec<Value> = conversations(config, filter.clone()).collect();
        let b: Vec<Value> = conversations(config, filter).collect();
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }

    #[test]
    fn midnight_records_land_in_exactly_one_window() {
        let config = DixaSynthConfig::default();
        let days: Vec<NaiveDate> = day("2024-03-01").iter_days().take(4).collect();
        let mut seen_conversations = std::collections::BTreeMap::new();
        let mut seen_messages = std::collections::BTreeSet::new();
        for d in &days {
            for c in conversations(
                config,
                ConversationFilter { updated: Some(day_range(*d)), ..Default::default() },
            ) {
                let key = (c["id"].as_i64().unwrap(), c["updated_at"].as_i64().unwrap());
                assert!(seen_conversations.insert(key, *d).is_none(), "{key:?} twice");
            }
            for m in messages(config, day_range(*d)) {
                assert!(seen_messages.insert(m["id"].as_str().unwrap().to_string()), "message twice");
            }
        }
        // The conversation created at midnight of day 2 is in the messages of day 2 exactly.
        let midnight = day_start_ms(days[1]);
        let first = &day_plan(&config, days[1])[0];
        assert_eq!(first.created_ms, midnight);
        assert_eq!(first.messages[0], midnight);
        // The one updated exactly at the midnight ending day 2 is in day 3's window.
        let third = &day_plan(&config, days[1])[2];
        assert_eq!(third.versions[0], midnight + DAY_MS);
        assert_eq!(seen_conversations.get(&(third.id, midnight + DAY_MS)), Some(&days[2]));
    }

    #[test]
    fn some_conversations_are_updated_again_and_texts_are_hard() {
        let config = DixaSynthConfig::default();
        let seeds = day_plan(&config, day("2024-03-01"));
        assert!(seeds.iter().any(|s| s.versions.len() == 2));
        let texts: Vec<String> = day("2024-03-01")
            .iter_days()
            .take(10)
            .flat_map(|d| messages(config, day_range(d)))
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect();
        assert!(texts.iter().any(|t| t.len() > 10_000), "about 1 % over 10 KB");
        assert!(texts.iter().any(|t| t.contains("\r\n")) && texts.iter().any(|t| t.contains('"')));
    }
}
