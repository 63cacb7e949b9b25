//! Declared dataset schemas: the single source of truth for what a column is called, which Arrow
//! type it lands as, whether it may be null, what it means, and whether it holds personal data.
//!
//! Schemas live as TOML files in `schemas/<source>/<dataset>.toml`. They are embedded into the
//! binary at build time (`build.rs` lists the folder, so the dataset list comes from the files
//! alone) and `--schemas DIR` loads the same files from disk instead, so a tenant with custom
//! columns can extend them without a rebuild.
//!
//! Types are written in Arrow's own spelling and parsed by Arrow (`Int64`, `List(Utf8)`,
//! `Timestamp(Microsecond, "UTC")`, `Struct("id": Utf8, "score": Int64)`); a struct whose
//! members deserve descriptions is written `Struct` or `List(Struct)` with `[[columns.fields]]`
//! tables. Only the types a decoder can produce are accepted, so a typo fails at load time, not
//! mid-sync. How a value is spelled in the file, when Arrow's type does not say it, is the
//! column's `encoding`: `epoch_ms` (a number of milliseconds since the epoch, landing as a UTC
//! timestamp) or `json_text` (any JSON value, kept as its JSON text).
//!
//! A dataset declares its `key` (the columns that identify a record; current tables keep one row
//! per key) and optionally its `version` column (which of two rows of one key is newer). JSON
//! datasets get one more column, `_extra`: the fields a record had that the schema does not
//! declare, kept as JSON text so that nothing the platform sent is ever dropped.

pub mod docs;
pub mod draft;
pub mod load;
pub mod local_time;
pub mod pii;
pub mod value;

/// A name safe as one path component: what a source or dataset name must be.
pub use crate::sink::layout::is_identifier;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

/// Schema files compiled into the binary: `(<source>/<dataset>.toml, toml text)`.
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));

/// Schema files a platform compiled outside `schemas/` brought with it (a test-only source),
/// as [`EMBEDDED`]: registered once, before the first registry is built.
static REGISTERED: std::sync::RwLock<Vec<(String, &'static str)>> = std::sync::RwLock::new(Vec::new());

/// Adds a platform's own schema files (`(<dataset>.toml, toml text)`) to the embedded ones:
/// every [`SchemaRegistry::embedded`] built afterwards has them, exactly as if they were files
/// under `schemas/<source>/`.
pub fn register_embedded(source: &str, files: &[(&str, &'static str)]) {
    let mut registered = REGISTERED.write().expect("schema registration");
    for (file, text) in files {
        let relative = format!("{source}/{file}");
        if !registered.iter().any(|(known, _)| *known == relative) {
            registered.push((relative, text));
        }
    }
}

/// The column of a JSON dataset that keeps undeclared fields.
pub const EXTRA_COLUMN: &str = "_extra";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("cannot read schema file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid schema file {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("unknown dataset `{name}`; known datasets: {known}. Run `cxlake schema list`")]
    UnknownDataset { name: String, known: String },
}

/// How a platform's file is encoded, i.e. which decoder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Csv,
    /// One JSON array of objects, `[ {...}, {...} ]`, of any size.
    Json,
    /// An Excel workbook: the first sheet, a header row, then one row per record.
    Xlsx,
}

impl FileFormat {
    /// The format a file name's extension implies.
    pub fn from_file_name(name: &str) -> Option<FileFormat> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(FileFormat::Csv)
        } else if lower.ends_with(".json") {
            Some(FileFormat::Json)
        } else if lower.ends_with(".xlsx") {
            Some(FileFormat::Xlsx)
        } else {
            None
        }
    }
}

/// What a dataset's rows are, which decides how its current table is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Records that change and are exported again (engagements, customers, conversations): a
    /// materialised current table keeps the latest version of each key.
    #[default]
    Entities,
    /// Append-only records whose key appears once (turns, reviews, messages): the history is
    /// already one row per key, so there is no second copy; the `_current` view deduplicates a
    /// late re-export at query time.
    Events,
}

impl DatasetKind {
    /// As a declaration writes it (`kind = "entities"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Entities => "entities",
            DatasetKind::Events => "events",
        }
    }
}

/// How a value is spelled in the file, where the Arrow type alone does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The type's natural spelling: RFC 3339 text for timestamps, JSON numbers for numbers.
    #[default]
    Plain,
    /// Milliseconds since 1970-01-01T00:00:00Z as an integer; lands as a UTC timestamp.
    EpochMs,
    /// Any JSON value (object, array, scalar), stored as its JSON text in a Utf8 column.
    JsonText,
    /// A duration written `HH:MM:SS` (hours may exceed 24, `.fff` optional), landing as whole
    /// milliseconds in an Int64 column.
    DurationHms,
    /// A local date-time without offset (`2024-03-01 10:00:00.250`) in the zone the export was
    /// configured with (`--timezone`), landing as a UTC timestamp (DST resolved; see `local_time`).
    LocalTime,
    /// A local time of day (`HH:MM:SS:MS`) on the file's day, landing as a UTC timestamp. A
    /// column with `interval_end` starts an interval ending at that column's time: a start after
    /// its end was the day before, and `interval_seconds` settles a DST change day.
    LocalTimeOfDay,
}

