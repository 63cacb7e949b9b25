//! Fuzzes the CSV decoder: arbitrary bytes against the widest declared schema must never panic,
//! and every row read is either written or rejected with a line number.
#![no_main]

use std::sync::{Arc, LazyLock};

use cxlake::decode::csv::CsvDecoder;
use cxlake::schema::{DatasetSchema, SchemaRegistry};
use libfuzzer_sys::fuzz_target;

static SCHEMAS: LazyLock<Vec<Arc<DatasetSchema>>> = LazyLock::new(|| {
    let registry = SchemaRegistry::embedded().expect("embedded schemas load");
    ["turn", "review", "agent"].iter().map(|d| registry.dataset("saltedcx", d).expect("schema")).collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else { return };
    let schema = SCHEMAS[selector as usize % SCHEMAS.len()].clone();
    let batch_rows = 1 + (selector as usize >> 2) % 16;
    let Ok(mut decoder) = CsvDecoder::with_batch_rows(schema, "fuzz.csv", input, batch_rows) else { return };
    let mut written = 0u64;
    let mut rejected = 0u64;
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
});
