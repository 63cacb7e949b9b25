//! Streaming JSON-array → Arrow decoding against a declared schema, nested types included, with
//! every value kept exactly as sent.
//!
//! [`super::json_array::ArrayScanner`] cuts the array into elements with bounded memory; each
//! element is parsed once into a tape of positions ([`super::json_tape`]) and its values go
//! straight from the element's bytes into Arrow builders, one per column (lists and structs
//! recursively). No value is re-serialised: a `json_text` column, a value of another shape kept
//! as text in a `Utf8` column, and `_extra` hold the input's own bytes — key order, number
//! literals (`-123123123123123123123123123123`, `1E400`), escapes as sent.
//!
//! What the declaration does not know is kept and counted: a field it does not declare, at any
//! depth, goes into the row's `_extra` (a JSON object keyed by the field's path as sent, `channel`,
//! `ratings[1].comment`); a value converted without loss is counted by kind (a list into `Utf8`,
//! `5400.0` into `Int64`, a scalar into a list); a value that still does not fit lands as null and
//! its exact text goes into `_extra` under its path ([`super::TypeMismatchPolicy::Extra`]). A row is
//! rejected whole (a [`RejectedRow`] with file, line, the field's path, why, and the element's
//! exact bytes) only when it cannot land: not JSON, not an object, a required value missing or
//! unusable — or any misfit under `quarantine`. Rows are checked before any builder is touched,
//! so a rejected row never leaves half a row behind.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, ListArray, NullBufferBuilder,
    StringBuilder, StructArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, FieldRef, Fields};
use arrow::record_batch::RecordBatch;

use super::drift::Coercion;
use super::json_array::{ArrayScanner, ScanError};
use super::json_tape::{self, Kind, Node, Tape};
use super::parallel::{ChunkDecoder, ChunkOutcome, ChunkReader, ParallelDecoder};
use super::{BatchDecoder, DecodeError, DecodeStats, DecodedBatch, Drift, RejectedRow, TypeMismatchPolicy};
use crate::schema::value::{self, InvalidValue};
use crate::schema::{Column, ColumnType, DatasetSchema, Encoding, Fill, EXTRA_COLUMN};

/// Rows per batch unless their JSON grows past [`MAX_BATCH_BYTES`] first.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Long messages make rows big; cap the JSON held per batch to keep memory flat.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// No node index: the column has no value in this row.
const NONE: u32 = u32::MAX;

/// Why one field of one row does not fit: the field's path and the reason.
#[derive(Debug)]
struct Misfit {
    path: String,
    reason: String,
    /// A value that must be there is missing, null or empty (not a matter of type).
    required: bool,
}

/// Reads one JSON array batch by batch. Create with [`JsonDecoder::new`], then call
/// [`BatchDecoder::next_batch`] until it returns `None`. The array is cut into chunks of whole
/// elements on the calling thread; chunks are landed on the CPU workers
/// ([`super::parallel`]), batches come back in order.
pub struct JsonDecoder<R: Read> {
    spec: LandingSpec,
    /// The elements' reader until decoding starts.
    reader: Option<ElementReader<R>>,
    running: Option<ParallelDecoder<ElementReader<R>, Lander>>,
    stats: DecodeStats,
    drift: Drift,
    /// Drift known before the rows (a workbook's header lacking declared columns).
    header_drift: Option<Drift>,
    done: bool,
}

/// What every worker's [`Lander`] of one file shares.
#[derive(Clone)]
struct LandingSpec {
    schema: Arc<DatasetSchema>,
    file: String,
    batch_rows: usize,
    policy: TypeMismatchPolicy,
    /// Declared columns by the name the file uses (not `_extra`, not filled), sorted.
    columns_by_name: Arc<Vec<(String, usize)>>,
    /// Columns that must have a value, in schema order.
    required: Arc<Vec<usize>>,
    /// The value of each column filled from the window (days or microseconds).
    fills: Vec<Option<i64>>,
    /// The context's memory for chunks in flight.
    memory: Option<usize>,
}

/// A run of whole elements of the array: their bytes, back to back, and where each starts,
/// ends and which line it is on.
struct Elements {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize, u64)>,
}

/// Cuts the array into [`Elements`] of at most `batch_rows` elements or [`MAX_BATCH_BYTES`].
struct ElementReader<R: Read> {
    file: String,
    input: R,
    scanner: ArrayScanner,
    buffer: Vec<u8>,
    /// Unscanned bytes are `buffer[position..filled]`.
    position: usize,
    filled: usize,
    eof: bool,
    batch_rows: usize,
    /// The last chunk's buffers, handed back empty to be filled again.
    spare: Vec<Elements>,
}

impl<R: Read> ElementReader<R> {
    fn scan_error(&self, error: ScanError) -> DecodeError {
        match error {
            ScanError::Truncated { line } => DecodeError::Truncated { file: self.file.clone(), line },
            ScanError::Syntax { line, message } => {
                DecodeError::Read { file: self.file.clone(), line, message }
            }
        }
    }

