//! Deterministic, realistic synthetic Salted CX data: what the emulator serves and what tests
//! and benchmarks compare against.
//!
//! The same `(seed, date, scale)` always gives byte-identical CSV, so a test can regenerate the
//! expected rows instead of storing fixtures. The data is built to be hard on a loader: quoted
//! text with commas, doubled quotes, CR/LF and emoji/CJK inside `turn.content`, empty fields in
//! every column family, three timestamp spellings (`Z`, `+01:00` offsets, `YYYY-MM-DD HH:MM:SS.fff`),
//! 10–30 turns per engagement, and customers/agents that repeat across days.
//! Generation streams row by row into any `Write`, so a multi-gigabyte file costs no memory.

use std::io::{self, Write};

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Size and seed of the synthetic tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthConfig {
    pub seed: u64,
    /// Mean engagements per day (the actual count varies ±10 % by day).
    pub engagements_per_day: usize,
    pub customers: usize,
    pub agents: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { seed: 42, engagements_per_day: 120, customers: 2_000, agents: 40 }
    }
}

pub use crate::sources::synthetic::Rng;
use crate::sources::synthetic::{chat_text, person_name, uuid_like};

const STREAM_DAY: u64 = 1;
const STREAM_ENGAGEMENT: u64 = 2;
const STREAM_TURNS: u64 = 3;
const STREAM_REVIEWS: u64 = 4;
const STREAM_CUSTOMER: u64 = 5;
const STREAM_AGENT: u64 = 6;

fn day_number(date: NaiveDate) -> u64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as u64
}

/// The skeleton of one engagement; everything else about it is derived from its seed.
#[derive(Debug, Clone)]
pub struct EngagementSeed {
    pub index: usize,
    pub pid: String,
    pub customer: usize,
    pub agent: usize,
    pub start: DateTime<Utc>,
    pub turns: usize,
    pub review_questions: usize,
}

/// The engagements of one day, optionally only those of one customer.
pub fn day_plan(config: &SynthConfig, date: NaiveDate, only_customer: Option<usize>) -> Vec<EngagementSeed> {
    let day = day_number(date);
    let mut rng = Rng::derive(&[config.seed, STREAM_DAY, day]);
    let spread = (config.engagements_per_day / 10).max(1) as u64;
    let count = config.engagements_per_day as u64 - spread + rng.below(2 * spread + 1);
    let day_start = date.and_hms_opt(0, 0, 0).expect("valid").and_utc();
    (0..count as usize)
        .map(|index| {
            let mut rng = Rng::derive(&[config.seed, STREAM_ENGAGEMENT, day, index as u64]);
            let pid = uuid_like(&mut rng);
            let customer = rng.below(config.customers as u64) as usize;
            let agent = rng.below(config.agents as u64) as usize;
            // Leave an hour at the end of the day so the engagement ends within the window.
            let start = day_start + Duration::milliseconds(rng.below(23 * 3_600_000) as i64);
            let turns = rng.range(10, 30) as usize;
            let review_questions = if rng.chance(30) { rng.range(3, 5) as usize } else { 0 };
            EngagementSeed { index, pid, customer, agent, start, turns, review_questions }
        })
        .filter(|e| only_customer.is_none_or(|c| c == e.customer))
        .collect()
}

/// A contact the emulator can resolve: its email and phone point at one customer.
pub fn customer_email(index: usize) -> String {
    format!("customer{index:05}@example.com")
}

pub fn customer_phone(index: usize) -> String {
    format!("+42077{index:07}")
}

/// Resolves `--contact` the way the emulator's tenant does.
pub fn customer_for_contact(config: &SynthConfig, contact: &str) -> Option<usize> {
    let contact = contact.trim();
    let index =
        if let Some(local) = contact.strip_prefix("customer").and_then(|r| r.strip_suffix("@example.com")) {
            local.parse::<usize>().ok()?
        } else if let Some(number) = contact.strip_prefix("+42077") {
            number.parse::<usize>().ok()?
        } else {
            return None;
        };
    (index < config.customers).then_some(index)
}

