//! The coverage calendar (`cxlake status --calendar`): per source and dataset, one cell per day
//! from the lake's first window to its last — done, failed, missing, or done but in the lookback
//! the next nightly run exports again — labelled with months and dates, so a year of windows can
//! be scanned for holes at a glance. In colour on a terminal, plain characters otherwise; JSON for
//! machines.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::report::{RunReport, WindowOutcome};
use crate::sink::{Destination, SinkError};
use crate::state::{StateStore, WindowRecord, WindowStatus};

/// Run reports read for failures, newest first: a nightly lake's last half year or so.
const RUNS_READ: usize = 200;

/// Every source's calendars in the lake; `lookback_days` of a source: how many of its last done
/// windows its nightly run exports again.
pub async fn lake_calendar(
    dest: &Destination,
    lookback_days: impl Fn(&str) -> u32,
) -> Result<Vec<DatasetCalendar>, SinkError> {
    let state = StateStore::new(dest.clone());
    let runs = crate::status::recent_runs(dest, RUNS_READ).await?;
    let mut calendars = Vec::new();
    for source in state.sources().await? {
        let records = state.load_windows(&source).await?;
        calendars.extend(source_calendar(&source, &records, &runs, lookback_days(&source)));
    }
    Ok(calendars)
}

/// What one day of one dataset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DayState {
    /// A done window holds the dataset.
    Done,
    /// Done, and among the last `lookback_days` done windows a nightly run exports again.
    Lookback,
    /// Not done: its last attempt failed, or was interrupted while publishing.
    Failed,
    /// Never landed: a hole between the first and the last window.
    Missing,
}

impl DayState {
    fn symbol(self, colour: bool) -> &'static str {
        match (self, colour) {
            (DayState::Done, true) => "\x1b[32m█\x1b[0m",
            (DayState::Lookback, true) => "\x1b[36m▓\x1b[0m",
            (DayState::Failed, true) => "\x1b[1;31m✗\x1b[0m",
            (DayState::Missing, true) => "\x1b[2m·\x1b[0m",
            (DayState::Done, false) => "#",
            (DayState::Lookback, false) => "+",
            (DayState::Failed, false) => "x",
            (DayState::Missing, false) => ".",
        }
    }

    fn name(self) -> &'static str {
        match self {
            DayState::Done => "done",
            DayState::Lookback => "done, in the lookback (exported again by the next nightly run)",
            DayState::Failed => "failed or interrupted (the next run retries it)",
            DayState::Missing => "missing",
        }
    }
}

/// One dataset's days, from `first` on, one state each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetCalendar {
    pub source: String,
    pub dataset: String,
    pub first: NaiveDate,
    pub days: Vec<DayState>,
}

impl DatasetCalendar {
    pub fn last(&self) -> NaiveDate {
        self.first + chrono::Days::new(self.days.len().saturating_sub(1) as u64)
    }

    /// The last `count` days only.
    fn last_days(&self, count: usize) -> DatasetCalendar {
        let skip = self.days.len().saturating_sub(count);
        DatasetCalendar {
            first: self.first + chrono::Days::new(skip as u64),
            days: self.days[skip..].to_vec(),
            ..self.clone()
        }
    }
}

/// A source's calendars, one per dataset, from its window records and recent run reports (for
/// which windows failed). All datasets of a source span the same days: the source's first to
/// last window.
pub fn source_calendar(
    source: &str,
    records: &[WindowRecord],
    runs: &[RunReport],
    lookback_days: u32,
) -> Vec<DatasetCalendar> {
    let begun: BTreeSet<NaiveDate> = records.iter().map(|r| r.date).collect();
    // The latest outcome of each day among the runs, for days not done.
    let mut failed: BTreeSet<NaiveDate> =
        records.iter().filter(|r| r.status != WindowStatus::Done).map(|r| r.date).collect();
    // A window fails by its own error, or with its run (a rejected key stops every window).
    let mut attempts: BTreeMap<NaiveDate, (chrono::DateTime<chrono::Utc>, bool)> = BTreeMap::new();
    for run in runs.iter().filter(|r| r.source == source) {
        for window in &run.windows {
            let failed = window.outcome == WindowOutcome::Failed
                || (window.outcome == WindowOutcome::Skipped && run.fatal_error.is_some());
            let newer = attempts.get(&window.date).is_none_or(|(at, _)| *at < run.finished_at);
            if newer {
                attempts.insert(window.date, (run.finished_at, failed));
            }
        }
    }
    failed.extend(attempts.iter().filter(|(_, (_, failed))| *failed).map(|(d, _)| *d));
    let (Some(first), Some(last)) =
        (begun.iter().chain(&failed).min().copied(), begun.iter().chain(&failed).max().copied())
    else {
        return Vec::new();
    };
    let mut datasets: BTreeMap<&str, BTreeSet<NaiveDate>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.status == WindowStatus::Done) {
        for name in record.datasets.keys() {
            datasets.entry(name).or_default().insert(record.date);
        }
    }
    let span = (last - first).num_days() as usize + 1;
    datasets
        .into_iter()
        .map(|(dataset, done)| {
            let lookback: BTreeSet<NaiveDate> =
                done.iter().rev().take(lookback_days as usize).copied().collect();
            let days = (0..span)
                .map(|i| {
                    let day = first + chrono::Days::new(i as u64);
                    if lookback.contains(&day) {
                        DayState::Lookback
                    } else if done.contains(&day) {
                        DayState::Done
                    } else if failed.contains(&day) {
                        DayState::Failed
                    } else {
                        DayState::Missing
                    }
                })
                .collect();
            DatasetCalendar { source: source.to_string(), dataset: dataset.to_string(), first, days }
        })
        .collect()
}

