//! Erasure on request (`cxlake forget`, GDPR art. 17): a person's rows found by a normalised
//! e-mail address or phone number in personal columns, or a record's key and every row that
//! references it (the schemas' `[[references]]`, followed transitively), removed from the
//! history, the current tables and the raw archive of every source in the lake.
//!
//! Each affected window is rewritten like a sync rewrites it: the kept rows of each of its data
//! files go to staging, one file per file, and are published in place of the old ones (Parquet:
//! renamed over, the rest deleted; Delta: one commit per table replacing every rewritten
//! partition's files, then the replaced files deleted at once — no time travel back to the
//! person), the window record
//! updated last. Raw files holding the person are rewritten without their records (an XLSX, which
//! cannot be rewritten record by record, is deleted from the archive). Everything is found again
//! by content, never by what an earlier attempt recorded, so a run killed at any point is
//! completed by running the same `forget` again, and a second run changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::current;
use crate::schema::pii::{hash_value, normalize, PiiKey, PiiKind};
use crate::schema::{DatasetKind, DatasetSchema, SchemaRegistry};
use crate::sink::parquet::{read_batches, PartWriter, PartWriterConfig};
use crate::sink::raw::{self, RawFile};
use crate::sink::table::{Rewrites, Table};
use crate::sink::{commit, crash_if_asked, layout, Destination, OutputFormat, SinkError};
use crate::state::{StateStore, WindowRecord, WindowStatus};

/// Whose data to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Email(String),
    Phone(String),
    /// A record of `source.dataset` by its (one-column) key, and what references it.
    Key {
        source: String,
        dataset: String,
        id: String,
    },
}

impl Target {
    /// The target as given: e-mails and phones normalised as the PII policy does.
    pub fn email(value: &str) -> Target {
        Target::Email(normalize(PiiKind::Email, value))
    }

    pub fn phone(value: &str) -> Target {
        Target::Phone(normalize(PiiKind::Phone, value))
    }

    /// Names the erasure without the value: an HMAC of the normalised target with the PII key
    /// when there is one (nobody without the key can test a guess against it), else a SHA-256.
    pub fn fingerprint(&self, key: Option<&PiiKey>) -> String {
        let text = match self {
            Target::Email(e) => format!("email\0{e}"),
            Target::Phone(p) => format!("phone\0{p}"),
            Target::Key { source, dataset, id } => format!("key\0{source}.{dataset}\0{id}"),
        };
        match key {
            Some(key) => {
                hash_value(key, PiiKind::Value, &format!("cxlake erasure\0{text}"))[..24].to_string()
            }
            None => hex::encode(&Sha256::digest(format!("cxlake erasure\0{text}").as_bytes())[..12]),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Target::Email(_) => "email",
            Target::Phone(_) => "phone",
            Target::Key { .. } => "key",
        }
    }
}

/// What an erasure touched in one dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Touched {
    pub windows: usize,
    pub rows: u64,
    pub files_rewritten: usize,
    pub raw_files_rewritten: usize,
    pub raw_files_deleted: usize,
}

/// The erasure record kept under `_cxlake/erasures/`: the value's fingerprint, never the value.
/// Written `pending` with the windows to rewrite before anything is touched, `done` at the end:
/// a `sync` refuses to publish a window a pending erasure covers (it could not erase the person
/// from what it fetches), until the same `forget` is run again and completes.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ErasureReport {
    #[serde(default)]
    pub status: ErasureStatus,
    /// While pending: the windows (per source) that held the person when it began.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub windows: BTreeMap<String, BTreeSet<NaiveDate>>,
    pub fingerprint: String,
    pub kind: String,
    pub run_id: String,
    pub dry_run: bool,
    pub finished_at: DateTime<Utc>,
    /// `source.dataset` → what was removed.
    pub datasets: BTreeMap<String, Touched>,
    /// Quarantined rows whose raw record held the person, removed from `_cxlake/rejects/`.
    #[serde(default)]
    pub rejects_removed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureStatus {
    Pending,
    #[default]
    Done,
}

/// The windows of `source` that pending erasures cover, each with the erasure's fingerprint.
pub async fn pending_windows(
    dest: &Destination,
    source: &str,
) -> Result<BTreeMap<NaiveDate, String>, SinkError> {
    let state = StateStore::new(dest.clone());
    let mut covered = BTreeMap::new();
    for file in commit::list_files(dest, &format!("{}/erasures", layout::BOOKKEEPING_DIR)).await? {
        let Ok(Some(record)) = state.get_json::<ErasureReport>(&file).await else { continue };
        if record.status == ErasureStatus::Pending {
            for date in record.windows.get(source).into_iter().flatten() {
                covered.insert(*date, record.fingerprint.clone());
            }
        }
    }
    Ok(covered)
}