fn ts_z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn ts_offset(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono::FixedOffset::east_opt(3600).expect("valid"))
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn ts_sql(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

fn maybe(rng: &mut Rng, percent_present: u64, value: impl FnOnce(&mut Rng) -> String) -> String {
    if rng.chance(percent_present) {
        value(rng)
    } else {
        String::new()
    }
}

const CHANNELS: &[(&str, &str)] =
    &[("CHAT", "Web chat"), ("EMAIL", "Support inbox"), ("VOICE", "Hotline CZ"), ("MESSENGER", "WhatsApp")];
const QUEUES: &[&str] = &["Billing", "Technical support", "Sales", "Retention", "VIP"];
const TEAMS: &[&str] = &["Team Alpha", "Team Beta", "Night shift", "Prague 1"];
const LANGUAGES: &[&str] = &["en", "cs", "de", "ja", "es"];
fn engagement_row(config: &SynthConfig, date: NaiveDate, e: &EngagementSeed) -> Vec<String> {
    let mut rng = Rng::derive(&[config.seed, STREAM_ENGAGEMENT, day_number(date), e.index as u64, 1]);
    let (channel_type, channel) = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
    let total_ms = rng.range(30_000, 3_000_000);
    let end = e.start + Duration::milliseconds(total_ms as i64);
    let conversation_start = e.start - Duration::milliseconds(rng.below(600_000) as i64);
    let conversation_id = format!("conv-{}-{}", day_number(date), e.index / 2);
    let engagements_in_conversation = rng.range(1, 3);
    let score = |rng: &mut Rng| maybe(rng, 85, |r| r.score(0.0, 1.0));
    let mut row = vec![
        e.pid.clone(),
        maybe(&mut rng, 70, |r| format!("EXT-{}", r.below(1_000_000))),
        format!("{channel_type} {}", e.index),
        format!("https://app.salted.cx/engagements/{}", e.pid),
        agent_pid(config, e.agent),
        agent_name(config, e.agent),
        customer_pid(config, e.customer),
        customer_name(config, e.customer),
        ts_offset(conversation_start),
        ts_z(e.start),
        ts_z(end),
        conversation_id.clone(),
        maybe(&mut rng, 50, |_| format!("ext-{conversation_id}")),
        channel_type.to_string(),
        rng.pick(&["INBOUND", "OUTBOUND"]).to_string(),
        rng.pick(&["CLOSED", "RESOLVED", "ABANDONED"]).to_string(),
        rng.pick(&["CONVERSATION", "CALLBACK", "TRANSFER"]).to_string(),
        rng.pick(&["SUCCESS", "FAILURE", "NEUTRAL"]).to_string(),
        maybe(&mut rng, 60, |r| r.pick(&["WITHIN_SLA", "BREACHED"]).to_string()),
        rng.pick(&["AGENT", "CUSTOMER", "SYSTEM"]).to_string(),
        rng.pick(&["CUSTOMER", "AGENT"]).to_string(),
        maybe(&mut rng, 70, |r| {
            r.pick(&["Resolved on first contact", "Escalated", "Follow-up needed"]).to_string()
        }),
        channel.to_string(),
        rng.pick(QUEUES).to_string(),
        agent_team(config, e.agent).to_string(),
        rng.pick(&["Customer care", "Sales", "Back office"]).to_string(),
        maybe(&mut rng, 80, |r| r.pick(&["Refund issued", "Plan changed", "Information given"]).to_string()),
        maybe(&mut rng, 80, |r| r.pick(&["Billing", "Product", "Other"]).to_string()),
        maybe(&mut rng, 75, |r| {
            r.pick(&["Invoice question", "Delivery delay", "Login problem", "Cancellation"]).to_string()
        }),
        maybe(&mut rng, 75, |r| r.pick(&["Billing", "Logistics", "Account"]).to_string()),
        maybe(&mut rng, 40, |r| format!("Case #{}", r.below(100_000))),
        rng.pick(&["Genesys", "Zendesk", "Salesforce", "Daktela"]).to_string(),
        rng.pick(&["web", "app", "phone"]).to_string(),
        rng.pick(LANGUAGES).to_string(),
        maybe(&mut rng, 60, |r| r.pick(&["Twilio", "Vonage", "Meta"]).to_string()),
        maybe(&mut rng, 60, |r| r.pick(&["Complaint", "Question", "Request"]).to_string()),
        maybe(&mut rng, 30, |r| r.pick(&["Black Friday", "Spring promo"]).to_string()),
        rng.pick(&["LOW", "NORMAL", "HIGH", "URGENT"]).to_string(),
        maybe(&mut rng, 40, |r| format!("1 > {} > {}", r.range(1, 5), r.range(1, 9))),
        maybe(&mut rng, 50, |r| r.pick(&["Main IVR", "Chat bot flow", "Email triage"]).to_string()),
        maybe(&mut rng, 60, |r| r.pick(&["Support", "Onboarding", "Collections"]).to_string()),
        maybe(&mut rng, 30, person_name),
        rng.pick(&["Acme", "Acme Kids", "Acme Pro"]).to_string(),
        maybe(&mut rng, 70, |r| r.pick(&["Payments", "Shipping", "Account"]).to_string()),
        maybe(&mut rng, 70, |r| {
            r.pick(&["Refund request", "Where is my order", "Password reset", "Price, \"discount\""])
                .to_string()
        }),
    ];
    for i in 1..=4 {
        row.push(maybe(&mut rng, 40, |r| format!("attr{i}-{}", r.below(50))));
    }
    row.extend([
        rng.pick(&["Prague", "Brno", "Remote", "Lisbon"]).to_string(),
        rng.pick(&["Agent", "Senior agent", "Team lead"]).to_string(),
        rng.pick(&["In-house", "Outsourced BPO"]).to_string(),
        maybe(&mut rng, 20, person_name),
        maybe(&mut rng, 90, |r| format!("{:.4}", 0.5 + 20.0 * r.unit())),
    ]);
    let wait = rng.below(300_000);
    let hold = maybe(&mut rng, 30, |r| r.below(200_000).to_string());
    for value in [
        (total_ms - wait.min(total_ms)).to_string(), // engagement_time
        rng.below(total_ms).to_string(),             // focus_time
        hold,                                        // hold_time
        rng.below(20_000).to_string(),               // invitation_time
        maybe(&mut rng, 30, |r| r.below(60_000).to_string()),
        rng.below(10_000).to_string(),
        wait.to_string(),
        rng.below(120_000).to_string(),
        total_ms.to_string(),
    ] {
        row.push(value);
    }
    for _ in 1..=3 {
        row.push(maybe(&mut rng, 35, |r| format!("{:.3}", 100.0 * r.unit())));
    }
    row.push(maybe(&mut rng, 50, |r| r.below(900_000).to_string()));
    row.push(rng.range(1, engagements_in_conversation).to_string());
    row.push(engagements_in_conversation.to_string());
    for _ in 0..11 {
        row.push(score(&mut rng));
    }
    row
}

fn customer_pid(config: &SynthConfig, index: usize) -> String {
    uuid_like(&mut Rng::derive(&[config.seed, STREAM_CUSTOMER, index as u64]))
}

fn customer_name(config: &SynthConfig, index: usize) -> String {
    let mut rng = Rng::derive(&[config.seed, STREAM_CUSTOMER, index as u64, 1]);
    person_name(&mut rng)
}

fn agent_pid(config: &SynthConfig, index: usize) -> String {
    uuid_like(&mut Rng::derive(&[config.seed, STREAM_AGENT, index as u64]))
}

fn agent_name(config: &SynthConfig, index: usize) -> String {
    let mut rng = Rng::derive(&[config.seed, STREAM_AGENT, index as u64, 1]);
    person_name(&mut rng)
}

fn agent_team(_config: &SynthConfig, index: usize) -> &'static str {
    TEAMS[index % TEAMS.len()]
}

