//! Fuzzes the JSON-array decoder: arbitrary bytes against the Dixa schemas (nested lists and
//! structs) must never panic; every element read is either written or rejected with a line
//! number; and the array scanner finds the same elements whatever the chunk boundaries.
#![no_main]

use std::sync::{Arc, LazyLock};

use cxlake::decode::json::JsonDecoder;
use cxlake::decode::json_array::ArrayScanner;
use cxlake::decode::BatchDecoder;
use cxlake::schema::{DatasetSchema, SchemaRegistry};
use libfuzzer_sys::fuzz_target;

static SCHEMAS: LazyLock<Vec<Arc<DatasetSchema>>> = LazyLock::new(|| {
    let registry = SchemaRegistry::embedded().expect("embedded schemas load");
    ["conversation", "message"].iter().map(|d| registry.dataset("dixa", d).expect("schema")).collect()
});

/// The elements and the outcome of scanning `input` in chunks of `size` bytes.
fn scan(input: &[u8], size: usize) -> (Vec<Vec<u8>>, bool) {
    let mut scanner = ArrayScanner::new();
    let mut elements = Vec::new();
    let mut element = Vec::new();
    for chunk in input.chunks(size) {
        let mut at = 0;
        loop {
            match scanner.scan(chunk, at, Some(&mut element)) {
                Ok(Some(next)) => {
                    elements.push(element.clone());
                    at = next;
                }
                Ok(None) => break,
                Err(_) => return (elements, false),
            }
        }
    }
    (elements, scanner.finish().is_ok())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else { return };
    let whole = scan(input, input.len().max(1));
    assert_eq!(scan(input, 1 + selector as usize % 7), whole, "chunking changes nothing");

    let schema = SCHEMAS[selector as usize % SCHEMAS.len()].clone();
    let batch_rows = 1 + (selector as usize >> 2) % 16;
    let Ok(mut decoder) = JsonDecoder::with_batch_rows(schema, "fuzz.json", input, batch_rows) else { return };
    let (mut written, mut rejected) = (0u64, 0u64);
    loop {
        match decoder.next_batch() {
            Ok(Some(out)) => {
                assert!(out.batch.num_rows() <= batch_rows);
                written += out.batch.num_rows() as u64;
                rejected += out.rejects.len() as u64;
                assert!(out.rejects.iter().all(|r| r.line >= 1 && !r.reason.is_empty()));
            }
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let stats = decoder.stats();
    assert_eq!(stats.rows_read, stats.rows_written + stats.rows_rejected);
    assert_eq!((stats.rows_written, stats.rows_rejected), (written, rejected));
    assert!(whole.1, "the decoder accepted an array the scanner calls incomplete");
});