impl ErasureReport {
    pub fn render(&self) -> String {
        let verb = if self.dry_run { "would remove" } else { "removed" };
        let mut out = format!("erasure {} ({}):\n", self.fingerprint, self.kind);
        if self.datasets.is_empty() && self.rejects_removed == 0 {
            out.push_str("  nothing left to remove in the history, the raw archive or the quarantine\n");
        }
        if self.rejects_removed > 0 {
            out.push_str(&format!("  quarantine: {verb} {} row(s)\n", self.rejects_removed));
        }
        for (dataset, t) in &self.datasets {
            out.push_str(&format!(
                "  {dataset}: {verb} {} row(s) in {} window(s), {} data file(s) rewritten, {} raw file(s) rewritten, {} raw file(s) deleted\n",
                t.rows, t.windows, t.files_rewritten, t.raw_files_rewritten, t.raw_files_deleted
            ));
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Declaration(#[from] crate::declaration::DeclarationError),
    #[error("{0}")]
    Usage(String),
}

/// The person's rows, as each dataset holds them.
struct Matcher<'a> {
    target: &'a Target,
    /// For an e-mail or phone: its kind, and what a column hashed under the PII key holds for it
    /// (hashed as that kind, or as a plain value), computed once.
    contact: Option<(PiiKind, Vec<String>)>,
    /// Key values erased, per `source.dataset`, followed through references.
    erased: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Matcher<'a> {
    fn new(target: &'a Target, key: Option<&PiiKey>) -> Matcher<'a> {
        let contact = match target {
            Target::Email(wanted) | Target::Phone(wanted) => {
                let kind = if matches!(target, Target::Email(_)) { PiiKind::Email } else { PiiKind::Phone };
                let hashed = key
                    .map(|key| vec![hash_value(key, kind, wanted), hash_value(key, PiiKind::Value, wanted)])
                    .unwrap_or_default();
                Some((kind, hashed))
            }
            Target::Key { .. } => None,
        };
        Matcher { target, contact, erased: BTreeMap::new() }
    }

    /// Whether an e-mail or phone can be in `column`: a personal column of that kind, or a plain value.
    fn compares(kind: PiiKind, column: &crate::schema::Column) -> bool {
        column.pii && (column.pii_kind == PiiKind::Value || column.pii_kind == kind)
    }

    /// Whether `column` holds JSON text whose string values may be anything the platform sent:
    /// a `json_text` column, or `_extra` (no PII policy applies inside them).
    fn holds_json(column: &crate::schema::Column) -> bool {
        column.name == crate::schema::EXTRA_COLUMN || column.encoding == crate::schema::Encoding::JsonText
    }

    /// The columns of `schema` that can show the person: none means the dataset cannot hold them.
    fn columns(&self, schema: &DatasetSchema) -> Vec<String> {
        match self.target {
            Target::Email(_) | Target::Phone(_) => {
                let (kind, _) = self.contact.as_ref().expect("set for e-mails and phones");
                schema
                    .columns
                    .iter()
                    .filter(|c| Self::compares(*kind, c) || Self::holds_json(c))
                    .map(|c| c.name.clone())
                    .collect()
            }
            Target::Key { source, dataset, .. } => {
                let mut columns: Vec<String> = schema.references.iter().map(|r| r.column.clone()).collect();
                if schema.source == *source && schema.dataset == *dataset {
                    columns.extend(schema.key.iter().cloned());
                }
                columns
            }
        }
    }

    /// Whether a row is the person's: `values(i)` gives column `i`'s values as text, `policy`
    /// what the window landed each personal column as (empty for raw files, as fetched).
    fn matches(
        &self,
        schema: &DatasetSchema,
        policy: &BTreeMap<String, String>,
        values: &dyn Fn(usize) -> Vec<String>,
    ) -> bool {
        match self.target {
            Target::Email(wanted) | Target::Phone(wanted) => {
                let (kind, hashed) = self.contact.as_ref().expect("set for e-mails and phones");
                schema.columns.iter().enumerate().any(|(i, column)| {
                    if Self::holds_json(column) {
                        // Every string inside, at any depth, compared in the normal form.
                        return values(i).iter().any(|text| self.json_holds(text));
                    }
                    if !Self::compares(*kind, column) {
                        return false;
                    }
                    let landed = policy.get(&column.name).map(String::as_str).unwrap_or("keep");
                    values(i).iter().any(|v| match landed {
                        "hash" => hashed.contains(v),
                        "drop" => false,
                        _ => normalize(*kind, v) == *wanted,
                    })
                })
            }
            Target::Key { source, dataset, id } => {
                let own = schema.source == *source && schema.dataset == *dataset;
                if own && schema.key.len() == 1 {
                    if let Some(i) = schema.column_index(&schema.key[0]) {
                        if values(i).iter().any(|v| v == id) {
                            return true;
                        }
                    }
                }
                schema.references.iter().any(|reference| {
                    let Some((to_dataset, _)) = reference.target() else { return false };
                    let Some(erased) = self.erased.get(&format!("{}.{to_dataset}", schema.source)) else {
                        return false;
                    };
                    schema
                        .column_index(&reference.column)
                        .is_some_and(|i| values(i).iter().any(|v| erased.contains(v)))
                })
            }
        }
    }
}

impl Matcher<'_> {
    /// Whether a JSON text holds the e-mail or phone as one of its string values, at any depth.
    fn json_holds(&self, text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text).is_ok_and(|value| self.value_holds(&value))
    }

    /// Whether a parsed JSON value holds the e-mail or phone as a string anywhere in it.
    fn value_holds(&self, value: &serde_json::Value) -> bool {
        let Some((kind, _)) = &self.contact else { return false };
        let wanted = match self.target {
            Target::Email(w) | Target::Phone(w) => w,
            Target::Key { .. } => return false,
        };
        match value {
            serde_json::Value::String(s) => normalize(*kind, s) == *wanted,
            serde_json::Value::Array(items) => items.iter().any(|v| self.value_holds(v)),
            serde_json::Value::Object(map) => map.values().any(|v| self.value_holds(v)),
            _ => false,
        }
    }

    /// Whether a quarantined row's raw record (a CSV line or a JSON element, as read) holds the
    /// person: as JSON, any string value; else any field or word of it, in the normal form; for a
    /// key, any field equal to an erased key.
    fn raw_text_holds(&self, raw: &str) -> bool {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(raw) {
            if self.value_holds(&value) {
                return true;
            }
        }
        let fields: Vec<String> = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(raw.as_bytes())
            .records()
            .flatten()
            .flat_map(|r| r.iter().map(str::to_string).collect::<Vec<_>>())
            .collect();
        let words = raw.split(|c: char| c.is_whitespace() || "\",;:{}[]<>'".contains(c));
        match self.target {
            Target::Key { .. } => {
                fields.iter().any(|f| self.erased.values().any(|keys| keys.contains(f.trim())))
            }
            _ => fields.iter().map(String::as_str).chain(words).any(|text| self.text_is(text)),
        }
    }

    /// Whether a raw field (a CSV cell) is the e-mail or phone, in the normal form.
    fn text_is(&self, text: &str) -> bool {
        match (&self.contact, self.target) {
            (Some((kind, _)), Target::Email(w) | Target::Phone(w)) => {
                !text.is_empty() && normalize(*kind, text) == *w
            }
            _ => false,
        }
    }
}

/// Every table of the lake: source, its declaration, format and window records.
type Lake = Vec<(String, Arc<DatasetSchema>, OutputFormat, Vec<WindowRecord>)>;

/// Where a verification looked and what trace of the person it found.
#[derive(Debug, Default, Serialize)]
pub struct Verification {
    pub traces: Vec<String>,
    pub data_files: usize,
    pub raw_files: usize,
    pub current_tables: usize,
    pub rejects_files: usize,
}

impl Verification {
    pub fn render(&self) -> String {
        let searched = format!(
            "{} data file(s), {} current table(s), {} raw file(s), {} quarantine file(s)",
            self.data_files, self.current_tables, self.raw_files, self.rejects_files
        );
        if self.traces.is_empty() {
            format!("verified: no trace left in {searched}\n")
        } else {
            let mut out = format!("NOT erased: {} trace(s) left (searched {searched}):\n", self.traces.len());
            for trace in &self.traces {
                out.push_str(&format!("  {trace}\n"));
            }
            out.push_str("  run the same `cxlake forget` again to complete it\n");
            out
        }
    }
}

/// A quarantine file (CSV: file, line, column, reason, raw record) without the rows whose raw
/// record holds the person; and how many it had.
fn rejects_without(matcher: &Matcher<'_>, bytes: &[u8]) -> (Vec<u8>, u64) {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    if let Ok(headers) = reader.byte_headers() {
        let _ = writer.write_byte_record(&headers.clone());
    }
    let mut hits = 0;
    for record in reader.byte_records().flatten() {
        let raw = String::from_utf8_lossy(record.get(4).unwrap_or_default());
        if matcher.raw_text_holds(&raw) {
            hits += 1;
        } else {
            let _ = writer.write_byte_record(&record);
        }
    }
    (writer.into_inner().unwrap_or_default(), hits)
}