fn customer_row(config: &SynthConfig, index: usize) -> Vec<String> {
    let mut rng = Rng::derive(&[config.seed, STREAM_CUSTOMER, index as u64, 2]);
    let pid = customer_pid(config, index);
    vec![
        pid.clone(),
        maybe(&mut rng, 80, |r| format!("CRM-{}", r.below(10_000_000))),
        customer_name(config, index),
        format!("https://app.salted.cx/customers/{pid}"),
        rng.pick(&["PERSON", "COMPANY"]).to_string(),
        maybe(&mut rng, 70, |r| r.pick(&["Retail", "SMB", "Enterprise"]).to_string()),
        maybe(&mut rng, 70, |r| r.pick(&["Gold", "Silver", "Bronze"]).to_string()),
        maybe(&mut rng, 40, |r| r.pick(&["Acme s.r.o.", "Globex, Inc.", "株式会社テスト"]).to_string()),
        rng.pick(&["EMEA", "APAC", "AMER"]).to_string(),
        rng.pick(&["CZ", "DE", "JP", "US", "ES"]).to_string(),
        maybe(&mut rng, 30, |r| r.pick(&["Praha", "Bayern", "Tokyo", "California"]).to_string()),
    ]
}

fn agent_row(config: &SynthConfig, index: usize) -> Vec<String> {
    let mut rng = Rng::derive(&[config.seed, STREAM_AGENT, index as u64, 2]);
    vec![
        agent_pid(config, index),
        maybe(&mut rng, 60, |r| format!("EMP{:05}", r.below(100_000))),
        agent_name(config, index),
        rng.pick(&["ACTIVE", "ACTIVE", "INACTIVE"]).to_string(),
        rng.pick(&["HUMAN", "HUMAN", "BOT"]).to_string(),
        format!("{:.2}", 12.0 + 30.0 * rng.unit()),
        maybe(&mut rng, 50, |r| format!("{:.2}", 0.5 + 4.0 * r.unit())),
        agent_team(config, index).to_string(),
        rng.pick(&["Customer care", "Sales", "Back office"]).to_string(),
        rng.pick(&["Prague", "Brno", "Remote", "Lisbon"]).to_string(),
        rng.pick(&["In-house", "Outsourced BPO"]).to_string(),
        rng.pick(&["Agent", "Senior agent", "Team lead"]).to_string(),
        maybe(&mut rng, 80, person_name),
    ]
}

