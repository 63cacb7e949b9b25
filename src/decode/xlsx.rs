//! XLSX workbooks (Loop's Excel reports) → the JSON decoder.
//!
//! The first sheet's first row is the header; every following row becomes one JSON object keyed
//! by the header, written on the line of the JSON file that matches its sheet row, so rejects
//! name the sheet row as their line. From there the JSON decoder does what it does for every
//! JSON source — declared types, the snake_case name rule, `_extra` for undeclared columns, rejects
//! with reasons — so an XLSX and a JSON report of the same rows land the same rows.
//!
//! Cells keep their meaning: numbers stay numbers (a whole number as an integer), booleans
//! booleans, text text, and date-time serials become RFC 3339 UTC text, read in the time zone the
//! report was asked in (cxlake asks for UTC), rounded to the millisecond as Excel stores them.
//! The sheet is read cell by cell (calamine's streaming reader); what calamine must hold whole is
//! the workbook's shared-string table, so a workbook whose table is larger than
//! [`MAX_SHARED_STRINGS_BYTES`] is refused with a message rather than risking the memory.

use std::io::{BufWriter, Write};
use std::path::Path;

use calamine::{DataRef, Reader, Xlsx};
use serde_json::Value;

use super::drift::push_json_string;
use super::{DecodeError, Drift};
use crate::schema::{DatasetSchema, EXTRA_COLUMN};

/// The largest shared-string table (uncompressed) read into memory.
pub const MAX_SHARED_STRINGS_BYTES: u64 = 1 << 30;

/// What a converted workbook held: its header's column names and the data rows written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub header: Vec<String>,
    pub rows: u64,
}

/// The drift a workbook's header shows against `schema`: declared columns it lacks (nullable
/// ones load as nulls; a required one fails the file, as a CSV's header would).
pub fn header_drift(schema: &DatasetSchema, header: &[String], file: &str) -> Result<Drift, DecodeError> {
    let mut drift = Drift::default();
    for (index, column) in schema.columns.iter().enumerate() {
        if column.fill.is_some() || column.name == EXTRA_COLUMN {
            continue;
        }
        if header.iter().any(|h| schema.column_for_field(h) == Some(index)) {
            continue;
        }
        if !column.nullable {
            return Err(DecodeError::MissingRequiredColumn {
                file: file.to_string(),
                column: column.name.clone(),
                schema: schema.qualified_name(),
            });
        }
        drift.absent.insert(column.name.clone());
    }
    Ok(drift)
}

/// Converts the workbook at `xlsx` into a JSON array at `json`.
/// `zone`: the zone the workbook's date-times are wall-clock times of (Loop writes the export's
/// `timezone`); `None` reads them as UTC.
pub fn to_json_array(
    xlsx: &Path,
    json: &Path,
    file_name: &str,
    zone: Option<chrono_tz::Tz>,
) -> Result<Converted, DecodeError> {
    let fail = |message: String| DecodeError::Header { file: file_name.to_string(), message };
    let date1904 = check_workbook(xlsx).map_err(fail)?;
    let input =
        std::fs::File::open(xlsx).map_err(|source| DecodeError::Open { path: xlsx.to_path_buf(), source })?;
    let mut workbook: Xlsx<_> = Xlsx::new(std::io::BufReader::new(input))
        .map_err(|e| fail(format!("not a readable XLSX workbook: {e}")))?;
    let sheet =
        workbook.sheet_names().first().cloned().ok_or_else(|| fail("the workbook has no sheet".into()))?;
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(|e| fail(format!("cannot read sheet `{sheet}`: {e}")))?;
    let output = std::fs::File::create(json)
        .map_err(|source| DecodeError::Open { path: json.to_path_buf(), source })?;
    let mut out = BufWriter::with_capacity(1 << 20, output);
    let write_error = |e: std::io::Error| DecodeError::Read {
        file: file_name.to_string(),
        line: 0,
        message: e.to_string(),
    };
    let mut header: Vec<Option<String>> = Vec::new();
    // The row being read: its sheet row and its cells as (header name, JSON text), in sheet order.
    let mut current: Option<(u32, Vec<(String, String)>)> = None;
    // The JSON file's current line (1 = the header row's): each row is written on its own line.
    let mut line = 1u32;
    let mut rows = 0u64;
    out.write_all(b"[").map_err(write_error)?;
    let flush = |row: u32,
                 object: Vec<(String, String)>,
                 out: &mut BufWriter<std::fs::File>,
                 line: &mut u32,
                 rows: &mut u64| {
        while *line < row + 1 {
            out.write_all(b"\n")?;
            *line += 1;
        }
        if *rows > 0 {
            out.write_all(b",")?;
        }
        // Written by hand, in the sheet's column order (a map would sort the keys).
        let mut text = String::from("{");
        for (i, (name, value)) in object.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            push_json_string(&mut text, name);
            text.push(':');
            text.push_str(value);
        }
        text.push('}');
        out.write_all(text.as_bytes())?;
        *rows += 1;
        Ok::<_, std::io::Error>(())
    };
    loop {
        let cell = cells.next_cell().map_err(|e| fail(format!("cannot read sheet `{sheet}`: {e}")))?;
        let Some(cell) = cell else { break };
        let (row, column) = cell.get_position();
        if row == 0 {
            let name = match cell.get_value() {
                DataRef::String(s) => s.trim().to_string(),
                DataRef::SharedString(s) => s.trim().to_string(),
                DataRef::Empty => continue,
                other => match json_value(other, date1904, zone) {
                    Some(Value::String(text)) => text,
                    Some(value) => value.to_string(),
                    None => continue,
                },
            };
            let column = column as usize;
            if header.len() <= column {
                header.resize(column + 1, None);
            }
            if header.iter().flatten().any(|n| *n == name) {
                return Err(DecodeError::DuplicateColumn { file: file_name.to_string(), column: name });
            }
            header[column] = Some(name);
            continue;
        }
        if current.as_ref().is_some_and(|(r, _)| *r != row) {
            let (r, object) = current.take().expect("checked above");
            flush(r, object, &mut out, &mut line, &mut rows).map_err(write_error)?;
        }
        let (_, object) = current.get_or_insert_with(|| (row, Vec::new()));
        let Some(Some(name)) = header.get(column as usize) else {
            if !matches!(cell.get_value(), DataRef::Empty) {
                return Err(fail(format!(
                    "row {} has a value in column {} but the header names no column there",
                    row + 1,
                    column + 1
                )));
            }
            continue;
        };
        if let Some(value) = json_value(cell.get_value(), date1904, zone) {
            object.push((name.clone(), value.to_string()));
        }
    }
    if let Some((r, object)) = current.take() {
        flush(r, object, &mut out, &mut line, &mut rows).map_err(write_error)?;
    }
    out.write_all(b"\n]\n").map_err(write_error)?;
    out.flush().map_err(write_error)?;
    Ok(Converted { header: header.into_iter().flatten().collect(), rows })
}