    /// Appends the next element's bytes to `out`; returns its line, or `None` at the array's end.
    fn next_element(&mut self, out: &mut Vec<u8>) -> Result<Option<u64>, DecodeError> {
        loop {
            if self.position < self.filled {
                let found = self
                    .scanner
                    .scan(&self.buffer[..self.filled], self.position, Some(out))
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
}

impl<R: Read> ChunkReader for ElementReader<R> {
    type Chunk = Elements;

    fn next_chunk(&mut self) -> Result<Option<Elements>, DecodeError> {
        let mut chunk = self.spare.pop().unwrap_or_else(|| Elements {
            bytes: Vec::with_capacity(MAX_BATCH_BYTES + (64 << 10)),
            spans: Vec::with_capacity(self.batch_rows),
        });
        while chunk.spans.len() < self.batch_rows && chunk.bytes.len() < MAX_BATCH_BYTES {
            let start = chunk.bytes.len();
            match self.next_element(&mut chunk.bytes)? {
                Some(line) => chunk.spans.push((start, chunk.bytes.len(), line)),
                None => break,
            }
        }
        Ok((!chunk.spans.is_empty()).then_some(chunk))
    }

    fn recycle(&mut self, mut chunk: Elements) {
        chunk.bytes.clear();
        chunk.spans.clear();
        self.spare.push(chunk);
    }
}

/// Lands elements as rows into one batch: what one worker holds.
struct Lander {
    spec: LandingSpec,
    /// Fields not named exactly as a column, by what the snake_case rule made of them (cached:
    /// `AGENT_NAME` → `agent_name`'s index, an undeclared field → `None`).
    renamed: HashMap<String, Option<usize>>,
    /// For each key, the key that followed it in the last record that had it, with the column
    /// that one landed in: an export writes every record's keys in the same order, so a key is
    /// looked up once and then recognised by one comparison with its predecessor's successor.
    /// A record that leaves out an optional field misses once and is back in step at the next
    /// key (by position in the previous record, two thirds of Dixa's keys missed).
    next_key: NextKey,
    extra_index: Option<usize>,
    /// Whether each column's field was seen in any record this lander landed.
    seen: Vec<bool>,
    builders: Vec<ColumnBuilder>,
    /// Per row: for each column, the tape index of its key and of its value (`NONE` if absent).
    slots: Vec<(u32, u32)>,
    tape: Tape,
    row: RowState,
    drift: Drift,
}

/// What one row collects besides its columns: `_extra`'s entries and the drift to count if the
/// row lands.
#[derive(Default)]
struct RowState {
    /// (position of the value in the element, path as JSON string body, value's byte range).
    extra: Vec<(u32, String, u32, u32)>,
    /// Undeclared fields: (generic path, concrete path).
    undeclared: Vec<(String, String)>,
    /// Values kept in `_extra` because they did not fit: (generic path, example).
    kept: Vec<(String, String)>,
    coerced: Vec<(String, Coercion)>,
    text: String,
}

impl RowState {
    fn clear(&mut self) {
        self.extra.clear();
        self.undeclared.clear();
        self.kept.clear();
        self.coerced.clear();
    }
}

impl<R: Read> std::fmt::Debug for JsonDecoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonDecoder").field("file", &self.spec.file).field("stats", &self.stats).finish()
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
        let from_file = |c: &Column| c.name != EXTRA_COLUMN && c.fill.is_none();
        let mut columns_by_name: Vec<(String, usize)> = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| from_file(c))
            .map(|(i, c)| (c.source_name.clone().unwrap_or_else(|| c.name.clone()), i))
            .collect();
        columns_by_name.sort();
        let required = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.nullable && from_file(c))
            .map(|(i, _)| i)
            .collect();
        let batch_rows = batch_rows.max(1);
        let file = file.into();
        Ok(JsonDecoder {
            spec: LandingSpec {
                fills: vec![None; schema.columns.len()],
                policy: TypeMismatchPolicy::Extra.for_schema(&schema),
                columns_by_name: Arc::new(columns_by_name),
                required: Arc::new(required),
                schema,
                file: file.clone(),
                batch_rows,
                memory: None,
            },
            reader: Some(ElementReader {
                file,
                input,
                scanner: ArrayScanner::new(),
                buffer: vec![0; 1 << 20],
                position: 0,
                filled: 0,
                eof: false,
                batch_rows,
                spare: Vec::new(),
            }),
            running: None,
            stats: DecodeStats::default(),
            drift: Drift::default(),
            header_drift: None,
            done: false,
        })
    }

    /// Fills the schema's window columns (`fill = "window_date"` …) from the context's window
    /// and takes its policy for values of the wrong type. (Local times are a CSV matter: JSON
    /// platforms send offsets.)
    pub fn with_context(mut self, context: super::FileContext) -> Self {
        self.spec.fills = super::fill_values(&self.spec.schema, context.window, context.timezone);
        self.spec.policy = context.on_type_mismatch.for_schema(&self.spec.schema);
        self.spec.memory = context.memory;
        self
    }

    /// Drift found outside the rows (a workbook's header): its absent columns replace the ones
    /// the rows would show.
    pub fn with_header_drift(mut self, drift: Drift) -> Self {
        self.header_drift = Some(drift);
        self
    }

    /// The file's drift once its last row is read: absent columns are the declared ones no
    /// record had (or, for a workbook, the ones its header lacks).
    fn finish_drift(&mut self) {
        let absent = match (self.header_drift.take(), &self.running) {
            (Some(header), _) => header.absent,
            (None, _) if self.stats.rows_read == 0 => Default::default(),
            (None, None) => Default::default(),
            (None, Some(running)) => {
                let landers = running.decoders();
                let schema = &self.spec.schema;
                schema
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| {
                        !landers.iter().any(|l| l.seen[*i]) && c.name != EXTRA_COLUMN && c.fill.is_none()
                    })
                    .map(|(_, c)| c.name.clone())
                    .collect()
            }
        };
        self.drift.absent = absent;
    }
}

impl Lander {
    fn new(spec: LandingSpec) -> Lander {
        let schema = &spec.schema;
        Lander {
            renamed: HashMap::new(),
            next_key: NextKey::new(schema.columns.len()),
            extra_index: schema.extra_index(),
            seen: vec![false; schema.columns.len()],
            builders: schema.columns.iter().map(|c| ColumnBuilder::new(c, spec.batch_rows)).collect(),
            slots: Vec::with_capacity(schema.columns.len()),
            tape: Tape::new(),
            row: RowState::default(),
            drift: Drift::default(),
            spec,
        }
    }

