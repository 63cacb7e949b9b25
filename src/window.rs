//! Export windows: half-open days `[D 00:00, D+1 00:00)` of the zone a platform counts its days
//! in (UTC unless the source is configured with one).
//!
//! Every platform here caps one export at 24 h, and daily partitions are what consumers prune
//! on, so a window is exactly one day and its partition is `date=D`. For a tenant whose day is
//! not the UTC day (Khoros, Loop with `--timezone`), `D` is the platform's local day and its
//! bounds are local midnights. This module turns the user's `--from/--to` and the destination's
//! history into the list of windows to run.

use std::collections::BTreeSet;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// One day, `date`, in whatever zone the source counts days in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub date: NaiveDate,
}

impl Window {
    pub fn new(date: NaiveDate) -> Window {
        Window { date }
    }

    /// The start of the day in UTC.
    pub fn start(&self) -> DateTime<Utc> {
        self.start_in(Tz::UTC)
    }

    /// Exclusive end of the day in UTC: the next day's midnight.
    pub fn end(&self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The start of the day in `zone`: its local midnight, as an instant.
    pub fn start_in(&self, zone: Tz) -> DateTime<Utc> {
        local_midnight(self.date, zone)
    }

    /// Exclusive end of the day in `zone`: the next local midnight (23 or 25 hours later across
    /// a daylight-saving change).
    pub fn end_in(&self, zone: Tz) -> DateTime<Utc> {
        self.next().start_in(zone)
    }

    pub fn next(&self) -> Window {
        Window::new(self.date + Days::new(1))
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.date)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("`{0}` is not a date or time; write YYYY-MM-DD or RFC 3339 such as 2024-01-31T00:00:00Z")]
    BadTime(String),
    #[error("--from {from} is not before --to {to}; nothing to export")]
    EmptyRange { from: NaiveDate, to: String },
    #[error("window {date} has not ended yet (it ends {end}); only complete days are exported — lower --to")]
    Incomplete { date: NaiveDate, end: DateTime<Utc> },
    #[error("no window of {source_name} is recorded as done in {dest}; give --from for the first run")]
    NothingToResume { source_name: String, dest: String },
}

/// The first instant of `date` in `zone`. A zone whose clocks skip midnight on a
/// daylight-saving change (America/Santiago, Asia/Beirut) starts that day at the first local
/// time that exists; a repeated midnight is the earlier one.
fn local_midnight(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let mut local = date.and_time(NaiveTime::MIN);
    loop {
        if let Some(t) = zone.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(15);
    }
}

/// An IANA time zone name, as a command-line value.
pub fn parse_zone(text: &str) -> Result<Tz, String> {
    text.trim().parse::<Tz>().map_err(|_| {
        format!("`{text}` is not an IANA time zone name (such as Europe/Brussels, America/New_York or UTC)")
    })
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, WindowError> {
    parse_time_in(text, Tz::UTC)
}

/// Parses `YYYY-MM-DD` (local midnight in `zone`) or an RFC 3339 timestamp (its own offset).
pub fn parse_time_in(text: &str, zone: Tz) -> Result<DateTime<Utc>, WindowError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(local_midnight(date, zone));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| WindowError::BadTime(text.to_string()))
}