/// A column's values at `row` as text (lists item by item; other types not compared).
fn cell_values(array: &ArrayRef, row: usize) -> Vec<String> {
    if array.is_null(row) {
        return Vec::new();
    }
    match array.data_type() {
        DataType::Utf8 => vec![array.as_string::<i32>().value(row).to_string()],
        DataType::Int64 => vec![array.as_primitive::<Int64Type>().value(row).to_string()],
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            (0..items.len()).flat_map(|i| cell_values(&items, i)).collect()
        }
        _ => Vec::new(),
    }
}

/// The PII policy a window landed a dataset under, per column (`email=hash,…`).
fn policy_of(described: Option<&str>) -> BTreeMap<String, String> {
    described
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| part.split_once('='))
        .filter(|(column, _)| *column != "key")
        .map(|(c, a)| (c.to_string(), a.to_string()))
        .collect()
}

/// Reads a Parquet file of the lake whole: every column, or `only` these.
async fn read_file(
    dest: &Destination,
    relative: &str,
    only: Option<&[String]>,
) -> Result<Vec<RecordBatch>, SinkError> {
    read_batches(dest, relative, only, Default::default()).await?.try_collect().await
}

/// Which rows of `batch` are the person's.
fn mask(
    matcher: &Matcher<'_>,
    schema: &DatasetSchema,
    policy: &BTreeMap<String, String>,
    batch: &RecordBatch,
) -> Vec<bool> {
    let columns: Vec<Option<ArrayRef>> =
        schema.columns.iter().map(|c| batch.column_by_name(&c.name).cloned()).collect();
    (0..batch.num_rows())
        .map(|row| {
            let values = |i: usize| columns[i].as_ref().map(|a| cell_values(a, row)).unwrap_or_default();
            matcher.matches(schema, policy, &values)
        })
        .collect()
}

/// The data files of a window's dataset as they are now (see [`Table::window_files`]).
async fn window_files(
    dest: &Destination,
    format: OutputFormat,
    source: &str,
    schema: &DatasetSchema,
    record: &WindowRecord,
) -> Result<Vec<String>, SinkError> {
    Table::history(dest, source, schema, format).window_files(record).await
}

/// Everything `forget` needs to know about the lake.
pub struct Erasure<'a> {
    pub dest: &'a Destination,
    pub registry: &'a SchemaRegistry,
    pub key: Option<PiiKey>,
    pub run_id: String,
    pub dry_run: bool,
}

