//! Streaming JSON-array → Arrow decoding against a declared schema, nested types included.
//!
//! [`super::json_array::ArrayScanner`] cuts the array into elements with bounded memory; each
//! element is parsed by serde_json and checked against the schema field by field, recursively
//! through lists and structs, before anything is appended — so a row that does not fit is one
//! [`RejectedRow`] (file, line, the field's path, why, and the element's exact bytes), never a
//! half-written row or a failed file. Checked rows are handed to arrow-json's `Decoder` in their
//! final shape (epoch milliseconds already in microseconds, `json_text` values already text),
//! which builds the nested Arrow arrays.
//!
//! Nothing the platform sent is dropped: every field the schema does not declare, at any depth,
//! goes into the row's `_extra` column as a JSON object keyed by the field's path (`channel`,
//! `ratings[1].comment`), and is reported once per file as drift. Leniencies, each documented in
//! the README: a scalar where a list is declared becomes a one-element list (Dixa sends
//! `custom_fields[].value` both ways); a missing nullable field is null.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::Arc;

use arrow::json::reader::{Decoder as ArrowJsonDecoder, ReaderBuilder};
use serde_json::{Map, Value};

use super::json_array::{ArrayScanner, ScanError};
use super::{BatchDecoder, DecodeError, DecodeStats, DecodedBatch, RejectedRow, SchemaDrift};
use crate::schema::value::{self, InvalidValue};
use crate::schema::{Column, ColumnType, DatasetSchema, Encoding, EXTRA_COLUMN};

/// Rows per batch unless their JSON grows past [`MAX_BATCH_BYTES`] first.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Long messages make rows big; cap the JSON held per batch to keep memory flat.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Checked rows are handed to arrow-json in slices this small: a parsed `serde_json::Value`
/// takes several times its text's memory, so a whole batch of them must never be held at once.
const SERIALIZE_ROWS: usize = 256;
/// Distinct undeclared field paths reported per file (the values are all kept regardless).
const MAX_DRIFT_REPORTED: usize = 100;

/// Why one field of one row does not fit: the field's path and the reason.
struct Misfit {
    path: String,
    reason: String,
}

/// Reads one JSON array batch by batch. Create with [`JsonDecoder::new`], then call
/// [`BatchDecoder::next_batch`] until it returns `None`.
pub struct JsonDecoder<R: Read> {
    schema: Arc<DatasetSchema>,
    file: String,
    input: R,
    scanner: ArrayScanner,
    buffer: Vec<u8>,
    /// Unscanned bytes are `buffer[position..filled]`.
    position: usize,
    filled: usize,
    eof: bool,
    arrow: ArrowJsonDecoder,
    batch_rows: usize,
    stats: DecodeStats,
    unknown_paths: BTreeSet<String>,
    drift: Vec<SchemaDrift>,
    /// Drift known before the rows (a workbook's header lacking declared columns).
    header_drift: Vec<SchemaDrift>,
    done: bool,
    /// Declared columns (not `_extra`) sorted by name, with their index in the schema.
    columns_by_name: Vec<(String, usize)>,
    required_columns: usize,
    /// Per column, where the row being conformed holds it (reused from row to row).
    slots: Vec<usize>,
    /// Fields not named exactly as a column, by what the snake_case rule made of them (cached:
    /// `AGENT_NAME` → `agent_name`'s index, an undeclared field → `None`).
    renamed: HashMap<String, Option<usize>>,
    /// The columns filled from the window, with their value (days or microseconds).
    fills: Vec<(usize, i64)>,
}

impl<R: Read> std::fmt::Debug for JsonDecoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonDecoder").field("file", &self.file).field("stats", &self.stats).finish()
    }
}

impl<R: Read> JsonDecoder<R> {
    pub fn new(schema: Arc<DatasetSchema>, file: impl Into<String>, input: R) -> Result<Self, DecodeError> {
        Self::with_batch_rows(schema, file, input, DEFAULT_BATCH_ROWS)
    }

