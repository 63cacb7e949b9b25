//! The deterministic Khoros Care tenant behind the emulator: a roster of agents (some disabled,
//! some with names that need quoting) and, for every day of the company's zone, one shift per
//! agent whose values derive from the seed, the day and the agent alone — so a test can ask the
//! generator what any day must hold, independently of the client and the decoder.
//!
//! A report covers the shifts that *start* in its `[startTime, endTime)`, summed per agent
//! ([`report_rows`]): asked for the company's whole local day it is exactly that day's rows
//! ([`day_rows`]); asked for a UTC day of a company elsewhere it mixes two local days, which is
//! what a client that ignores the company's zone gets from the live API.
//!
//! The rows are described as typed [`UserRow`]s; [`UserRow::fields`] spells them the way the
//! export does (every value a string, durations `HH:MM:SS`, the `*_MILLIS` columns only in JSON).

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::sources::synthetic::{person_name, Rng};

/// The report's columns in the order the export writes them; `json_only` ones are absent in CSV.
pub const COLUMNS: &[(&str, bool)] = &[
    ("AGENT_ID", false),
    ("AGENT_NAME", false),
    ("AGENT_EMAIL", false),
    ("AGENT_STATUS", false),
    ("TEAM_NAMES", false),
    ("TOTAL_ASSIGNED", false),
    ("TOTAL_HANDLED", false),
    ("TOTAL_CLOSED", false),
    ("TOTAL_REPLIES", false),
    ("AVG_HANDLE_TIME", false),
    ("AVG_FIRST_RESPONSE_TIME", false),
    ("TOTAL_CONSOLE_LOGGED_IN_TIME", false),
    ("TOTAL_GREEN_STATE_TIME", false),
    ("TOTAL_YELLOW_STATE_TIME", false),
    ("TOTAL_RED_STATE_TIME", false),
    ("TOTAL_MOBILE_TIME", false),
    ("TOTAL_CONSOLE_LOGGED_IN_TIME_MILLIS", true),
    ("TOTAL_GREEN_STATE_TIME_MILLIS", true),
    ("TOTAL_YELLOW_STATE_TIME_MILLIS", true),
    ("TOTAL_RED_STATE_TIME_MILLIS", true),
    ("TOTAL_MOBILE_TIME_MILLIS", true),
    // Not in any document: a metric this tenant enabled. Lands in `_extra`.
    ("CUSTOM_SURVEY_RESPONSES", false),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KhorosSynthConfig {
    pub seed: u64,
    pub agents: usize,
    pub tenant: KhorosTenant,
    /// The zone the company works in: its days are this zone's days.
    pub zone: chrono_tz::Tz,
}

impl Default for KhorosSynthConfig {
    fn default() -> Self {
        KhorosSynthConfig {
            seed: 0x6b68_6f72,
            agents: 24,
            tenant: KhorosTenant::Documented,
            zone: chrono_tz::Tz::UTC,
        }
    }
}

/// How this tenant's export differs from what our declaration expects. Khoros publishes no
/// column list, so a real tenant may name its metrics otherwise or send odd values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KhorosTenant {
    /// The metric names our declaration knows.
    #[default]
    Documented,
    /// [`RENAMED`] metrics come under other names: their values land only in `_extra`, their
    /// declared columns stay empty.
    RenamedMetrics,
    /// `TOTAL_REPLIES` is `n/a` for every third agent (by id): not a number.
    WrongTypes,
}

/// The metrics a [`KhorosTenant::RenamedMetrics`] tenant names otherwise: (ours, theirs).
pub const RENAMED: &[(&str, &str)] = &[
    ("TOTAL_ASSIGNED", "ASSIGNED_COUNT"),
    ("TOTAL_HANDLED", "HANDLED_COUNT"),
    ("TOTAL_CLOSED", "CLOSED_COUNT"),
    ("TOTAL_REPLIES", "REPLY_COUNT"),
    ("AVG_HANDLE_TIME", "AVERAGE_HANDLE_TIME"),
    ("AVG_FIRST_RESPONSE_TIME", "AVERAGE_FIRST_RESPONSE_TIME"),
    ("TOTAL_RED_STATE_TIME", "RED_STATE_TIME"),
    ("TOTAL_MOBILE_TIME", "MOBILE_APP_TIME"),
];

