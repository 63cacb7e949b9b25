//! Streaming CSV → Arrow decoding with columns matched by header name.
//!
//! Records are tokenised by [`super::csv_fields`] with the `csv` crate's RFC 4180 rules (quotes,
//! doubled quotes, CR/LF inside fields; the header is read by the crate itself); this module
//! maps header names to declared columns, parses each field with [`crate::schema::value`], and
//! appends whole rows to Arrow builders. A row is validated completely before any builder is
//! touched, so a reject never leaves a half-appended row. Text is kept byte-exact: no trimming,
//! no normalisation, only UTF-8 validation.
//!
//! In a dataset that keeps `_extra` (Khoros' CSV format), nothing is lost either way: columns the
//! schema does not declare and values that do not parse as their column's type (the column then
//! null) go into `_extra` as `{"HEADER": "text"}`, in header order, and are counted in the file's
//! [`Drift`]. Elsewhere a value that does not parse quarantines its row, as the policy says.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;

use super::csv_fields::{Record, Tokenizer};
use super::drift::{push_json_string, Coercion};
use super::parallel::{ChunkDecoder, ChunkOutcome, ChunkReader, ParallelDecoder};
use super::{DecodeError, DecodeStats, Drift, RejectedRow, TypeMismatchPolicy};
use crate::schema::local_time;
use crate::schema::value::{self, InvalidValue};
use crate::schema::{Column, ColumnType, DatasetSchema, Encoding, EXTRA_COLUMN};

/// Rows per batch at most (a chunk of [`CHUNK_BYTES`] may give several batches).
pub const DEFAULT_BATCH_ROWS: usize = 8192;