/// A turn's text: a chat message, nearly always unique (see [`chat_text`]).
fn turn_content(rng: &mut Rng) -> String {
    chat_text(rng)
}

fn write_turns<W: Write>(
    config: &SynthConfig,
    date: NaiveDate,
    e: &EngagementSeed,
    out: &mut csv::Writer<W>,
) -> io::Result<u64> {
    let mut rng = Rng::derive(&[config.seed, STREAM_TURNS, day_number(date), e.index as u64]);
    let mut offset_ms = 0i64;
    let mut previous: Option<String> = None;
    for n in 0..e.turns {
        let pid = uuid_like(&mut rng);
        offset_ms += rng.range(500, 90_000) as i64;
        let participant = if n % 2 == 0 { "CUSTOMER" } else { "AGENT" };
        let content = if rng.chance(3) { String::new() } else { turn_content(&mut rng) };
        let language = rng.pick(LANGUAGES);
        let row = [
            pid.clone(),
            e.pid.clone(),
            ts_z(e.start + Duration::milliseconds(offset_ms)),
            offset_ms.to_string(),
            previous.clone().unwrap_or_default(),
            participant.to_string(),
            rng.pick(&["MESSAGE", "MESSAGE", "NOTE", "EVENT"]).to_string(),
            rng.pick(&["WEB", "MOBILE", "API"]).to_string(),
            maybe(&mut rng, 50, |r| r.pick(&["Greeting", "Question", "Answer", "Closing"]).to_string()),
            maybe(&mut rng, 60, |r| r.below(120_000).to_string()),
            content.chars().count().to_string(),
            maybe(&mut rng, 90, |r| r.score(-1.0, 1.0)),
            maybe(&mut rng, 90, |r| r.score(0.0, 1.0)),
            maybe(&mut rng, 50, |r| r.score(0.0, 1.0)),
            maybe(&mut rng, 30, |r| format!("msg-{}", r.below(1 << 40))),
            content.clone(),
            if participant == "AGENT" { content.clone() } else { String::new() },
            if participant == "CUSTOMER" { content } else { String::new() },
            language.to_string(),
            rng.pick(LANGUAGES).to_string(),
            language.to_string(),
        ];
        out.write_record(&row)?;
        previous = Some(pid);
    }
    Ok(e.turns as u64)
}