impl Erasure<'_> {
    /// Finds and removes `target` everywhere in the lake; the caller holds the lake lease.
    pub async fn run(&self, target: &Target) -> Result<ErasureReport, EraseError> {
        let state = StateStore::new(self.dest.clone());
        let (matcher, lake) = self.prepare(target).await?;
        let mut report = ErasureReport {
            status: ErasureStatus::Pending,
            windows: BTreeMap::new(),
            fingerprint: target.fingerprint(self.key.as_ref()),
            kind: target.kind().into(),
            run_id: self.run_id.clone(),
            dry_run: self.dry_run,
            finished_at: Utc::now(),
            datasets: BTreeMap::new(),
            rejects_removed: 0,
        };
        let record = format!("{}/erasures/{}.json", layout::BOOKKEEPING_DIR, report.fingerprint);
        if !self.dry_run {
            // Before anything is touched: which windows hold the person, so that no sync
            // publishes one of them until this erasure is complete.
            report.windows = self.windows_holding(&matcher, &lake).await?;
            if !report.windows.is_empty() {
                state.put_json(&record, &report).await?;
            }
        }
        self.erase_everywhere(&state, &matcher, &lake, &mut report).await?;
        if !self.dry_run {
            report.status = ErasureStatus::Done;
            report.windows.clear();
            report.finished_at = Utc::now();
            state.put_json(&record, &report).await?;
        }
        Ok(report)
    }

    /// The matcher for `target` (with the keys its references reach) and every table of the lake
    /// under its own declaration, with its format and window records.
    async fn prepare<'t>(&self, target: &'t Target) -> Result<(Matcher<'t>, Lake), EraseError> {
        let state = StateStore::new(self.dest.clone());
        let sources = state.sources().await?;
        if let Target::Key { source, dataset, .. } = target {
            let schema = self
                .registry
                .dataset(source, dataset)
                .map_err(|e| EraseError::Usage(format!("--key {source}.{dataset}: {e}")))?;
            if schema.key.len() != 1 {
                return Err(EraseError::Usage(format!(
                    "--key needs a one-column key; {source}.{dataset} is keyed by ({})",
                    schema.key.join(", ")
                )));
            }
        }
        let mut matcher = Matcher::new(target, self.key.as_ref());
        if let Target::Key { source, dataset, id } = target {
            matcher.erased.insert(format!("{source}.{dataset}"), BTreeSet::from([id.clone()]));
        }
        let mut lake = Vec::new();
        for source in &sources {
            let records: Vec<WindowRecord> = state.load_windows(source).await?;
            for schema in self.registry.of_source(source) {
                let format = Table::found(self.dest, source, &schema.dataset).await?.unwrap_or_default();
                // The table's own declaration, whatever this run was given: erasure never
                // narrows a table written with the user's declaration to the built-in one.
                let schema = crate::declaration::latest(self.dest, schema, &records).await?;
                lake.push((source.clone(), schema, format, records.clone()));
            }
        }
        let hashed = lake
            .iter()
            .flat_map(|(_, _, _, records)| records)
            .any(|r| r.datasets.values().any(|d| d.pii.as_deref().is_some_and(|p| p.contains("=hash"))));
        if hashed && self.key.is_none() && !matches!(target, Target::Key { .. }) {
            return Err(EraseError::Usage(
                "the lake holds hashed personal columns: set CXLAKE_PII_KEY to the key they were hashed with, so they can be matched".into(),
            ));
        }
        // Every window is rewritten under the declaration it was written with: one the lake has
        // no copy of is refused before anything is touched.
        for (source, schema, _, records) in &lake {
            let fingerprints: BTreeSet<&str> = records
                .iter()
                .filter_map(|r| r.datasets.get(&schema.dataset)?.declaration.as_deref())
                .filter(|f| *f != schema.declaration.fingerprint)
                .collect();
            for fingerprint in fingerprints {
                if crate::declaration::load(self.dest, source, &schema.dataset, fingerprint).await?.is_none()
                {
                    return Err(EraseError::Usage(format!(
                        "windows of {} were written with declaration {fingerprint}, of which the lake has no copy (_cxlake/declarations/{source}/{}/{fingerprint}.toml): pass --schemas DIR holding that declaration, so that no column of them is lost",
                        schema.qualified_name(),
                        schema.dataset
                    )));
                }
            }
        }
        if matches!(target, Target::Key { .. }) {
            self.follow_references(&mut matcher, &lake).await?;
        }
        Ok((matcher, lake))
    }

    /// Removes the person from every window, the current tables, the raw archive and the
    /// rejects, and saves the erasure record.
    async fn erase_everywhere(
        &self,
        state: &StateStore,
        matcher: &Matcher<'_>,
        lake: &Lake,
        report: &mut ErasureReport,
    ) -> Result<(), EraseError> {
        let mut touched_sources: BTreeSet<String> = BTreeSet::new();
        // The tables rewritten: what they no longer reference is deleted at the end.
        let mut rewritten: Vec<Table<'_>> = Vec::new();
        for (source, schema, format, records) in lake {
            let table = Table::history(self.dest, source, schema, *format);
            let mut rewrites = table.rewrites();
            for record in records {
                if !record.datasets.contains_key(&schema.dataset) {
                    continue;
                }
                let touched = self.erase_window(matcher, &table, schema, record, &mut rewrites).await?;
                if touched != Touched::default() {
                    let entry = report.datasets.entry(schema.qualified_name()).or_default();
                    entry.windows += usize::from(touched.rows > 0);
                    entry.rows += touched.rows;
                    entry.files_rewritten += touched.files_rewritten;
                    entry.raw_files_rewritten += touched.raw_files_rewritten;
                    entry.raw_files_deleted += touched.raw_files_deleted;
                    touched_sources.insert(source.clone());
                    if touched.rows > 0 && rewritten.iter().all(|t| t.dir() != table.dir()) {
                        rewritten.push(table);
                    }
                }
            }
            if !self.dry_run {
                // Windows a table commits together (Delta): their records follow the commit.
                let published = rewrites.finish(&self.run_id).await?;
                if !published.is_empty() {
                    crash_if_asked("forget-published");
                }
                for (date, files) in published {
                    if let Some(mut record) = state.load_window(source, date).await? {
                        if let Some(entry) = record.datasets.get_mut(&schema.dataset) {
                            set_files(entry, files);
                            state.save_window(&record).await?;
                        }
                    }
                }
            }
        }
        report.rejects_removed = self.erase_rejects(matcher).await?;
        if !self.dry_run {
            // Every current table the erasure changed the history of, and any that still holds
            // the person (a run that failed after rewriting the history but before the tables).
            for (source, schema, format, _) in
                lake.iter().filter(|(_, d, _, _)| d.kind == DatasetKind::Entities)
            {
                let holds = !touched_sources.contains(source)
                    && self.current_hits(matcher, source, schema).await? > 0;
                if touched_sources.contains(source) || holds {
                    let format = *format;
                    current::refresh_tables(
                        self.dest,
                        source,
                        std::slice::from_ref(schema),
                        format,
                        &self.run_id,
                        &crate::budget::MemoryBudget::default(),
                        true,
                    )
                    .await?;
                    rewritten.push(Table::current(self.dest, source, schema, format));
                }
            }
            // The replaced files go now: no time travel back to the person.
            for table in &rewritten {
                table.vacuum(std::time::Duration::ZERO, false).await?;
            }
        }
        Ok(())
    }

    /// The windows whose data holds the person now, per source.
    async fn windows_holding(
        &self,
        matcher: &Matcher<'_>,
        lake: &Lake,
    ) -> Result<BTreeMap<String, BTreeSet<NaiveDate>>, EraseError> {
        let mut holding: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
        for (source, table_schema, format, records) in lake {
            for record in records.iter().filter(|r| r.status == WindowStatus::Done) {
                let Some(landed) = record.datasets.get(&table_schema.dataset) else { continue };
                let schema = &crate::declaration::of_window(self.dest, table_schema, landed).await?;
                let relevant = matcher.columns(schema);
                if relevant.is_empty() {
                    continue;
                }
                let policy = policy_of(landed.pii.as_deref());
                'files: for file in window_files(self.dest, *format, source, schema, record).await? {
                    for batch in read_file(self.dest, &file, Some(&relevant)).await? {
                        if mask(matcher, schema, &policy, &batch).into_iter().any(|h| h) {
                            holding.entry(source.clone()).or_default().insert(record.date);
                            break 'files;
                        }
                    }
                }
            }
        }
        Ok(holding)
    }

    /// Rows of a dataset's current table that are the person's.
    async fn current_hits(
        &self,
        matcher: &Matcher<'_>,
        source: &str,
        schema: &DatasetSchema,
    ) -> Result<u64, SinkError> {
        let relevant = matcher.columns(schema);
        if relevant.is_empty() {
            return Ok(0);
        }
        let mut hits = 0;
        for file in current::table_files(self.dest, source, &schema.dataset).await? {
            for batch in read_file(self.dest, &file, Some(&relevant)).await? {
                hits +=
                    mask(matcher, schema, &BTreeMap::new(), &batch).into_iter().filter(|h| *h).count() as u64;
            }
        }
        Ok(hits)
    }

    /// Removes the person's rows from every quarantine file (their raw records); returns how many.
    async fn erase_rejects(&self, matcher: &Matcher<'_>) -> Result<u64, SinkError> {
        let mut removed = 0;
        for file in commit::list_files(self.dest, &format!("{}/rejects", layout::BOOKKEEPING_DIR)).await? {
            let path = self.dest.path(&file);
            let bytes = self.dest.store.get(&path).await.map_err(|e| SinkError::store(&path, e))?;
            let bytes = bytes.bytes().await.map_err(|e| SinkError::store(&path, e))?;
            let (kept, hits) = rejects_without(matcher, &bytes);
            if hits == 0 {
                continue;
            }
            removed += hits;
            if !self.dry_run {
                self.dest.store.put(&path, kept.into()).await.map_err(|e| SinkError::store(&path, e))?;
            }
        }
        Ok(removed)
    }

    /// Scans the whole lake for the person — every window's data, the current tables, the raw
    /// archive (every format) and the quarantined rows — and says where a trace remains.
    pub async fn verify(&self, target: &Target) -> Result<Verification, EraseError> {
        let (matcher, lake) = self.prepare(target).await?;
        let mut verification = Verification::default();
        for (source, table_schema, format, records) in &lake {
            for record in records.iter().filter(|r| r.status == WindowStatus::Done) {
                let Some(landed) = record.datasets.get(&table_schema.dataset) else { continue };
                let schema = &crate::declaration::of_window(self.dest, table_schema, landed).await?;
                let relevant = matcher.columns(schema);
                let policy = policy_of(landed.pii.as_deref());
                let mut rows = 0;
                if !relevant.is_empty() {
                    for file in window_files(self.dest, *format, source, schema, record).await? {
                        verification.data_files += 1;
                        for batch in read_file(self.dest, &file, Some(&relevant)).await? {
                            rows +=
                                mask(&matcher, schema, &policy, &batch).into_iter().filter(|h| *h).count();
                        }
                    }
                }
                if rows > 0 {
                    verification
                        .traces
                        .push(format!("{}.{} date={}: {rows} row(s)", source, schema.dataset, record.date));
                }
                for file in &landed.raw {
                    verification.raw_files += 1;
                    if self.raw_holds(&matcher, schema, file).await? {
                        verification.traces.push(format!("raw archive {}", file.path));
                    }
                }
            }
            if table_schema.kind == DatasetKind::Entities {
                verification.current_tables += 1;
                let hits = self.current_hits(&matcher, source, table_schema).await?;
                if hits > 0 {
                    verification.traces.push(format!(
                        "current table {source}_current/{}: {hits} row(s)",
                        table_schema.dataset
                    ));
                }
            }
        }
        for file in commit::list_files(self.dest, &format!("{}/rejects", layout::BOOKKEEPING_DIR)).await? {
            verification.rejects_files += 1;
            let path = self.dest.path(&file);
            let bytes = self.dest.store.get(&path).await.map_err(|e| SinkError::store(&path, e))?;
            let bytes = bytes.bytes().await.map_err(|e| SinkError::store(&path, e))?;
            let (_, hits) = rejects_without(&matcher, &bytes);
            if hits > 0 {
                verification.traces.push(format!("quarantined rows {file}: {hits}"));
            }
        }
        Ok(verification)
    }

    /// Whether one archived raw file holds the person (restored to a scratch file).
    async fn raw_holds(
        &self,
        matcher: &Matcher<'_>,
        schema: &DatasetSchema,
        file: &RawFile,
    ) -> Result<bool, SinkError> {
        let scratch = tempfile::tempdir()
            .map_err(|e| SinkError::Local { path: "scratch".into(), message: e.to_string() })?;
        let local = scratch.path().join("raw");
        raw::restore(self.dest, file, &local).await?;
        let out = scratch.path().join("kept");
        let lower = file.file_name.to_ascii_lowercase();
        let holds = if lower.ends_with(".xlsx") {
            xlsx_holds(matcher, schema, &BTreeMap::new(), &local, &file.file_name)
        } else if lower.ends_with(".json") {
            filter_json(matcher, schema, &local, &out)
        } else {
            filter_csv(matcher, schema, &local, &out)
        };
        holds.map_err(|message| SinkError::Local { path: file.path.clone(), message })
    }

    /// Collects, dataset by dataset, the keys of the rows that reference an erased key, until
    /// no reference finds more.
    async fn follow_references(
        &self,
        matcher: &mut Matcher<'_>,
        lake: &[(String, Arc<DatasetSchema>, OutputFormat, Vec<WindowRecord>)],
    ) -> Result<(), SinkError> {
        for _ in 0..lake.len().max(1) {
            let mut grew = false;
            for (source, schema, format, records) in lake {
                if schema.references.is_empty() || schema.key.len() != 1 {
                    continue;
                }
                let name = schema.qualified_name();
                let mut only = matcher.columns(schema);
                only.push(schema.key[0].clone());
                let mut found = BTreeSet::new();
                for record in records.iter().filter(|r| r.datasets.contains_key(&schema.dataset)) {
                    let policy = policy_of(record.datasets[&schema.dataset].pii.as_deref());
                    for file in window_files(self.dest, *format, source, schema, record).await? {
                        for batch in read_file(self.dest, &file, Some(&only)).await? {
                            let Some(keys) = batch.column_by_name(&schema.key[0]).cloned() else { continue };
                            for (row, hit) in mask(matcher, schema, &policy, &batch).into_iter().enumerate() {
                                if hit {
                                    found.extend(cell_values(&keys, row));
                                }
                            }
                        }
                    }
                }
                let erased = matcher.erased.entry(name).or_default();
                let before = erased.len();
                erased.extend(found);
                grew |= erased.len() > before;
            }
            if !grew {
                break;
            }
        }
        Ok(())
    }

    /// Removes the person from one window of one dataset: its data files, then its raw files.
    async fn erase_window(
        &self,
        matcher: &Matcher<'_>,
        table: &Table<'_>,
        schema: &Arc<DatasetSchema>,
        record: &WindowRecord,
        rewrites: &mut Rewrites<'_>,
    ) -> Result<Touched, EraseError> {
        let state = StateStore::new(self.dest.clone());
        let source = table.source();
        let dataset = &schema.dataset;
        // As it is now: an earlier dataset of this window may have been rewritten already.
        let record = &state.load_window(source, record.date).await?.unwrap_or_else(|| record.clone());
        let Some(landed) = record.datasets.get(dataset) else { return Ok(Touched::default()) };
        // The window's files are rewritten as they were written: under their own declaration.
        let schema = &crate::declaration::of_window(self.dest, schema, landed).await?;
        let relevant = matcher.columns(schema);
        if relevant.is_empty() {
            return Ok(Touched::default());
        }
        let policy = policy_of(landed.pii.as_deref());
        let mut touched = Touched::default();
        // Data: the relevant columns read first; only a window holding the person is rewritten,
        // every file read whole and its kept rows staged, one file per file.
        let files = table.window_files(record).await?;
        let mut holds = false;
        for file in &files {
            for batch in read_file(self.dest, file, Some(&relevant)).await? {
                holds |= mask(matcher, schema, &policy, &batch).into_iter().any(|hit| hit);
            }
            if holds {
                break;
            }
        }
        let files = if holds { files } else { Vec::new() };
        let staging = format!("{}/erase", layout::staging_dir(&self.run_id, source, dataset, record.date));
        // The kept rows are written with the columns their file has — the window's own, whatever
        // declaration this run knows — so a rewrite never drops or misplaces a column.
        let plain: Vec<&str> =
            schema.columns.iter().filter(|c| !c.dictionary).map(|c| c.name.as_str()).collect();
        let mut writer: Option<PartWriter> = None;
        let mut removed = 0u64;
        for (index, file) in files.iter().enumerate() {
            if index > 0 {
                if let Some(writer) = writer.as_mut() {
                    writer.roll().await?;
                }
            }
            for batch in read_file(self.dest, file, None).await? {
                let writer = writer.get_or_insert_with(|| {
                    PartWriter::with_columns(
                        self.dest.clone(),
                        staging.clone(),
                        batch.schema(),
                        plain.iter().copied(),
                        PartWriterConfig::default(),
                    )
                });
                let hits = mask(matcher, schema, &policy, &batch);
                let count = hits.iter().filter(|h| **h).count();
                removed += count as u64;
                let keep = BooleanArray::from(hits.iter().map(|h| !h).collect::<Vec<_>>());
                let kept = arrow::compute::filter_record_batch(&batch, &keep)
                    .map_err(|e| SinkError::Local { path: file.clone(), message: e.to_string() })?;
                if kept.num_rows() > 0 {
                    writer.write(&kept).await?;
                }
            }
        }
        let staged = match writer {
            Some(writer) => writer.finish().await?,
            None => Vec::new(),
        };
        let mut updated = record.clone();
        if removed > 0 && !self.dry_run {
            // Plain Parquet: replaced now, with no `publishing` mark — before, during and after,
            // the partition holds valid rows (some of them the person's until the last file is
            // replaced) — and the record follows. Delta: committed with the table's other
            // rewritten windows, in one commit (see `erase_everywhere`).
            if let Some(published) = rewrites.replace(record.date, staged).await? {
                crash_if_asked("forget-published");
                set_files(updated.datasets.get_mut(dataset).expect("present"), published);
                state.save_window(&updated).await?;
            }
        } else {
            commit::delete_dir(self.dest, &staging).await?;
            // A forget killed between replacing a partition's files and saving its record left
            // the record describing files that are no longer there: describe them again.
            if !self.dry_run && record.status == WindowStatus::Done {
                if let Some(listed) = table.unrecorded_files(record.date, &landed.files).await? {
                    let actual = describe_files(self.dest, &listed).await?;
                    set_files(updated.datasets.get_mut(dataset).expect("present"), actual);
                    state.save_window(&updated).await?;
                }
            }
        }
        touched.rows = removed;
        touched.files_rewritten = if removed > 0 { files.len() } else { 0 };
        // Raw: as fetched, whatever the policy did to the data.
        let (rewritten, deleted, kept) =
            self.erase_raw(matcher, source, schema, record.date, &landed.raw).await?;
        touched.raw_files_rewritten = rewritten;
        touched.raw_files_deleted = deleted;
        if (rewritten > 0 || deleted > 0) && !self.dry_run {
            let published = raw::publish(self.dest, source, dataset, record.date, &kept).await?;
            updated.datasets.get_mut(dataset).expect("present").raw = published;
            state.save_window(&updated).await?;
        }
        Ok(touched)
    }

    /// Rewrites the raw files of a window's dataset that hold the person; returns how many were
    /// rewritten and deleted, and the window's raw files as they should be (rewritten ones staged).
    async fn erase_raw(
        &self,
        matcher: &Matcher<'_>,
        source: &str,
        schema: &DatasetSchema,
        date: NaiveDate,
        archived: &[RawFile],
    ) -> Result<(usize, usize, Vec<RawFile>), SinkError> {
        let (mut rewritten, mut deleted, mut kept) = (0, 0, Vec::new());
        if archived.is_empty() {
            return Ok((0, 0, kept));
        }
        let spool = tempfile::tempdir()
            .map_err(|e| SinkError::Local { path: "spool".into(), message: e.to_string() })?;
        let staging = raw::staging_raw_dir(&self.run_id, source, &schema.dataset, date);
        let no_policy = BTreeMap::new();
        for (index, file) in archived.iter().enumerate() {
            let local = spool.path().join(format!("raw-{index}"));
            raw::restore(self.dest, file, &local).await?;
            let filtered = spool.path().join(format!("kept-{index}"));
            let lower = file.file_name.to_ascii_lowercase();
            let outcome = if lower.ends_with(".xlsx") {
                xlsx_holds(matcher, schema, &no_policy, &local, &file.file_name).map(|hit| {
                    if hit {
                        Some(None)
                    } else {
                        None
                    }
                })
            } else if lower.ends_with(".json") {
                filter_json(matcher, schema, &local, &filtered).map(|hit| hit.then_some(Some(())))
            } else {
                filter_csv(matcher, schema, &local, &filtered).map(|hit| hit.then_some(Some(())))
            }
            .map_err(|message| SinkError::Local { path: file.path.clone(), message })?;
            match outcome {
                None => kept.push(file.clone()),
                Some(None) => deleted += 1,
                Some(Some(())) => {
                    rewritten += 1;
                    if !self.dry_run {
                        let name = file.path.rsplit('/').next().unwrap_or(&file.path).to_string();
                        let staged = raw::stage(
                            self.dest,
                            &staging,
                            &name,
                            &file.file_name,
                            &filtered,
                            file.fold,
                            file.facts.clone(),
                        )
                        .await?;
                        kept.push(RawFile { fetched_at: file.fetched_at, ..staged });
                    }
                }
            }
        }
        Ok((rewritten, deleted, kept))
    }
}

