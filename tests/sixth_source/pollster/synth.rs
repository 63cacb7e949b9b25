//! Pollster's synthetic tenant: what each day's exports hold, described as values first (what
//! the tests expect) and only then written as the platform sends them (what the emulator serves).

use chrono::{NaiveDate, NaiveTime};

/// A respondent as one day's export shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Respondent {
    pub id: String,
    pub email: String,
    pub name: String,
    pub segment: &'static str,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

/// One survey answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: i64,
    pub respondent_id: String,
    /// Epoch milliseconds.
    pub submitted_at: i64,
    pub score: i64,
    pub comment: Option<String>,
    pub channel: &'static str,
}

const RESPONDENTS_PER_DAY: i64 = 5;
const RESPONSES_PER_DAY: i64 = 8;

fn day_index(day: NaiveDate) -> i64 {
    (day - NaiveDate::from_ymd_opt(2024, 1, 1).expect("a date")).num_days()
}

fn midnight_ms(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

/// Respondent numbers of a day: consecutive days share some, so current tables see updates.
fn respondent_numbers(day: NaiveDate) -> Vec<i64> {
    (0..RESPONDENTS_PER_DAY).map(|k| (day_index(day) * 2 + k).rem_euclid(12)).collect()
}

pub fn respondents(day: NaiveDate) -> Vec<Respondent> {
    respondent_numbers(day)
        .into_iter()
        .enumerate()
        .map(|(k, n)| Respondent {
            id: format!("r-{n}"),
            email: format!("respondent{n}@example.org"),
            // A comma and quotes: the CSV must quote them.
            name: format!("O'Neil, Sam \"{n}\""),
            segment: ["enterprise", "smb", "consumer"][n as usize % 3],
            updated_at: midnight_ms(day) + (k as i64 + 1) * 3_600_000,
        })
        .collect()
}

pub fn responses(day: NaiveDate) -> Vec<Response> {
    let numbers = respondent_numbers(day);
    (0..RESPONSES_PER_DAY)
        .map(|i| Response {
            id: day_index(day) * 100 + i,
            respondent_id: format!("r-{}", numbers[(i % RESPONDENTS_PER_DAY) as usize]),
            submitted_at: midnight_ms(day) + i * 37 * 60_000 + 123,
            score: (day_index(day) * 7 + i * 3).rem_euclid(11),
            comment: (i % 3 != 0).then(|| format!("Très bien, \"merci\" #{i}\nà bientôt")),
            channel: ["email", "sms", "web"][i as usize % 3],
        })
        .collect()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).expect("in range").format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `respondents.csv` of one day, as the platform sends it.
pub fn respondents_csv(day: NaiveDate) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["respondent_id", "email", "name", "segment", "updated_at"]).expect("in memory");
    for r in respondents(day) {
        writer.write_record([&r.id, &r.email, &r.name, r.segment, &iso(r.updated_at)]).expect("in memory");
    }
    writer.into_inner().expect("in memory")
}

/// `responses.json` of one day: one JSON array, as the platform sends it.
pub fn responses_json(day: NaiveDate) -> Vec<u8> {
    let elements: Vec<serde_json::Value> = responses(day)
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "response_id": r.id,
                "respondent_id": r.respondent_id,
                "submitted_at": r.submitted_at,
                "score": r.score,
                "comment": r.comment,
                "channel": r.channel,
            })
        })
        .collect();
    serde_json::to_vec_pretty(&elements).expect("JSON values serialise")
}

/// One day of `dataset` as served, or `None` for a dataset Pollster has not.
pub fn export(dataset: &str, day: NaiveDate) -> Option<(Vec<u8>, u64)> {
    match dataset {
        "respondent" => Some((respondents_csv(day), RESPONDENTS_PER_DAY as u64)),
        "response" => Some((responses_json(day), RESPONSES_PER_DAY as u64)),
        _ => None,
    }
}