/// A cell as JSON: `None` for an empty cell. `date1904`: the workbook counts days from 1904.
fn json_value(value: &DataRef<'_>, date1904: bool, zone: Option<chrono_tz::Tz>) -> Option<Value> {
    Some(match value {
        DataRef::Empty => return None,
        DataRef::String(s) => Value::String(s.clone()),
        DataRef::SharedString(s) => Value::String(s.to_string()),
        DataRef::Int(i) => Value::from(*i),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(*f as i64),
        DataRef::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::String(f.to_string()), Value::Number)
        }
        DataRef::Bool(b) => Value::Bool(*b),
        DataRef::DateTime(t) if t.is_datetime() => match serial_to_rfc3339(t.as_f64(), date1904, zone) {
            Some(text) => Value::String(text),
            None => Value::String(t.as_f64().to_string()),
        },
        DataRef::DateTime(t) => serde_json::Number::from_f64(t.as_f64()).map_or(Value::Null, Value::Number),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Value::String(s.clone()),
        // `#DIV/0!` and friends: kept as the text Excel shows, so a typed column rejects the row
        // with the error in its message and a text column keeps it.
        DataRef::Error(e) => Value::String(format!("{e}")),
    })
}

/// An Excel date-time serial (days since 1899-12-30, or since 1904-01-01 in the 1904 system;
/// the time of day as the fraction) as RFC 3339 UTC text, rounded to the millisecond. The
/// serial is a wall-clock time of `zone` (UTC without one): a workbook has no offsets, so a
/// time in the hour a daylight-saving change repeats is read as the earlier one, and one in the
/// hour it skips as the hour after — JSON exports, which carry offsets, are exact.
pub fn serial_to_rfc3339(serial: f64, date1904: bool, zone: Option<chrono_tz::Tz>) -> Option<String> {
    let epoch = if date1904 {
        chrono::NaiveDate::from_ymd_opt(1904, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
    }?;
    let millis = (serial * 86_400_000.0).round();
    if !millis.is_finite() || millis.abs() > 1e15 {
        return None;
    }
    let local = epoch.and_hms_opt(0, 0, 0)? + chrono::Duration::milliseconds(millis as i64);
    let t = match zone {
        None => local.and_utc(),
        Some(zone) => {
            use chrono::TimeZone;
            let resolved = zone
                .from_local_datetime(&local)
                .earliest()
                .or_else(|| zone.from_local_datetime(&(local + chrono::Duration::hours(1))).earliest())?;
            resolved.with_timezone(&chrono::Utc)
        }
    };
    Some(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Reads the workbook's date system, and refuses a workbook whose shared-string table would
/// not fit the memory budget.
fn check_workbook(xlsx: &Path) -> Result<bool, String> {
    let file = std::fs::File::open(xlsx).map_err(|e| format!("cannot open: {e}"))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| format!("not a readable XLSX workbook: {e}"))?;
    let date1904 = match archive.by_name("xl/workbook.xml") {
        Ok(mut entry) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text)
                .map_err(|e| format!("cannot read the workbook: {e}"))?;
            text.contains("date1904=\"1\"") || text.contains("date1904=\"true\"")
        }
        Err(_) => false,
    };
    let size = match archive.by_name("xl/sharedStrings.xml") {
        Ok(entry) => entry.size(),
        Err(_) => 0,
    };
    if size > MAX_SHARED_STRINGS_BYTES {
        return Err(format!(
            "the workbook's shared-string table is {} MiB (over {} MiB held in memory); export this report as JSON instead",
            size >> 20,
            MAX_SHARED_STRINGS_BYTES >> 20
        ));
    }
    Ok(date1904)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_become_utc_text_to_the_millisecond() {
        assert_eq!(serial_to_rfc3339(45352.5, false, None).unwrap(), "2024-03-01T12:00:00.000Z");
        let almost = 45352.0 + (6.0 * 3600.0 + 3.0 * 60.0 + 27.0) / 86_400.0;
        assert_eq!(serial_to_rfc3339(almost, false, None).unwrap(), "2024-03-01T06:03:27.000Z");
        assert_eq!(serial_to_rfc3339(0.0, true, None).unwrap(), "1904-01-01T00:00:00.000Z");
        assert!(serial_to_rfc3339(f64::NAN, false, None).is_none());
    }
}