    /// Lands one element as a row, or says why it cannot land (nothing appended then).
    fn land(&mut self, element: &[u8], line: u64) -> Result<(), Misfit> {
        let whole = |reason: String| Misfit { path: String::new(), reason, required: false };
        if let Err(e) = std::str::from_utf8(element) {
            return Err(whole(format!("not valid UTF-8 at byte {} of the record", e.valid_up_to())));
        }
        if let Err(e) = self.tape.parse(element) {
            let lines = element[..e.offset.min(element.len())].iter().filter(|&&b| b == b'\n').count();
            return Err(whole(format!("not valid JSON at line {}: {}", line + lines as u64, e.message)));
        }
        let root = *self.tape.node(0);
        if root.kind != Kind::Object {
            return Err(whole(format!("expected a JSON object, found {}", kind_name(root.kind))));
        }
        self.row.clear();
        self.slots.clear();
        self.slots.resize(self.spec.schema.columns.len(), (NONE, NONE));
        let mut children = self.tape.children(0);
        let mut previous = NextKey::START;
        while let (Some(key), Some(value)) = (children.next(), children.next()) {
            let key_node = *self.tape.node(key);
            let raw = json_tape::raw_string_body(element, &key_node);
            let column = match self.next_key.predicted(previous, raw) {
                Some(column) => column,
                None => {
                    let column = match json_tape::string_text(element, &key_node) {
                        Some(name) => column_of(&self.spec, &mut self.renamed, &name),
                        None => None,
                    };
                    self.next_key.remember(previous, raw, column);
                    column
                }
            };
            previous = self.next_key.state_after(column);
            match column {
                // A key given twice: the last one wins, as in any JSON parser's map.
                Some(index) => self.slots[index] = (key as u32, value as u32),
                None => {
                    let node = self.tape.node(value);
                    self.row.extra.push((node.start, raw.to_string(), node.start, node.end));
                    self.row.undeclared.push((Path::Field(raw).generic(), raw.to_string()));
                }
            }
        }
        let tape = &self.tape;
        let columns = &self.spec.schema.columns;
        let strict = self.spec.policy != TypeMismatchPolicy::Extra;
        let key_of = |slot: (u32, u32)| json_tape::raw_string_body(element, tape.node(slot.0 as usize));
        for &index in self.spec.required.iter() {
            let column = &columns[index];
            let slot = self.slots[index];
            if slot.1 == NONE || tape.node(slot.1 as usize).kind == Kind::Null {
                return Err(Path::Field(&column.name).missing("missing or null"));
            }
            fits(column, tape, element, slot.1 as usize, &Path::Field(key_of(slot)), strict)?;
        }
        if strict {
            for (index, column) in columns.iter().enumerate() {
                let slot = self.slots[index];
                if slot.1 != NONE && column.nullable && tape.node(slot.1 as usize).kind != Kind::Null {
                    fits(column, tape, element, slot.1 as usize, &Path::Field(key_of(slot)), true)?;
                }
            }
        }
        // The row lands: from here on every column gets exactly one value.
        for (index, column) in columns.iter().enumerate() {
            let slot = self.slots[index];
            let builder = &mut self.builders[index];
            if Some(index) == self.extra_index {
                continue;
            }
            if slot.1 != NONE {
                self.seen[index] = true;
                let path = Path::Field(key_of(slot));
                append(column, builder, tape, element, slot.1 as usize, &path, &mut self.row);
            } else if let (Some(fill), Some(value)) = (column.fill, self.spec.fills[index]) {
                builder.append_fill(fill, value);
            } else {
                builder.append_null();
            }
        }
        if let Some(index) = self.extra_index {
            let ColumnBuilder::Utf8(builder) = &mut self.builders[index] else {
                unreachable!("_extra is Utf8")
            };
            if self.row.extra.is_empty() {
                builder.append_null();
            } else {
                let text = extra_text(&mut self.row, element);
                builder.append_value(text);
            }
        }
        for (generic, example) in self.row.undeclared.drain(..) {
            self.drift.undeclared(&generic, || example, true);
        }
        for (generic, example) in self.row.kept.drain(..) {
            self.drift.kept(&generic, || example);
        }
        for (generic, kind) in self.row.coerced.drain(..) {
            self.drift.coerced(&generic, kind);
        }
        Ok(())
    }
}

/// The key expected after each key of a record: one entry for the record's start, one after each
/// column, one after any undeclared key. Bounded by the schema, whatever the input holds.
struct NextKey {
    /// The key as sent (escapes included) and the column it names, by [`NextKey::state_after`].
    expected: Vec<Option<(String, Option<usize>)>>,
}

impl NextKey {
    const START: usize = 0;

    fn new(columns: usize) -> NextKey {
        NextKey { expected: vec![None; columns + 2] }
    }

    /// The column of `raw` if it is the key that followed the key of `state` last time. The same
    /// key as sent names the same column.
    fn predicted(&self, state: usize, raw: &str) -> Option<Option<usize>> {
        match &self.expected[state] {
            Some((known, column)) if known == raw => Some(*column),
            _ => None,
        }
    }

    fn remember(&mut self, state: usize, raw: &str, column: Option<usize>) {
        match &mut self.expected[state] {
            Some((known, known_column)) => {
                known.clear();
                known.push_str(raw);
                *known_column = column;
            }
            slot => *slot = Some((raw.to_string(), column)),
        }
    }

    /// The state after a key that landed in `column` (`None`: undeclared).
    fn state_after(&self, column: Option<usize>) -> usize {
        match column {
            Some(index) => index + 1,
            None => self.expected.len() - 1,
        }
    }
}

/// The column a field lands in: its exact (or `source_name`) name, else the snake_case rule.
fn column_of(spec: &LandingSpec, renamed: &mut HashMap<String, Option<usize>>, name: &str) -> Option<usize> {
    let by_name = &spec.columns_by_name;
    if let Ok(found) = by_name.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        return Some(by_name[found].1);
    }
    if let Some(found) = renamed.get(name) {
        return *found;
    }
    let found = spec.schema.column_for_field(name);
    // Bounded: a file with endless distinct keys costs a lookup each, not memory.
    if renamed.len() < 10_000 {
        renamed.insert(name.to_string(), found);
    }
    found
}

impl ChunkDecoder for Lander {
    type Chunk = Elements;

    fn decode(&mut self, chunk: &Elements) -> Result<ChunkOutcome, DecodeError> {
        let mut stats = DecodeStats::default();
        let mut rejects = Vec::new();
        for &(start, end, line) in &chunk.spans {
            let element = &chunk.bytes[start..end];
            stats.rows_read += 1;
            match self.land(element, line) {
                Ok(()) => stats.rows_written += 1,
                Err(misfit) => {
                    if self.spec.policy == TypeMismatchPolicy::Fail
                        && !misfit.path.is_empty()
                        && !misfit.required
                    {
                        return Err(DecodeError::TypeMismatch {
                            file: self.spec.file.clone(),
                            line,
                            path: misfit.path,
                            reason: misfit.reason,
                        });
                    }
                    stats.rows_rejected += 1;
                    rejects.push(RejectedRow {
                        file: self.spec.file.clone(),
                        line,
                        column: (!misfit.path.is_empty()).then_some(misfit.path),
                        reason: misfit.reason,
                        raw: element.to_vec(),
                    });
                }
            }
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        let batch = RecordBatch::try_new(self.spec.schema.arrow_schema(), columns)?;
        Ok(ChunkOutcome {
            decoded: vec![DecodedBatch { batch, rejects }],
            stats,
            drift: std::mem::take(&mut self.drift),
        })
    }
}

/// `_extra`'s JSON object for the row: entries in the order their values appear in the record.
fn extra_text<'a>(row: &'a mut RowState, element: &[u8]) -> &'a str {
    row.extra.sort_by_key(|entry| entry.0);
    row.text.clear();
    row.text.push('{');
    for (i, (_, path, start, end)) in row.extra.iter().enumerate() {
        if i > 0 {
            row.text.push(',');
        }
        row.text.push('"');
        row.text.push_str(path);
        row.text.push_str("\":");
        // SAFETY: a value's bytes in a UTF-8-checked element, between ASCII structural bytes.
        row.text.push_str(unsafe { std::str::from_utf8_unchecked(&element[*start as usize..*end as usize]) });
    }
    row.text.push('}');
    &row.text
}

