//! `make bench`: throughput of the CSV → Arrow → Parquet path on synthetic Salted CX exports.
//!
//! Generates one large day of engagements and turns with the emulator's generator, then times
//! decode + ZSTD Parquet write into a local lake directory, the same code `sync` runs. Not a
//! test: it asserts nothing about time. Scale with CXLAKE_BENCH_ENGAGEMENTS (default 20000).

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use cxlake::decode::csv::CsvDecoder;
use cxlake::schema::SchemaRegistry;
use cxlake::sink::parquet::{PartWriter, PartWriterConfig};
use cxlake::sink::Destination;
use cxlake::sources::saltedcx::synth::{write_dataset, SynthConfig};
use cxlake::window::Window;

fn main() {
    let engagements: usize =
        std::env::var("CXLAKE_BENCH_ENGAGEMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let config =
        SynthConfig { engagements_per_day: engagements, customers: 200_000, ..SynthConfig::default() };
    let day = Window::new(NaiveDate::from_ymd_opt(2024, 3, 1).expect("valid date"));
    let work = tempfile::tempdir().expect("temp dir");
    let registry = SchemaRegistry::embedded().expect("schemas");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    println!(
        "{:<11} {:>10} {:>10} {:>8} {:>9} {:>11} {:>10}",
        "dataset", "rows", "csv MB", "secs", "MB/s", "rows/s", "parquet MB"
    );
    for dataset in ["engagement", "turn"] {
        let input = work.path().join(format!("{dataset}.csv"));
        let file = std::io::BufWriter::new(std::fs::File::create(&input).expect("create input"));
        let rows = write_dataset(&config, dataset, day.start(), day.end(), None, file).expect("generate");
        let csv_bytes = std::fs::metadata(&input).expect("input size").len();
        let schema = registry.dataset("saltedcx", dataset).expect("schema");
        let lake = work.path().join(format!("lake-{dataset}"));
        let dest = Destination::parse(lake.to_str().expect("utf-8 path")).expect("destination");

        let started = Instant::now();
        let written = runtime.block_on(convert(&input, schema, dest));
        let seconds = started.elapsed().as_secs_f64();
        let mb = csv_bytes as f64 / 1e6;
        println!(
            "{:<11} {:>10} {:>10.1} {:>8.2} {:>9.1} {:>11.0} {:>10.1}",
            dataset,
            rows,
            mb,
            seconds,
            mb / seconds,
            rows as f64 / seconds,
            written as f64 / 1e6
        );
    }
}

/// Decodes on a blocking thread and writes on the runtime, as the pipeline does.
async fn convert(
    input: &std::path::Path,
    schema: Arc<cxlake::schema::DatasetSchema>,
    dest: Destination,
) -> u64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let path = input.to_path_buf();
    let decode_schema = schema.clone();
    let decoder = tokio::task::spawn_blocking(move || {
        let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).expect("open"));
        let mut decoder = CsvDecoder::new(decode_schema, "bench.csv", file).expect("header");
        while let Some(batch) = decoder.next_batch().expect("decode") {
            assert!(batch.rejects.is_empty(), "synthetic data always fits");
            if tx.blocking_send(batch.batch).is_err() {
                break;
            }
        }
    });
    let mut writer = PartWriter::new(dest, "out".into(), schema.arrow_schema(), PartWriterConfig::default());
    while let Some(batch) = rx.recv().await {
        writer.write(&batch).await.expect("write");
    }
    decoder.await.expect("decoder");
    writer.finish().await.expect("finish").iter().map(|f| f.bytes).sum()
}