/// A dataset's record after its files were replaced: files, bytes and rows from the files.
fn set_files(entry: &mut crate::state::DatasetRecord, files: Vec<crate::sink::parquet::WrittenFile>) {
    entry.stats.rows_written = files.iter().map(|f| f.rows).sum();
    entry.bytes = files.iter().map(|f| f.bytes).sum();
    entry.files = files;
}

/// Path, rows, size and SHA-256 of data files as they are in the store.
async fn describe_files(
    dest: &Destination,
    files: &[String],
) -> Result<Vec<crate::sink::parquet::WrittenFile>, SinkError> {
    let mut described = Vec::with_capacity(files.len());
    for file in files {
        let path = dest.path(file);
        let bytes = dest
            .store
            .get(&path)
            .await
            .map_err(|e| SinkError::store(&path, e))?
            .bytes()
            .await
            .map_err(|e| SinkError::store(&path, e))?;
        let rows = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(bytes.clone())
                .map_err(|source| SinkError::Parquet { path: file.clone(), source })?,
        )
        .file_metadata()
        .num_rows();
        described.push(crate::sink::parquet::WrittenFile {
            path: file.clone(),
            rows: rows as u64,
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    Ok(described)
}

/// A CSV file's records without the person's, into `out`; whether any was the person's.
fn filter_csv(
    matcher: &Matcher<'_>,
    schema: &DatasetSchema,
    input: &Path,
    out: &Path,
) -> Result<bool, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(input)
        .map_err(|e| e.to_string())?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let mapping: Vec<Option<usize>> =
        headers.iter().map(|h| schema.column_for_field(h.trim_start_matches('\u{feff}'))).collect();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_path(out)
        .map_err(|e| e.to_string())?;
    writer.write_record(&headers).map_err(|e| e.to_string())?;
    let policy = BTreeMap::new();
    let mut any = false;
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let values = |column: usize| -> Vec<String> {
            let separator = schema.columns[column].separator.as_deref();
            mapping
                .iter()
                .zip(record.iter())
                .filter(|(m, _)| **m == Some(column))
                .flat_map(|(_, v)| match separator {
                    Some(sep) => {
                        v.split(sep).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                    }
                    None if v.is_empty() => Vec::new(),
                    None => vec![v.to_string()],
                })
                .collect()
        };
        // Any cell of the record counts for an e-mail or phone: a raw file keeps what no
        // column declares too.
        if matcher.matches(schema, &policy, &values) || record.iter().any(|cell| matcher.text_is(cell)) {
            any = true;
        } else {
            writer.write_record(&record).map_err(|e| e.to_string())?;
        }
    }
    writer.flush().map_err(|e| e.to_string())?;
    Ok(any)
}

