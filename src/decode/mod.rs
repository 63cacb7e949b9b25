//! Decoding raw export files into Arrow `RecordBatch`es against a declared schema.
//!
//! Decoders stream: they hold one batch of rows at a time, whatever the file size. Nothing a
//! platform sent is lost. A value of another shape than declared is converted when no information
//! is lost (any JSON value into a `Utf8` column as its exact text, `5.0` or `1e3` into `Int64`, a
//! scalar where a list is declared as a list of one) and counted; one that still does not fit
//! lands as null with its exact text kept in the row's `_extra`, counted per column
//! ([`TypeMismatchPolicy::Extra`], the default for datasets that keep `_extra`). A row that cannot
//! land at all (malformed, a required value missing or unusable; or any misfit under
//! [`TypeMismatchPolicy::Quarantine`]) comes back whole as a [`RejectedRow`] with file, line,
//! column, reason and the raw record, and the caller decides (quarantine, fail the window).
//! File-level problems (a required column missing, unreadable input, a JSON array cut short) are
//! a [`DecodeError`]. What the file showed about its declaration — undeclared fields, absent
//! columns, coercions, kept values — is one [`Drift`]. Every format implements [`BatchDecoder`];
//! [`open`] picks the decoder by the dataset's declared file format.

mod blocks;
pub mod csv;
mod csv_fields;
pub mod drift;
pub mod json;
pub mod json_array;
pub mod json_tape;
pub mod parallel;
pub mod sample;
pub mod xlsx;

pub use drift::{Coercion, Drift, FieldCount};
pub use sample::sample_file;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;

use chrono::Datelike;

use crate::schema::{DatasetSchema, FileFacts, FileFormat, Fill};
use crate::window::Window;

/// What one call to [`BatchDecoder::next_batch`] produced.
#[derive(Debug)]
pub struct DecodedBatch {
    pub batch: RecordBatch,
    pub rejects: Vec<RejectedRow>,
}

/// A streaming decoder of one file: batches until `None`, then its counters and drift.
pub trait BatchDecoder {
    /// The next batch of decoded rows and the rows rejected while reading it; `None` at the end.
    fn next_batch(&mut self) -> Result<Option<DecodedBatch>, DecodeError>;
    fn stats(&self) -> DecodeStats;
    /// Differences between the file and the schema, complete once `next_batch` returned `None`.
    fn drift(&self) -> &Drift;
}

/// `--on-type-mismatch`: what a value that does not fit its declared column (after the lossless
/// coercions) does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TypeMismatchPolicy {
    /// The row lands, the column is null and the value is kept exactly in `_extra` (datasets
    /// without `_extra` quarantine the row instead).
    #[default]
    Extra,
    /// The whole row is quarantined (`--max-rejects` decides the window).
    Quarantine,
    /// The file, and so its window, fails at the first such value.
    Fail,
}

impl TypeMismatchPolicy {
    /// The policy as it applies to a dataset: `extra` needs an `_extra` column to keep values in.
    pub fn for_schema(self, schema: &crate::schema::DatasetSchema) -> TypeMismatchPolicy {
        match (self, schema.extra_index()) {
            (TypeMismatchPolicy::Extra, None) => TypeMismatchPolicy::Quarantine,
            (policy, _) => policy,
        }
    }
}

/// What decoding a file needs to know besides its bytes: the window it was exported for (window
/// fills; a local time of day's date), the time zone its local times are in, and what a value of
/// the wrong type does.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileContext {
    pub window: Option<Window>,
    pub timezone: Option<chrono_tz::Tz>,
    /// Which occurrence of a repeated autumn hour the file's local times belong to, when the
    /// source knows (an hourly export written twice under one local name).
    pub fold: crate::schema::local_time::Fold,
    pub on_type_mismatch: TypeMismatchPolicy,
    /// What the decoder may hold in chunks being decoded at once (raw bytes and their batches);
    /// `None`: a chunk per worker and one more.
    pub memory: Option<usize>,
}

impl FileContext {
    pub fn window(window: Window) -> FileContext {
        FileContext { window: Some(window), ..FileContext::default() }
    }
}