/// A column the file does not carry, filled from the window the file was exported for (a
/// per-day aggregate, one row per agent, only says which day it is about through its window),
/// or from what the file's source knows about the file itself ([`FileFacts`]: which scheduled
/// export wrote it and the period it covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// The window's day (Date32).
    WindowDate,
    /// The window's first instant (UTC timestamp).
    WindowStart,
    /// The instant just after the window (UTC timestamp).
    WindowEnd,
    /// The export that wrote the file (Utf8).
    ExportId,
    /// How often that export runs: `hourly`, `daily`, `weekly`, `snapshot` or `custom` (Utf8).
    ExportFrequency,
    /// The first instant the file covers (UTC timestamp; a snapshot's moment).
    PeriodFrom,
    /// The instant just after the period the file covers (UTC timestamp; a snapshot's moment).
    PeriodTo,
}

impl Fill {
    /// The name a declaration writes (`fill = "window_date"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Fill::WindowDate => "window_date",
            Fill::WindowStart => "window_start",
            Fill::WindowEnd => "window_end",
            Fill::ExportId => "export_id",
            Fill::ExportFrequency => "export_frequency",
            Fill::PeriodFrom => "period_from",
            Fill::PeriodTo => "period_to",
        }
    }

    /// Whether the value comes from the file's [`FileFacts`] rather than its window.
    pub fn is_per_file(self) -> bool {
        matches!(self, Fill::ExportId | Fill::ExportFrequency | Fill::PeriodFrom | Fill::PeriodTo)
    }
}

/// What a source knows about one file beyond its rows: the scheduled export that wrote it and
/// the period it covers. Carried with the file into the raw archive, so a replay fills the same.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct FileFacts {
    pub export_id: String,
    pub frequency: String,
    pub period_from: chrono::DateTime<chrono::Utc>,
    pub period_to: chrono::DateTime<chrono::Utc>,
    /// The zone the file's local times are in, when the source configures one per export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl FileFacts {
    /// The frequency a period's length implies: within an hour of 1 h, 1 day or 7 days (a DST
    /// change makes a local day 23 or 25 hours), a snapshot for none.
    pub fn frequency_of(
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> &'static str {
        match (to - from).num_minutes() {
            0 => "snapshot",
            1..=60 => "hourly",
            1380..=1500 => "daily",
            10_020..=10_140 => "weekly",
            _ => "custom",
        }
    }
}

/// The types the decoders know how to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Utf8,
    Int64,
    Float64,
    Boolean,
    Date32,
    /// `Timestamp(Microsecond, "UTC")`: every timestamp is normalised to UTC.
    TimestampUtc,
    /// A list of values of the item column's type (`List(Utf8)`).
    List(Box<Column>),
    /// An object with declared members (`Struct(...)`).
    Struct(Vec<Column>),
}

impl ColumnType {
    /// Parses a scalar type name (Arrow's spelling); nested types go through [`parse_type`].
    pub fn parse(text: &str) -> Option<ColumnType> {
        let data_type = DataType::from_str(text.trim()).ok()?;
        let column_type = from_arrow(&data_type).ok()?;
        column_type.is_scalar().then_some(column_type)
    }

    pub fn is_scalar(&self) -> bool {
        !matches!(self, ColumnType::List(_) | ColumnType::Struct(_))
    }

    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date32 => DataType::Date32,
            ColumnType::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::List(item) => DataType::List(Arc::new(item.arrow_field())),
            ColumnType::Struct(members) => {
                DataType::Struct(Fields::from(members.iter().map(Column::arrow_field).collect::<Vec<_>>()))
            }
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::TimestampUtc => f.write_str("Timestamp(Microsecond, \"UTC\")"),
            ColumnType::List(item) if matches!(item.column_type, ColumnType::Struct(_)) => {
                f.write_str("List(Struct)")
            }
            ColumnType::List(item) => write!(f, "List({})", item.column_type),
            ColumnType::Struct(_) => f.write_str("Struct"),
            scalar => write!(f, "{}", scalar.arrow_type()),
        }
    }
}

const SUPPORTED_TYPES: &str = "Utf8, Int64, Float64, Boolean, Date32, Timestamp(Microsecond, \"UTC\"), List(T), Struct(...) or Struct / List(Struct) with [[columns.fields]]";

