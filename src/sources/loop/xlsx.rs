//! Writes the Loop emulator's XLSX reports: one sheet, a header row, inline strings, numbers,
//! booleans and date-times as Excel serials with a date-time format — the parts of SpreadsheetML
//! a reader must handle, written straight into a zip (no spreadsheet library needed to write).
//!
//! Text is escaped for XML, with CR, TAB and LF as character references so that no XML parser's
//! line-ending normalisation can change a value, and `xml:space="preserve"` keeps edge spaces.

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use zip::write::SimpleFileOptions;

use super::synth::Value;

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#;
const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Report" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#;
/// Style 1 is built-in number format 22 (`m/d/yy h:mm`): the cell is a date-time.
const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="22" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#;

/// Excel's serial of an instant as a wall-clock time of `zone`: days since 1899-12-30 (the 1900
/// system), the time as a fraction. A workbook has no offsets.
pub fn excel_serial(t: DateTime<Utc>, zone: chrono_tz::Tz) -> f64 {
    let epoch =
        NaiveDate::from_ymd_opt(1899, 12, 30).expect("a date").and_hms_opt(0, 0, 0).expect("midnight");
    (t.with_timezone(&zone).naive_local() - epoch).num_milliseconds() as f64 / 86_400_000.0
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// A1-style column letters of a 0-based column.
fn column_letters(mut column: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push((b'A' + (column % 26) as u8) as char);
        if column < 26 {
            break;
        }
        column = column / 26 - 1;
    }
    letters.iter().rev().collect()
}

fn cell(reference: &str, value: &Value, zone: chrono_tz::Tz, out: &mut String) {
    match value {
        Value::Null => {}
        Value::Text(text) => {
            out.push_str(&format!(r#"<c r="{reference}" t="inlineStr"><is><t xml:space="preserve">"#));
            escape(text, out);
            out.push_str("</t></is></c>");
        }
        Value::Int(i) => out.push_str(&format!(r#"<c r="{reference}"><v>{i}</v></c>"#)),
        Value::Float(f) => out.push_str(&format!(r#"<c r="{reference}"><v>{f}</v></c>"#)),
        Value::Bool(b) => out.push_str(&format!(r#"<c r="{reference}" t="b"><v>{}</v></c>"#, u8::from(*b))),
        Value::Time(t) => {
            out.push_str(&format!(r#"<c r="{reference}" s="1"><v>{}</v></c>"#, excel_serial(*t, zone)))
        }
        Value::List(items) => {
            let text = serde_json::to_string(items).expect("a list of strings serialises");
            cell(reference, &Value::Text(text), zone, out)
        }
    }
}

/// The workbook of `header` and `rows` (cells in header order), times as wall-clock times of `zone`.
pub fn workbook(
    header: &[&str],
    rows: impl Iterator<Item = Vec<Value>>,
    zone: chrono_tz::Tz,
) -> std::io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
        ("xl/workbook.xml", WORKBOOK),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
        ("xl/styles.xml", STYLES),
    ] {
        zip.start_file(name, options)?;
        zip.write_all(text.as_bytes())?;
    }
    zip.start_file("xl/worksheets/sheet1.xml", options)?;
    zip.write_all(
        br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    )?;
    let letters: Vec<String> = (0..header.len()).map(column_letters).collect();
    let header_cells: Vec<Value> = header.iter().map(|h| Value::Text(h.to_string())).collect();
    for (index, cells) in std::iter::once(header_cells).chain(rows).enumerate() {
        let row_number = index + 1;
        let mut xml = format!(r#"<row r="{row_number}">"#);
        for (value, letter) in cells.iter().zip(&letters) {
            cell(&format!("{letter}{row_number}"), value, zone, &mut xml);
        }
        xml.push_str("</row>");
        zip.write_all(xml.as_bytes())?;
    }
    zip.write_all(b"</sheetData></worksheet>")?;
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_serials_follow_excel() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27 * 26), "AAA");
        let t = DateTime::parse_from_rfc3339("2024-03-01T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(excel_serial(t, chrono_tz::Tz::UTC), 45352.5);
        let brussels: chrono_tz::Tz = "Europe/Brussels".parse().unwrap();
        assert_eq!(excel_serial(t, brussels), 45352.5 + 1.0 / 24.0);
    }
}
