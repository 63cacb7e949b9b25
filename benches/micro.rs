//! criterion micro-benchmarks of the two halves of a conversion, so that a regression in either
//! shows up on its own: CSV → Arrow decoding, and Arrow → ZSTD Parquet writing (the same
//! `PartWriter` that `sync` and `convert` use, into a local directory).
//!
//! `cargo bench --bench micro` (also run by `make bench`); inputs are one synthetic day of
//! engagements (80 columns, mostly short typed values) and turns (21 columns, long free text).

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use cxlake::decode::csv::CsvDecoder;
use cxlake::schema::load::LoadStamp;
use cxlake::schema::{DatasetSchema, SchemaRegistry};
use cxlake::sink::parquet::{PartWriter, PartWriterConfig};
use cxlake::sink::Destination;
use cxlake::sources::saltedcx::synth::{dataset_csv, SynthConfig};

const DATASETS: [&str; 2] = ["engagement", "turn"];

fn input(dataset: &str) -> (Arc<DatasetSchema>, Vec<u8>) {
    let config = SynthConfig { engagements_per_day: 4_000, ..SynthConfig::default() };
    let day = NaiveDate::from_ymd_opt(2024, 3, 1).expect("valid date");
    let (csv, _rows) = dataset_csv(&config, dataset, day, None).expect("synthetic CSV");
    let schema = SchemaRegistry::embedded().expect("schemas").dataset("saltedcx", dataset).expect("schema");
    (schema, csv)
}

fn decode_all(schema: &Arc<DatasetSchema>, csv: &[u8]) -> Vec<RecordBatch> {
    let mut decoder = CsvDecoder::new(schema.clone(), "bench.csv", csv).expect("header");
    let mut batches = Vec::new();
    while let Some(decoded) = decoder.next_batch().expect("decode") {
        assert!(decoded.rejects.is_empty(), "synthetic data always fits its schema");
        batches.push(decoded.batch);
    }
    batches
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_csv");
    for dataset in DATASETS {
        let (schema, csv) = input(dataset);
        group.throughput(Throughput::Bytes(csv.len() as u64));
        group.bench_function(dataset, |b| b.iter(|| decode_all(&schema, &csv)));
    }
    group.finish();
}

fn write_parquet(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("write_parquet");
    group.sample_size(20);
    for dataset in DATASETS {
        let (schema, csv) = input(dataset);
        let batches = decode_all(&schema, &csv);
        // Throughput in CSV bytes, so the two groups' numbers add up to a conversion's.
        group.throughput(Throughput::Bytes(csv.len() as u64));
        group.bench_function(dataset, |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("temp dir"),
                |dir| {
                    let dest = Destination::parse(dir.path().to_str().expect("utf-8")).expect("destination");
                    let stamp = LoadStamp { loaded_at: chrono::Utc::now(), run_id: "bench".into() };
                    let mut writer = PartWriter::for_dataset(
                        dest,
                        "out".into(),
                        &schema,
                        stamp,
                        PartWriterConfig::default(),
                    );
                    runtime.block_on(async {
                        for batch in &batches {
                            writer.write(batch).await.expect("write");
                        }
                        writer.finish().await.expect("finish")
                    })
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, decode, write_parquet);
criterion_main!(benches);