/// Maps an Arrow type onto the decoders' types (nested types recursively).
fn from_arrow(data_type: &DataType) -> Result<ColumnType, String> {
    Ok(match data_type {
        DataType::Utf8 => ColumnType::Utf8,
        DataType::Int64 => ColumnType::Int64,
        DataType::Float64 => ColumnType::Float64,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Date32 => ColumnType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) if zone.as_ref() == "UTC" => {
            ColumnType::TimestampUtc
        }
        DataType::List(item) => {
            ColumnType::List(Box::new(Column::member(item.name(), from_arrow(item.data_type())?, true)))
        }
        DataType::Struct(fields) => ColumnType::Struct(
            fields
                .iter()
                .map(|f| Ok(Column::member(f.name(), from_arrow(f.data_type())?, f.is_nullable())))
                .collect::<Result<_, String>>()?,
        ),
        other => return Err(format!("`{other}` is not supported; use one of {SUPPORTED_TYPES}")),
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
    /// How the file spells the value (for a list: how it spells each item).
    pub encoding: Encoding,
    pub nullable: bool,
    pub pii: bool,
    /// What a personal column holds (how it is normalised before hashing; free text is never hashed).
    pub pii_kind: pii::PiiKind,
    /// This column's own PII action, over the run's `--pii`.
    pub pii_action: Option<pii::PiiAction>,
    /// Whether Parquet should try dictionary encoding (off for values unique per row: ids, links).
    pub dictionary: bool,
    /// The platform marks the field deprecated; it is still landed while it is sent.
    pub deprecated: bool,
    pub description: String,
    /// The platform's name for the field when it is not `name` or what [`snake_case`] makes of it.
    pub source_name: Option<String>,
    /// Filled from the window instead of the file.
    pub fill: Option<Fill>,
    /// A CSV cell holding a list: the separator between its items (items are trimmed).
    pub separator: Option<String>,
    /// For a `local_time_of_day` start: the column holding the interval's end …
    pub interval_end: Option<String>,
    /// … and the column holding its length in seconds.
    pub interval_seconds: Option<String>,
}

impl Column {
    fn member(name: &str, column_type: ColumnType, nullable: bool) -> Column {
        Column {
            name: name.to_string(),
            column_type,
            encoding: Encoding::Plain,
            nullable,
            pii: false,
            pii_kind: pii::PiiKind::Value,
            pii_action: None,
            dictionary: true,
            deprecated: false,
            description: String::new(),
            source_name: None,
            fill: None,
            separator: None,
            interval_end: None,
            interval_seconds: None,
        }
    }

    /// Whether a CSV cell can hold this column: a scalar, or a `List(Utf8)` with a `separator`.
    pub fn fits_csv(&self) -> bool {
        match &self.column_type {
            ColumnType::List(item) => item.column_type == ColumnType::Utf8 && self.separator.is_some(),
            ColumnType::Struct(_) => false,
            _ => true,
        }
    }

    pub fn arrow_field(&self) -> Field {
        Field::new(&self.name, self.column_type.arrow_type(), self.nullable)
    }

    /// The members of a struct column, or of a list of structs.
    pub fn members(&self) -> &[Column] {
        match &self.column_type {
            ColumnType::Struct(members) => members,
            ColumnType::List(item) => item.members(),
            _ => &[],
        }
    }
}

/// One dataset of one source, e.g. `saltedcx.turn`.
#[derive(Debug, Clone)]
pub struct DatasetSchema {
    pub source: String,
    pub dataset: String,
    /// File name the platform gives the export, e.g. `turns.csv`.
    pub file: String,
    pub format: FileFormat,
    pub kind: DatasetKind,
    /// The columns that identify a record (one row per key in current tables).
    pub key: Vec<String>,
    /// The column that orders two versions of one record, when the platform has one.
    pub version: Option<String>,
    pub description: String,
    /// Declared columns, then `_extra` for JSON datasets.
    pub columns: Vec<Column>,
    /// Columns that hold another dataset's key (`engagement.contact_pid → customer.pid`):
    /// erasing a record erases what references it.
    pub references: Vec<Reference>,
    /// The declaration's own text, where it came from and its fingerprint: each window records
    /// the fingerprint, and the lake keeps a copy of the text.
    pub declaration: Arc<Declaration>,
    arrow: SchemaRef,
}

/// A declaration as written: the TOML text a dataset's schema was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// `schemas/dixa/conversation.toml (embedded)` or the path of a `--schemas` file.
    pub origin: String,
    pub text: String,
    /// The first 16 hex digits of the text's SHA-256.
    pub fingerprint: String,
}

impl Declaration {
    fn new(origin: &str, text: &str) -> Declaration {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(text.as_bytes());
        Declaration {
            origin: origin.to_string(),
            text: text.to_string(),
            fingerprint: hex::encode(&digest[..8]),
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.origin.ends_with("(embedded)")
    }
}

/// How a table written under one declaration can go on under another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evolution {
    /// The same columns with the same types (descriptions, flags and the like may differ).
    Same,
    /// Every old column is kept as it was; these new ones are nullable (old rows read null).
    Additive { added: Vec<String> },
    /// Old files and new ones cannot be read as one table: why.
    Incompatible(String),
}

impl DatasetSchema {
    /// What writing under `self` does to a table written under `old`: the same, columns added,
    /// or a change old files cannot follow (a column dropped, a type changed, a column made
    /// required, a required column added).
    pub fn evolution_from(&self, old: &DatasetSchema) -> Evolution {
        for column in &old.columns {
            match self.columns.iter().find(|c| c.name == column.name) {
                None => {
                    return Evolution::Incompatible(format!("it drops column `{}`", column.name));
                }
                Some(new) if new.column_type.arrow_type() != column.column_type.arrow_type() => {
                    return Evolution::Incompatible(format!(
                        "column `{}` changes type from {} to {}",
                        column.name, column.column_type, new.column_type
                    ))
                }
                Some(new) if column.nullable && !new.nullable => {
                    return Evolution::Incompatible(format!(
                        "column `{}` becomes required (older windows may hold nulls)",
                        column.name
                    ))
                }
                Some(_) => {}
            }
        }
        let mut added = Vec::new();
        for column in &self.columns {
            if old.columns.iter().any(|c| c.name == column.name) {
                continue;
            }
            if !column.nullable {
                return Evolution::Incompatible(format!(
                    "it adds required column `{}` (older windows have no value for it)",
                    column.name
                ));
            }
            added.push(column.name.clone());
        }
        if added.is_empty() {
            Evolution::Same
        } else {
            Evolution::Additive { added }
        }
    }
}