fn write_reviews<W: Write>(
    config: &SynthConfig,
    date: NaiveDate,
    e: &EngagementSeed,
    out: &mut csv::Writer<W>,
) -> io::Result<u64> {
    let mut rng = Rng::derive(&[config.seed, STREAM_REVIEWS, day_number(date), e.index as u64]);
    let session = uuid_like(&mut rng);
    let reviewer = rng.below(config.agents as u64) as usize;
    let review_time = e.start + Duration::hours(rng.range(1, 20) as i64);
    for q in 0..e.review_questions {
        let best = 5.0;
        let answer = rng.range(1, 5) as f64;
        let verified = rng.chance(40);
        let row = [
            uuid_like(&mut rng),
            e.pid.clone(),
            String::new(),
            agent_pid(config, reviewer),
            agent_name(config, reviewer),
            format!("q-{q}"),
            [
                "Did the agent greet the customer?",
                "Was the issue resolved?",
                "Tone, empathy & clarity",
                "Followed the \"refund\" policy?",
                "Closing",
            ][q % 5]
                .to_string(),
            ts_sql(review_time),
            session.clone(),
            rng.pick(&["DONE", "DONE", "IN_PROGRESS"]).to_string(),
            rng.pick(&["RANDOM", "TARGETED", "AI_FLAGGED"]).to_string(),
            rng.pick(&["MANUAL", "AUTOMATIC"]).to_string(),
            rng.pick(&["QA", "CALIBRATION"]).to_string(),
            format!("a-{}", answer as u64),
            ["Poor", "Fair", "Good", "Very good", "Excellent"][answer as usize - 1].to_string(),
            maybe(&mut rng, 30, |r| format!("r-{}", r.below(10))),
            maybe(&mut rng, 30, |r| {
                r.pick(&["Missed greeting", "Great tone", "Policy, not followed"]).to_string()
            }),
            maybe(&mut rng, 80, |r| r.score(0.5, 1.0)),
            format!("{:.2}", answer / best * 100.0),
            format!("{answer:.1}"),
            "1".to_string(),
            format!("{best:.1}"),
            maybe(&mut rng, 40, |r| {
                r.pick(&["Dobrá práce 👍", "Needs work,\nsee notes", "素晴らしい対応"]).to_string()
            }),
            maybe(&mut rng, 20, |_| "Translated comment".to_string()),
            maybe(&mut rng, 40, |r| r.pick(LANGUAGES).to_string()),
            maybe(&mut rng, 20, |_| "en".to_string()),
            if verified { "true".into() } else { "false".into() },
            if verified { agent_name(config, (reviewer + 1) % config.agents) } else { String::new() },
            maybe(&mut rng, 15, |_| "Checked in calibration".to_string()),
            rng.pick(&["SCALE", "YES_NO", "CHOICE"]).to_string(),
            format!("{}", rng.range(1, 4)),
            format!("form-{}", rng.range(1, 3)),
            ts_z(e.start),
            agent_pid(config, e.agent),
        ];
        out.write_record(&row)?;
    }
    Ok(e.review_questions as u64)
}

/// Column headers, in the order the document lists them.
pub fn header(dataset: &str) -> Option<Vec<String>> {
    let registry = crate::schema::SchemaRegistry::embedded().ok()?;
    let schema = registry.dataset("saltedcx", dataset).ok()?;
    Some(schema.columns.iter().map(|c| c.name.clone()).collect())
}

/// The engagements that start in `[from, to)`, with the day each one belongs to.
pub fn window_plan(
    config: &SynthConfig,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    only_customer: Option<usize>,
) -> Vec<(NaiveDate, EngagementSeed)> {
    let mut plan = Vec::new();
    let mut date = from.date_naive();
    while date.and_hms_opt(0, 0, 0).expect("valid").and_utc() < to {
        plan.extend(
            day_plan(config, date, only_customer)
                .into_iter()
                .filter(|e| e.start >= from && e.start < to)
                .map(|e| (date, e)),
        );
        date = date.succ_opt().expect("date in range");
    }
    plan
}