/// The value a [`KhorosTenant::WrongTypes`] tenant sends instead of a reply count.
pub const NOT_A_NUMBER: &str = "n/a";

impl KhorosTenant {
    /// The name this tenant's export gives one of [`COLUMNS`].
    pub fn column_name(self, name: &'static str) -> &'static str {
        match self {
            KhorosTenant::RenamedMetrics => {
                RENAMED.iter().find(|(ours, _)| *ours == name).map_or(name, |(_, theirs)| theirs)
            }
            _ => name,
        }
    }

    /// Whether this tenant sends `n/a` as the agent's reply count.
    pub fn replies_not_a_number(self, agent_id: i64) -> bool {
        self == KhorosTenant::WrongTypes && agent_id % 3 == 0
    }
}

/// One agent of the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub enabled: bool,
    pub teams: Vec<&'static str>,
}

const TEAMS: &[&str] = &["Tier 1", "Tier 2", "Billing, Refunds", "Social \"Care\"", "Nordics"];

/// The roster: every fifth agent is disabled.
pub fn agents(config: KhorosSynthConfig) -> Vec<Agent> {
    (0..config.agents)
        .map(|i| {
            let mut rng = Rng::derive(&[config.seed, 1, i as u64]);
            let name = match i {
                // Names a CSV writer must quote, and one beyond ASCII.
                3 => "O'Brien, Siobhán \"Shiv\"".to_string(),
                7 => "José Ñúñez\u{1F600}".to_string(),
                _ => person_name(&mut rng),
            };
            let email = format!("agent{}@example.com", 1000 + i);
            let teams = (0..rng.range(1, 2)).map(|_| rng.pick(TEAMS)).collect::<Vec<_>>();
            Agent { id: 5_000_000 + i as i64 * 37, name, email, enabled: i % 5 != 4, teams }
        })
        .collect()
}

/// One row of the user export, typed (durations in milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub agent: Agent,
    pub total_assigned: i64,
    pub total_handled: i64,
    pub total_closed: i64,
    pub total_replies: i64,
    /// `None`: the agent handled nothing, the export leaves the average empty.
    pub avg_handle_time_ms: Option<i64>,
    pub avg_first_response_time_ms: Option<i64>,
    pub console_logged_in_ms: i64,
    pub green_ms: i64,
    pub yellow_ms: i64,
    pub red_ms: i64,
    pub mobile_ms: i64,
    pub custom_survey_responses: i64,
    /// How the export spells the row.
    pub tenant: KhorosTenant,
}

/// The rows of `day` (one per agent; disabled agents only with `include_disabled`), optionally
/// limited to `agent_ids` / `team_ids` (team ids are the team's index in the roster's list).
pub fn day_rows(config: KhorosSynthConfig, day: NaiveDate, include_disabled: bool) -> Vec<UserRow> {
    let tenant = config.tenant;
    agents(config)
        .into_iter()
        .filter(|a| include_disabled || a.enabled)
        .map(|agent| {
            let mut rng = Rng::derive(&[config.seed, 2, agent.id as u64, day.num_days_from_ce() as u64]);
            let working = agent.enabled && rng.chance(85);
            let handled = if working { rng.range(0, 60) as i64 } else { 0 };
            // Logged-in time in whole seconds with milliseconds: the formatted columns show
            // seconds (truncated), the `*_MILLIS` columns the exact value.
            let logged_in = if working { rng.range(600_000, 9 * 3_600_000) as i64 } else { 0 };
            let green = logged_in * rng.range(40, 80) as i64 / 100 + rng.below(1000) as i64;
            let green = green.min(logged_in);
            let yellow = (logged_in - green) * rng.range(10, 90) as i64 / 100;
            let red = logged_in - green - yellow;
            UserRow {
                total_assigned: handled + rng.below(5) as i64 * i64::from(working),
                total_handled: handled,
                total_closed: handled * rng.range(50, 100) as i64 / 100,
                total_replies: handled * rng.range(1, 4) as i64,
                avg_handle_time_ms: (handled > 0).then(|| rng.range(30, 3 * 3600) as i64 * 1000),
                avg_first_response_time_ms: (handled > 0).then(|| rng.range(5, 1800) as i64 * 1000),
                console_logged_in_ms: logged_in,
                green_ms: green,
                yellow_ms: yellow,
                red_ms: red,
                mobile_ms: if working && rng.chance(20) { rng.range(1000, 3_600_000) as i64 } else { 0 },
                custom_survey_responses: rng.below(12) as i64,
                agent,
                tenant,
            }
        })
        .collect()
}

