//! `cxlake drift`: how the data a lake received differs from the declaration it stands under, per
//! dataset, and the commands that redraw the declaration and replay the history under it.
//!
//! Read from the window records alone (each keeps its files' [`Drift`]) and the current tables'
//! manifests (rows sharing a key and version), over the windows written with the dataset's
//! current declaration — the one its newest window used — so fixing the declaration and
//! replaying clears the report. `status` shows its one-line summary, the metrics file its counts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::current::DuplicateKeys;
use crate::decode::drift::{Coercions, Drift};
use crate::schema::DatasetKind;
use crate::sink::{Destination, SinkError};
use crate::state::{StateStore, WindowRecord, WindowStatus};

/// A field over the windows it was seen in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldSeen {
    pub values: u64,
    pub windows: usize,
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub example: String,
    /// False for a CSV column of a dataset without `_extra`: its values are not loaded.
    pub kept: bool,
}

/// One dataset's drift since its declaration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDrift {
    pub source: String,
    pub dataset: String,
    /// The fingerprint of the declaration the table stands under (its newest window's).
    pub declaration: Option<String>,
    /// Windows written with it: the ones this report covers.
    pub windows: usize,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// Fields the declaration does not have, by path.
    pub undeclared: BTreeMap<String, FieldSeen>,
    /// Declared columns no window carried (absent from every file).
    pub absent: Vec<String>,
    /// Values that did not fit their column (null there, exact in `_extra`), by path.
    pub kept_in_extra: BTreeMap<String, FieldSeen>,
    /// Values converted without loss, by path and kind.
    pub coerced: BTreeMap<String, Coercions>,
    /// Entities: windows with rows that share a key and a version.
    pub duplicate_keys: BTreeMap<NaiveDate, DuplicateKeys>,
}

impl DatasetDrift {
    pub fn name(&self) -> String {
        format!("{}.{}", self.source, self.dataset)
    }

    /// Whether the data matches the declaration (coercions alone are not a difference).
    pub fn is_clean(&self) -> bool {
        self.undeclared.is_empty()
            && self.absent.is_empty()
            && self.kept_in_extra.is_empty()
            && self.duplicate_keys.is_empty()
    }

    pub fn kept_values(&self) -> u64 {
        self.kept_in_extra.values().map(|f| f.values).sum()
    }

    pub fn coerced_values(&self) -> u64 {
        self.coerced.values().map(Coercions::total).sum()
    }

    pub fn duplicate_rows(&self) -> u64 {
        self.duplicate_keys.values().map(|d| d.rows).sum()
    }