/// Local times of a file that a DST change made ambiguous or impossible, counted as they are
/// resolved (see [`crate::schema::local_time`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalTimeCounts {
    pub ambiguous: u64,
    pub skipped: u64,
}

impl LocalTimeCounts {
    pub fn count(&mut self, resolved: crate::schema::local_time::Resolved) -> i64 {
        use crate::schema::local_time::Resolved;
        match resolved {
            Resolved::Exact(_) => {}
            Resolved::Ambiguous(_) => self.ambiguous += 1,
            Resolved::Skipped(_) => self.skipped += 1,
        }
        resolved.instant().timestamp_micros()
    }

    pub fn is_zero(&self) -> bool {
        self.ambiguous + self.skipped == 0
    }
}

/// Checks that a file of `schema` can be decoded with `context`: local times need the zone.
fn check_context(schema: &DatasetSchema, context: &FileContext, file: &str) -> Result<(), DecodeError> {
    if schema.needs_timezone() && context.timezone.is_none() {
        return Err(DecodeError::NeedsTimezone { file: file.to_string(), schema: schema.qualified_name() });
    }
    Ok(())
}

/// Opens `path` with the decoder for the dataset's file format; `file_name` names it in messages.
/// A platform that offers several formats (Khoros: JSON or CSV) is decoded by the file's own
/// extension; otherwise by the schema's `format`. `context` fills the schema's window columns and
/// places its local times.
pub fn open(
    schema: Arc<DatasetSchema>,
    path: &Path,
    file_name: String,
    context: FileContext,
) -> Result<Box<dyn BatchDecoder>, DecodeError> {
    check_context(&schema, &context, &file_name)?;
    let format = FileFormat::from_file_name(&file_name).unwrap_or(schema.format);
    let converted;
    let mut header_drift = Drift::default();
    let path = if format == FileFormat::Xlsx {
        // A workbook becomes a JSON array next to it (in the run's spool), decoded as JSON.
        converted = path.with_extension("xlsx.json");
        let workbook = xlsx::to_json_array(path, &converted, &file_name, context.timezone)?;
        header_drift = xlsx::header_drift(&schema, &workbook.header, &file_name)?;
        converted.as_path()
    } else {
        path
    };
    let input =
        std::fs::File::open(path).map_err(|source| DecodeError::Open { path: path.to_path_buf(), source })?;
    Ok(match format {
        // The CSV reader reads a MiB at a time into its own buffer: a buffer in front of it
        // would copy every byte once more (2 % of a conversion's samples).
        FileFormat::Csv => Box::new(csv::CsvDecoder::new(schema, file_name, input)?.with_context(context)),
        FileFormat::Json | FileFormat::Xlsx => {
            let input = std::io::BufReader::with_capacity(1 << 20, input);
            let decoder = json::JsonDecoder::new(schema, file_name, input)?.with_context(context);
            // A workbook's header was read when it was converted; a JSON file has none.
            Box::new(if format == FileFormat::Xlsx {
                decoder.with_header_drift(header_drift)
            } else {
                decoder
            })
        }
    })
}

/// The value of each column declared `fill = …`, from `window` (days for a date, microseconds
/// for a timestamp: the day's bounds in `zone`, UTC without one); `None` for the other columns,
/// and for all without a window.
pub fn fill_values(
    schema: &DatasetSchema,
    window: Option<Window>,
    zone: Option<chrono_tz::Tz>,
) -> Vec<Option<i64>> {
    let zone = zone.unwrap_or(chrono_tz::Tz::UTC);
    schema
        .columns
        .iter()
        .map(|column| {
            let window = window?;
            Some(match column.fill? {
                Fill::WindowDate => crate::schema::value::days_from_civil(
                    window.date.year() as i64,
                    window.date.month(),
                    window.date.day(),
                ),
                Fill::WindowStart => window.start_in(zone).timestamp_micros(),
                Fill::WindowEnd => window.end_in(zone).timestamp_micros(),
                // Filled per file after decoding, from what the source knows of it (`pipeline`).
                Fill::ExportId | Fill::ExportFrequency | Fill::PeriodFrom | Fill::PeriodTo => return None,
            })
        })
        .collect()
}