/// `column` holds values of `dataset.key` of the same source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub column: String,
    /// `dataset.column`.
    pub to: String,
}

impl Reference {
    /// The referenced (dataset, column).
    pub fn target(&self) -> Option<(&str, &str)> {
        self.to.split_once('.')
    }
}

impl DatasetSchema {
    /// `source.dataset`, the name users type.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.source, self.dataset)
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        self.arrow.clone()
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column a file's header or a record's field `name` lands in: an exact name or
    /// `source_name` first, then the [`snake_case`] rule. Filled columns never come from a file.
    pub fn column_for_field(&self, name: &str) -> Option<usize> {
        let candidates =
            || self.columns.iter().enumerate().filter(|(_, c)| c.fill.is_none() && c.name != EXTRA_COLUMN);
        // A declared `source_name` is the column's only name; otherwise its own, or the rule's.
        let own_name = |c: &Column, wanted: &str| c.source_name.is_none() && c.name == wanted;
        candidates()
            .find(|(_, c)| c.source_name.as_deref() == Some(name))
            .or_else(|| candidates().find(|(_, c)| own_name(c, name)))
            .or_else(|| {
                let snake = snake_case(name);
                candidates().find(|(_, c)| own_name(c, &snake))
            })
            .map(|(i, _)| i)
    }

    /// Whether any column is local time, so decoding needs the export's time zone.
    pub fn needs_timezone(&self) -> bool {
        self.columns.iter().any(|c| matches!(c.encoding, Encoding::LocalTime | Encoding::LocalTimeOfDay))
    }

    /// Whether records of this dataset can keep undeclared fields (JSON datasets).
    pub fn extra_index(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.name == EXTRA_COLUMN)
    }

    /// The key as users read it: `pid`, or `(id, date)`.
    pub fn key_display(&self) -> String {
        match self.key.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        }
    }
}