    /// A few words for `status`'s drift column: `none`, or e.g. `8 new, 2 absent, 280 kept`.
    pub fn short(&self) -> String {
        let mut parts = Vec::new();
        if !self.undeclared.is_empty() {
            parts.push(format!("{} new", self.undeclared.len()));
        }
        if !self.absent.is_empty() {
            parts.push(format!("{} absent", self.absent.len()));
        }
        let kept = self.kept_values();
        if kept > 0 {
            parts.push(format!("{kept} kept"));
        }
        let duplicates = self.duplicate_rows();
        if duplicates > 0 {
            parts.push(format!("{duplicates} dup"));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// The commands that fix what this report shows, for a lake at `dest`.
    pub fn fix(&self, dest: &str) -> Option<String> {
        if self.is_clean() {
            return None;
        }
        let (source, dataset) = (&self.source, &self.dataset);
        let mut steps = format!(
            "cxlake schema draft {source}.{dataset} --from-lake {dest} > DIR/{source}/{dataset}.toml\n\
             # review DIR/{source}/{dataset}.toml: types, descriptions, pii flags"
        );
        if !self.duplicate_keys.is_empty() {
            steps.push_str(", and a `key` that identifies one row");
        }
        steps.push_str(&format!(
            "\ncxlake replay {source} --dest {dest} --schemas DIR   # then sync with --schemas DIR (or `schemas` in cxlake.toml)"
        ));
        Some(steps)
    }
}

/// One dataset's drift from its window records (duplicate keys are added by [`lake_drift`]).
pub fn dataset_drift(source: &str, dataset: &str, records: &[WindowRecord]) -> DatasetDrift {
    let landed: Vec<(&WindowRecord, &crate::state::DatasetRecord)> = records
        .iter()
        .filter(|r| r.status == WindowStatus::Done)
        .filter_map(|r| Some((r, r.datasets.get(dataset)?)))
        .collect();
    let declaration =
        landed.iter().max_by_key(|(r, _)| r.finished_at).and_then(|(_, d)| d.declaration.clone());
    let covered: Vec<&(&WindowRecord, &crate::state::DatasetRecord)> =
        landed.iter().filter(|(_, d)| d.declaration == declaration).collect();
    let mut drift = DatasetDrift {
        source: source.to_string(),
        dataset: dataset.to_string(),
        declaration,
        windows: covered.len(),
        first_day: covered.iter().map(|(r, _)| r.date).min(),
        last_day: covered.iter().map(|(r, _)| r.date).max(),
        undeclared: BTreeMap::new(),
        absent: Vec::new(),
        kept_in_extra: BTreeMap::new(),
        coerced: BTreeMap::new(),
        duplicate_keys: BTreeMap::new(),
    };
    let with_rows: Vec<&Drift> =
        covered.iter().filter(|(_, d)| d.stats.rows_read > 0).map(|(_, d)| &d.drift).collect();
    drift.absent = Drift::merged(with_rows.iter().copied()).absent.into_iter().collect();
    for (record, landed) in &covered {
        let add =
            |map: &mut BTreeMap<String, FieldSeen>, path: &String, values: u64, example: &str, kept: bool| {
                let entry = map.entry(path.clone()).or_insert_with(|| FieldSeen {
                    values: 0,
                    windows: 0,
                    first: record.date,
                    last: record.date,
                    example: example.to_string(),
                    kept,
                });
                entry.values += values;
                entry.windows += 1;
                entry.first = entry.first.min(record.date);
                entry.last = entry.last.max(record.date);
            };
        for (path, seen) in &landed.drift.undeclared {
            add(&mut drift.undeclared, path, seen.values, &seen.example, seen.kept);
        }
        for (path, seen) in &landed.drift.kept_in_extra {
            add(&mut drift.kept_in_extra, path, seen.values, &seen.example, true);
        }
        for (path, coerced) in &landed.drift.coerced {
            let entry = drift.coerced.entry(path.clone()).or_default();
            entry.json_as_text += coerced.json_as_text;
            entry.whole_number += coerced.whole_number;
            entry.list_of_one += coerced.list_of_one;
        }
    }
    drift
}

/// Adds to `drift` the rows sharing a key and version that its current table's manifest found in
/// the windows the report covers (those written with the current declaration).
pub async fn add_duplicate_keys(
    dest: &Destination,
    records: &[WindowRecord],
    drift: &mut DatasetDrift,
) -> Result<(), SinkError> {
    let dataset = &drift.dataset;
    let covered: std::collections::BTreeSet<NaiveDate> = records
        .iter()
        .filter(|r| r.datasets.get(dataset).is_some_and(|d| d.declaration == drift.declaration))
        .map(|r| r.date)
        .collect();
    drift.duplicate_keys = crate::current::duplicate_keys(dest, &drift.source, dataset)
        .await?
        .into_iter()
        .filter(|(date, _)| covered.contains(date))
        .collect();
    Ok(())
}

/// The drift of every dataset of the lake's sources (or of `only` one).
pub async fn lake_drift(dest: &Destination, only: Option<&str>) -> Result<Vec<DatasetDrift>, SinkError> {
    let state = StateStore::new(dest.clone());
    let registry = crate::schema::SchemaRegistry::embedded().ok();
    let mut all = Vec::new();
    for source in state.sources().await? {
        if only.is_some_and(|o| o != source) {
            continue;
        }
        let records = state.load_windows(&source).await?;
        let datasets: std::collections::BTreeSet<&String> =
            records.iter().flat_map(|r| r.datasets.keys()).collect();
        for dataset in datasets {
            let mut drift = dataset_drift(&source, dataset, &records);
            let entities = registry
                .as_ref()
                .and_then(|r| r.dataset(&source, dataset).ok())
                .is_none_or(|s| s.kind == DatasetKind::Entities);
            if entities {
                add_duplicate_keys(dest, &records, &mut drift).await?;
            }
            all.push(drift);
        }
    }
    Ok(all)
}

fn range(first: NaiveDate, last: NaiveDate) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}..{last}")
    }
}