/// The UTC windows covering `[from, to)`: see [`windows_between_in`].
pub fn windows_between(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<Window>, WindowError> {
    windows_between_in(from, to, now, Tz::UTC)
}

/// The days of `zone` covering `[from, to)`: the day containing `from` up to the last day
/// starting before `to`. Every window must have ended by `now`.
pub fn windows_between_in(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    zone: Tz,
) -> Result<Vec<Window>, WindowError> {
    let first = Window::new(from.with_timezone(&zone).date_naive());
    if first.start_in(zone) >= to {
        return Err(WindowError::EmptyRange { from: first.date, to: to.to_rfc3339() });
    }
    let mut windows = Vec::new();
    let mut w = first;
    while w.start_in(zone) < to {
        if w.end_in(zone) > now {
            return Err(WindowError::Incomplete { date: w.date, end: w.end_in(zone) });
        }
        windows.push(w);
        w = w.next();
    }
    Ok(windows)
}

/// The start of the current UTC day: the default `--to`, so only complete days are exported.
pub fn start_of_today(now: DateTime<Utc>) -> DateTime<Utc> {
    start_of_today_in(now, Tz::UTC)
}

/// The start of the current day in `zone`.
pub fn start_of_today_in(now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    local_midnight(now.with_timezone(&zone).date_naive(), zone)
}

/// Windows for a run without `--from`: every day from the first window the lake knows (done,
/// or `begun`: failed or interrupted while publishing) up to `to` that is not done (gaps left by
/// failed or killed runs included), plus the last `lookback_days` done windows again. Nothing
/// done at all means there is nothing to resume from.
pub fn resume_windows(
    done: &BTreeSet<NaiveDate>,
    begun: &BTreeSet<NaiveDate>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    lookback_days: u32,
    zone: Tz,
) -> Option<Result<Vec<Window>, WindowError>> {
    let first_done = *done.first()?;
    let first = begun.first().map_or(first_done, |b| (*b).min(first_done));
    let all = match windows_between_in(local_midnight(first, zone), to, now, zone) {
        Ok(all) => all,
        Err(WindowError::EmptyRange { .. }) => return Some(Ok(Vec::new())),
        Err(e) => return Some(Err(e)),
    };
    let lookback: BTreeSet<NaiveDate> =
        all.iter().map(|w| w.date).filter(|d| done.contains(d)).rev().take(lookback_days as usize).collect();
    Some(Ok(all.into_iter().filter(|w| !done.contains(&w.date) || lookback.contains(&w.date)).collect()))
}

/// Shard `index` of `count` (counted from 0) of `windows`: contiguous runs of nearly equal
/// length, the earlier shards one window longer when they do not divide evenly. Every worker
/// given the same windows and count computes the same split, so together they cover each
/// window exactly once.
pub fn shard(windows: &[Window], index: usize, count: usize) -> &[Window] {
    let count = count.max(1);
    let (base, extra) = (windows.len() / count, windows.len() % count);
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    let start = start.min(windows.len());
    &windows[start..(start + len).min(windows.len())]
}

#[cfg(test)]
mod tests {
    #[test]
    fn shards_cover_every_window_once_in_contiguous_runs() {
        let first = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let windows: Vec<super::Window> =
            (0..12).map(|d| super::Window::new(first + chrono::Days::new(d))).collect();
        for count in 1..=13 {
            let parts: Vec<&[super::Window]> = (0..count).map(|i| super::shard(&windows, i, count)).collect();
            let joined: Vec<super::Window> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(joined, windows, "{count} shards");
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{lens:?}");
        }
        assert_eq!(super::shard(&windows, 1, 5).len(), 3);
        assert_eq!(super::shard(&windows, 4, 5).len(), 2);
    }

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn a_window_is_a_half_open_utc_day() {
        let w = Window::new(d("2024-02-28"));
        assert_eq!(w.start(), t("2024-02-28T00:00:00Z"));
        assert_eq!(w.end(), t("2024-02-29T00:00:00Z"));
        assert_eq!(w.next().end(), t("2024-03-01"));
        assert_eq!((w.end() - w.start()).num_hours(), 24);
    }

    #[test]
    fn a_zoned_window_is_the_local_day_daylight_saving_included() {
        let brisbane: Tz = "Australia/Brisbane".parse().unwrap();
        let w = Window::new(d("2024-03-01"));
        assert_eq!(w.start_in(brisbane), t("2024-02-29T14:00:00Z"));
        assert_eq!(w.end_in(brisbane), t("2024-03-01T14:00:00Z"));
        // New York's spring change: a 23-hour day; its autumn change: a 25-hour day.
        let new_york: Tz = "America/New_York".parse().unwrap();
        let spring = Window::new(d("2024-03-10"));
        assert_eq!((spring.end_in(new_york) - spring.start_in(new_york)).num_hours(), 23);
        let autumn = Window::new(d("2024-11-03"));
        assert_eq!((autumn.end_in(new_york) - autumn.start_in(new_york)).num_hours(), 25);
        // Santiago skips midnight in spring: that day starts at 01:00 local.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(Window::new(d("2024-09-08")).start_in(santiago), t("2024-09-08T04:00:00Z"));
        // A date given on the command line is the zone's midnight; the range is its local days.
        assert_eq!(parse_time_in("2024-03-01", brisbane).unwrap(), w.start_in(brisbane));
        let now = t("2024-03-04T13:59:59Z");
        let ws = windows_between_in(
            parse_time_in("2024-03-01", brisbane).unwrap(),
            start_of_today_in(now, brisbane),
            now,
            brisbane,
        )
        .unwrap();
        assert_eq!(
            ws.iter().map(|w| w.date).collect::<Vec<_>>(),
            vec![d("2024-03-01"), d("2024-03-02"), d("2024-03-03")]
        );
        // At 14:00Z Brisbane's 4 March has ended; in UTC it has not.
        let now = t("2024-03-04T14:00:00Z");
        assert_eq!(start_of_today_in(now, brisbane), t("2024-03-04T14:00:00Z"));
        assert!(windows_between_in(
            t("2024-03-04T00:00:00+10:00"),
            start_of_today_in(now, brisbane),
            now,
            brisbane
        )
        .is_ok());
        assert!(matches!(
            windows_between(t("2024-03-04"), t("2024-03-05"), now),
            Err(WindowError::Incomplete { .. })
        ));
    }

    #[test]
    fn times_parse_as_dates_or_rfc3339() {
        assert_eq!(t("2024-01-02"), t("2024-01-02T00:00:00Z"));
        assert_eq!(t("2024-01-02T01:00:00+01:00"), t("2024-01-02"));
        assert!(parse_time("02/01/2024").is_err());
    }

    #[test]
    fn range_covers_whole_days_and_refuses_unfinished_ones() {
        let now = t("2024-01-10T08:00:00Z");
        let ws = windows_between(t("2024-01-01"), t("2024-01-04"), now).unwrap();
        assert_eq!(
            ws.iter().map(|w| w.date).collect::<Vec<_>>(),
            vec![d("2024-01-01"), d("2024-01-02"), d("2024-01-03")]
        );
        // A `from` in the middle of a day starts that day; a `to` in the middle of a day ends after it.
        let ws = windows_between(t("2024-01-01T13:00:00Z"), t("2024-01-02T00:00:01Z"), now).unwrap();
        assert_eq!(ws.len(), 2);
        assert!(matches!(
            windows_between(t("2024-01-03"), t("2024-01-03"), now),
            Err(WindowError::EmptyRange { .. })
        ));
        assert!(matches!(
            windows_between(t("2024-01-09"), t("2024-01-11"), now),
            Err(WindowError::Incomplete { .. })
        ));
        assert_eq!(start_of_today(now), t("2024-01-10"));
    }

    #[test]
    fn resume_fills_gaps_continues_and_looks_back() {
        let now = t("2024-01-10T08:00:00Z");
        let done: BTreeSet<_> = [d("2024-01-01"), d("2024-01-02"), d("2024-01-04"), d("2024-01-05")].into();
        let dates = |ws: Vec<Window>| ws.into_iter().map(|w| w.date.to_string()).collect::<Vec<_>>();
        let none = BTreeSet::new();
        let ws = resume_windows(&done, &none, t("2024-01-08"), now, 0, Tz::UTC).unwrap().unwrap();
        assert_eq!(dates(ws), ["2024-01-03", "2024-01-06", "2024-01-07"]);
        let ws = resume_windows(&done, &none, t("2024-01-08"), now, 2, Tz::UTC).unwrap().unwrap();
        assert_eq!(dates(ws), ["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-06", "2024-01-07"]);
        assert!(resume_windows(&none, &none, t("2024-01-08"), now, 0, Tz::UTC).is_none());
        let up_to_date = resume_windows(&done, &none, t("2024-01-01"), now, 0, Tz::UTC).unwrap().unwrap();
        assert!(up_to_date.is_empty());
        // A window a killed run left publishing, before the first done one, is redone.
        let begun: BTreeSet<_> = [d("2023-12-31")].into();
        let ws = resume_windows(&done, &begun, t("2024-01-04"), now, 0, Tz::UTC).unwrap().unwrap();
        assert_eq!(dates(ws), ["2023-12-31", "2024-01-03"]);
    }
}