/// `updatedAt` → `updated_at`, `Created at (Date / Time)` → `created_at_date_time`: a camelCase
/// boundary becomes `_`, letters are lowercased, and each run of other characters becomes one
/// `_` (none at either end). Later sources name their columns by this rule.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous: Option<char> = None;
    for c in name.chars() {
        if c.is_alphanumeric() {
            let boundary =
                c.is_uppercase() && previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        previous = Some(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    source: String,
    dataset: String,
    file: String,
    #[serde(default)]
    format: Option<FileFormat>,
    #[serde(default)]
    kind: DatasetKind,
    /// Shorthand for a one-column key.
    #[serde(default)]
    primary_key: Option<String>,
    #[serde(default)]
    key: Option<Vec<String>>,
    #[serde(default)]
    version: Option<String>,
    description: String,
    columns: Vec<ColumnFile>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    column_type: String,
    nullable: bool,
    #[serde(default)]
    encoding: Encoding,
    #[serde(default)]
    pii: bool,
    #[serde(default)]
    pii_kind: pii::PiiKind,
    #[serde(default)]
    pii_action: Option<pii::PiiAction>,
    #[serde(default = "default_dictionary")]
    dictionary: bool,
    #[serde(default)]
    deprecated: bool,
    description: String,
    #[serde(default)]
    source_name: Option<String>,
    #[serde(default)]
    fill: Option<Fill>,
    #[serde(default)]
    separator: Option<String>,
    #[serde(default)]
    interval_end: Option<String>,
    #[serde(default)]
    interval_seconds: Option<String>,
    /// Members of a `Struct` or `List(Struct)` column.
    #[serde(default)]
    fields: Vec<ColumnFile>,
}

fn default_dictionary() -> bool {
    true
}

/// Resolves one declared column (and its members) into a [`Column`]; `path` names it in errors.
fn parse_column(c: ColumnFile, path: &str) -> Result<Column, String> {
    let compact: String = c.column_type.chars().filter(|ch| !ch.is_whitespace()).collect();
    let members = |fields: Vec<ColumnFile>| -> Result<Vec<Column>, String> {
        if fields.is_empty() {
            return Err(format!("`{path}` is a {compact} but declares no [[columns.fields]]"));
        }
        let mut members: Vec<Column> = Vec::with_capacity(fields.len());
        for field in fields {
            let member_path = format!("{path}.{}", field.name);
            if members.iter().any(|m| m.name == field.name) {
                return Err(format!("member `{member_path}` is declared twice"));
            }
            members.push(parse_column(field, &member_path)?);
        }
        Ok(members)
    };
    let column_type = match compact.as_str() {
        "Struct" => ColumnType::Struct(members(c.fields)?),
        "List(Struct)" => {
            let mut item = Column::member("item", ColumnType::Struct(members(c.fields)?), true);
            item.description = c.description.clone();
            ColumnType::List(Box::new(item))
        }
        _ => {
            if !c.fields.is_empty() {
                return Err(format!(
                    "`{path}` declares [[columns.fields]]; write its type as Struct or List(Struct)"
                ));
            }
            let data_type = DataType::from_str(c.column_type.trim()).map_err(|e| {
                format!(
                    "column `{path}` has unsupported type `{}`: {e}; use one of {SUPPORTED_TYPES}",
                    c.column_type
                )
            })?;
            from_arrow(&data_type).map_err(|e| format!("column `{path}`: {e}"))?
        }
    };
    let leaf = match &column_type {
        ColumnType::List(item) => &item.column_type,
        other => other,
    };
    match (c.encoding, leaf) {
        (Encoding::Plain, _)
        | (Encoding::EpochMs, ColumnType::TimestampUtc)
        | (Encoding::JsonText, ColumnType::Utf8)
        | (Encoding::DurationHms, ColumnType::Int64)
        | (Encoding::LocalTime | Encoding::LocalTimeOfDay, ColumnType::TimestampUtc) => {}
        (Encoding::LocalTime | Encoding::LocalTimeOfDay, _) => {
            return Err(format!(
                "column `{path}`: encodings local_time and local_time_of_day need type Timestamp(Microsecond, \"UTC\")"
            ))
        }
        (Encoding::DurationHms, _) => {
            return Err(format!("column `{path}`: encoding duration_hms needs type Int64 (milliseconds)"))
        }
        (Encoding::EpochMs, _) => {
            return Err(format!(
                "column `{path}`: encoding epoch_ms needs type Timestamp(Microsecond, \"UTC\")"
            ))
        }
        (Encoding::JsonText, _) => {
            return Err(format!("column `{path}`: encoding json_text needs type Utf8"))
        }
    }
    let column_type = match column_type {
        // A list's encoding applies to each of its items.
        ColumnType::List(mut item) if c.encoding != Encoding::Plain => {
            item.encoding = c.encoding;
            ColumnType::List(item)
        }
        other => other,
    };
    Ok(Column {
        name: c.name,
        encoding: if column_type.is_scalar() { c.encoding } else { Encoding::Plain },
        column_type,
        nullable: c.nullable,
        pii: c.pii,
        pii_kind: c.pii_kind,
        pii_action: c.pii_action,
        dictionary: c.dictionary,
        deprecated: c.deprecated,
        description: c.description,
        source_name: c.source_name,
        fill: c.fill,
        separator: c.separator,
        interval_end: c.interval_end,
        interval_seconds: c.interval_seconds,
    })
}

pub fn parse_schema(origin: &str, text: &str) -> Result<DatasetSchema, SchemaError> {
    let invalid = |message: String| SchemaError::Invalid { origin: origin.to_string(), message };
    let file: SchemaFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    // Source and dataset become path components of the lake: keep them plain identifiers.
    for (what, name) in [("source", &file.source), ("dataset", &file.dataset)] {
        if !crate::sink::layout::is_identifier(name) {
            return Err(invalid(format!("{what} `{name}` must be lowercase letters, digits and `_`")));
        }
    }
    let format = match file.format.or_else(|| FileFormat::from_file_name(&file.file)) {
        Some(format) => format,
        None => {
            return Err(invalid(format!(
            "cannot tell the format of `{}` from its extension; add format = \"csv\", \"json\" or \"xlsx\"",
            file.file
        )))
        }
    };
    if file.columns.is_empty() {
        return Err(invalid("no [[columns]] declared".into()));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(file.columns.len() + 1);
    for c in file.columns {
        if c.name == EXTRA_COLUMN {
            return Err(invalid(format!("`{EXTRA_COLUMN}` is reserved for undeclared fields")));
        }
        if columns.iter().any(|seen| seen.name == c.name) {
            return Err(invalid(format!("column `{}` is declared twice", c.name)));
        }
        let name = c.name.clone();
        let column = parse_column(c, &name).map_err(invalid)?;
        match (column.fill, &column.column_type) {
            (None, _) | (Some(Fill::WindowDate), ColumnType::Date32) => {}
            (
                Some(Fill::WindowStart | Fill::WindowEnd | Fill::PeriodFrom | Fill::PeriodTo),
                ColumnType::TimestampUtc,
            ) => {}
            (Some(Fill::ExportId | Fill::ExportFrequency), ColumnType::Utf8) => {}
            (Some(fill), other) => {
                return Err(invalid(format!(
                    "column `{name}`: fill {} cannot fill a {other} column (window_date is a Date32; window_start, window_end, period_from and period_to are timestamps; export_id and export_frequency are Utf8)",
                    fill.as_str()
                )))
            }
        }
        if format == FileFormat::Csv && !column.fits_csv() {
            return Err(invalid(format!(
                "column `{name}` is {}; a CSV file holds scalar columns, or List(Utf8) with a `separator`",
                column.column_type
            )));
        }
        if format != FileFormat::Csv
            && matches!(column.encoding, Encoding::LocalTime | Encoding::LocalTimeOfDay)
        {
            return Err(invalid(format!(
                "column `{name}`: local times (without offset) are read from CSV files only"
            )));
        }
        if column.separator.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(format!("column `{name}`: an empty `separator`")));
        }
        columns.push(column);
    }
    for column in &columns {
        let ends = (&column.interval_end, &column.interval_seconds);
        if ends.0.is_none() && ends.1.is_none() {
            continue;
        }
        let name = &column.name;
        if column.encoding != Encoding::LocalTimeOfDay {
            return Err(invalid(format!("column `{name}`: interval_end needs encoding local_time_of_day")));
        }
        let end = ends.0.as_ref().and_then(|e| columns.iter().find(|c| &c.name == e));
        if !end.is_some_and(|c| c.encoding == Encoding::LocalTimeOfDay) {
            return Err(invalid(format!(
                "column `{name}`: interval_end must name a local_time_of_day column"
            )));
        }
        if let Some(seconds) = ends.1 {
            let numeric = columns
                .iter()
                .find(|c| &c.name == seconds)
                .is_some_and(|c| matches!(c.column_type, ColumnType::Int64 | ColumnType::Float64));
            if !numeric {
                return Err(invalid(format!(
                    "column `{name}`: interval_seconds must name an Int64 or Float64 column"
                )));
            }
        }
    }
    let key = match (file.key, file.primary_key) {
        (Some(key), None) => key,
        (None, Some(one)) => vec![one],
        (Some(_), Some(_)) => return Err(invalid("declare either `key` or `primary_key`, not both".into())),
        (None, None) => {
            return Err(invalid(
                "no key declared; add key = [\"<column>\", ...] (the columns that identify a record)".into(),
            ))
        }
    };
    if key.is_empty() {
        return Err(invalid("`key` is empty; name the columns that identify a record".into()));
    }
    for (i, name) in key.iter().enumerate() {
        if key[..i].contains(name) {
            return Err(invalid(format!("key column `{name}` is named twice")));
        }
        let column = columns
            .iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| invalid(format!("key column `{name}` is not a declared column")))?;
        if !matches!(
            column.column_type,
            ColumnType::Utf8
                | ColumnType::Int64
                | ColumnType::Date32
                | ColumnType::TimestampUtc
                | ColumnType::Boolean
        ) {
            return Err(invalid(format!(
                "key column `{name}` is {}; a key is Utf8, Int64, Date32, Timestamp or Boolean",
                column.column_type
            )));
        }
    }
    if let Some(version) = &file.version {
        let column = columns
            .iter()
            .find(|c| &c.name == version)
            .ok_or_else(|| invalid(format!("version column `{version}` is not a declared column")))?;
        if !matches!(
            column.column_type,
            ColumnType::Int64
                | ColumnType::Float64
                | ColumnType::Date32
                | ColumnType::TimestampUtc
                | ColumnType::Utf8
        ) {
            return Err(invalid(format!(
                "version column `{version}` is {}; versions are ordered by a number, date, timestamp or text",
                column.column_type
            )));
        }
    }
    if matches!(format, FileFormat::Json | FileFormat::Xlsx) {
        let mut extra = Column::member(EXTRA_COLUMN, ColumnType::Utf8, true);
        extra.dictionary = false;
        extra.description =
            "Fields of the record that the schema does not declare, as a JSON object keyed by path \
             (`field`, `list[2].member`); null when there were none. Nothing the platform sends is dropped."
                .into();
        columns.push(extra);
    }
    let fields: Vec<Field> = columns.iter().map(Column::arrow_field).collect();
    for reference in &file.references {
        if !columns.iter().any(|c| c.name == reference.column) {
            return Err(invalid(format!("reference from `{}`: no such column", reference.column)));
        }
        if reference.target().is_none_or(|(d, c)| d.is_empty() || c.is_empty()) {
            return Err(invalid(format!(
                "reference `to = \"{}\"`: write it as dataset.column",
                reference.to
            )));
        }
    }
    Ok(DatasetSchema {
        declaration: Arc::new(Declaration::new(origin, text)),
        source: file.source,
        dataset: file.dataset,
        file: file.file,
        format,
        kind: file.kind,
        key,
        version: file.version,
        description: file.description,
        columns,
        references: file.references,
        arrow: Arc::new(Schema::new(fields)),
    })
}