/// The report as text: per dataset, what differs, then the commands that fix it.
pub fn render(dest: &str, drifts: &[DatasetDrift]) -> String {
    if drifts.is_empty() {
        return format!("{dest}: no windows yet\n");
    }
    let mut out = String::new();
    for d in drifts {
        let span = match (d.first_day, d.last_day) {
            (Some(first), Some(last)) => format!(", {}", range(first, last)),
            _ => String::new(),
        };
        let declaration = d.declaration.as_deref().unwrap_or("not recorded");
        out.push_str(&format!(
            "{} — declaration {declaration}, {} window(s){span}: {}\n",
            d.name(),
            d.windows,
            if d.is_clean() { "matches".to_string() } else { d.short() }
        ));
        for (path, f) in &d.undeclared {
            let fate = if f.kept { "kept in _extra" } else { "not loaded (in the raw archive)" };
            out.push_str(&format!(
                "  undeclared  {path}: {} value(s) in {} window(s) {}, {fate}; e.g. `{}`\n",
                f.values,
                f.windows,
                range(f.first, f.last),
                f.example
            ));
        }
        for column in &d.absent {
            out.push_str(&format!("  absent      {column}: declared, in no file (null in every row)\n"));
        }
        for (path, f) in &d.kept_in_extra {
            out.push_str(&format!(
                "  did not fit {path}: {} value(s) in {} window(s), null in the column and exact in _extra; e.g. {}\n",
                f.values, f.windows, f.example
            ));
        }
        for (path, c) in &d.coerced {
            let mut kinds = Vec::new();
            if c.json_as_text > 0 {
                kinds.push(format!("{} JSON value(s) kept as text", c.json_as_text));
            }
            if c.whole_number > 0 {
                kinds.push(format!("{} whole number(s) like 5.0 as integers", c.whole_number));
            }
            if c.list_of_one > 0 {
                kinds.push(format!("{} single value(s) as a list of one", c.list_of_one));
            }
            out.push_str(&format!("  coerced     {path}: {} (nothing lost)\n", kinds.join(", ")));
        }
        for (date, dup) in &d.duplicate_keys {
            out.push_str(&format!(
                "  duplicate   {date}: {} row(s) repeat a key and version, e.g. key ({}); the current table keeps the last in file order\n",
                dup.rows, dup.example
            ));
        }
        if let Some(fix) = d.fix(dest) {
            out.push_str("  fix:\n");
            for line in fix.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

/// Why a declaration could not be redrawn from the lake.
#[derive(Debug, thiserror::Error)]
pub enum RedrawError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Read(String),
}

/// Redraws `current` (the table's declaration) from the lake: the raw archive of its done windows
/// in `[from, to)` (up to `rows` records), or — for windows without raw files — the `_extra`
/// values of their data files; merged with `current` as [`crate::schema::draft::Sample::redraw`]
/// says. Nothing is written.
pub async fn redraw(
    dest: &Destination,
    current: &crate::schema::DatasetSchema,
    records: &[WindowRecord],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    rows: u64,
) -> Result<String, RedrawError> {
    use crate::schema::draft::{Evidence, Sample};
    let dataset = &current.dataset;
    let in_range = |date: NaiveDate| from.is_none_or(|f| date >= f) && to.is_none_or(|t| date < t);
    let windows: Vec<&WindowRecord> = records
        .iter()
        .filter(|r| r.status == WindowStatus::Done && in_range(r.date) && r.datasets.contains_key(dataset))
        .collect();
    if windows.is_empty() {
        return Err(RedrawError::Read(format!(
            "{} has no done window{} in {}: sync it first",
            current.qualified_name(),
            if from.is_some() || to.is_some() { " in that range" } else { "" },
            dest.display
        )));
    }
    let drift = dataset_drift(&current.source, dataset, records);
    let scratch = tempfile::tempdir().map_err(|e| RedrawError::Read(format!("a scratch directory: {e}")))?;
    let mut sample = Sample::default();
    let (mut raw_windows, mut extra_windows) = (0, 0);
    // Newest first: the tenant as it is now.
    for record in windows.iter().rev() {
        if sample.rows() >= rows {
            break;
        }
        let landed = &record.datasets[dataset];
        if !landed.raw.is_empty() {
            raw_windows += 1;
            for (i, file) in landed.raw.iter().enumerate() {
                let local = scratch.path().join(format!("{i}-{}", file.file_name));
                crate::sink::raw::restore(dest, file, &local).await?;
                let left = rows.saturating_sub(sample.rows());
                crate::decode::sample_file(&mut sample, &local, &file.file_name, left)
                    .map_err(|e| RedrawError::Read(format!("{}: {e}", file.file_name)))?;
                let _ = std::fs::remove_file(&local);
            }
        } else if current.extra_index().is_some() {
            extra_windows += 1;
            for file in &landed.files {
                sample_extra(dest, &mut sample, &file.path, rows).await?;
            }
        }
    }
    let days = |n: usize| if n == 1 { "1 window".to_string() } else { format!("{n} windows") };
    let origin = match (raw_windows, extra_windows) {
        (r, 0) => format!("the raw archive of {}", days(r)),
        (0, e) => format!("the _extra column of {} (no raw files kept)", days(e)),
        (r, e) => format!("the raw archive of {} and _extra of {}", days(r), days(e)),
    };
    let evidence = Evidence {
        mismatched: drift.kept_in_extra.keys().cloned().collect(),
        origin,
        whole_records: raw_windows > 0,
    };
    Ok(sample.redraw(current, &evidence))
}

/// Observes the top-level fields kept in a data file's `_extra` (a window with no raw files).
async fn sample_extra(
    dest: &Destination,
    sample: &mut crate::schema::draft::Sample,
    file: &str,
    rows: u64,
) -> Result<(), RedrawError> {
    use arrow::array::AsArray;
    use futures::TryStreamExt;
    let only = [crate::schema::EXTRA_COLUMN.to_string()];
    let mut batches = std::pin::pin!(
        crate::sink::parquet::read_batches(dest, file, Some(&only), Default::default()).await?
    );
    while let Some(batch) = batches.try_next().await? {
        let Some(column) = batch.column_by_name(crate::schema::EXTRA_COLUMN) else { return Ok(()) };
        for text in column.as_string::<i32>().iter().flatten() {
            if sample.rows() >= rows {
                return Ok(());
            }
            let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(text)
            else {
                continue;
            };
            // Paths inside lists and structs (`ratings[1].x`) are not top-level fields.
            let top: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().filter(|(k, _)| !k.contains(['[', '.'])).collect();
            sample.record(&top);
        }
    }
    Ok(())
}