/// When `agent`'s shift on local `day` starts: between 06:00 and 14:00 in the company's zone (a
/// time a daylight-saving change skips moves an hour on).
pub fn shift_start(config: KhorosSynthConfig, agent: &Agent, day: NaiveDate) -> DateTime<Utc> {
    let mut rng = Rng::derive(&[config.seed, 3, agent.id as u64, day.num_days_from_ce() as u64]);
    let minute = rng.range(6 * 60, 14 * 60 - 1) as i64;
    let mut local = day.and_time(NaiveTime::MIN) + chrono::Duration::minutes(minute);
    loop {
        if let Some(t) = config.zone.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += chrono::Duration::hours(1);
    }
}

/// The export of `[start, end)`: per agent (in roster order), the shifts starting in the range
/// summed — averages weighted by conversations handled — and an all-zero row for an agent with
/// none, as the report lists every agent.
pub fn report_rows(
    config: KhorosSynthConfig,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    include_disabled: bool,
) -> Vec<UserRow> {
    let local = |t: DateTime<Utc>| t.with_timezone(&config.zone).date_naive();
    let (Some(first), Some(last)) = (local(start).checked_sub_days(Days::new(1)), local(end).succ_opt())
    else {
        return Vec::new();
    };
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    let per_day: Vec<Vec<UserRow>> = days.iter().map(|d| day_rows(config, *d, include_disabled)).collect();
    let agents = per_day.first().map_or(0, Vec::len);
    (0..agents)
        .map(|i| {
            let shifts: Vec<&UserRow> = days
                .iter()
                .zip(&per_day)
                .map(|(day, rows)| (day, &rows[i]))
                .filter(|(day, row)| (start..end).contains(&shift_start(config, &row.agent, **day)))
                .map(|(_, row)| row)
                .collect();
            merge_shifts(&per_day[0][i], &shifts)
        })
        .collect()
}

/// One agent's shifts as one row (`template` gives the agent when there are none).
fn merge_shifts(template: &UserRow, shifts: &[&UserRow]) -> UserRow {
    if let [only] = shifts {
        return (*only).clone();
    }
    let sum = |f: fn(&UserRow) -> i64| shifts.iter().map(|r| f(r)).sum::<i64>();
    let handled = sum(|r| r.total_handled);
    let weighted = |f: fn(&UserRow) -> Option<i64>| {
        (handled > 0)
            .then(|| shifts.iter().map(|r| f(r).unwrap_or(0) * r.total_handled).sum::<i64>() / handled)
    };
    UserRow {
        agent: template.agent.clone(),
        total_assigned: sum(|r| r.total_assigned),
        total_handled: handled,
        total_closed: sum(|r| r.total_closed),
        total_replies: sum(|r| r.total_replies),
        avg_handle_time_ms: weighted(|r| r.avg_handle_time_ms),
        avg_first_response_time_ms: weighted(|r| r.avg_first_response_time_ms),
        console_logged_in_ms: sum(|r| r.console_logged_in_ms),
        green_ms: sum(|r| r.green_ms),
        yellow_ms: sum(|r| r.yellow_ms),
        red_ms: sum(|r| r.red_ms),
        mobile_ms: sum(|r| r.mobile_ms),
        custom_survey_responses: sum(|r| r.custom_survey_responses),
        tenant: template.tenant,
    }
}

