//! Property: any rows the schema allows, written as CSV in any of the ways exporters write it
//! (quoting style, CRLF or LF, BOM or not, any column order, any accepted timestamp spelling),
//! decode back to exactly those rows, whatever the batch size.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use cxlake::decode::csv::CsvDecoder;
use cxlake::schema::{ColumnType, DatasetSchema, SchemaRegistry};
use cxlake::sources::saltedcx::synth::Rng;

use crate::common::{batch_rows, Cell};

const CASES: u64 = 300;
const ALPHABET: &[&str] = &[
    "a",
    "Z",
    "7",
    " ",
    ",",
    "\"",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "é",
    "ř",
    "👩‍💻",
    "🇨🇿",
    "你",
    "こ",
    ";",
    "'",
    "\\",
    "=",
    "#",
];

fn random_text(rng: &mut Rng) -> String {
    let len = rng.range(1, 12);
    (0..len).map(|_| rng.pick(ALPHABET)).collect()
}

/// A value for `column`: the cell it must decode to, and its CSV spelling.
fn random_value(rng: &mut Rng, column_type: &ColumnType, nullable: bool) -> (Cell, String) {
    if nullable && rng.chance(15) {
        return (Cell::Null, String::new());
    }
    match column_type {
        ColumnType::Utf8 => {
            let text = random_text(rng);
            (Cell::Text(text.clone()), text)
        }
        ColumnType::Int64 => {
            let v = rng.next_u64() as i64 >> rng.below(60);
            (Cell::Int(v), v.to_string())
        }
        ColumnType::Float64 => {
            let v = f64::from_bits(rng.next_u64() >> 2) * if rng.chance(50) { -1.0 } else { 1.0 };
            let v = if v.is_finite() { v } else { 0.5 };
            let spelled = if rng.chance(50) { format!("{v}") } else { format!("{v:e}") };
            (Cell::Float(v.to_bits()), spelled)
        }
        ColumnType::Boolean => {
            let v = rng.chance(50);
            let spelled =
                rng.pick(if v { &["true", "TRUE", "1", "yes"] } else { &["false", "False", "0", "no"] });
            (Cell::Bool(v), spelled.to_string())
        }
        ColumnType::Date32 | ColumnType::List(_) | ColumnType::Struct(_) => {
            unreachable!("no Date32 or nested column in the Salted CX schemas")
        }
        ColumnType::TimestampUtc => {
            let micros =
                (rng.below(4_000_000_000) as i64 - 1_000_000_000) * 1_000_000 + rng.below(1_000_000) as i64;
            let t = DateTime::<Utc>::from_timestamp_micros(micros).unwrap();
            let whole = micros - micros.rem_euclid(1_000_000);
            let offset = FixedOffset::east_opt(rng.range(0, 28) as i32 * 1800 - 14 * 1800).unwrap();
            let (expected, spelled) = match rng.below(5) {
                0 => (micros, t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
                1 => (whole, t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                2 => (micros, t.with_timezone(&offset).format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()),
                3 => (micros - micros.rem_euclid(1_000), t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
                _ => (micros, t.with_timezone(&offset).format("%Y-%m-%dT%H:%M:%S%.9f%z").to_string()),
            };
            (Cell::Int(expected), spelled)
        }
    }
}

fn roundtrip(rng: &mut Rng, schema: &Arc<DatasetSchema>) {
    let rows = rng.below(40) as usize;
    let mut order: Vec<usize> = (0..schema.columns.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut expected = Vec::with_capacity(rows);
    let mut spelled = Vec::with_capacity(rows);
    for _ in 0..rows {
        let (cells, texts): (Vec<Cell>, Vec<String>) =
            schema.columns.iter().map(|c| random_value(rng, &c.column_type, c.nullable)).unzip();
        expected.push(cells);
        spelled.push(texts);
    }
    let quote = [csv::QuoteStyle::Necessary, csv::QuoteStyle::Always, csv::QuoteStyle::NonNumeric]
        [rng.below(3) as usize];
    let terminator = if rng.chance(50) { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
    let mut bytes = if rng.chance(30) { "\u{feff}".as_bytes().to_vec() } else { Vec::new() };
    {
        let mut writer =
            csv::WriterBuilder::new().quote_style(quote).terminator(terminator).from_writer(&mut bytes);
        writer.write_record(order.iter().map(|&i| schema.columns[i].name.as_str())).unwrap();
        for row in &spelled {
            writer.write_record(order.iter().map(|&i| row[i].as_str())).unwrap();
        }
    }
    let batch_rows_limit = rng.range(1, 50) as usize;
    let mut decoder =
        CsvDecoder::with_batch_rows(schema.clone(), "random.csv", bytes.as_slice(), batch_rows_limit)
            .unwrap();
    let mut batches = Vec::new();
    while let Some(out) = decoder.next_batch().unwrap() {
        assert!(out.rejects.is_empty(), "{:?}\n{}", out.rejects, String::from_utf8_lossy(&bytes));
        batches.push(out.batch);
    }
    let got = batch_rows(&batches);
    assert_eq!(got.len(), rows);
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "row {i} of\n{}", String::from_utf8_lossy(&bytes));
    }
    let stats = decoder.stats();
    assert_eq!((stats.rows_read, stats.rows_written, stats.rows_rejected), (rows as u64, rows as u64, 0));
}

#[test]
fn any_allowed_rows_written_any_way_decode_back_identically() {
    let registry = SchemaRegistry::embedded().unwrap();
    for (case, dataset) in
        (0..CASES).zip(["turn", "review", "engagement", "agent", "customer"].iter().cycle())
    {
        let schema = registry.dataset("saltedcx", dataset).unwrap();
        let mut rng = Rng::new(0x5eed_0000 + case);
        roundtrip(&mut rng, &schema);
    }
}