/// A JSON array's elements without the person's, into `out`, each kept byte for byte; whether
/// any was the person's. Read one element at a time, whatever the array's size.
fn filter_json(
    matcher: &Matcher<'_>,
    schema: &DatasetSchema,
    input: &Path,
    out: &Path,
) -> Result<bool, String> {
    use std::io::Write;
    let file = std::fs::File::open(input).map_err(|e| e.to_string())?;
    let mut writer = std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| e.to_string())?);
    let policy = BTreeMap::new();
    let (mut any, mut kept) = (false, 0u64);
    writer.write_all(b"[").map_err(|e| e.to_string())?;
    for element in crate::decode::json_array::Elements::new(std::io::BufReader::new(file)) {
        let bytes = element.map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if json_matches(matcher, schema, &policy, &value) {
            any = true;
            continue;
        }
        if kept > 0 {
            writer.write_all(b",\n").map_err(|e| e.to_string())?;
        }
        writer.write_all(&bytes).map_err(|e| e.to_string())?;
        kept += 1;
    }
    writer.write_all(b"]\n").and_then(|()| writer.flush()).map_err(|e| e.to_string())?;
    Ok(any)
}

fn json_matches(
    matcher: &Matcher<'_>,
    schema: &DatasetSchema,
    policy: &BTreeMap<String, String>,
    element: &serde_json::Value,
) -> bool {
    let Some(object) = element.as_object() else { return false };
    // An e-mail or phone anywhere in the record as fetched: a raw file has no policy, and a
    // field no column declares (kept in `_extra`) or a free-form one (`json_text`) counts too.
    if matcher.value_holds(element) {
        return true;
    }
    let values = |column: usize| -> Vec<String> {
        object
            .iter()
            .filter(|(field, _)| schema.column_for_field(field) == Some(column))
            .flat_map(|(_, v)| json_texts(v))
            .collect()
    };
    matcher.matches(schema, policy, &values)
}

fn json_texts(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Number(n) => vec![n.to_string()],
        serde_json::Value::Array(items) => items.iter().flat_map(json_texts).collect(),
        _ => Vec::new(),
    }
}

/// Whether an XLSX workbook holds the person (read through the same conversion as decoding).
fn xlsx_holds(
    matcher: &Matcher<'_>,
    schema: &DatasetSchema,
    policy: &BTreeMap<String, String>,
    input: &Path,
    file_name: &str,
) -> Result<bool, String> {
    let json = input.with_extension("json");
    crate::decode::xlsx::to_json_array(input, &json, file_name, None).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(&json).map_err(|e| e.to_string())?;
    for element in crate::decode::json_array::Elements::new(std::io::BufReader::new(file)) {
        let bytes = element.map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if json_matches(matcher, schema, policy, &value) {
            return Ok(true);
        }
    }
    Ok(false)
}