impl<R: Read> BatchDecoder for JsonDecoder<R> {
    fn next_batch(&mut self) -> Result<Option<DecodedBatch>, DecodeError> {
        if self.done {
            return Ok(None);
        }
        if let Some(reader) = self.reader.take() {
            let spec = self.spec.clone();
            let memory = self.spec.memory;
            // A chunk's bytes, and its batches at about as much again as Arrow arrays.
            let make = move || Lander::new(spec.clone());
            self.running = Some(ParallelDecoder::new(reader, make, memory, 2 * MAX_BATCH_BYTES));
        }
        let running = self.running.as_mut().expect("started above");
        let batch = running.next_batch(&mut self.stats, &mut self.drift)?;
        if batch.is_none() {
            self.done = true;
            self.finish_drift();
        }
        Ok(batch)
    }

    fn stats(&self) -> DecodeStats {
        self.stats
    }

    fn drift(&self) -> &Drift {
        &self.drift
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Null => "null",
        Kind::True | Kind::False => "a boolean",
        Kind::Number { .. } => "a number",
        Kind::String { .. } => "a string",
        Kind::Array => "an array",
        Kind::Object => "an object",
    }
}

/// A value for a message: short, never more than 60 characters of it.
fn quote(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Where a value is in its record, names as sent: `ratings[2].rating_score`. Rendered only when
/// a message, an `_extra` key or a drift count needs it.
enum Path<'a> {
    Field(&'a str),
    Index(&'a Path<'a>, usize),
    Member(&'a Path<'a>, &'a str),
}

impl Path<'_> {
    fn misfit(&self, reason: String) -> Misfit {
        Misfit { path: self.to_string(), reason, required: false }
    }

    fn missing(&self, what: &str) -> Misfit {
        Misfit {
            path: self.to_string(),
            reason: format!("required field `{self}` is {what}"),
            required: true,
        }
    }

    fn render(&self, out: &mut String, generic: bool) {
        match self {
            Path::Field(name) => out.push_str(name),
            Path::Index(parent, i) => {
                parent.render(out, generic);
                if generic {
                    out.push_str("[]");
                } else {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
            Path::Member(parent, name) => {
                parent.render(out, generic);
                out.push('.');
                out.push_str(name);
            }
        }
    }

    /// `ratings[].comment`: one drift entry per field, not per index.
    fn generic(&self) -> String {
        let mut out = String::new();
        self.render(&mut out, true);
        out
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        self.render(&mut out, false);
        f.write_str(&out)
    }
}

/// A scalar converted for its column, and the lossless coercion it took, if any.
enum Scalar<'e> {
    Null,
    Text(Cow<'e, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Converts a scalar node for `column`; `Err` says why it does not fit.
fn scalar<'e>(
    column: &Column,
    element: &'e [u8],
    node: &Node,
) -> Result<(Scalar<'e>, Option<Coercion>), String> {
    let found = || format!("found {} {}", kind_name(node.kind), quote(json_tape::raw_text(element, node)));
    let expected = |what: &str| format!("expected {what}, {}", found());
    let invalid = |InvalidValue(reason): InvalidValue| format!("{reason}, {}", found());
    if node.kind == Kind::Null {
        return Ok((Scalar::Null, None));
    }
    // Platforms that send every value as a string (Khoros) spell numbers, flags and times as
    // text: parsed by the column's declared type, an empty string being no value.
    let text = match node.kind {
        Kind::String { .. } => match json_tape::string_text(element, node) {
            Some(text) => Some(text),
            None => return Err(format!("a string with a lone UTF-16 surrogate escape, {}", found())),
        },
        _ => None,
    };
    if column.column_type != ColumnType::Utf8 && text.as_ref().is_some_and(|t| t.trim().is_empty()) {
        return Ok((Scalar::Null, None));
    }
    let literal = json_tape::raw_text(element, node);
    let whole = |text: &str| {
        value::parse_whole(text).map(|(v, coerced)| (v, coerced.then_some(Coercion::WholeNumber)))
    };
    Ok(match (&column.column_type, column.encoding) {
        (ColumnType::Utf8, Encoding::JsonText) => (Scalar::Text(Cow::Borrowed(literal)), None),
        (ColumnType::Utf8, _) => match text {
            Some(text) => (Scalar::Text(text), None),
            None => (Scalar::Text(Cow::Borrowed(literal)), Some(Coercion::JsonAsText)),
        },
        (ColumnType::Int64, encoding) => {
            let parsed = match (&text, node.kind, encoding) {
                (Some(t), _, Encoding::DurationHms) => {
                    value::parse_duration_hms_ms(t).map(|v| (v, None)).map_err(invalid)?
                }
                (Some(t), _, _) => whole(t).map_err(invalid)?,
                (None, Kind::Number { .. }, _) => whole(literal).map_err(invalid)?,
                _ => return Err(expected("a whole number (Int64)")),
            };
            (Scalar::Int(parsed.0), parsed.1)
        }
        (ColumnType::Float64, _) => {
            let parsed = match (&text, node.kind) {
                (Some(t), _) => value::parse_f64(t).map_err(invalid)?,
                (None, Kind::Number { .. }) => literal.parse::<f64>().map_err(|_| expected("a number"))?,
                _ => return Err(expected("a number")),
            };
            if text.is_none() && !parsed.is_finite() {
                return Err(format!("out of range for Float64, {}", found()));
            }
            (Scalar::Float(parsed), None)
        }
        (ColumnType::Boolean, _) => match (&text, node.kind) {
            (Some(t), _) => (Scalar::Bool(value::parse_bool(t).map_err(invalid)?), None),
            (None, Kind::True) => (Scalar::Bool(true), None),
            (None, Kind::False) => (Scalar::Bool(false), None),
            _ => return Err(expected("true or false")),
        },
        (ColumnType::Date32, _) => match &text {
            Some(t) => (Scalar::Int(value::parse_date(t).map_err(invalid)? as i64), None),
            None => return Err(expected("a date as \"YYYY-MM-DD\"")),
        },
        (ColumnType::TimestampUtc, Encoding::EpochMs) => {
            let (millis, coerced) = match (&text, node.kind) {
                (Some(t), _) => whole(t),
                (None, Kind::Number { .. }) => whole(literal),
                _ => return Err(expected("milliseconds since the epoch (a whole number)")),
            }
            .map_err(|_| expected("milliseconds since the epoch (a whole number)"))?;
            (Scalar::Int(value::epoch_ms_to_micros(millis).map_err(invalid)?), coerced)
        }
        (ColumnType::TimestampUtc, _) => match &text {
            Some(t) => (Scalar::Int(value::parse_timestamp_micros(t).map_err(invalid)?), None),
            None => return Err(expected("an RFC 3339 timestamp")),
        },
        (ColumnType::List(_) | ColumnType::Struct(_), _) => unreachable!("scalar columns only"),
    })
}

/// Whether the value at `node` lands non-null in `column`: with `strict`, every nested value
/// must fit too; otherwise only the ones that cannot be null (a misfit elsewhere becomes a null
/// kept in `_extra`). Touches no builder.
fn fits(
    column: &Column,
    tape: &Tape,
    element: &[u8],
    index: usize,
    path: &Path,
    strict: bool,
) -> Result<(), Misfit> {
    let node = tape.node(index);
    if node.kind == Kind::Null {
        return Err(path.missing("missing or null"));
    }
    match &column.column_type {
        ColumnType::List(item) => {
            if node.kind == Kind::Array {
                for (i, child) in tape.children(index).enumerate() {
                    let nullable = tape.node(child).kind == Kind::Null && item.nullable;
                    if strict && !nullable {
                        fits(item, tape, element, child, &Path::Index(path, i), true)?;
                    }
                }
                Ok(())
            } else if strict || !item.nullable {
                fits(item, tape, element, index, &Path::Index(path, 0), strict)
            } else {
                Ok(())
            }
        }
        ColumnType::Struct(members) => {
            if node.kind != Kind::Object {
                return Err(path.misfit(format!(
                    "expected an object, found {} {}",
                    kind_name(node.kind),
                    quote(json_tape::raw_text(element, node))
                )));
            }
            for member in members {
                if !strict && member.nullable {
                    // A nullable member that does not fit is null and kept: nothing to check.
                    continue;
                }
                let found = member_value(tape, element, index, &member.name);
                let member_path = Path::Member(path, &member.name);
                match found {
                    Some(v) if tape.node(v).kind != Kind::Null => {
                        if strict || !member.nullable {
                            fits(member, tape, element, v, &member_path, strict)?;
                        }
                    }
                    _ if member.nullable => {}
                    _ => return Err(member_path.missing("missing or null")),
                }
            }
            Ok(())
        }
        _ => match scalar(column, element, node) {
            Ok((Scalar::Null, _)) => Err(path.missing("empty")),
            Ok(_) => Ok(()),
            Err(reason) => Err(path.misfit(reason)),
        },
    }
}

/// The value of an object's member `name` (the last one if given twice).
fn member_value(tape: &Tape, element: &[u8], object: usize, name: &str) -> Option<usize> {
    let mut found = None;
    let mut children = tape.children(object);
    while let (Some(key), Some(value)) = (children.next(), children.next()) {
        if json_tape::string_text(element, tape.node(key)).is_some_and(|k| k == name) {
            found = Some(value);
        }
    }
    found
}

/// Keeps the value at `node` in `_extra` under `path`, counting it as a misfit of `path`.
fn keep(row: &mut RowState, path: &Path, node: &Node, reason: &str) {
    let concrete = path.to_string();
    let mut key = String::new();
    // The path's names are JSON string bodies as sent; the rest (`[3]`, `.`) needs no escaping.
    key.push_str(&concrete);
    row.extra.push((node.start, key, node.start, node.end));
    row.kept.push((path.generic(), format!("{concrete}: {reason}")));
}

/// Appends the value at `index` to `builder` (one row's worth), converting losslessly where it
/// can and keeping what does not fit in `_extra`. The caller has checked with [`fits`] whatever
/// cannot be null.
fn append(
    column: &Column,
    builder: &mut ColumnBuilder,
    tape: &Tape,
    element: &[u8],
    index: usize,
    path: &Path,
    row: &mut RowState,
) {
    let node = tape.node(index);
    if node.kind == Kind::Null {
        builder.append_null();
        return;
    }
    match (&column.column_type, builder) {
        (ColumnType::List(item), ColumnBuilder::List { offsets, nulls, item: items, .. }) => {
            let mut count = 0;
            if node.kind == Kind::Array {
                for (i, child) in tape.children(index).enumerate() {
                    append(item, items, tape, element, child, &Path::Index(path, i), row);
                    count += 1;
                }
            } else {
                // A single value where a list is declared: a list of one, nothing lost.
                row.coerced.push((path.generic(), Coercion::ListOfOne));
                append(item, items, tape, element, index, &Path::Index(path, 0), row);
                count = 1;
            }
            let last = *offsets.last().expect("offsets start with 0");
            offsets.push(last + count);
            nulls.append_non_null();
        }
        (ColumnType::Struct(members), builder @ ColumnBuilder::Struct { .. }) => {
            if let Err(misfit) = fits(column, tape, element, index, path, false) {
                // Not an object, or a required member unusable: the struct is null, kept whole.
                keep(row, path, node, &misfit.reason);
                builder.append_null();
                return;
            }
            let ColumnBuilder::Struct { nulls, members: children, .. } = builder else { unreachable!() };
            let mut values = vec![NONE; members.len()];
            let mut pairs = tape.children(index);
            while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
                let key_node = tape.node(key);
                let name = json_tape::string_text(element, key_node);
                match name.and_then(|n| members.iter().position(|m| m.name == n)) {
                    Some(m) => values[m] = value as u32,
                    None => {
                        let raw = json_tape::raw_string_body(element, key_node);
                        let member_path = Path::Member(path, raw);
                        let value_node = tape.node(value);
                        row.extra.push((
                            value_node.start,
                            member_path.to_string(),
                            value_node.start,
                            value_node.end,
                        ));
                        row.undeclared.push((member_path.generic(), member_path.to_string()));
                    }
                }
            }
            for ((member, child), value) in members.iter().zip(children.iter_mut()).zip(values) {
                if value == NONE {
                    child.append_null();
                } else {
                    append(
                        member,
                        child,
                        tape,
                        element,
                        value as usize,
                        &Path::Member(path, &member.name),
                        row,
                    );
                }
            }
            nulls.append_non_null();
        }
        (_, builder) => match scalar(column, element, node) {
            Ok((value, coerced)) => {
                if let Some(kind) = coerced {
                    row.coerced.push((path.generic(), kind));
                }
                builder.append_scalar(value);
            }
            Err(reason) => {
                keep(row, path, node, &reason);
                builder.append_null();
            }
        },
    }
}

/// One column's Arrow builder, nested as its type is.
enum ColumnBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    List { field: FieldRef, offsets: Vec<i32>, nulls: NullBufferBuilder, item: Box<ColumnBuilder> },
    Struct { fields: Fields, nulls: NullBufferBuilder, members: Vec<ColumnBuilder> },
}

impl ColumnBuilder {
    fn new(column: &Column, capacity: usize) -> ColumnBuilder {
        match &column.column_type {
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            ColumnType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Date32 => ColumnBuilder::Date32(Date32Builder::with_capacity(capacity)),
            ColumnType::TimestampUtc => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            ColumnType::List(item) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                ColumnBuilder::List {
                    field: Arc::new(item.arrow_field()),
                    offsets,
                    nulls: NullBufferBuilder::new(capacity),
                    item: Box::new(ColumnBuilder::new(item, capacity)),
                }
            }
            ColumnType::Struct(members) => ColumnBuilder::Struct {
                fields: match column.column_type.arrow_type() {
                    DataType::Struct(fields) => fields,
                    _ => unreachable!("a struct's Arrow type is a struct"),
                },
                nulls: NullBufferBuilder::new(capacity),
                members: members.iter().map(|m| ColumnBuilder::new(m, capacity)).collect(),
            },
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Date32(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::List { offsets, nulls, .. } => {
                let last = *offsets.last().expect("offsets start with 0");
                offsets.push(last);
                nulls.append_null();
            }
            ColumnBuilder::Struct { nulls, members, .. } => {
                for member in members {
                    member.append_null();
                }
                nulls.append_null();
            }
        }
    }

    fn append_scalar(&mut self, value: Scalar<'_>) {
        match (self, value) {
            (b, Scalar::Null) => b.append_null(),
            (ColumnBuilder::Utf8(b), Scalar::Text(t)) => b.append_value(t),
            (ColumnBuilder::Int64(b), Scalar::Int(v)) => b.append_value(v),
            (ColumnBuilder::Float64(b), Scalar::Float(v)) => b.append_value(v),
            (ColumnBuilder::Boolean(b), Scalar::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Date32(b), Scalar::Int(v)) => b.append_value(v as i32),
            (ColumnBuilder::Timestamp(b), Scalar::Int(v)) => b.append_value(v),
            (b, _) => b.append_null(),
        }
    }

    /// A column filled from the window: days for a date, microseconds for a timestamp.
    fn append_fill(&mut self, _fill: Fill, value: i64) {
        match self {
            ColumnBuilder::Date32(b) => b.append_value(value as i32),
            ColumnBuilder::Timestamp(b) => b.append_value(value),
            other => other.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Date32(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::List { field, offsets, nulls, item } => {
                let values = item.finish();
                let finished = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::new(
                    field.clone(),
                    OffsetBuffer::new(finished.into()),
                    values,
                    nulls.finish(),
                ))
            }
            ColumnBuilder::Struct { fields, nulls, members } => {
                let arrays: Vec<ArrayRef> = members.iter_mut().map(ColumnBuilder::finish).collect();
                let nulls = nulls.finish();
                if arrays.is_empty() {
                    Arc::new(StructArray::new_empty_fields(nulls.as_ref().map_or(0, |n| n.len()), nulls))
                } else {
                    Arc::new(StructArray::new(fields.clone(), arrays, nulls))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::drift::Coercions;
    use crate::decode::FileContext;
    use crate::schema::SchemaRegistry;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

    const SCHEMA: &str = r#"
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
[[columns]]
name = "note"
type = "Utf8"
nullable = true
description = ""
[[columns]]
name = "amount"
type = "Float64"
nullable = true
description = ""
"#;

    fn schema() -> Arc<DatasetSchema> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/thing.toml"), SCHEMA).unwrap();
        SchemaRegistry::with_overrides(dir.path()).unwrap().get("t.thing").unwrap()
    }

    #[derive(Debug)]
    struct Decoded {
        batches: Vec<DecodedBatch>,
        stats: DecodeStats,
        drift: Drift,
    }

    impl Decoded {
        fn column(&self, name: &str) -> Vec<ArrayRef> {
            let index = schema().column_index(name).unwrap();
            self.batches.iter().map(|b| b.batch.column(index).clone()).collect()
        }

        fn texts(&self, name: &str) -> Vec<Option<String>> {
            self.column(name)
                .iter()
                .flat_map(|a| a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>())
                .collect()
        }

        fn rejects(&self) -> Vec<&RejectedRow> {
            self.batches.iter().flat_map(|b| &b.rejects).collect()
        }
    }

    fn decode_with(input: &str, policy: TypeMismatchPolicy) -> Result<Decoded, DecodeError> {
        let context = FileContext { on_type_mismatch: policy, ..FileContext::default() };
        let mut decoder = JsonDecoder::with_batch_rows(schema(), "things.json", input.as_bytes(), 2)
            .unwrap()
            .with_context(context);
        let mut batches = Vec::new();
        while let Some(batch) = decoder.next_batch()? {
            batches.push(batch);
        }
        Ok(Decoded { batches, stats: decoder.stats(), drift: decoder.drift().clone() })
    }

    fn decode(input: &str) -> Decoded {
        decode_with(input, TypeMismatchPolicy::Extra).unwrap()
    }

    #[test]
    fn nested_values_epoch_ms_and_json_text_land_typed() {
        let decoded = decode(
            r#"[{"id": 1, "updated_at": 1704067200123, "tags": ["a", "b,c"], "form": {"name": "Jo"},
                 "ratings": [{"score": 5, "values": "one"}, {"score": null, "values": ["x", "y"]}]},
                {"id": 2}]"#,
        );
        assert_eq!(decoded.stats, DecodeStats { rows_read: 2, rows_written: 2, rows_rejected: 0 });
        let batch = &decoded.batches[0].batch;
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_704_067_200_123_000);
        assert!(ts.is_null(1));
        let tags = batch.column(2).as_list::<i32>();
        assert_eq!(tags.value(0).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["a", "b,c"]);
        assert!(tags.is_null(1));
        assert_eq!(batch.column(3).as_string::<i32>().value(0), r#"{"name": "Jo"}"#, "as sent, spaces too");
        let ratings = batch.column(4).as_list::<i32>().value(0);
        let ratings = ratings.as_struct();
        assert_eq!(ratings.column(0).as_primitive::<Int64Type>().value(0), 5);
        assert!(ratings.column(0).is_null(1));
        let values = ratings.column(1).as_list::<i32>();
        assert_eq!(values.value(0).as_string::<i32>().value(0), "one", "a scalar becomes a list of one");
        assert_eq!(values.value(1).as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["x", "y"]);
        assert!(batch.column(7).is_null(0), "no undeclared fields, no _extra");
        assert_eq!(
            decoded.drift.coerced["ratings[].values"],
            Coercions { list_of_one: 1, ..Coercions::default() }
        );
        assert_eq!(decoded.drift.absent.iter().collect::<Vec<_>>(), ["amount", "note"]);
    }

    #[test]
    fn undeclared_fields_at_any_depth_are_kept_in_extra_in_record_order() {
        let decoded = decode(
            r#"[{"zeta": {"b": 1, "a": [2]}, "id": 1, "channel": "email", "ratings": [{"score": 1}, {"comment": "ok", "score": 2}]},
                {"id": 2, "channel": "chat"}]"#,
        );
        assert_eq!(
            decoded.texts("_extra"),
            [
                Some(
                    r#"{"zeta":{"b": 1, "a": [2]},"channel":"email","ratings[1].comment":"ok"}"#.to_string()
                ),
                Some(r#"{"channel":"chat"}"#.to_string())
            ]
        );
        let undeclared: Vec<(&str, u64, &str)> = decoded
            .drift
            .undeclared
            .iter()
            .map(|(p, c)| (p.as_str(), c.values, c.example.as_str()))
            .collect();
        assert_eq!(
            undeclared,
            [("channel", 2, "channel"), ("ratings[].comment", 1, "ratings[1].comment"), ("zeta", 1, "zeta")]
        );
    }

    /// Issue 21: a value of another shape never fails a row that can land; it is converted
    /// losslessly (counted) or kept exactly in `_extra` (counted), the column null.
    #[test]
    fn values_of_another_shape_are_coerced_or_kept_exactly() {
        let decoded = decode(
            r#"[{"id": 5400.0, "note": ["a", {"k": 1}], "amount": 1E400, "tags": "solo",
                 "ratings": [{"score": 1.5}, {"score": "2"}, "nope"], "updated_at": "soon"},
                {"id": 1e3, "note": -123123123123123123123123123123, "amount": 12}]"#,
        );
        assert_eq!(decoded.stats, DecodeStats { rows_read: 2, rows_written: 2, rows_rejected: 0 });
        let ids: Vec<i64> = decoded
            .column("id")
            .iter()
            .flat_map(|a| a.as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, [5400, 1000]);
        assert_eq!(
            decoded.texts("note"),
            [Some(r#"["a", {"k": 1}]"#.to_string()), Some("-123123123123123123123123123123".to_string())]
        );
        let amount = &decoded.column("amount")[0];
        let amount = amount.as_primitive::<Float64Type>();
        assert!(amount.is_null(0));
        assert_eq!(amount.value(1), 12.0);
        assert_eq!(
            decoded.texts("_extra")[0].as_deref(),
            Some(r#"{"amount":1E400,"ratings[0].score":1.5,"ratings[2]":"nope","updated_at":"soon"}"#)
        );
        let ratings = &decoded.column("ratings")[0];
        let first = ratings.as_list::<i32>().value(0);
        let scores = first.as_struct().column(0).as_primitive::<Int64Type>().clone();
        assert!(scores.is_null(0));
        assert_eq!(scores.value(1), 2);
        assert!(first.is_null(2), "a struct that is not an object is null, kept whole");
        let kept: Vec<(&str, u64)> =
            decoded.drift.kept_in_extra.iter().map(|(p, c)| (p.as_str(), c.values)).collect();
        assert_eq!(kept, [("amount", 1), ("ratings[]", 1), ("ratings[].score", 1), ("updated_at", 1)]);
        assert!(decoded.drift.kept_in_extra["amount"].example.contains("out of range for Float64"));
        assert_eq!(decoded.drift.coerced["id"].whole_number, 2);
        assert_eq!(decoded.drift.coerced["note"].json_as_text, 2);
        assert_eq!(decoded.drift.coerced["tags"].list_of_one, 1);
    }

    #[test]
    fn quarantine_and_fail_policies_are_strict() {
        let input = r#"[{"id": 1, "amount": "x"}, {"id": 2}]"#;
        let decoded = decode_with(input, TypeMismatchPolicy::Quarantine).unwrap();
        assert_eq!(decoded.stats, DecodeStats { rows_read: 2, rows_written: 1, rows_rejected: 1 });
        assert_eq!(decoded.rejects()[0].column.as_deref(), Some("amount"));
        let err = decode_with(input, TypeMismatchPolicy::Fail).unwrap_err().to_string();
        assert!(err.contains("things.json line 1: `amount`") && err.contains("on-type-mismatch"), "{err}");
        // Lossless coercions are not misfits under any policy.
        let strict = decode_with(r#"[{"id": 1.0, "note": [1]}]"#, TypeMismatchPolicy::Fail).unwrap();
        assert_eq!(strict.stats.rows_written, 1);
    }

    #[test]
    fn rows_that_cannot_land_are_rejected_with_line_path_and_bytes() {
        let input = "[{\"id\": 1},\n{\"id\": \"two\"},\n{\"id\": 3, \"ratings\": [{\"score\": 1.5}]},\n{\"tags\": []},\n[1],\n{\"id\": 6, \"x\":\u{c}1},\n{\"id\": 7}]";
        let decoded = decode(input);
        assert_eq!(decoded.stats, DecodeStats { rows_read: 7, rows_written: 3, rows_rejected: 4 });
        let rejects = decoded.rejects();
        let described: Vec<(u64, Option<&str>)> =
            rejects.iter().map(|r| (r.line, r.column.as_deref())).collect();
        assert_eq!(described, [(2, Some("id")), (4, Some("id")), (5, None), (6, None)]);
        assert_eq!(rejects[0].raw, br#"{"id": "two"}"#);
        assert!(rejects[0].reason.contains("expected a whole number"), "{}", rejects[0].reason);
        assert!(rejects[1].reason.contains("required field `id`"), "{}", rejects[1].reason);
        assert!(rejects[3].reason.contains("form feed"), "{}", rejects[3].reason);
        let ids: Vec<i64> = decoded
            .column("id")
            .iter()
            .flat_map(|a| a.as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, [1, 3, 7]);
    }

    #[test]
    fn json_text_and_extra_are_byte_equal_to_the_input() {
        let form = r#"{"name": "Jo", "email": "jo@example.com", "n": -123123123123123123123123123123, "big": 1E400, "esc": "\u00e9\n\"", "raw": "é😀"}"#;
        let input = format!(r#"[{{"id": 1, "form": {form}, "later": {form}}}]"#);
        let decoded = decode(&input);
        assert_eq!(decoded.texts("form"), [Some(form.to_string())]);
        assert_eq!(decoded.texts("_extra"), [Some(format!(r#"{{"later":{form}}}"#))]);
    }

    #[test]
    fn a_cut_array_is_truncated_and_a_form_feed_outside_elements_is_refused() {
        let mut decoder =
            JsonDecoder::with_batch_rows(schema(), "things.json", &b"[{\"id\": 1}, {\"id\": 2"[..], 8)
                .unwrap();
        let err = decoder.next_batch().unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
        let err = decode_with("[\u{c}]", TypeMismatchPolicy::Extra).unwrap_err().to_string();
        assert!(err.contains("form feed"), "{err}");
    }

    #[test]
    fn an_empty_array_is_an_empty_file() {
        let decoded = decode(" [ ] ");
        assert!(decoded.batches.is_empty());
        assert_eq!(decoded.stats, DecodeStats::default());
        assert!(decoded.drift.is_empty(), "an empty file says nothing about its columns");
    }

    #[test]
    fn a_field_given_twice_keeps_its_last_value_and_escaped_names_still_match() {
        let decoded = decode(r#"[{"id": 1, "tags": ["a"], "id": 2, "t\u0061gs": ["b"]}, {"\u0069d": 3}]"#);
        assert_eq!(decoded.stats.rows_written, 2);
        let batch = &decoded.batches[0].batch;
        let ids = batch.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        assert_eq!((ids.value(0), ids.value(1)), (2, 3));
        let tags = batch.column_by_name("tags").unwrap().as_list::<i32>();
        assert_eq!(tags.value(0).as_string::<i32>().value(0), "b");
    }

    #[test]
    fn keys_land_in_their_columns_whatever_order_each_record_gives_them() {
        // The first record teaches the key order; the others move, drop, escape and add keys.
        let decoded = decode(
            r#"[{"id": 1, "note": "a", "amount": 1.5, "form": "x"},
                {"id": 2, "note": "b", "amount": 2.5, "form": "y"},
                {"note": "c", "id": 3, "form": "z", "amount": 3.5},
                {"id": 4, "colour": "red", "note": "d", "amount": 4.5},
                {"\u0069d": 5, "note": "e", "amount": 5.5, "form": "w"},
                {"id": 6, "note": "f", "amount": 6.5, "form": "v"}]"#,
        );
        assert_eq!(decoded.stats.rows_written, 6);
        let ids: Vec<i64> = decoded
            .column("id")
            .iter()
            .flat_map(|a| a.as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        let notes: Vec<_> = decoded.texts("note").into_iter().map(Option::unwrap).collect();
        assert_eq!(notes, ["a", "b", "c", "d", "e", "f"]);
        // `form` is a JSON-text column: its values keep their quotes.
        let forms = decoded.texts("form");
        let expected = [Some("x"), Some("y"), Some("z"), None, Some("w"), Some("v")];
        assert_eq!(forms, expected.map(|f| f.map(|f| format!("\"{f}\""))));
        let amounts: Vec<f64> = decoded
            .column("amount")
            .iter()
            .flat_map(|a| a.as_primitive::<arrow::datatypes::Float64Type>().values().to_vec())
            .collect();
        assert_eq!(amounts, [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]);
        let extra = decoded.texts("_extra");
        assert_eq!(extra[3].as_deref(), Some(r#"{"colour":"red"}"#));
        assert!(extra.iter().enumerate().all(|(i, e)| (i == 3) == e.is_some()), "{extra:?}");
    }

    /// Random records against Dixa's nested declaration, under every policy: no panic, every
    /// record read is landed or rejected, and every batch is valid Arrow (the builders agree).
    #[test]
    fn random_records_never_panic_and_are_all_accounted_for() {
        let registry = SchemaRegistry::embedded().unwrap();
        let schema = registry.dataset("dixa", "conversation").unwrap();
        const VALUES: &[&str] = &[
            "1",
            "5400.0",
            "1E400",
            "-0.0",
            "\"x\"",
            "\"\"",
            "\"2024-03-01T10:00:00Z\"",
            "true",
            "null",
            "[]",
            "{}",
            "[1, \"a\", null]",
            "{\"id\": \"r\", \"rating_score\": 2.5}",
            "[{\"id\": 1}, \"s\", []]",
            "\"\\ud800\"",
            "{\"value\": [\"a\"]}",
        ];
        const KEYS: &[&str] = &[
            "id",
            "created_at",
            "tags",
            "tags_info",
            "ratings",
            "custom_fields",
            "requester_email",
            "unknown",
            "exports_handling_duration",
            "status",
            "updated_at",
            "sla_policy",
        ];
        let mut rng = crate::test_rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move |n: usize| rng.below(n);
        let mut text = String::from("[");
        for row in 0..3000 {
            if row > 0 {
                text.push(',');
            }
            // Two rows in three carry the required fields first (a random field may spoil them).
            text.push('{');
            if next(3) > 0 {
                text.push_str(r#""id": 1, "created_at": 1709251200000, "initial_channel": "email", "requester_id": "r","#);
            }
            let fields = next(6);
            for field in 0..fields {
                if field > 0 {
                    text.push(',');
                }
                text.push_str(&format!("\"{}\": {}", KEYS[next(KEYS.len())], VALUES[next(VALUES.len())]));
            }
            if fields == 0 && text.ends_with(',') {
                text.pop();
            }
            text.push('}');
        }
        text.push(']');
        for policy in [TypeMismatchPolicy::Extra, TypeMismatchPolicy::Quarantine, TypeMismatchPolicy::Fail] {
            let context = FileContext { on_type_mismatch: policy, ..FileContext::default() };
            let mut decoder =
                JsonDecoder::with_batch_rows(schema.clone(), "random.json", text.as_bytes(), 97)
                    .unwrap()
                    .with_context(context);
            let mut landed = 0;
            loop {
                match decoder.next_batch() {
                    Ok(Some(batch)) => landed += batch.batch.num_rows() as u64,
                    Ok(None) => break,
                    Err(DecodeError::TypeMismatch { .. }) if policy == TypeMismatchPolicy::Fail => break,
                    Err(e) => panic!("{policy:?}: {e}"),
                }
            }
            let stats = decoder.stats();
            assert_eq!(stats.rows_written, landed, "{policy:?}");
            if policy != TypeMismatchPolicy::Fail {
                assert!(stats.rows_written > 100 && stats.rows_rejected > 100, "{policy:?}: {stats:?}");
                assert_eq!(stats.rows_read, 3000, "{policy:?}");
                assert_eq!(stats.rows_read, stats.rows_written + stats.rows_rejected, "{policy:?}");
            }
        }
    }

    #[test]
    fn drift_paths_are_generic() {
        let (a, b) = (Path::Field("ratings"), Path::Field("a"));
        let item = Path::Index(&a, 12);
        assert_eq!(Path::Member(&item, "comment").generic(), "ratings[].comment");
        assert_eq!(Path::Member(&item, "comment").to_string(), "ratings[12].comment");
        assert_eq!(b.generic(), "a");
    }
}
