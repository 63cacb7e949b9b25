//! Sparkcentral's times: every stamp is local to the zone the export was configured with, and
//! carries no offset. This module turns them into UTC instants, correctly across DST changes.
//!
//! - `Year-Month-Day HH:MM:SS.MS` → [`local_to_utc`]. In autumn one hour happens twice: the
//!   earlier instant is taken and the caller counts it ([`Resolved::Ambiguous`]), unless the
//!   file says which occurrence it holds ([`Fold`]: an hourly export of the repeated hour is
//!   written twice, under the same local name). In spring one
//!   hour does not exist: a stamp inside it can only come from a clock that had not moved yet, so
//!   it is read with the offset from before the change ([`Resolved::Skipped`]), and counted too.
//! - Response Times' `From`/`To` are `HH:MM:SS:MS` times of day, combined with the file's day by
//!   [`response_interval`]: a `From` later than its `To` belongs to the day before, and on a DST
//!   change day the row's `Agent Response Time (s)` picks which instants were meant.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How a local time became an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Exact(DateTime<Utc>),
    /// The repeated autumn hour: the earlier of the two instants.
    Ambiguous(DateTime<Utc>),
    /// The spring gap: read with the offset in force before the change.
    Skipped(DateTime<Utc>),
}

impl Resolved {
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            Resolved::Exact(t) | Resolved::Ambiguous(t) | Resolved::Skipped(t) => t,
        }
    }
}

/// Which occurrence of the repeated autumn hour a file's local times belong to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Fold {
    /// The file does not say: the earlier instant, counted as ambiguous.
    #[default]
    Unknown,
    /// The file covers the hour's first occurrence (summer time still): the earlier instant.
    Earlier,
    /// The file covers the hour's second occurrence (after the clocks went back): the later one.
    Later,
}

/// The UTC instant of a local time in `zone`.
pub fn local_to_utc(local: NaiveDateTime, zone: Tz) -> Resolved {
    local_to_utc_in(local, zone, Fold::Unknown)
}

/// The UTC instant of a local time in `zone`, in a file that may say which occurrence of the
/// repeated hour it holds.
pub fn local_to_utc_in(local: NaiveDateTime, zone: Tz, fold: Fold) -> Resolved {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => Resolved::Exact(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, later) => match fold {
            Fold::Unknown => Resolved::Ambiguous(earlier.with_timezone(&Utc)),
            Fold::Earlier => Resolved::Exact(earlier.with_timezone(&Utc)),
            Fold::Later => Resolved::Exact(later.with_timezone(&Utc)),
        },
        LocalResult::None => {
            // The offset an hour before is the one before the change (gaps are under a day).
            let before = zone.offset_from_utc_datetime(&(local - Duration::hours(3)));
            let offset = chrono::Offset::fix(&before);
            Resolved::Skipped((local - Duration::seconds(offset.local_minus_utc() as i64)).and_utc())
        }
    }
}