enum Builder {
    Utf8(StringBuilder),
    /// A list of text items in one cell, split at `separator`.
    Utf8List(ListBuilder<StringBuilder>, String),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(column: &Column, capacity: usize) -> Builder {
        match &column.column_type {
            ColumnType::List(item) if column.fits_csv() => Builder::Utf8List(
                ListBuilder::with_capacity(StringBuilder::with_capacity(capacity, capacity * 8), capacity)
                    .with_field(Arc::new(item.arrow_field())),
                column.separator.clone().unwrap_or_default(),
            ),
            ColumnType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            ColumnType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            ColumnType::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Date32 => Builder::Date32(Date32Builder::with_capacity(capacity)),
            ColumnType::TimestampUtc => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"))
            }
            ColumnType::List(_) | ColumnType::Struct(_) => {
                unreachable!("CSV schemas hold scalar columns only (checked when the schema loads)")
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Utf8List(b, _) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Date32(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// A field value parsed and checked, waiting for the rest of its row to be valid too.
#[derive(Clone, Copy)]
enum Parsed<'a> {
    Null,
    Text(&'a str),
    /// A cell of list items, split when appended.
    List(&'a str),
    /// A local time of day, placed on its day when its interval is resolved.
    TimeOfDay(chrono::NaiveTime),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// `_extra` of a file whose schema keeps it: its index, and each undeclared column's position
/// and header name. A row's non-empty undeclared values and its values that did not fit their
/// column become one JSON object, in header order.
struct KeptColumns {
    index: usize,
    columns: Vec<(usize, String)>,
    text: String,
    entries: Vec<(usize, usize)>,
}

impl KeptColumns {
    /// Writes the row's kept values into `self.text` as a JSON object (empty when there are none):
    /// undeclared columns, and the record positions in `misfits`. `names` is the header.
    fn collect(
        &mut self,
        record: &Record<'_>,
        misfits: &[usize],
        names: &[String],
    ) -> Result<(), (Option<String>, String)> {
        self.text.clear();
        self.entries.clear();
        self.entries.extend(self.columns.iter().enumerate().map(|(i, (position, _))| (*position, i)));
        self.entries.extend(misfits.iter().map(|p| (*p, usize::MAX)));
        self.entries.sort_unstable();
        for &(position, _) in &self.entries {
            let raw = record.get(position).unwrap_or_default();
            if raw.is_empty() {
                continue;
            }
            let name = &names[position];
            let text = std::str::from_utf8(raw)
                .map_err(|e| (Some(name.clone()), format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
            self.text.push(if self.text.is_empty() { '{' } else { ',' });
            push_json_string(&mut self.text, name);
            self.text.push(':');
            push_json_string(&mut self.text, text);
        }
        if !self.text.is_empty() {
            self.text.push('}');
        }
        Ok(())
    }
}

/// What parsing one row noted besides its values: record positions whose value did not fit its
/// (nullable) column and is kept in `_extra`, and columns whose value was converted losslessly.
#[derive(Default)]
struct RowNotes {
    /// `(column index, record position)`.
    misfits: Vec<(usize, usize)>,
    misfit_reasons: Vec<String>,
    whole_numbers: Vec<usize>,
}

/// Reads a CSV stream batch by batch. Create with [`CsvDecoder::new`], then call
/// [`CsvDecoder::next_batch`] until it returns `None`. The calling thread cuts the file into
/// chunks of whole records ([`RecordEnds`]); the CPU workers tokenise, parse and append them
/// ([`super::parallel`]); batches come back in order.
pub struct CsvDecoder<R: Read> {
    spec: RowSpec,
    reader: Option<RecordReader<R>>,
    running: Option<ParallelDecoder<RecordReader<R>, RowParser>>,
    /// The header's drift (absent columns), then every chunk's.
    drift: Drift,
    stats: DecodeStats,
    done: bool,
}

/// What every worker's [`RowParser`] of one file shares: the header's mapping onto the schema.
#[derive(Clone)]
struct RowSpec {
    schema: Arc<DatasetSchema>,
    file: String,
    /// For each declared column, its position in the CSV record (None: absent, all nulls).
    positions: Arc<Vec<Option<usize>>>,
    /// For each declared column filled from the window, its value (days or microseconds).
    fills: Vec<Option<i64>>,
    /// Header columns the schema does not declare: (record position, name).
    undeclared: Arc<Vec<(usize, String)>>,
    /// `_extra`'s index, when the schema keeps one: undeclared columns and values that do not fit.
    extra_index: Option<usize>,
    /// The header's names, by record position.
    names: Arc<Vec<String>>,
    policy: TypeMismatchPolicy,
    /// Local times: the zone, the fold rule and the file's day.
    zone: Option<chrono_tz::Tz>,
    fold: local_time::Fold,
    day: Option<chrono::NaiveDate>,
    /// `local_time_of_day` intervals: (start column, end column, seconds column).
    intervals: Arc<Vec<(usize, usize, Option<usize>)>>,
    /// Whether any column is a local time of day (placed after the row is parsed).
    times_of_day: bool,
    header_len: usize,
    batch_rows: usize,
    /// The context's memory for chunks in flight.
    memory: Option<usize>,
}

/// Whole records of the file, as bytes: where they start in the file and on which line.
struct RawRecords {
    bytes: Vec<u8>,
    /// Offset of `bytes[0]` in the file.
    offset: u64,
    /// Newlines before `bytes[0]`.
    lines_before: u64,
}

/// Bytes per chunk (whole records; a record longer than this is one chunk of its own).
const CHUNK_BYTES: usize = 4 << 20;
/// Bytes read from the input at a time.
const READ_BYTES: usize = 1 << 20;

/// Cuts the file into [`RawRecords`] at record ends, found by [`RecordEnds`] without tokenising:
/// the workers tokenise their own chunks.
struct RecordReader<R: Read> {
    file: String,
    input: R,
    ends: RecordEnds,
    /// Read bytes not yet handed out, all scanned; `carry[..last_end]` are whole records.
    carry: Vec<u8>,
    last_end: usize,
    offset: u64,
    lines_before: u64,
    eof: bool,
    spare: Vec<Vec<u8>>,
}

impl<R: Read> RecordReader<R> {
    fn new(file: String, input: R) -> RecordReader<R> {
        RecordReader {
            file,
            input,
            ends: RecordEnds::default(),
            // Grown by the reads: a small file never holds a whole chunk's buffer.
            carry: Vec::new(),
            last_end: 0,
            offset: 0,
            lines_before: 0,
            eof: false,
            spare: Vec::new(),
        }
    }

    /// Reads and scans one more block; `false` at the end of the input.
    fn fill(&mut self) -> Result<bool, DecodeError> {
        if self.eof {
            return Ok(false);
        }
        let scanned = self.carry.len();
        // `read_to_end` reads into the spare capacity without zeroing it first.
        let n = match (&mut self.input).take(READ_BYTES as u64).read_to_end(&mut self.carry) {
            Ok(n) => n,
            Err(e) => {
                self.carry.truncate(scanned);
                let line = self.lines_before + memchr::memchr_iter(b'\n', &self.carry).count() as u64 + 1;
                return Err(DecodeError::Read { file: self.file.clone(), line, message: e.to_string() });
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        if let Some(end) = self.ends.scan(&self.carry) {
            self.last_end = end;
        }
        Ok(true)
    }

    /// The next `len` bytes as a chunk of their own.
    fn cut(&mut self, len: usize) -> RawRecords {
        let capacity = self.carry.capacity().min(CHUNK_BYTES + READ_BYTES);
        let mut rest = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(capacity));
        rest.clear();
        rest.extend_from_slice(&self.carry[len..]);
        let mut bytes = std::mem::replace(&mut self.carry, rest);
        bytes.truncate(len);
        let chunk = RawRecords { offset: self.offset, lines_before: self.lines_before, bytes };
        self.offset += len as u64;
        self.lines_before += memchr::memchr_iter(b'\n', &chunk.bytes).count() as u64;
        self.last_end = 0;
        self.ends.rebase(len);
        chunk
    }

    /// The header record's bytes (`None` for an empty file).
    fn header(&mut self) -> Result<Option<RawRecords>, DecodeError> {
        loop {
            if let Some(end) = self.ends.first_end() {
                return Ok(Some(self.cut(end)));
            }
            if !self.fill()? {
                return Ok((!self.carry.is_empty()).then(|| self.cut(self.carry.len())));
            }
        }
    }
}

impl<R: Read> ChunkReader for RecordReader<R> {
    type Chunk = RawRecords;

    fn next_chunk(&mut self) -> Result<Option<RawRecords>, DecodeError> {
        while self.carry.len() < CHUNK_BYTES || self.last_end == 0 {
            if !self.fill()? {
                break;
            }
        }
        if self.carry.is_empty() {
            return Ok(None);
        }
        let len = if self.eof { self.carry.len() } else { self.last_end };
        Ok(Some(self.cut(len)))
    }

    fn recycle(&mut self, chunk: RawRecords) {
        self.spare.push(chunk.bytes);
    }
}

/// Where records end, found with the csv crate's own quoting rules (RFC 4180: a `"` opens a
/// quoted field only at a field's start, `""` inside one is a quote, line breaks inside one are
/// text, empty lines between records are skipped) but without tokenising: outside quotes only
/// `"`, `\n` and `\r` are looked at (memchr), inside quotes only `"`. A `"` opens a quoted field
/// when the byte before it ends a field or a record. The state is kept across calls, so the
/// input can arrive in any blocks.
#[derive(Debug, Default)]
struct RecordEnds {
    state: Quoting,
    /// Bytes of the current buffer already scanned.
    scanned: usize,
    /// Whether the record being scanned has a byte yet (a line break before any is skipped).
    in_record: bool,
    /// The first record end ever found (the header's): set once, read only by
    /// [`RecordReader::header`] before anything is cut.
    first: Option<usize>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// Outside a quoted field.
    #[default]
    Outside,
    /// Inside a quoted field.
    Quoted,
    /// A `"` inside a quoted field: a second one is a quote, anything else closes the field.
    QuoteInQuoted,
}

impl RecordEnds {
    /// Scans what `buffer` holds past the bytes already scanned; returns the offset just past the
    /// last record end in it. A `\r` as the buffer's last byte waits for the next byte.
    fn scan(&mut self, buffer: &[u8]) -> Option<usize> {
        let mut i = self.scanned;
        let mut last = None;
        while i < buffer.len() {
            match self.state {
                Quoting::Quoted => match memchr::memchr(b'"', &buffer[i..]) {
                    Some(at) => {
                        i += at + 1;
                        self.state = Quoting::QuoteInQuoted;
                    }
                    None => i = buffer.len(),
                },
                Quoting::QuoteInQuoted => {
                    // `""` is a quote; anything else closes the field and is read outside.
                    if buffer[i] == b'"' {
                        self.state = Quoting::Quoted;
                        i += 1;
                    } else {
                        self.state = Quoting::Outside;
                    }
                }
                Quoting::Outside => {
                    let Some(at) = memchr::memchr3(b'"', b'\n', b'\r', &buffer[i..]) else {
                        if i < buffer.len() {
                            self.in_record = true;
                        }
                        i = buffer.len();
                        continue;
                    };
                    let at = i + at;
                    if at > i {
                        self.in_record = true;
                    }
                    match buffer[at] {
                        b'"' => {
                            // Opens a quoted field at a field's start; elsewhere it is text.
                            let field_start =
                                !self.in_record || at == 0 || matches!(buffer[at - 1], b',' | b'\n' | b'\r');
                            if field_start {
                                self.state = Quoting::Quoted;
                            }
                            self.in_record = true;
                            i = at + 1;
                        }
                        b'\r' if at + 1 == buffer.len() => {
                            // Half of a `\r\n`? Known with the next byte.
                            i = at;
                            break;
                        }
                        b'\r' if buffer[at + 1] == b'\n' => i = at + 1,
                        _ => {
                            i = at + 1;
                            if self.in_record {
                                self.in_record = false;
                                last = Some(i);
                                if self.first.is_none() {
                                    self.first = Some(i);
                                }
                            }
                        }
                    }
                }
            }
        }
        self.scanned = i;
        last
    }

    /// The header's end, once found.
    fn first_end(&self) -> Option<usize> {
        self.first
    }

    /// The first `len` bytes of the buffer were handed out.
    fn rebase(&mut self, len: usize) {
        self.scanned -= len.min(self.scanned);
    }
}

/// Parses records into one batch: what one worker holds.
struct RowParser {
    spec: RowSpec,
    extra: Option<KeptColumns>,
    notes: RowNotes,
    /// Where local times are (zone, the file's day) and how many a DST change made ambiguous.
    local: LocalParse,
    builders: Vec<Builder>,
    drift: Drift,
}

impl RowParser {
    fn new(spec: RowSpec) -> RowParser {
        RowParser {
            extra: spec.extra_index.map(|index| KeptColumns {
                index,
                columns: spec.undeclared.to_vec(),
                text: String::new(),
                entries: Vec::new(),
            }),
            notes: RowNotes::default(),
            local: LocalParse { zone: spec.zone, fold: spec.fold, day: spec.day, ..LocalParse::default() },
            builders: spec.schema.columns.iter().map(|c| Builder::new(c, spec.batch_rows)).collect(),
            drift: Drift::default(),
            spec,
        }
    }
}

impl ChunkDecoder for RowParser {
    type Chunk = RawRecords;

    fn decode(&mut self, chunk: &RawRecords) -> Result<ChunkOutcome, DecodeError> {
        let spec = &self.spec;
        let mut stats = DecodeStats::default();
        let mut rejects = Vec::new();
        let mut spare: Vec<Parsed<'static>> = Vec::with_capacity(spec.positions.len());
        let mut tokenizer = Tokenizer::new(chunk.bytes.as_slice());
        let mut record = Record::default();
        // Batches of at most `batch_rows` rows (rows read, rejects included).
        let mut decoded = Vec::new();
        let mut batched = 0u64;
        let mut lines = LineIndex {
            pending: memchr::memchr_iter(b'\n', &chunk.bytes).map(|i| chunk.offset + i as u64).collect(),
            passed: chunk.lines_before,
        };
        while tokenizer.next_record(&mut record) {
            // A lone `""` between records is not a row (as an empty line is not).
            if record.len() == 1 && record[0].is_empty() && spec.header_len != 1 {
                continue;
            }
            // The physical line of the record's first byte.
            let line = lines.line_at(chunk.offset + record.start() as u64);
            let record = &record;
            stats.rows_read += 1;
            let mut parsed = recycle(std::mem::take(&mut spare));
            let notes = &mut self.notes;
            notes.misfits.clear();
            notes.misfit_reasons.clear();
            notes.whole_numbers.clear();
            let mut outcome = parse_row(
                &spec.schema,
                &spec.positions,
                &spec.fills,
                spec.header_len,
                record,
                &mut parsed,
                &mut self.local,
                notes,
                spec.policy == TypeMismatchPolicy::Extra,
            );
            if let (Ok(_), true) = (&outcome, spec.times_of_day) {
                if let Err(fault) =
                    resolve_intervals(&spec.intervals, &spec.schema, &mut parsed, &mut self.local)
                {
                    outcome = Err(fault);
                }
            }
            let keeps_extra = self.extra.is_some();
            if let (Ok(_), Some(kept)) = (&outcome, &mut self.extra) {
                let positions: Vec<usize> = self.notes.misfits.iter().map(|(_, p)| *p).collect();
                if let Err(fault) = kept.collect(record, &positions, &spec.names) {
                    outcome = Err(fault);
                } else if !kept.text.is_empty() {
                    parsed[kept.index] = Parsed::Text(&kept.text);
                }
            }
            match outcome {
                Ok(_) => {
                    append_row(&mut self.builders, &parsed);
                    stats.rows_written += 1;
                    for (position, name) in spec.undeclared.iter() {
                        if !record.get(*position).unwrap_or_default().is_empty() {
                            self.drift.undeclared(name, || name.clone(), keeps_extra);
                        }
                    }
                    for ((_, position), reason) in self.notes.misfits.iter().zip(&self.notes.misfit_reasons) {
                        // By the header's name, as `_extra` keys it.
                        let name = &spec.names[*position];
                        self.drift.kept(name, || format!("{name} (line {line}): {reason}"));
                    }
                    for column in &self.notes.whole_numbers {
                        self.drift.coerced(&spec.schema.columns[*column].name, Coercion::WholeNumber);
                    }
                }
                Err((Some(column), reason))
                    if spec.policy == TypeMismatchPolicy::Fail
                        && !reason.starts_with("required")
                        && !reason.starts_with("invalid UTF-8") =>
                {
                    return Err(DecodeError::TypeMismatch {
                        file: spec.file.clone(),
                        line,
                        path: column,
                        reason,
                    });
                }
                Err((column, reason)) => {
                    stats.rows_rejected += 1;
                    rejects.push(RejectedRow {
                        file: spec.file.clone(),
                        line,
                        column,
                        reason,
                        raw: encode_record(record),
                    });
                }
            }
            spare = recycle(parsed);
            if stats.rows_read - batched == spec.batch_rows as u64 {
                batched = stats.rows_read;
                let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
                let batch = RecordBatch::try_new(spec.schema.arrow_schema(), columns)?;
                decoded.push(DecodedBatch { batch, rejects: std::mem::take(&mut rejects) });
            }
        }
        if stats.rows_read > batched {
            let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
            let batch = RecordBatch::try_new(spec.schema.arrow_schema(), columns)?;
            decoded.push(DecodedBatch { batch, rejects });
        }
        let mut drift = std::mem::take(&mut self.drift);
        drift.local_times = std::mem::take(&mut self.local.counts);
        Ok(ChunkOutcome { decoded, stats, drift })
    }
}

impl<R: Read> std::fmt::Debug for CsvDecoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvDecoder").field("file", &self.spec.file).field("stats", &self.stats).finish()
    }
}

pub use super::DecodedBatch;

impl<R: Read> super::BatchDecoder for CsvDecoder<R> {
    fn next_batch(&mut self) -> Result<Option<DecodedBatch>, DecodeError> {
        CsvDecoder::next_batch(self)
    }

    fn stats(&self) -> DecodeStats {
        CsvDecoder::stats(self)
    }

    fn drift(&self) -> &Drift {
        CsvDecoder::drift(self)
    }
}

impl<R: Read> CsvDecoder<R> {
    /// Reads the header and maps it onto `schema`. `file` names the input in messages.
    pub fn new(schema: Arc<DatasetSchema>, file: impl Into<String>, input: R) -> Result<Self, DecodeError> {
        Self::with_batch_rows(schema, file, input, DEFAULT_BATCH_ROWS)
    }

    pub fn with_batch_rows(
        schema: Arc<DatasetSchema>,
        file: impl Into<String>,
        input: R,
        batch_rows: usize,
    ) -> Result<Self, DecodeError> {
        let file = file.into();
        let mut reader = RecordReader::new(file.clone(), input);
        let header_bytes = reader.header()?;
        let mut header = ::csv::ByteRecord::new();
        let has_header = match &header_bytes {
            Some(chunk) => csv_reader(&chunk.bytes)
                .read_byte_record(&mut header)
                .map_err(|e| DecodeError::Header { file: file.clone(), message: e.to_string() })?,
            None => false,
        };
        if let Some(chunk) = header_bytes {
            reader.recycle(chunk);
        }
        let mut names = Vec::with_capacity(header.len());
        if has_header {
            for (i, raw) in header.iter().enumerate() {
                // A UTF-8 byte-order mark (Excel, some exporters) sits before the first name.
                let raw = if i == 0 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
                let name = std::str::from_utf8(raw).map_err(|_| DecodeError::Header {
                    file: file.clone(),
                    message: format!("column {} of the header is not valid UTF-8", i + 1),
                })?;
                let name = name.trim().to_string();
                if names.contains(&name) {
                    return Err(DecodeError::DuplicateColumn { file: file.clone(), column: name });
                }
                names.push(name);
            }
        }
        let mut drift = Drift::default();
        let mut positions = Vec::with_capacity(schema.columns.len());
        let mut matched: Vec<Option<usize>> = vec![None; schema.columns.len()];
        for (i, name) in names.iter().enumerate() {
            if let Some(index) = schema.column_for_field(name) {
                matched[index].get_or_insert(i);
            }
        }
        for (column, position) in schema.columns.iter().zip(matched) {
            let from_file = column.fill.is_none() && column.name != EXTRA_COLUMN;
            // A file with no header at all (zero bytes) is an empty export, not a drifted one.
            if position.is_none() && has_header && from_file {
                if !column.nullable {
                    return Err(DecodeError::MissingRequiredColumn {
                        file,
                        column: column.name.clone(),
                        schema: schema.qualified_name(),
                    });
                }
                drift.absent.insert(column.name.clone());
            }
            positions.push(position);
        }
        let undeclared: Vec<(usize, String)> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| !positions.contains(&Some(*i)))
            .map(|(i, name)| (i, name.clone()))
            .collect();
        if let Some(column) = schema.columns.iter().find(|c| !c.fits_csv()) {
            return Err(DecodeError::Header {
                file,
                message: format!(
                    "column `{}` of schema {} is {}, which a CSV file cannot hold; export this dataset as JSON",
                    column.name,
                    schema.qualified_name(),
                    column.column_type
                ),
            });
        }
        let batch_rows = batch_rows.max(1);
        let header_len = names.len();
        Ok(CsvDecoder {
            spec: RowSpec {
                undeclared: Arc::new(undeclared),
                extra_index: schema.extra_index(),
                policy: TypeMismatchPolicy::Extra.for_schema(&schema),
                header_len,
                memory: None,
                fills: vec![None; schema.columns.len()],
                zone: None,
                fold: local_time::Fold::default(),
                day: None,
                times_of_day: schema.columns.iter().any(|c| c.encoding == Encoding::LocalTimeOfDay),
                intervals: Arc::new(
                    schema
                        .columns
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| {
                            let end = schema.column_index(c.interval_end.as_deref()?)?;
                            Some((i, end, c.interval_seconds.as_deref().and_then(|s| schema.column_index(s))))
                        })
                        .collect(),
                ),
                schema,
                file: file.clone(),
                names: Arc::new(names),
                positions: Arc::new(positions),
                batch_rows,
            },
            reader: Some(reader),
            running: None,
            done: !has_header,
            drift,
            stats: DecodeStats::default(),
        })
    }

    /// Fills the schema's window columns (`fill = "window_date"` …) from the context's window,
    /// and reads local times in its zone (a time of day on the window's day).
    pub fn with_context(mut self, context: super::FileContext) -> Self {
        self.spec.fills = super::fill_values(&self.spec.schema, context.window, context.timezone);
        self.spec.policy = context.on_type_mismatch.for_schema(&self.spec.schema);
        self.spec.zone = context.timezone;
        self.spec.fold = context.fold;
        self.spec.day = context.window.map(|w| w.date);
        self.spec.memory = context.memory;
        self
    }

    /// What the file showed about its declaration (complete once `next_batch` returned `None`).
    pub fn drift(&self) -> &Drift {
        &self.drift
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    pub fn file(&self) -> &str {
        &self.spec.file
    }

    /// The next batch of decoded rows and the rows rejected while reading it; `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<DecodedBatch>, DecodeError> {
        if self.done {
            return Ok(None);
        }
        if let Some(reader) = self.reader.take() {
            let spec = self.spec.clone();
            let memory = self.spec.memory;
            // A chunk's bytes, and its batches at about twice that as Arrow arrays.
            let make = move || RowParser::new(spec.clone());
            self.running = Some(ParallelDecoder::new(reader, make, memory, 3 * CHUNK_BYTES));
        }
        let running = self.running.as_mut().expect("started above");
        // The header's absent columns stand: chunks add counts, never absences.
        let batch = running.next_batch(&mut self.stats, &mut self.drift)?;
        self.done = batch.is_none();
        Ok(batch)
    }
}

/// Newline offsets of a chunk not yet behind a record start asked about.
struct LineIndex {
    /// Offsets (in the file) of `\n` bytes not yet before any record start asked about.
    pending: VecDeque<u64>,
    /// `\n` bytes before the last record start asked about.
    passed: u64,
}

impl LineIndex {
    /// The 1-based physical line of the byte at `offset` (offsets must not decrease).
    fn line_at(&mut self, offset: u64) -> u64 {
        // `<=` as well as `<`: no record starts with a newline, so a newline at `offset` (were
        // one asked about) ends the line before it.
        while self.pending.front().is_some_and(|&n| n <= offset) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// The csv crate's reader as the header is read (and as [`super::csv_fields`] reads every
/// record): RFC 4180, no trimming, any number of fields (a short or long row is the decoder's to
/// reject, with its line).
fn csv_reader(bytes: &[u8]) -> ::csv::Reader<&[u8]> {
    ::csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(::csv::Trim::None).from_reader(bytes)
}

/// Checks one record against the schema; returns the text bytes it holds, or the fault. With
/// `keep_misfits`, a value that does not parse for a nullable column is null and noted (to be
/// kept in `_extra`) instead of a fault.
#[allow(clippy::too_many_arguments, reason = "the row's inputs and outputs; one call site")]
fn parse_row<'r>(
    schema: &DatasetSchema,
    positions: &[Option<usize>],
    fills: &[Option<i64>],
    header_len: usize,
    record: &'r Record<'_>,
    out: &mut Vec<Parsed<'r>>,
    local: &mut LocalParse,
    notes: &mut RowNotes,
    keep_misfits: bool,
) -> Result<usize, (Option<String>, String)> {
    if record.len() != header_len {
        return Err((None, format!("expected {header_len} fields as in the header, found {}", record.len())));
    }
    let mut text_bytes = 0;
    // The bytes between fields are ASCII, so the record's bytes are valid UTF-8 exactly when
    // every field is: one check per record instead of one per field (the decoder's hottest).
    let whole_record_is_utf8 = std::str::from_utf8(record.raw()).is_ok();
    for ((column, position), fill) in schema.columns.iter().zip(positions).zip(fills) {
        let raw = match (position, fill) {
            (Some(i), _) => &record[*i],
            (None, Some(value)) => {
                out.push(Parsed::Int(*value));
                continue;
            }
            (None, None) => b"".as_slice(),
        };
        if raw.is_empty() {
            if !column.nullable && position.is_some() {
                return Err((Some(column.name.clone()), "required value is empty".into()));
            }
            out.push(Parsed::Null);
            continue;
        }
        let text = if whole_record_is_utf8 {
            // SAFETY: the record's bytes are valid UTF-8 and every field boundary is next to an
            // ASCII quote, delimiter or terminator, so each field's bytes are valid on their own
            // (an unescaped field is valid pieces joined by `"`).
            unsafe { std::str::from_utf8_unchecked(raw) }
        } else {
            std::str::from_utf8(raw).map_err(|e| {
                (Some(column.name.clone()), format!("invalid UTF-8 at byte {}", e.valid_up_to()))
            })?
        };
        let value = match &column.column_type {
            ColumnType::TimestampUtc if column.encoding == Encoding::EpochMs => {
                value::parse_epoch_ms_micros(text).map(Parsed::Int)
            }
            ColumnType::Int64 if column.encoding == Encoding::DurationHms => {
                value::parse_duration_hms_ms(text).map(Parsed::Int)
            }
            ColumnType::TimestampUtc if column.encoding == Encoding::LocalTime => local.date_time(text),
            ColumnType::TimestampUtc if column.encoding == Encoding::LocalTimeOfDay => {
                local.time_of_day(text)
            }
            ColumnType::List(_) if column.fits_csv() => {
                text_bytes += text.len();
                Ok(Parsed::List(text))
            }
            ColumnType::Utf8 => {
                text_bytes += text.len();
                Ok(Parsed::Text(text))
            }
            ColumnType::Int64 => value::parse_whole(text).map(|(v, whole)| {
                if whole {
                    notes.whole_numbers.push(out.len());
                }
                Parsed::Int(v)
            }),
            ColumnType::Float64 => value::parse_f64(text).map(Parsed::Float),
            ColumnType::Boolean => value::parse_bool(text).map(Parsed::Bool),
            ColumnType::Date32 => value::parse_date(text).map(|d| Parsed::Int(d as i64)),
            ColumnType::TimestampUtc => value::parse_timestamp_micros(text).map(Parsed::Int),
            ColumnType::List(_) | ColumnType::Struct(_) => {
                Err(InvalidValue("a nested value cannot be read from CSV"))
            }
        };
        match value {
            Ok(v) => out.push(v),
            Err(InvalidValue(reason)) => {
                let reason = format!("{reason}, found {}", quote_for_message(text));
                match position {
                    Some(position) if keep_misfits && column.nullable => {
                        notes.misfits.push((out.len(), *position));
                        notes.misfit_reasons.push(reason);
                        out.push(Parsed::Null);
                    }
                    _ => return Err((Some(column.name.clone()), reason)),
                }
            }
        }
    }
    Ok(text_bytes)
}

/// Empties a row buffer and hands its allocation to the next row: the values borrow from the
/// current record only, so the buffer cannot be kept across records with its old lifetime.
/// (`collect` of an empty `map` over the same-sized type reuses the allocation in place.)
fn recycle<'to>(mut buffer: Vec<Parsed<'_>>) -> Vec<Parsed<'to>> {
    buffer.clear();
    buffer.into_iter().map(|_| Parsed::Null).collect()
}

/// Local times: the export's zone, the file's day, and what DST changes made of them.
#[derive(Debug, Default)]
struct LocalParse {
    zone: Option<chrono_tz::Tz>,
    fold: local_time::Fold,
    day: Option<chrono::NaiveDate>,
    counts: super::LocalTimeCounts,
}

impl LocalParse {
    /// `Year-Month-Day HH:MM:SS.MS` in the zone, as UTC microseconds.
    fn date_time<'a>(&mut self, text: &str) -> Result<Parsed<'a>, InvalidValue> {
        let local = local_time::parse_local(text)
            .ok_or(InvalidValue("expected a local date-time as YYYY-MM-DD HH:MM:SS[.fff]"))?;
        let zone = self.zone.ok_or(InvalidValue("a local time needs --timezone"))?;
        Ok(Parsed::Int(self.counts.count(local_time::local_to_utc_in(local, zone, self.fold))))
    }

    /// `HH:MM:SS:MS`, kept as a time of day until its interval (or its day alone) places it.
    fn time_of_day<'a>(&mut self, text: &str) -> Result<Parsed<'a>, InvalidValue> {
        local_time::parse_time_of_day(text)
            .map(Parsed::TimeOfDay)
            .ok_or(InvalidValue("expected a time of day as HH:MM:SS:MS"))
    }

    /// A time of day on the file's day.
    fn on_day(&mut self, time: chrono::NaiveTime) -> Option<i64> {
        let local = self.day?.and_time(time);
        Some(self.counts.count(local_time::local_to_utc_in(local, self.zone?, self.fold)))
    }
}

/// Places the row's times of day: interval starts and ends together (a start after its end was
/// the day before; on a DST change day the interval's seconds decide), any other on the day.
fn resolve_intervals(
    intervals: &[(usize, usize, Option<usize>)],
    schema: &DatasetSchema,
    row: &mut [Parsed<'_>],
    local: &mut LocalParse,
) -> Result<(), (Option<String>, String)> {
    let missing = |i: usize| {
        (
            Some(schema.columns[i].name.clone()),
            "a local time of day needs --timezone and the file's day".to_string(),
        )
    };
    for &(start, end, seconds) in intervals {
        let (Parsed::TimeOfDay(from), Parsed::TimeOfDay(to)) = (row[start], row[end]) else {
            continue;
        };
        let (Some(day), Some(zone)) = (local.day, local.zone) else {
            return Err(missing(start));
        };
        let seconds = seconds.and_then(|i| match row[i] {
            Parsed::Int(v) => Some(v as f64),
            Parsed::Float(v) => Some(v),
            _ => None,
        });
        let (from, to, dst) = local_time::response_interval(day, from, to, seconds, zone);
        local.counts.ambiguous += u64::from(dst);
        row[start] = Parsed::Int(from.timestamp_micros());
        row[end] = Parsed::Int(to.timestamp_micros());
    }
    for (i, value) in row.iter_mut().enumerate() {
        if let Parsed::TimeOfDay(time) = *value {
            *value = Parsed::Int(local.on_day(time).ok_or_else(|| missing(i))?);
        }
    }
    Ok(())
}

fn append_row(builders: &mut [Builder], row: &[Parsed<'_>]) {
    for (builder, value) in builders.iter_mut().zip(row) {
        match (builder, *value) {
            (Builder::Utf8(b), Parsed::Text(t)) => b.append_value(t),
            (Builder::Utf8(b), _) => b.append_null(),
            (Builder::Utf8List(b, separator), Parsed::List(text)) => {
                for item in text.split(separator.as_str()).map(str::trim).filter(|i| !i.is_empty()) {
                    b.values().append_value(item);
                }
                b.append(true);
            }
            (Builder::Utf8List(b, _), _) => b.append(false),
            (Builder::Int64(b), Parsed::Int(v)) => b.append_value(v),
            (Builder::Int64(b), _) => b.append_null(),
            (Builder::Float64(b), Parsed::Float(v)) => b.append_value(v),
            (Builder::Float64(b), _) => b.append_null(),
            (Builder::Boolean(b), Parsed::Bool(v)) => b.append_value(v),
            (Builder::Boolean(b), _) => b.append_null(),
            (Builder::Date32(b), Parsed::Int(v)) => b.append_value(v as i32),
            (Builder::Date32(b), _) => b.append_null(),
            (Builder::Timestamp(b), Parsed::Int(v)) => b.append_value(v),
            (Builder::Timestamp(b), _) => b.append_null(),
        }
    }
}

/// Quotes a value for an error message, shortened so one huge field cannot flood a log.
fn quote_for_message(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}…")
    }
}

/// Re-encodes a record as one CSV line, so a reject file holds it exactly as it was.
fn encode_record(record: &Record<'_>) -> Vec<u8> {
    let mut writer =
        ::csv::WriterBuilder::new().terminator(::csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(record.iter());
    let mut bytes = writer.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaRegistry;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

    /// Every record end `RecordEnds` finds, feeding `bytes` in blocks of `block` bytes.
    fn record_ends(bytes: &[u8], block: usize) -> Vec<usize> {
        let mut ends = RecordEnds::default();
        let mut found = Vec::new();
        let mut fed = 0;
        while fed < bytes.len() {
            fed = (fed + block).min(bytes.len());
            // One byte at a time finds every end; larger blocks report the last end in each.
            if let Some(end) = ends.scan(&bytes[..fed]) {
                found.push(end);
            }
        }
        found
    }

    fn records_of(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut reader = csv_reader(bytes);
        let mut record = ::csv::ByteRecord::new();
        let mut out = Vec::new();
        while reader.read_byte_record(&mut record).unwrap() {
            out.push(record.iter().map(<[u8]>::to_vec).collect());
        }
        out
    }

    #[test]
    fn record_ends_are_where_the_csv_reader_ends_records() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = [b'a', b'b', b',', b'"', b'"', b'\r', b'\n', b' '];
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> =
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let whole = records_of(&bytes);
            let every = record_ends(&bytes, 1);
            for block in [2, 3, 7, 64] {
                let some = record_ends(&bytes, block);
                assert!(some.iter().all(|e| every.contains(e)), "{bytes:?}: {some:?} not in {every:?}");
            }
            // Read part by part, cut at every end found, the records are the same.
            let mut parts = Vec::new();
            let mut from = 0;
            for &end in every.iter().chain(std::iter::once(&bytes.len())) {
                parts.extend(records_of(&bytes[from..end]));
                from = end;
            }
            assert_eq!(parts, whole, "{:?} cut at {every:?}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn a_large_file_is_decoded_in_chunks_with_the_lines_of_one_pass() {
        // Quoted line breaks (LF and CRLF) and blank lines across many 4 MiB chunks.
        let mut csv = String::from("pid,name,hourly_cost\r\n");
        let mut expected = Vec::new();
        let mut line = 2u64;
        for i in 0..500_000u64 {
            if i % 1000 == 999 {
                csv.push_str("\r\n");
                line += 1;
            }
            let name = if i % 3 == 0 {
                format!("\"Agent \r\n{i}, \"\"the\"\" best\"")
            } else {
                format!("Agent {i}")
            };
            let breaks = if i % 3 == 0 { 1 } else { 0 };
            let pid = if i % 20000 == 17 { String::new() } else { format!("a{i}") };
            csv.push_str(&format!("{pid},{name},12.5\r\n"));
            expected.push((line, i % 20000 == 17));
            line += 1 + breaks;
        }
        assert!(csv.len() > 3 * CHUNK_BYTES, "{} bytes", csv.len());
        let mut decoder = CsvDecoder::new(agent_schema(), "agents.csv", csv.as_bytes()).unwrap();
        let (mut rows, mut rejects) = (0, vec![]);
        while let Some(out) = decoder.next_batch().unwrap() {
            assert!(out.batch.num_rows() <= DEFAULT_BATCH_ROWS);
            rows += out.batch.num_rows();
            rejects.extend(out.rejects);
        }
        let lines: Vec<u64> = rejects.iter().map(|r| r.line).collect();
        let expected_rejects: Vec<u64> = expected.iter().filter(|(_, bad)| *bad).map(|(l, _)| *l).collect();
        assert_eq!(rows + rejects.len(), 500_000);
        assert_eq!(lines, expected_rejects);
    }

    fn agent_schema() -> Arc<DatasetSchema> {
        SchemaRegistry::embedded().unwrap().get("saltedcx.agent").unwrap()
    }

    fn decode_all(
        schema: Arc<DatasetSchema>,
        input: &[u8],
    ) -> (Vec<RecordBatch>, Vec<RejectedRow>, DecodeStats) {
        let mut decoder = CsvDecoder::with_batch_rows(schema, "agents.csv", input, 2).unwrap();
        let (mut batches, mut rejects) = (vec![], vec![]);
        while let Some(out) = decoder.next_batch().unwrap() {
            batches.push(out.batch);
            rejects.extend(out.rejects);
        }
        (batches, rejects, decoder.stats())
    }

    #[test]
    fn columns_are_matched_by_header_name_not_position() {
        let csv = "name,hourly_cost,pid\nAda,12.5,a1\nBob,,b2\n";
        let (batches, rejects, stats) = decode_all(agent_schema(), csv.as_bytes());
        assert!(rejects.is_empty());
        assert_eq!(stats, DecodeStats { rows_read: 2, rows_written: 2, rows_rejected: 0 });
        let batch = &batches[0];
        let schema = agent_schema();
        let pid = batch.column(schema.column_index("pid").unwrap()).as_string::<i32>();
        let name = batch.column(schema.column_index("name").unwrap()).as_string::<i32>();
        let cost = batch.column(schema.column_index("hourly_cost").unwrap()).as_primitive::<Float64Type>();
        assert_eq!((pid.value(0), name.value(0), cost.value(0)), ("a1", "Ada", 12.5));
        assert_eq!(pid.value(1), "b2");
        assert!(cost.is_null(1), "empty field is null");
        let team = batch.column(schema.column_index("team").unwrap());
        assert_eq!(team.null_count(), 2, "absent nullable column loads as nulls");
    }

    #[test]
    fn drift_is_reported_and_missing_required_column_fails() {
        let decoder =
            CsvDecoder::new(agent_schema(), "agents.csv", "pid,name,shoe_size\n".as_bytes()).unwrap();
        assert!(decoder.drift().absent.contains("team"));
        let err = CsvDecoder::new(agent_schema(), "agents.csv", "name,team\n".as_bytes()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("agents.csv") && message.contains("`pid`"), "{message}");
    }

    #[test]
    fn text_is_kept_byte_exact_through_quotes_crlf_bom_and_unicode() {
        let tricky = "He said \"hi, there\"\r\nnew line 👋 你好,末尾 ";
        let quoted = tricky.replace('"', "\"\"");
        let csv = format!("\u{feff}pid,name\r\n\"a,1\",\"{quoted}\"\r\n");
        let (batches, rejects, _) = decode_all(agent_schema(), csv.as_bytes());
        assert!(rejects.is_empty(), "{rejects:?}");
        let schema = agent_schema();
        let batch = &batches[0];
        assert_eq!(batch.column(schema.column_index("pid").unwrap()).as_string::<i32>().value(0), "a,1");
        assert_eq!(batch.column(schema.column_index("name").unwrap()).as_string::<i32>().value(0), tricky);
    }

    #[test]
    fn bad_rows_are_rejected_whole_with_line_column_and_raw_record() {
        let csv = b"pid,hourly_cost,name\na1,1.5,Ada\na2,cheap,Bob\na3,2\n,3,Eve\na5,4,\xff\xfe\na6,5,Zed\n";
        let (batches, rejects, stats) = decode_all(agent_schema(), csv);
        assert_eq!(stats, DecodeStats { rows_read: 6, rows_written: 2, rows_rejected: 4 });
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        assert_eq!(rejects[0].line, 3);
        assert_eq!(rejects[0].column.as_deref(), Some("hourly_cost"));
        assert!(rejects[0].reason.contains("\"cheap\""), "{}", rejects[0].reason);
        assert_eq!(rejects[0].raw, b"a2,cheap,Bob");
        assert!(rejects[1].reason.contains("expected 3 fields"), "{}", rejects[1].reason);
        assert_eq!(rejects[2].column.as_deref(), Some("pid"));
        assert!(rejects[3].reason.contains("UTF-8"));
        assert_eq!(rejects[3].raw, b"a5,4,\xff\xfe");
        let names = batches.iter().flat_map(|b| {
            let col = b.column(agent_schema().column_index("name").unwrap()).as_string::<i32>().clone();
            (0..col.len()).map(move |i| col.value(i).to_string())
        });
        assert_eq!(names.collect::<Vec<_>>(), vec!["Ada", "Zed"], "no half-appended row");
    }

    #[test]
    fn a_schema_that_keeps_extra_keeps_unknown_columns_and_fills_the_window() {
        let schema = SchemaRegistry::embedded().unwrap().dataset("khoros", "user").unwrap();
        let csv = "AGENT_ID,AGENT_NAME,AVG_HANDLE_TIME,NEW_METRIC\n7,Ann,00:01:02,x\n8,Bob,,\n9,Cy,1:2,\n";
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let mut decoder = CsvDecoder::new(schema.clone(), "user.csv", csv.as_bytes())
            .unwrap()
            .with_context(crate::decode::FileContext::window(crate::window::Window::new(day)));
        let decoded = decoder.next_batch().unwrap().unwrap();
        let batch = decoded.batch;
        let column = |name: &str| batch.column(schema.column_index(name).unwrap()).clone();
        let days_since_epoch = (day - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
        let report_date = column("report_date");
        assert_eq!(
            report_date.as_primitive::<arrow::datatypes::Date32Type>().values(),
            &[days_since_epoch; 3]
        );
        assert_eq!(column("agent_id").as_primitive::<Int64Type>().values(), &[7, 8, 9]);
        let handle = column("avg_handle_time_ms");
        assert_eq!(handle.as_primitive::<Int64Type>().value(0), 62_000);
        assert!(handle.is_null(1));
        let extra = column("_extra");
        assert_eq!(extra.as_string::<i32>().value(0), r#"{"NEW_METRIC":"x"}"#);
        assert!(extra.is_null(1), "no kept value, no _extra");
        // A value that does not parse lands as null, kept exactly in `_extra` under its header.
        assert!(handle.is_null(2));
        assert_eq!(extra.as_string::<i32>().value(2), r#"{"AVG_HANDLE_TIME":"1:2"}"#);
        assert!(decoded.rejects.is_empty());
        assert!(decoder.next_batch().unwrap().is_none());
        let drift = decoder.drift();
        assert_eq!(drift.undeclared["NEW_METRIC"].values, 1);
        assert_eq!(drift.kept_in_extra["AVG_HANDLE_TIME"].values, 1);
        assert!(drift.absent.contains("agent_email"));
        assert!(!drift.absent.contains("report_date"));
    }

    #[test]
    fn line_numbers_are_physical_lines_with_crlf_lf_and_quoted_newlines() {
        let csv = "pid,hourly_cost\r\na1,x\r\n\"a\r\n2\",1\r\na3,y\na4,z\r\n";
        let (_, rejects, _) = decode_all(agent_schema(), csv.as_bytes());
        let lines: Vec<u64> = rejects.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 5, 6]);
        // A row after empty lines is on its own line, not on the first empty one.
        let csv = "pid,hourly_cost\n\n\r\n\na1,x\r\r\na2,y\n";
        let (_, rejects, _) = decode_all(agent_schema(), csv.as_bytes());
        assert_eq!(rejects.iter().map(|r| r.line).collect::<Vec<_>>(), [5, 6]);
        // Beyond the csv reader's own buffer, too.
        let mut big = String::from("pid,hourly_cost\r\n");
        for i in 0..5000 {
            big.push_str(&format!("p{i},{}\r\n", if i == 4321 { "bad" } else { "1" }));
        }
        let (_, rejects, _) = decode_all(agent_schema(), big.as_bytes());
        assert_eq!(rejects.iter().map(|r| r.line).collect::<Vec<_>>(), [4323]);
    }

    #[test]
    fn a_char_split_across_two_fields_is_invalid_in_each() {
        // "é" is C3 A9: its halves in two fields make a valid record buffer but invalid fields.
        let csv = b"pid,name\nab\xC3,\xA9cd\nok,\xC3\xA9\n";
        let (batches, rejects, _) = decode_all(agent_schema(), csv);
        assert_eq!(rejects.len(), 1);
        assert!(rejects[0].reason.contains("UTF-8"), "{}", rejects[0].reason);
        let name = batches[0].column(agent_schema().column_index("name").unwrap()).as_string::<i32>().clone();
        assert_eq!(name.value(0), "é");
        // Invalid bytes in a column the schema ignores do not reject the row.
        let (_, rejects, stats) = decode_all(agent_schema(), b"pid,extra\na1,\xFF\n");
        assert!(rejects.is_empty());
        assert_eq!(stats.rows_written, 1);
    }

    #[test]
    fn zero_byte_and_header_only_files_are_empty() {
        let (batches, _, stats) = decode_all(agent_schema(), b"");
        assert!(batches.is_empty());
        assert_eq!(stats.rows_read, 0);
        let (batches, _, _) = decode_all(agent_schema(), b"pid,name\r\n");
        assert!(batches.is_empty());
    }

    #[test]
    fn typed_columns_decode_to_their_arrow_types() {
        let schema = SchemaRegistry::embedded().unwrap().get("saltedcx.turn").unwrap();
        let csv = "pid,engagement_pid,turn_time,duration,sentiment\nt1,e1,2024-01-01 10:00:00.5,1500,-0.25\n";
        let mut decoder = CsvDecoder::new(schema.clone(), "turns.csv", csv.as_bytes()).unwrap();
        let batch = decoder.next_batch().unwrap().unwrap().batch;
        let ts = batch
            .column(schema.column_index("turn_time").unwrap())
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_704_103_200_500_000);
        assert_eq!(ts.timezone(), Some("UTC"));
        let duration = batch.column(schema.column_index("duration").unwrap()).as_primitive::<Int64Type>();
        assert_eq!(duration.value(0), 1500);
    }
}