/// `HH:MM:SS` of whole seconds (hours may exceed 24), as the export formats durations.
pub fn hms(millis: i64) -> String {
    let seconds = millis / 1000;
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

impl UserRow {
    /// The row as the export spells it: `(column, value)` for every column of the format, all
    /// strings (an empty string for no value).
    pub fn fields(&self, json: bool) -> Vec<(&'static str, String)> {
        let a = &self.agent;
        let opt = |v: Option<i64>| v.map(hms).unwrap_or_default();
        let values: Vec<String> = vec![
            a.id.to_string(),
            a.name.clone(),
            a.email.clone(),
            if a.enabled { "Enabled" } else { "Disabled" }.to_string(),
            a.teams.join("; "),
            self.total_assigned.to_string(),
            self.total_handled.to_string(),
            self.total_closed.to_string(),
            if self.tenant.replies_not_a_number(a.id) {
                NOT_A_NUMBER.to_string()
            } else {
                self.total_replies.to_string()
            },
            opt(self.avg_handle_time_ms),
            opt(self.avg_first_response_time_ms),
            hms(self.console_logged_in_ms),
            hms(self.green_ms),
            hms(self.yellow_ms),
            hms(self.red_ms),
            hms(self.mobile_ms),
            self.console_logged_in_ms.to_string(),
            self.green_ms.to_string(),
            self.yellow_ms.to_string(),
            self.red_ms.to_string(),
            self.mobile_ms.to_string(),
            self.custom_survey_responses.to_string(),
        ];
        COLUMNS
            .iter()
            .zip(values)
            .filter(|((_, json_only), _)| json || !json_only)
            .map(|((name, _), value)| (self.tenant.column_name(name), value))
            .collect()
    }
}

/// The export file of `rows`: a JSON array of objects, or CSV with a header (in the rows'
/// tenant's names).
pub fn render(rows: &[UserRow], json: bool) -> Vec<u8> {
    let tenant = rows.first().map_or(KhorosTenant::Documented, |r| r.tenant);
    if json {
        let records: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                serde_json::Value::Object(
                    row.fields(true).into_iter().map(|(k, v)| (k.to_string(), v.into())).collect(),
                )
            })
            .collect();
        serde_json::to_vec_pretty(&records).expect("JSON of strings serialises")
    } else {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let header: Vec<&str> =
            COLUMNS.iter().filter(|(_, json_only)| !json_only).map(|(n, _)| tenant.column_name(n)).collect();
        writer.write_record(&header).expect("writing to a Vec");
        for row in rows {
            writer.write_record(row.fields(false).iter().map(|(_, v)| v)).expect("writing to a Vec");
        }
        writer.into_inner().expect("flushing a Vec")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_of_the_companys_local_day_is_that_days_rows_and_a_utc_day_mixes_two() {
        let brisbane: chrono_tz::Tz = "Australia/Brisbane".parse().unwrap();
        let config = KhorosSynthConfig { zone: brisbane, ..KhorosSynthConfig::default() };
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let window = crate::window::Window::new(day);
        let local = report_rows(config, window.start_in(brisbane), window.end_in(brisbane), true);
        assert_eq!(local, day_rows(config, day, true));
        // The UTC day 1 March is 10:00 1 March to 10:00 2 March in Brisbane: shifts start
        // 06:00–14:00, so some agents' rows are the 1st's, some the 2nd's, some both summed.
        let utc = report_rows(config, window.start(), window.end(), true);
        assert_eq!(utc.len(), local.len());
        assert_ne!(utc, local);
        let next = day_rows(config, day.succ_opt().unwrap(), true);
        let from_next = utc.iter().zip(&next).filter(|(u, n)| u == n).count();
        assert!(from_next > 0, "some agents' UTC-day rows are their next local day's shift");
        // In UTC the same company's report of a UTC day is that day.
        let utc_company = KhorosSynthConfig::default();
        assert_eq!(
            report_rows(utc_company, window.start(), window.end(), true),
            day_rows(utc_company, day, true)
        );
    }

    #[test]
    fn a_day_is_deterministic_and_disabled_agents_are_optional() {
        let config = KhorosSynthConfig::default();
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(day_rows(config, day, true), day_rows(config, day, true));
        let all = day_rows(config, day, true).len();
        let enabled = day_rows(config, day, false).len();
        assert_eq!(all, config.agents);
        assert!(enabled < all, "the roster has disabled agents");
        for row in day_rows(config, day, true) {
            assert_eq!(row.green_ms + row.yellow_ms + row.red_ms, row.console_logged_in_ms);
        }
        assert_eq!(hms(3_723_999), "01:02:03");
        assert_eq!(hms(100 * 3_600_000), "100:00:00");
    }
}