/// The calendars as text: per source a header of months and day numbers over the columns, a row
/// per dataset, then counts and a legend. `days`: only the last that many days.
pub fn render(calendars: &[DatasetCalendar], days: Option<usize>, colour: bool) -> String {
    let calendars: Vec<DatasetCalendar> =
        calendars.iter().map(|c| days.map_or_else(|| c.clone(), |n| c.last_days(n))).collect();
    let mut out = String::new();
    // "  <dataset>" and a space before the cells.
    let width = calendars.iter().map(|c| c.dataset.len()).max().unwrap_or(0).max(8) + 3;
    let mut sources: Vec<&str> = calendars.iter().map(|c| c.source.as_str()).collect();
    sources.dedup();
    for source in sources {
        let rows: Vec<&DatasetCalendar> = calendars.iter().filter(|c| c.source == source).collect();
        let Some(first) = rows.first() else { continue };
        out.push_str(&format!("{source}: {} to {}\n", first.first, first.last()));
        let (months, dates) = header(first.first, first.days.len());
        out.push_str(&format!("{:width$}{months}\n{:width$}{dates}\n", "", ""));
        for row in rows {
            let cells: String = row.days.iter().map(|d| d.symbol(colour)).collect();
            let count = |state: DayState| row.days.iter().filter(|d| **d == state).count();
            out.push_str(&format!(
                "{:width$}{cells}  {} done, {} missing, {} failed\n",
                format!("  {}", row.dataset),
                count(DayState::Done) + count(DayState::Lookback),
                count(DayState::Missing),
                count(DayState::Failed)
            ));
        }
        out.push('\n');
    }
    if calendars.is_empty() {
        out.push_str("no windows in this lake yet\n");
        return out;
    }
    out.push_str("legend: ");
    let legend: Vec<String> = [DayState::Done, DayState::Lookback, DayState::Failed, DayState::Missing]
        .iter()
        .map(|s| format!("{} {}", s.symbol(colour), s.name()))
        .collect();
    out.push_str(&legend.join("   "));
    out.push('\n');
    out
}

/// Two header lines over `count` day columns from `first`: month names where a month starts
/// (and at the first column), and the day of the month every 5 days (1, 5, 10, …).
fn header(first: NaiveDate, count: usize) -> (String, String) {
    let mut months = vec![' '; count + 8];
    let mut dates = vec![' '; count + 3];
    for i in 0..count {
        let day = first + chrono::Days::new(i as u64);
        if i == 0 || day.day() == 1 {
            // The columns up to the next month's label: the month and year where they fit, the
            // month alone where only it does, nothing where not even that (the range is above).
            let next_month =
                (1..).map(|d| day + chrono::Days::new(d)).find(|d| d.day() == 1).expect("a next month");
            let room = usize::try_from((next_month - day).num_days()).unwrap_or(0).min(count - i + 8);
            let label = [day.format("%b %Y").to_string(), day.format("%b").to_string()]
                .into_iter()
                .find(|label| label.len() < room || (i + room >= count && label.len() <= room));
            if let Some(label) = label {
                for (j, c) in label.chars().enumerate() {
                    if let Some(slot) = months.get_mut(i + j) {
                        *slot = c;
                    }
                }
            }
        }
        if day.day() == 1 || day.day().is_multiple_of(5) {
            let label = day.day().to_string();
            if dates[i..(i + label.len()).min(dates.len())].iter().all(|c| *c == ' ')
                && (i == 0 || dates[i - 1] == ' ')
            {
                for (j, c) in label.chars().enumerate() {
                    if let Some(slot) = dates.get_mut(i + j) {
                        *slot = c;
                    }
                }
            }
        }
    }
    let trim = |cells: Vec<char>| cells.into_iter().collect::<String>().trim_end().to_string();
    (trim(months), trim(dates))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn months_and_dates_label_their_columns() {
        let (months, dates) = header(day("2024-02-27"), 10);
        assert_eq!(months.trim_start().find("Mar 2024"), Some(0), "{months}");
        assert_eq!(months.find("Mar 2024"), Some(3), "Feb's three days have no room for a label");
        let (months, _) = header(day("2024-02-24"), 10);
        assert_eq!(months, "Feb   Mar 2024", "the month alone where the year does not fit");
        let (months, dates_march) = header(day("2024-02-20"), 15);
        assert_eq!(months.find("Mar 2024"), Some(10), "{months}");
        assert_eq!(&dates_march[5..7], "25");
        assert_eq!(dates_march.chars().nth(10), Some('1'));
        assert!(dates.starts_with("   1"), "{dates}");
    }

    #[test]
    fn plain_text_has_no_escape_codes_and_colour_has_them() {
        let calendar = DatasetCalendar {
            source: "s".into(),
            dataset: "d".into(),
            first: day("2024-03-01"),
            days: vec![DayState::Done, DayState::Missing, DayState::Failed, DayState::Lookback],
        };
        let plain = render(std::slice::from_ref(&calendar), None, false);
        assert!(plain.contains("  d") && plain.contains("#.x+"), "{plain}");
        assert!(!plain.contains('\x1b'));
        assert!(render(&[calendar], Some(2), true).contains("\x1b[1;31m✗"));
    }
}