/// `batch` with the columns declared with a per-file fill (`export_id`, `export_frequency`,
/// `period_from`, `period_to`) set to `facts`'s values on every row; without facts (a file
/// converted by hand) they stay null.
pub fn fill_per_file(batch: RecordBatch, schema: &DatasetSchema, facts: Option<&FileFacts>) -> RecordBatch {
    let Some(facts) = facts else { return batch };
    let filled: Vec<(usize, Fill)> = schema
        .columns
        .iter()
        .filter_map(|c| Some((batch.schema().index_of(&c.name).ok()?, c.fill.filter(|f| f.is_per_file())?)))
        .collect();
    if filled.is_empty() {
        return batch;
    }
    let rows = batch.num_rows();
    let mut columns = batch.columns().to_vec();
    for (index, fill) in filled {
        let text = |value: &str| -> ArrayRef { Arc::new(arrow::array::StringArray::from(vec![value; rows])) };
        let time = |t: chrono::DateTime<chrono::Utc>| -> ArrayRef {
            Arc::new(
                arrow::array::TimestampMicrosecondArray::from(vec![t.timestamp_micros(); rows])
                    .with_timezone("UTC"),
            )
        };
        columns[index] = match fill {
            Fill::ExportId => text(&facts.export_id),
            Fill::ExportFrequency => text(&facts.frequency),
            Fill::PeriodFrom => time(facts.period_from),
            Fill::PeriodTo => time(facts.period_to),
            Fill::WindowDate | Fill::WindowStart | Fill::WindowEnd => continue,
        };
    }
    RecordBatch::try_new(batch.schema(), columns)
        .expect("each filled column has its declared type and the batch's length")
}

/// One input row that did not fit the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// Name of the input file as the user knows it (e.g. `turns.csv`).
    pub file: String,
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub reason: String,
    /// The record exactly as read: one CSV record re-encoded (bytes kept verbatim), or the JSON
    /// element's bytes.
    pub raw: Vec<u8>,
}

impl std::fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file, self.line)?;
        if let Some(column) = &self.column {
            write!(f, " column `{column}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Counters for one decoded file. Invariant: `rows_read == rows_written + rows_rejected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecodeStats {
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_rejected: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("{file}: required column `{column}` is missing from the header; the export does not match schema {schema} (use --schemas to adjust it)")]
    MissingRequiredColumn { file: String, column: String, schema: String },
    #[error("{file}: column `{column}` appears twice in the header")]
    DuplicateColumn { file: String, column: String },
    #[error("{file}: cannot read the header: {message}")]
    Header { file: String, message: String },
    #[error("{file}: the JSON array ends at line {line} without its closing `]`: the file was cut short (a download is fetched again)")]
    Truncated { file: String, line: u64 },
    #[error("{file}: read error near line {line}: {message}")]
    Read { file: String, line: u64, message: String },
    #[error("{file} line {line}: `{path}`: {reason} (--on-type-mismatch fail); pass --on-type-mismatch extra to land the row with the value kept in `_extra`, or redraw the declaration (`cxlake drift`)")]
    TypeMismatch { file: String, line: u64, path: String, reason: String },
    #[error("{file}: schema {schema} has local times, and no time zone was given; pass --timezone ZONE (the zone the export was configured with, e.g. Europe/Brussels)")]
    NeedsTimezone { file: String, schema: String },
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Whether a downloaded file of `format` is whole, so that a body cut short or corrupted is
/// fetched again before anything reads it: a JSON array must be closed, a workbook (a zip) must
/// have its central directory. A CSV file has no structure that tells; its length and checksum
/// are checked by the download itself.
pub fn check_complete(format: FileFormat, path: &Path) -> Result<(), String> {
    match format {
        FileFormat::Csv => Ok(()),
        FileFormat::Json => json_array::check_file(path).map(|_| ()).map_err(|e| e.to_string()),
        FileFormat::Xlsx => {
            let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
            zip::ZipArchive::new(file).map(|_| ()).map_err(|e| format!("not a complete XLSX workbook: {e}"))
        }
    }
}