/// All known dataset schemas, keyed by `source.dataset`.
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    schemas: BTreeMap<String, Arc<DatasetSchema>>,
}

impl SchemaRegistry {
    /// The schemas compiled into this binary.
    pub fn embedded() -> Result<SchemaRegistry, SchemaError> {
        let mut schemas = BTreeMap::new();
        let registered = REGISTERED.read().expect("schema registration").clone();
        let files = EMBEDDED.iter().map(|(relative, text)| (relative.to_string(), *text));
        for (relative, text) in files.chain(registered) {
            let origin = format!("schemas/{relative} (embedded)");
            let schema = parse_schema(&origin, text)?;
            schemas.insert(schema.qualified_name(), Arc::new(schema));
        }
        Ok(SchemaRegistry { schemas })
    }

    /// Embedded schemas, overridden by every `<dir>/<source>/<dataset>.toml` found on disk.
    pub fn with_overrides(dir: &Path) -> Result<SchemaRegistry, SchemaError> {
        let mut registry = SchemaRegistry::embedded()?;
        let read_dir = |p: &Path| {
            std::fs::read_dir(p).map_err(|source| SchemaError::Read { path: p.to_path_buf(), source })
        };
        for source_dir in read_dir(dir)? {
            let source_dir =
                source_dir.map_err(|source| SchemaError::Read { path: dir.to_path_buf(), source })?;
            if !source_dir.path().is_dir() {
                continue;
            }
            for entry in read_dir(&source_dir.path())? {
                let path =
                    entry.map_err(|source| SchemaError::Read { path: source_dir.path(), source })?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| SchemaError::Read { path: path.clone(), source })?;
                let schema = parse_schema(&path.display().to_string(), &text)?;
                registry.schemas.insert(schema.qualified_name(), Arc::new(schema));
            }
        }
        Ok(registry)
    }

    pub fn get(&self, qualified: &str) -> Result<Arc<DatasetSchema>, SchemaError> {
        self.schemas.get(qualified).cloned().ok_or_else(|| SchemaError::UnknownDataset {
            name: qualified.to_string(),
            known: self.schemas.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn dataset(&self, source: &str, dataset: &str) -> Result<Arc<DatasetSchema>, SchemaError> {
        self.get(&format!("{source}.{dataset}"))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<DatasetSchema>> {
        self.schemas.values()
    }

    /// The embedded schemas, with `schemas` (e.g. a plan's, loaded with `--schemas`) in place of
    /// the embedded ones of the same name.
    pub fn embedded_with(schemas: &[Arc<DatasetSchema>]) -> Result<SchemaRegistry, SchemaError> {
        let mut registry = SchemaRegistry::embedded()?;
        for schema in schemas {
            registry.schemas.insert(schema.qualified_name(), schema.clone());
        }
        Ok(registry)
    }

    /// The sources the schemas declare datasets of, in name order.
    pub fn sources(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&str> =
            self.schemas.values().map(|s| s.source.as_str()).collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// The datasets of one source, in name order.
    pub fn of_source<'a>(&'a self, source: &'a str) -> impl Iterator<Item = &'a Arc<DatasetSchema>> + 'a {
        self.schemas.values().filter(move |s| s.source == source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(body: &str) -> Result<DatasetSchema, String> {
        let text = format!("source='s'\ndataset='d'\nfile='f.json'\ndescription=''\n{body}");
        parse_schema("x.toml", &text).map_err(|e| e.to_string())
    }

    #[test]
    fn embedded_schemas_load_with_expanded_numbered_columns() {
        let registry = SchemaRegistry::embedded().unwrap();
        let engagement = registry.get("saltedcx.engagement").unwrap();
        for name in ["attribute_01", "attribute_04", "engagement_fact_01", "engagement_fact_03"] {
            assert!(engagement.column_index(name).is_some(), "{name} missing");
        }
        assert_eq!(engagement.columns.len(), 80);
        assert_eq!(registry.get("saltedcx.turn").unwrap().columns.len(), 21);
        assert_eq!(registry.get("saltedcx.review").unwrap().columns.len(), 34);
        assert_eq!(registry.get("saltedcx.customer").unwrap().columns.len(), 11);
        assert_eq!(registry.get("saltedcx.agent").unwrap().columns.len(), 13);
        assert_eq!(registry.get("saltedcx.turn").unwrap().key, ["pid"]);
        // Every entities dataset (one current row per key) names a key of declared, non-null
        // columns: its kind comes from its file, and no list here restates it.
        for schema in registry.iter().filter(|s| s.kind == DatasetKind::Entities) {
            assert!(!schema.key.is_empty(), "{}: entities without a key", schema.qualified_name());
            for column in &schema.key {
                let index =
                    schema.column_index(column).unwrap_or_else(|| panic!("{}: key {column}", schema.dataset));
                assert!(
                    !schema.columns[index].nullable,
                    "{}.{column}: a nullable key",
                    schema.qualified_name()
                );
            }
        }
    }

    #[test]
    fn fields_find_their_column_by_source_name_or_the_snake_case_rule() {
        let cols = "[[columns]]\nname='agent_id'\ntype='Int64'\nnullable=false\ndescription=''\n\
                    [[columns]]\nname='handle_ms'\ntype='Int64'\nencoding='duration_hms'\nsource_name='AVG_HANDLE_TIME'\nnullable=true\ndescription=''\n\
                    [[columns]]\nname='day'\ntype='Date32'\nfill='window_date'\nnullable=false\ndescription=''";
        let s = schema(&format!("key=['day','agent_id']\n{cols}")).unwrap();
        assert_eq!(s.column_for_field("agent_id"), Some(0));
        assert_eq!(s.column_for_field("AGENT_ID"), Some(0));
        assert_eq!(s.column_for_field("agentId"), Some(0));
        assert_eq!(s.column_for_field("AVG_HANDLE_TIME"), Some(1));
        assert_eq!(s.column_for_field("handle_ms"), None, "a declared source_name is the only name");
        assert_eq!(s.column_for_field("day"), None, "a filled column never comes from the file");
        let bad = cols.replace("type='Date32'", "type='Int64'");
        let err = schema(&format!("key=['agent_id']\n{bad}")).unwrap_err().to_string();
        assert!(err.contains("fill"), "{err}");
        let bad = cols.replace("encoding='duration_hms'", "encoding='duration_hms'\ntype_hint=1");
        assert!(schema(&format!("key=['agent_id']\n{bad}")).is_err(), "unknown keys are refused");
    }

    #[test]
    fn scalar_type_names_round_trip_and_match_arrow() {
        for t in [
            ColumnType::Utf8,
            ColumnType::Int64,
            ColumnType::Float64,
            ColumnType::Boolean,
            ColumnType::Date32,
            ColumnType::TimestampUtc,
        ] {
            assert_eq!(ColumnType::parse(&t.to_string()), Some(t.clone()));
            assert_eq!(DataType::from_str(&t.to_string()).unwrap(), t.arrow_type());
        }
        assert_eq!(ColumnType::parse("Decimal128(10,2)"), None);
        assert_eq!(ColumnType::parse("List(Utf8)"), None, "nested types are not scalars");
    }

    #[test]
    fn nested_types_in_arrow_spelling_or_with_described_members() {
        let s = schema(
            "key=['id']\n\
             [[columns]]\nname='id'\ntype='Int64'\nnullable=false\ndescription=''\n\
             [[columns]]\nname='tags'\ntype='List(Utf8)'\nnullable=true\ndescription=''\n\
             [[columns]]\nname='pair'\ntype='Struct(\"a\": Utf8, \"b\": Int64)'\nnullable=true\ndescription=''\n\
             [[columns]]\nname='ratings'\ntype='List(Struct)'\nnullable=true\ndescription='r'\n\
             [[columns.fields]]\nname='score'\ntype='Int64'\nnullable=true\ndescription='s'\n\
             [[columns.fields]]\nname='at'\ntype='Timestamp(Microsecond, \"UTC\")'\nencoding='epoch_ms'\nnullable=true\ndescription=''\n\
             [[columns]]\nname='stamps'\ntype='List(Timestamp(Microsecond, \"UTC\"))'\nencoding='epoch_ms'\nnullable=true\ndescription=''\n",
        )
        .unwrap();
        let arrow = s.arrow_schema();
        assert_eq!(arrow.field_with_name("tags").unwrap().data_type().to_string(), "List(Utf8)");
        assert_eq!(
            arrow.field_with_name("pair").unwrap().data_type(),
            &DataType::from_str("Struct(\"a\": Utf8, \"b\": Int64)").unwrap()
        );
        let ratings = &s.columns[s.column_index("ratings").unwrap()];
        assert_eq!(ratings.members().len(), 2);
        assert_eq!(ratings.members()[1].encoding, Encoding::EpochMs);
        let ColumnType::List(item) = &s.columns[s.column_index("stamps").unwrap()].column_type else {
            panic!("a list")
        };
        assert_eq!(item.encoding, Encoding::EpochMs);
        assert_eq!(s.columns.last().unwrap().name, EXTRA_COLUMN, "JSON datasets keep undeclared fields");
        assert_eq!(s.format, FileFormat::Json);
    }

    #[test]
    fn keys_are_checked_when_the_schema_loads() {
        let cols = "[[columns]]\nname='id'\ntype='Int64'\nnullable=false\ndescription=''\n\
                    [[columns]]\nname='day'\ntype='Date32'\nnullable=false\ndescription=''\n\
                    [[columns]]\nname='tags'\ntype='List(Utf8)'\nnullable=true\ndescription=''\n";
        let s = schema(&format!("key=['id','day']\nversion='day'\n{cols}")).unwrap();
        assert_eq!(s.key_display(), "(id, day)");
        assert_eq!(s.version.as_deref(), Some("day"));
        for (body, expected) in [
            ("key=['nope']", "key column `nope` is not a declared column"),
            ("key=['tags']", "key column `tags` is List(Utf8)"),
            ("key=[]", "`key` is empty"),
            ("key=['id','id']", "named twice"),
            ("key=['id']\nversion='tags'", "version column `tags`"),
            ("key=['id']\nprimary_key='id'", "either `key` or `primary_key`"),
            ("", "no key declared"),
        ] {
            let err = schema(&format!("{body}\n{cols}")).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn invalid_schema_names_the_problem() {
        let text = "source='s'\ndataset='d'\nfile='f.csv'\nprimary_key='id'\ndescription=''\n[[columns]]\nname='id'\ntype='Int32'\nnullable=false\ndescription=''\n";
        let err = parse_schema("x.toml", text).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("`id`") && err.contains("Int32"), "{err}");
        let csv_nested = "source='s'\ndataset='d'\nfile='f.csv'\nprimary_key='id'\ndescription=''\n[[columns]]\nname='id'\ntype='List(Utf8)'\nnullable=false\ndescription=''\n";
        let err = parse_schema("x.toml", csv_nested).unwrap_err().to_string();
        assert!(err.contains("holds scalar columns, or List(Utf8) with a `separator`"), "{err}");
        let bad_encoding = "key=['id']\n[[columns]]\nname='id'\ntype='Int64'\nencoding='epoch_ms'\nnullable=false\ndescription=''\n";
        assert!(schema(bad_encoding).unwrap_err().contains("epoch_ms needs type Timestamp"));
        let reserved =
            "key=['id']\n[[columns]]\nname='_extra'\ntype='Utf8'\nnullable=false\ndescription=''\n";
        assert!(schema(reserved).unwrap_err().contains("reserved"));
    }

    #[test]
    fn schema_names_cannot_escape_the_lake() {
        let text = "source='saltedcx'\ndataset='../../etc'\nfile='f.csv'\nprimary_key='id'\ndescription=''\n[[columns]]\nname='id'\ntype='Utf8'\nnullable=false\ndescription=''\n";
        let err = parse_schema("x.toml", text).unwrap_err().to_string();
        assert!(err.contains("dataset `../../etc`"), "{err}");
    }

    #[test]
    fn unknown_dataset_lists_known_ones() {
        let err = SchemaRegistry::embedded().unwrap().get("saltedcx.nope").unwrap_err().to_string();
        assert!(err.contains("saltedcx.turn"), "{err}");
    }

    #[test]
    fn snake_case_rule() {
        for (name, expected) in [
            ("updatedAt", "updated_at"),
            ("Created at (Date / Time)", "created_at_date_time"),
            ("TOTAL_HANDLE_TIME_MILLIS", "total_handle_time_millis"),
            ("already_snake", "already_snake"),
            ("Agent Response Time (s)", "agent_response_time_s"),
            ("conversationID", "conversation_id"),
            ("  Topic IDs ", "topic_ids"),
            ("v2Score", "v2_score"),
        ] {
            assert_eq!(snake_case(name), expected, "{name}");
        }
    }
}