/// Writes one dataset's CSV for the window `[from, to)` (optionally one customer's slice) and
/// returns its rows.
pub fn write_dataset<W: Write>(
    config: &SynthConfig,
    dataset: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    only_customer: Option<usize>,
    out: W,
) -> io::Result<u64> {
    let header = header(dataset)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("unknown dataset {dataset}")))?;
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
    writer.write_record(&header)?;
    let plan = window_plan(config, from, to, only_customer);
    let mut rows = 0u64;
    match dataset {
        "engagement" => {
            for (date, e) in &plan {
                writer.write_record(engagement_row(config, *date, e))?;
                rows += 1;
            }
        }
        "turn" => {
            for (date, e) in &plan {
                rows += write_turns(config, *date, e, &mut writer)?;
            }
        }
        "review" => {
            for (date, e) in &plan {
                rows += write_reviews(config, *date, e, &mut writer)?;
            }
        }
        "customer" | "agent" => {
            let mut ids: Vec<usize> =
                plan.iter().map(|(_, e)| if dataset == "customer" { e.customer } else { e.agent }).collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                let row =
                    if dataset == "customer" { customer_row(config, id) } else { agent_row(config, id) };
                writer.write_record(row)?;
                rows += 1;
            }
        }
        _ => unreachable!("header() accepted the dataset"),
    }
    writer.flush()?;
    Ok(rows)
}

/// Generates one dataset's CSV for the UTC day `date` in memory.
pub fn dataset_csv(
    config: &SynthConfig,
    dataset: &str,
    date: NaiveDate,
    only_customer: Option<usize>,
) -> io::Result<(Vec<u8>, u64)> {
    let window = crate::window::Window::new(date);
    let mut bytes = Vec::new();
    let rows = write_dataset(config, dataset, window.start(), window.end(), only_customer, &mut bytes)?;
    Ok((bytes, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 5, 1).unwrap()
    }

    #[test]
    fn every_dataset_has_every_documented_column_in_every_row() {
        let config = SynthConfig { engagements_per_day: 30, ..SynthConfig::default() };
        for dataset in super::super::api::DATASETS {
            let (bytes, rows) = dataset_csv(&config, dataset, date(), None).unwrap();
            let mut reader = csv::Reader::from_reader(bytes.as_slice());
            let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
            assert_eq!(Some(header.clone()), super::header(dataset));
            let records: Vec<_> = reader.records().map(|r| r.unwrap()).collect();
            assert_eq!(records.len() as u64, rows, "{dataset}");
            assert!(rows > 0, "{dataset}");
            assert!(records.iter().all(|r| r.len() == header.len()), "{dataset}");
        }
    }

    #[test]
    fn generation_is_deterministic_and_days_differ() {
        let config = SynthConfig::default();
        let a = dataset_csv(&config, "turn", date(), None).unwrap();
        let b = dataset_csv(&config, "turn", date(), None).unwrap();
        assert_eq!(a, b);
        let c = dataset_csv(&config, "turn", date().succ_opt().unwrap(), None).unwrap();
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn a_window_across_midnight_takes_engagements_from_both_days() {
        let config = SynthConfig::default();
        let noon = date().and_hms_opt(12, 0, 0).unwrap().and_utc();
        let plan = window_plan(&config, noon, noon + Duration::hours(24), None);
        let days: std::collections::BTreeSet<_> = plan.iter().map(|(d, _)| *d).collect();
        assert_eq!(days.len(), 2);
        assert!(plan.iter().all(|(_, e)| e.start >= noon && e.start < noon + Duration::hours(24)));
    }

    #[test]
    fn turns_are_10_to_30_per_engagement_and_contain_hard_text() {
        let config = SynthConfig::default();
        let plan = day_plan(&config, date(), None);
        assert!(plan.iter().all(|e| (10..=30).contains(&e.turns)));
        let (bytes, _) = dataset_csv(&config, "turn", date(), None).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        for needle in ["\"\"", "\r\nline two", "👍", "こんにちは", ", "] {
            assert!(text.contains(needle), "{needle:?} missing");
        }
    }

    #[test]
    fn contact_filter_narrows_to_one_customer() {
        let config = SynthConfig::default();
        let plan = day_plan(&config, date(), None);
        let customer = plan[0].customer;
        assert_eq!(customer_for_contact(&config, &customer_email(customer)), Some(customer));
        assert_eq!(customer_for_contact(&config, &customer_phone(customer)), Some(customer));
        assert_eq!(customer_for_contact(&config, "nobody@example.org"), None);
        let only = day_plan(&config, date(), Some(customer));
        assert!(!only.is_empty() && only.iter().all(|e| e.customer == customer));
        let (_, customers) = dataset_csv(&config, "customer", date(), Some(customer)).unwrap();
        assert_eq!(customers, 1);
    }
}