    pub fn with_batch_rows(
        schema: Arc<DatasetSchema>,
        file: impl Into<String>,
        input: R,
        batch_rows: usize,
    ) -> Result<Self, DecodeError> {
        let arrow = ReaderBuilder::new(schema.arrow_schema())
            .with_batch_size(batch_rows.max(1))
            .with_strict_mode(true)
            .build_decoder()?;
        let mut columns_by_name: Vec<(String, usize)> = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name != EXTRA_COLUMN && c.fill.is_none())
            .map(|(i, c)| (c.source_name.clone().unwrap_or_else(|| c.name.clone()), i))
            .collect();
        columns_by_name.sort();
        let required_columns = schema
            .columns
            .iter()
            .filter(|c| !c.nullable && c.name != EXTRA_COLUMN && c.fill.is_none())
            .count();
        Ok(JsonDecoder {
            renamed: HashMap::new(),
            fills: Vec::new(),
            slots: Vec::new(),
            columns_by_name,
            required_columns,
            schema,
            file: file.into(),
            input,
            scanner: ArrayScanner::new(),
            buffer: vec![0; 1 << 20],
            position: 0,
            filled: 0,
            eof: false,
            arrow,
            batch_rows: batch_rows.max(1),
            stats: DecodeStats::default(),
            unknown_paths: BTreeSet::new(),
            drift: Vec::new(),
            header_drift: Vec::new(),
            done: false,
        })
    }

    /// Fills the schema's window columns (`fill = "window_date"` …) from the context's window.
    /// (Local times are a CSV matter: JSON platforms send offsets.)
    pub fn with_context(mut self, context: super::FileContext) -> Self {
        let values = super::fill_values(&self.schema, context.window);
        self.fills = values.into_iter().enumerate().filter_map(|(i, v)| Some((i, v?))).collect();
        self
    }

    /// Adds drift found outside the rows (reported with the rows' own at the end).
    pub fn with_header_drift(mut self, drift: Vec<SchemaDrift>) -> Self {
        self.header_drift = drift;
        self
    }

    /// The column a field not named exactly as one lands in, by the snake_case rule.
    fn renamed_column(&mut self, name: &str) -> Option<usize> {
        if let Some(found) = self.renamed.get(name) {
            return *found;
        }
        let found = self.schema.column_for_field(name);
        // Bounded: a file with endless distinct keys costs a lookup each, not memory.
        if self.renamed.len() < 10_000 {
            self.renamed.insert(name.to_string(), found);
        }
        found
    }

    /// The next element's bytes and line, or `None` at the end of the array.
    fn next_element(&mut self, element: &mut Vec<u8>) -> Result<Option<u64>, DecodeError> {
        loop {
            if self.position < self.filled {
                let found = self
                    .scanner
                    .scan(&self.buffer[..self.filled], self.position, Some(element))
                    .map_err(|e| self.scan_error(e))?;
                match found {
                    Some(next) => {
                        self.position = next;
                        return Ok(Some(self.scanner.element_line()));
                    }
                    None => self.position = self.filled,
                }
            }
            if self.eof {
                self.scanner.finish().map_err(|e| self.scan_error(e))?;
                return Ok(None);
            }
            let n = self.input.read(&mut self.buffer).map_err(|e| DecodeError::Read {
                file: self.file.clone(),
                line: self.scanner.element_line(),
                message: e.to_string(),
            })?;
            self.position = 0;
            self.filled = n;
            self.eof = n == 0;
        }
    }

    fn scan_error(&self, error: ScanError) -> DecodeError {
        match error {
            ScanError::Truncated { line } => DecodeError::Truncated { file: self.file.clone(), line },
            ScanError::Syntax { line, message } => {
                DecodeError::Read { file: self.file.clone(), line, message }
            }
        }
    }

    /// Checks one element against the schema: the row in its final shape, or why it does not fit.
    /// The top-level fields are read into a list with keys borrowed from the element (no map, no
    /// key copies); declared ones are converted where they stand and kept by column index,
    /// undeclared ones move to `_extra`.
    fn conform(&mut self, element: &[u8]) -> Result<Row, Misfit> {
        let not_json = |e: &dyn std::fmt::Display| Misfit {
            path: String::new(),
            reason: format!("not valid JSON: {e}"),
        };
        // One UTF-8 check of the whole element; serde_json's `from_str` then checks no string again.
        let text = std::str::from_utf8(element).map_err(|e| not_json(&e))?;
        let fields: Fields = match serde_json::from_str(text) {
            Ok(fields) => fields,
            Err(e) => {
                return Err(match serde_json::from_str::<Value>(text) {
                    Ok(other) => Misfit {
                        path: String::new(),
                        reason: format!("expected a JSON object, found {}", kind(&other)),
                    },
                    Err(_) => not_json(&e),
                })
            }
        };
        let mut extra = Map::new();
        self.slots.clear();
        self.slots.resize(self.schema.columns.len(), usize::MAX);
        let mut row: Row = Vec::with_capacity(fields.0.len() + 1);
        let mut required_found = 0;
        for (name, mut value) in fields.0 {
            let index = match self.columns_by_name.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
                Ok(found) => self.columns_by_name[found].1,
                Err(_) => match self.renamed_column(&name) {
                    Some(index) => index,
                    None => {
                        extra.insert(name.into_owned(), value);
                        continue;
                    }
                },
            };
            let columns = &self.schema.columns;
            let slots = &mut self.slots;
            let column = &columns[index];
            conform_value(column, &mut value, &Path::Field(&column.name), &mut extra)?;
            match slots[index] {
                // A key given twice: the last one wins, as in any JSON parser's map.
                usize::MAX => {
                    slots[index] = row.len();
                    required_found += usize::from(!column.nullable);
                    row.push((index, value));
                }
                earlier => row[earlier].1 = value,
            }
        }
        let columns = &self.schema.columns;
        let slots = &self.slots;
        row.extend(self.fills.iter().map(|&(index, value)| (index, Value::from(value))));
        if required_found < self.required_columns {
            let missing = (0..columns.len()).find(|i| {
                !columns[*i].nullable
                    && columns[*i].name != EXTRA_COLUMN
                    && columns[*i].fill.is_none()
                    && slots[*i] == usize::MAX
            });
            if let Some(index) = missing {
                let path = Path::Field(&columns[index].name);
                return Err(path.misfit(format!("required field `{path}` is missing or null")));
            }
        }
        if !extra.is_empty() {
            for path in extra.keys() {
                if self.unknown_paths.len() < MAX_DRIFT_REPORTED {
                    self.unknown_paths.insert(generic_path(path));
                }
            }
            let extra_index =
                columns.iter().position(|c| c.name == EXTRA_COLUMN).expect("JSON schemas have _extra");
            row.push((extra_index, Value::String(Value::Object(extra).to_string())));
        }
        Ok(row)
    }
}