/// Parses `Year-Month-Day HH:MM:SS.MS` (the fraction optional, 1–9 digits).
pub fn parse_local(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

/// Parses Response Times' `HH:MM:SS:MS` (milliseconds after a colon; 1–3 digits).
pub fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    let mut parts = text.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let ms = parts.next().unwrap_or("0");
    if parts.next().is_some() || ms.is_empty() || ms.len() > 3 {
        return None;
    }
    let number = |p: &str| {
        (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    let millis = ms.bytes().all(|b| b.is_ascii_digit()).then(|| ms.parse::<u32>().ok()).flatten()?
        * 10u32.pow(3 - ms.len() as u32);
    NaiveTime::from_hms_milli_opt(number(h)?, number(m)?, number(s)?, millis)
}

/// The instants of one response: `from`/`to` times of day on the file's `day` (a `from` after
/// its `to` was the day before). Where a time falls in a repeated or skipped hour, the candidate
/// pair whose difference is closest to `response_seconds` is taken; the flag says a DST change
/// had to be resolved.
pub fn response_interval(
    day: NaiveDate,
    from: NaiveTime,
    to: NaiveTime,
    response_seconds: Option<f64>,
    zone: Tz,
) -> (DateTime<Utc>, DateTime<Utc>, bool) {
    let previous = day.pred_opt().unwrap_or(day);
    let rule_day = if from > to { previous } else { day };
    let candidates = |local: NaiveDateTime| -> (Vec<DateTime<Utc>>, bool) {
        match zone.from_local_datetime(&local) {
            LocalResult::Single(t) => (vec![t.with_timezone(&Utc)], false),
            LocalResult::Ambiguous(a, b) => (vec![a.with_timezone(&Utc), b.with_timezone(&Utc)], true),
            LocalResult::None => (vec![local_to_utc(local, zone).instant()], true),
        }
    };
    let (froms, from_dst) = candidates(rule_day.and_time(from));
    let (tos, to_dst) = candidates(day.and_time(to));
    let mut best = (froms[0], tos[0]);
    if let Some(seconds) = response_seconds {
        // On a DST change day a `from` after its `to` can be the same day (02:50 in summer
        // time, then 02:10 in winter time): the other day's instants are candidates too.
        let other_day = if rule_day == day { previous } else { day };
        let mut all_froms = froms.clone();
        all_froms.extend(candidates(other_day.and_time(from)).0);
        let error = |(f, t): (DateTime<Utc>, DateTime<Utc>)| {
            ((t - f).num_milliseconds() as f64 / 1000.0 - seconds).abs()
        };
        for f in &all_froms {
            for t in &tos {
                if t >= f && error((*f, *t)) < error(best) {
                    best = (*f, *t);
                }
            }
        }
    }
    (best.0, best.1, from_dst || to_dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> NaiveDateTime {
        parse_local(text).unwrap()
    }
    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn local_times_become_utc_across_both_dst_changes() {
        let brussels: Tz = "Europe/Brussels".parse().unwrap();
        assert_eq!(
            local_to_utc(local("2024-03-01 10:00:00.250"), brussels),
            Resolved::Exact(utc("2024-03-01T09:00:00.250Z"))
        );
        assert_eq!(
            local_to_utc(local("2024-07-01 10:00:00"), brussels),
            Resolved::Exact(utc("2024-07-01T08:00:00Z"))
        );
        // Spring: 02:30 on 31 March does not exist; read with the winter offset.
        assert_eq!(
            local_to_utc(local("2024-03-31 02:30:00"), brussels),
            Resolved::Skipped(utc("2024-03-31T01:30:00Z"))
        );
        assert_eq!(
            local_to_utc(local("2024-03-31 03:00:00"), brussels),
            Resolved::Exact(utc("2024-03-31T01:00:00Z"))
        );
        // Autumn: 02:30 on 27 October happens twice; the earlier (summer time) instant.
        assert_eq!(
            local_to_utc(local("2024-10-27 02:30:00"), brussels),
            Resolved::Ambiguous(utc("2024-10-27T00:30:00Z"))
        );
        assert_eq!(
            local_to_utc(local("2024-10-27 03:30:00"), brussels),
            Resolved::Exact(utc("2024-10-27T02:30:00Z"))
        );
        let new_york: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            local_to_utc(local("2024-11-03 01:15:00"), new_york),
            Resolved::Ambiguous(utc("2024-11-03T05:15:00Z"))
        );
        assert!(parse_local("03/01/2024 10:00").is_none());
    }

    #[test]
    fn times_of_day_with_colon_milliseconds() {
        assert_eq!(parse_time_of_day("13:05:09:042"), NaiveTime::from_hms_milli_opt(13, 5, 9, 42));
        assert_eq!(parse_time_of_day("13:05:09:5"), NaiveTime::from_hms_milli_opt(13, 5, 9, 500));
        assert_eq!(parse_time_of_day("13:05:09"), NaiveTime::from_hms_milli_opt(13, 5, 9, 0));
        for bad in ["", "25:00:00:000", "13:05", "13:05:09:1234", "a:b:c:d", "13:05:09:000:1"] {
            assert!(parse_time_of_day(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_response_across_midnight_or_a_dst_change_gets_the_right_instants() {
        let brussels: Tz = "Europe/Brussels".parse().unwrap();
        let t = |h, m, s| NaiveTime::from_hms_opt(h, m, s).unwrap();
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let (from, to, dst) = response_interval(day, t(23, 59, 0), t(0, 1, 0), Some(120.0), brussels);
        assert_eq!((from, to, dst), (utc("2024-02-29T22:59:00Z"), utc("2024-02-29T23:01:00Z"), false));
        // 27 October: from 02:50 (which one?) to 02:10 (the second one): 20 minutes.
        let autumn = NaiveDate::from_ymd_opt(2024, 10, 27).unwrap();
        let (from, to, dst) = response_interval(autumn, t(2, 50, 0), t(2, 10, 0), Some(1200.0), brussels);
        assert!(dst);
        assert_eq!((from, to), (utc("2024-10-27T00:50:00Z"), utc("2024-10-27T01:10:00Z")));
        // Within the repeated hour, 02:10 → 02:20 could be 10 or 70 minutes: the seconds decide.
        let (from, to, _) = response_interval(autumn, t(2, 10, 0), t(2, 20, 0), Some(4200.0), brussels);
        assert_eq!((from, to), (utc("2024-10-27T00:10:00Z"), utc("2024-10-27T01:20:00Z")));
        let (from, to, _) = response_interval(autumn, t(2, 10, 0), t(2, 20, 0), Some(600.0), brussels);
        assert_eq!(to - from, Duration::minutes(10));
    }
}