impl<R: Read> JsonDecoder<R> {
    /// Hands checked rows to arrow-json, each as a map from column name to value.
    fn serialize(&mut self, rows: &[Row]) -> Result<(), DecodeError> {
        let columns = &self.schema.columns;
        let named: Vec<NamedRow> = rows.iter().map(|fields| NamedRow { columns, fields }).collect();
        self.arrow.serialize(&named)?;
        Ok(())
    }
}

/// A checked row: (column index in the schema, value in its final shape).
type Row = Vec<(usize, Value)>;

/// A row as arrow-json reads it: a map keyed by the columns' names.
struct NamedRow<'a> {
    columns: &'a [Column],
    fields: &'a [(usize, Value)],
}

impl serde::Serialize for NamedRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (index, value) in self.fields {
            map.serialize_entry(&self.columns[*index].name, value)?;
        }
        map.end()
    }
}

/// An object's fields in their order, keys borrowed from the text where they have no escapes.
struct Fields<'a>(Vec<(Cow<'a, str>, Value)>);

/// A field name, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(64));
                while let Some(Key(name)) = map.next_key()? {
                    fields.push((name, map.next_value()?));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

impl<R: Read> BatchDecoder for JsonDecoder<R> {
    fn next_batch(&mut self) -> Result<Option<DecodedBatch>, DecodeError> {
        if self.done {
            return Ok(None);
        }
        let mut rows: Vec<Row> = Vec::with_capacity(SERIALIZE_ROWS);
        let mut written = 0usize;
        let mut rejects = Vec::new();
        let mut bytes = 0usize;
        let mut element = Vec::new();
        while written + rows.len() < self.batch_rows && bytes < MAX_BATCH_BYTES {
            if rows.len() == SERIALIZE_ROWS {
                self.serialize(&rows)?;
                written += rows.len();
                rows.clear();
            }
            let Some(line) = self.next_element(&mut element)? else {
                self.done = true;
                break;
            };
            self.stats.rows_read += 1;
            bytes += element.len();
            match self.conform(&element) {
                Ok(row) => rows.push(row),
                Err(misfit) => {
                    self.stats.rows_rejected += 1;
                    rejects.push(RejectedRow {
                        file: self.file.clone(),
                        line,
                        column: (!misfit.path.is_empty()).then_some(misfit.path),
                        reason: misfit.reason,
                        raw: element.clone(),
                    });
                }
            }
        }
        if self.done {
            self.drift = self.header_drift.clone();
            self.drift.extend(self.unknown_paths.iter().map(|p| SchemaDrift::KeptField(p.clone())));
        }
        written += rows.len();
        if written == 0 && rejects.is_empty() {
            return Ok(None);
        }
        self.stats.rows_written += written as u64;
        self.serialize(&rows)?;
        let batch = match self.arrow.flush()? {
            Some(batch) => batch,
            None => arrow::record_batch::RecordBatch::new_empty(self.schema.arrow_schema()),
        };
        Ok(Some(DecodedBatch { batch, rejects }))
    }

    fn stats(&self) -> DecodeStats {
        self.stats
    }

    fn drift(&self) -> &[SchemaDrift] {
        &self.drift
    }
}

/// `ratings[3].comment` → `ratings[].comment`: one drift report per field, not per index.
fn generic_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for the message: short, and never more than 60 characters of it.
fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// Where a value is in its row: `ratings[2].rating_score`. Built only when a message or an
/// `_extra` key needs it, so a row that fits formats no paths at all.
enum Path<'a> {
    Field(&'a str),
    Index(&'a Path<'a>, usize),
    Member(&'a Path<'a>, &'a str),
}

impl Path<'_> {
    fn misfit(&self, reason: String) -> Misfit {
        Misfit { path: self.to_string(), reason }
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Field(name) => f.write_str(name),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
            Path::Member(parent, name) => write!(f, "{parent}.{name}"),
        }
    }
}

/// A scalar spelled as text, parsed by the column's type into what the checks below accept;
/// `None` where text is already the expected spelling (dates, RFC 3339 timestamps).
fn parse_text_value(column: &Column, text: &str) -> Option<Result<Value, InvalidValue>> {
    Some(match (&column.column_type, column.encoding) {
        (ColumnType::Int64, Encoding::DurationHms) => value::parse_duration_hms_ms(text).map(Value::from),
        (ColumnType::Int64, _) => value::parse_i64(text).map(Value::from),
        (ColumnType::Float64, _) => value::parse_f64(text).and_then(|v| {
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or(InvalidValue("NaN and infinity cannot be kept from JSON text"))
        }),
        (ColumnType::Boolean, _) => value::parse_bool(text).map(Value::from),
        (ColumnType::TimestampUtc, Encoding::EpochMs) => value::parse_i64(text)
            .map(Value::from)
            .map_err(|_| InvalidValue("expected milliseconds since the epoch")),
        _ => return None,
    })
}

/// Checks `value` against `column` (recursively) and converts it in place to the shape
/// arrow-json decodes into the column's Arrow type. Undeclared struct members go into `extra`
/// under their path.
fn conform_value(
    column: &Column,
    value: &mut Value,
    path: &Path,
    extra: &mut Map<String, Value>,
) -> Result<(), Misfit> {
    // Platforms that send every value as a string (Khoros) spell numbers, flags and times as
    // text: parsed by the column's declared type, an empty string being no value.
    if let (Value::String(text), true) = (&*value, column.column_type.is_scalar()) {
        if column.column_type != ColumnType::Utf8 {
            if text.trim().is_empty() {
                *value = Value::Null;
            } else if let Some(parsed) = parse_text_value(column, text) {
                *value = parsed.map_err(|InvalidValue(reason)| {
                    path.misfit(format!("{reason}, found {}", quote(value)))
                })?;
            }
        }
    }
    if value.is_null() {
        return if column.nullable {
            Ok(())
        } else {
            Err(path.misfit(format!("required field `{path}` is missing or null")))
        };
    }
    let wrong =
        |expected: &str, value: &Value| path.misfit(format!("expected {expected}, found {}", quote(value)));
    let invalid = |InvalidValue(reason): InvalidValue, value: &Value| {
        path.misfit(format!("{reason}, found {}", quote(value)))
    };
    match (&column.column_type, column.encoding) {
        (ColumnType::Utf8, Encoding::JsonText) => *value = Value::String(value.to_string()),
        (ColumnType::Utf8, _) => {
            if !value.is_string() {
                return Err(wrong("a string", value));
            }
        }
        (ColumnType::Int64, _) => {
            if value.as_i64().is_none() {
                return Err(wrong("a whole number (Int64)", value));
            }
        }
        (ColumnType::Float64, _) => {
            if !value.is_number() {
                return Err(wrong("a number", value));
            }
        }
        (ColumnType::Boolean, _) => {
            if !value.is_boolean() {
                return Err(wrong("true or false", value));
            }
        }
        (ColumnType::Date32, _) => {
            let days = match &*value {
                Value::String(text) => value::parse_date(text).map_err(|e| invalid(e, value))?,
                other => return Err(wrong("a date as \"YYYY-MM-DD\"", other)),
            };
            *value = Value::from(days);
        }
        (ColumnType::TimestampUtc, Encoding::EpochMs) => {
            let Some(millis) = value.as_i64() else {
                return Err(wrong("milliseconds since the epoch (a whole number)", value));
            };
            *value = Value::from(value::epoch_ms_to_micros(millis).map_err(|e| invalid(e, value))?);
        }
        (ColumnType::TimestampUtc, _) => {
            let micros = match &*value {
                Value::String(text) => value::parse_timestamp_micros(text).map_err(|e| invalid(e, value))?,
                other => return Err(wrong("an RFC 3339 timestamp", other)),
            };
            *value = Value::from(micros);
        }
        (ColumnType::List(item), _) => {
            if !value.is_array() {
                // A single value where a list is declared: a list of one, nothing lost.
                *value = Value::Array(vec![value.take()]);
            }
            let Value::Array(items) = value else { unreachable!("made an array above") };
            for (i, item_value) in items.iter_mut().enumerate() {
                conform_value(item, item_value, &Path::Index(path, i), extra)?;
            }
        }
        (ColumnType::Struct(members), _) => {
            let Value::Object(object) = value else {
                return Err(wrong("an object", value));
            };
            object.retain(|name, member_value| {
                let declared = members.iter().any(|m| m.name == *name);
                if !declared {
                    extra.insert(format!("{path}.{name}"), member_value.take());
                }
                declared
            });
            for member in members {
                let member_path = Path::Member(path, &member.name);
                match object.get_mut(&member.name) {
                    Some(member_value) => conform_value(member, member_value, &member_path, extra)?,
                    None if member.nullable => {}
                    None => {
                        return Err(
                            member_path.misfit(format!("required field `{member_path}` is missing or null"))
                        )
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaRegistry;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    fn schema() -> Arc<DatasetSchema> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(
            dir.path().join("t/thing.toml"),
            r#"
source = "t"
dataset = "thing"
file = "things.json"
key = ["id"]
version = "updated_at"
description = "test"
[[columns]]
name = "id"
type = "Int64"
nullable = false
description = ""
[[columns]]
name = "updated_at"
type = 'Timestamp(Microsecond, "UTC")'
encoding = "epoch_ms"
nullable = true
description = ""
[[columns]]
name = "tags"
type = "List(Utf8)"
nullable = true
description = ""
[[columns]]
name = "form"
type = "Utf8"
encoding = "json_text"
nullable = true
description = ""
[[columns]]
name = "ratings"
type = "List(Struct)"
nullable = true
description = ""
[[columns.fields]]
name = "score"
type = "Int64"
nullable = true
description = ""
[[columns.fields]]
name = "values"
type = "List(Utf8)"
nullable = true
description = ""
"#,
        )
        .unwrap();
        SchemaRegistry::with_overrides(dir.path()).unwrap().get("t.thing").unwrap()
    }

    fn decode(input: &str) -> (Vec<DecodedBatch>, DecodeStats, Vec<SchemaDrift>) {
        let mut decoder = JsonDecoder::with_batch_rows(schema(), "things.json", input.as_bytes(), 2).unwrap();
        let mut batches = Vec::new();
        while let Some(batch) = decoder.next_batch().unwrap() {
            batches.push(batch);
        }
        (batches, decoder.stats(), decoder.drift().to_vec())
    }

    #[test]
    fn nested_values_epoch_ms_and_json_text_land_typed() {
        let (batches, stats, drift) = decode(
            r#"[{"id": 1, "updated_at": 1704067200123, "tags": ["a", "b,c"], "form": {"name": "Jo"},
                 "ratings": [{"score": 5, "values": "one"}, {"score": null, "values": ["x", "y"]}]},
                {"id": 2}]"#,
        );
        assert_eq!(stats, DecodeStats { rows_read: 2, rows_written: 2, rows_rejected: 0 });
        assert!(drift.is_empty());
        let batch = &batches[0].batch;
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_704_067_200_123_000);
        assert!(ts.is_null(1));
        let tags = batch.column(2).as_list::<i32>();
        assert_eq!(tags.value(0).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["a", "b,c"]);
        assert!(tags.is_null(1));
        assert_eq!(batch.column(3).as_string::<i32>().value(0), r#"{"name":"Jo"}"#);
        let ratings = batch.column(4).as_list::<i32>().value(0);
        let ratings = ratings.as_struct();
        assert_eq!(ratings.column(0).as_primitive::<Int64Type>().value(0), 5);
        assert!(ratings.column(0).is_null(1));
        let values = ratings.column(1).as_list::<i32>();
        assert_eq!(values.value(0).as_string::<i32>().value(0), "one", "a scalar becomes a list of one");
        assert_eq!(values.value(1).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["x", "y"]);
        assert!(batch.column(5).is_null(0), "no undeclared fields, no _extra");
    }

    #[test]
    fn undeclared_fields_at_any_depth_are_kept_in_extra_and_reported() {
        let (batches, _, drift) = decode(
            r#"[{"id": 1, "channel": "email", "ratings": [{"score": 1}, {"score": 2, "comment": "ok"}]},
                {"id": 2, "channel": "chat"}]"#,
        );
        let extra = batches[0].batch.column(5).as_string::<i32>();
        let first: Value = serde_json::from_str(extra.value(0)).unwrap();
        assert_eq!(first, serde_json::json!({"channel": "email", "ratings[1].comment": "ok"}));
        assert_eq!(extra.value(1), r#"{"channel":"chat"}"#);
        assert_eq!(
            drift,
            [SchemaDrift::KeptField("channel".into()), SchemaDrift::KeptField("ratings[].comment".into())]
        );
    }

    #[test]
    fn rows_that_do_not_fit_are_rejected_with_line_path_and_bytes() {
        let input = "[{\"id\": 1},\n{\"id\": \"two\"},\n{\"id\": 3, \"ratings\": [{\"score\": 1.5}]},\n{\"tags\": []},\n[1],\n{\"id\": 6, \"updated_at\": \"soon\"},\n{\"id\": 7}]";
        let (batches, stats, _) = decode(input);
        assert_eq!(stats, DecodeStats { rows_read: 7, rows_written: 2, rows_rejected: 5 });
        let rejects: Vec<&RejectedRow> = batches.iter().flat_map(|b| &b.rejects).collect();
        let described: Vec<(u64, Option<&str>)> =
            rejects.iter().map(|r| (r.line, r.column.as_deref())).collect();
        assert_eq!(
            described,
            [
                (2, Some("id")),
                (3, Some("ratings[0].score")),
                (4, Some("id")),
                (5, None),
                (6, Some("updated_at"))
            ]
        );
        assert_eq!(rejects[0].raw, br#"{"id": "two"}"#);
        assert!(rejects[0].reason.contains("expected a whole number"), "{}", rejects[0].reason);
        assert!(rejects[2].reason.contains("required field `id`"), "{}", rejects[2].reason);
        let written: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.batch.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(written, [1, 7]);
    }

    #[test]
    fn a_cut_array_is_truncated_not_a_short_file() {
        let mut decoder =
            JsonDecoder::with_batch_rows(schema(), "things.json", &b"[{\"id\": 1}, {\"id\": 2"[..], 8)
                .unwrap();
        let err = decoder.next_batch().unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    }

    #[test]
    fn an_empty_array_is_an_empty_file() {
        let (batches, stats, _) = decode(" [ ] ");
        assert!(batches.is_empty());
        assert_eq!(stats, DecodeStats::default());
    }

    #[test]
    fn a_field_given_twice_keeps_its_last_value_and_escaped_names_still_match() {
        let (batches, stats, _) =
            decode(r#"[{"id": 1, "tags": ["a"], "id": 2, "t\u0061gs": ["b"]}, {"\u0069d": 3}]"#);
        assert_eq!(stats.rows_written, 2);
        let batch = &batches[0].batch;
        let ids = batch.column_by_name("id").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((ids.value(0), ids.value(1)), (2, 3));
        let tags = batch.column_by_name("tags").unwrap().as_list::<i32>();
        assert_eq!(tags.value(0).as_string::<i32>().value(0), "b");
    }

    #[test]
    fn drift_paths_are_generic() {
        assert_eq!(generic_path("ratings[12].comment"), "ratings[].comment");
        assert_eq!(generic_path("a[1].b[2].c"), "a[].b[].c");
        assert_eq!(generic_path("plain"), "plain");
    }
}
