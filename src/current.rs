//! Current tables: for each dataset, exactly one row per primary key (`pid`) — the row from the
//! latest window that has it — at `<dest>/<source>_current/<dataset>/`, in the lake's format,
//! with the window's `date` as an ordinary column. And `_cxlake/views.sql`, DuckDB views over
//! the history and current tables (`duckdb -init <dest>/_cxlake/views.sql`).
//!
//! Salted CX re-exports a record in every window where it changed, and customers and agents
//! repeat in every window that references them, so the history holds many rows per key.
//!
//! Why arrow + parquet here and not Polars (from the design card): the job is "newest window
//! wins", and the windows are already sorted by their partition. So it is two streaming passes
//! over the history with no sort and no join: pass 1 reads only the key column, newest window
//! first, and marks the rows whose key was not seen in a newer window (within one window the
//! file's last row wins); pass 2 streams each file again and writes the marked rows. Memory is
//! a 16-byte hash per distinct key (about 40 bytes with the set's overhead) plus one bit per
//! history row, never the data itself; a partition's key hashes are held while it is marked. A
//! Polars `sort → unique(keep=last) → sink` does the same work with a sort, and would roughly
//! double this crate's build time and binary for one function (TOOLING.md).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Date32Array};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use serde::{Deserialize, Serialize};

use crate::schema::DatasetSchema;
use crate::sink::delta::{self, TableSpec, WindowCommit, PARTITION_COLUMN};
use crate::sink::parquet::{PartWriter, PartWriterConfig, StoreFileReader};
use crate::sink::{commit, layout, Destination, OutputFormat, SinkError};
use crate::state::{StateStore, WindowStatus};

/// One dataset's current table after a refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentReport {
    pub dataset: String,
    /// Where the table is, relative to the lake root.
    pub path: String,
    /// Rows in the history (all windows), and rows kept: one per distinct key.
    pub history_rows: u64,
    pub rows: u64,
    pub files: usize,
}

/// One window's files of a dataset's history.
struct HistoryPartition {
    date: NaiveDate,
    /// Paths relative to the lake root, in write order.
    files: Vec<String>,
}

/// The committed windows of a dataset, newest first.
async fn history(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
    format: OutputFormat,
) -> Result<Vec<HistoryPartition>, SinkError> {
    let mut partitions = match format {
        OutputFormat::Parquet => StateStore::new(dest.clone())
            .load_windows(source)
            .await?
            .into_iter()
            .filter(|r| r.status == WindowStatus::Done)
            .filter_map(|r| {
                let files = r.datasets.get(&schema.dataset)?.files.iter().map(|f| f.path.clone()).collect();
                Some(HistoryPartition { date: r.date, files })
            })
            .collect(),
        OutputFormat::Delta => delta_history(dest, source, schema).await?,
    };
    partitions.sort_by_key(|p| std::cmp::Reverse(p.date));
    Ok(partitions)
}

/// A Delta table's active files grouped by their `date` partition: the table's latest version
/// is the truth, whatever the window records say.
async fn delta_history(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
) -> Result<Vec<HistoryPartition>, SinkError> {
    let table_dir = layout::dataset_dir(source, &schema.dataset);
    let Some(table) = delta::open_table(dest, &table_dir).await? else {
        return Ok(Vec::new());
    };
    let files: Vec<(String, Option<String>)> = table
        .get_active_add_actions_by_partitions(&[])
        .map_ok(|file| {
            let date = file.partition_values_map().remove(PARTITION_COLUMN).flatten();
            (format!("{table_dir}/{}", file.path()), date)
        })
        .try_collect()
        .await
        .map_err(|e| delta::table_error(&table_dir)(e))?;
    let mut by_date: std::collections::BTreeMap<NaiveDate, Vec<String>> = Default::default();
    for (path, date) in files {
        let date = date.and_then(|d| d.parse::<NaiveDate>().ok()).ok_or_else(|| SinkError::CorruptState {
            path: path.clone(),
            message: "a data file of the Delta table has no valid date partition value".into(),
        })?;
        by_date.entry(date).or_default().push(path);
    }
    Ok(by_date
        .into_iter()
        .map(|(date, mut files)| {
            files.sort();
            HistoryPartition { date, files }
        })
        .collect())
}

async fn open_parquet(
    dest: &Destination,
    relative: &str,
    key_only: Option<&str>,
) -> Result<impl futures::Stream<Item = Result<RecordBatch, SinkError>>, SinkError> {
    let path = dest.path(relative);
    let parquet_error = |source| SinkError::Parquet { path: relative.to_string(), source };
    let reader = StoreFileReader::open(dest, path).await?;
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(parquet_error)?;
    if let Some(column) = key_only {
        let mask = ProjectionMask::columns(builder.parquet_schema(), [column]);
        builder = builder.with_projection(mask);
    }
    let stream = builder.with_batch_size(8192).build().map_err(parquet_error)?;
    let relative = relative.to_string();
    Ok(stream.map_err(move |source| SinkError::Parquet { path: relative.clone(), source }))
}

/// A 128-bit fingerprint of a key: the set holds these instead of the keys themselves.
fn key_hash(key: &str) -> u128 {
    // SipHash with fixed keys: deterministic, and 128 bits make a collision between two of even
    // billions of keys vanishingly unlikely (~n²/2¹²⁹).
    let mut low = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut low);
    let mut high = std::collections::hash_map::DefaultHasher::new();
    (key, 0x9e37_79b9_u32).hash(&mut high);
    (u128::from(high.finish()) << 64) | u128::from(low.finish())
}

/// The current table's schema: the dataset's columns, then `date`.
pub fn current_schema(schema: &DatasetSchema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.arrow_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(PARTITION_COLUMN, DataType::Date32, false));
    Arc::new(Schema::new(fields))
}

/// Rebuilds one dataset's current table from its whole history.
pub async fn refresh_dataset(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
    format: OutputFormat,
    run_id: &str,
    config: PartWriterConfig,
) -> Result<Option<CurrentReport>, SinkError> {
    let partitions = history(dest, source, schema, format).await?;
    if partitions.is_empty() {
        return Ok(None);
    }
    let key = schema.primary_key.as_str();

    // Pass 1: newest window first; within a window, the last row of the last file wins.
    let mut seen: HashSet<u128> = HashSet::new();
    let mut keep: Vec<(NaiveDate, String, BooleanBuffer)> = Vec::new();
    let mut history_rows = 0u64;
    for partition in &partitions {
        let mut masks = Vec::with_capacity(partition.files.len());
        for file in &partition.files {
            let mut hashes: Vec<Option<u128>> = Vec::new();
            let mut batches = std::pin::pin!(open_parquet(dest, file, Some(key)).await?);
            while let Some(batch) = batches.try_next().await? {
                let column = batch.column(0).as_string::<i32>();
                hashes
                    .extend((0..column.len()).map(|i| column.is_valid(i).then(|| key_hash(column.value(i)))));
            }
            history_rows += hashes.len() as u64;
            masks.push(hashes);
        }
        for (file, hashes) in partition.files.iter().zip(masks).rev() {
            let mut mask = BooleanBufferBuilder::new(hashes.len());
            mask.append_n(hashes.len(), false);
            for (row, hash) in hashes.iter().enumerate().rev() {
                if hash.is_some_and(|h| seen.insert(h)) {
                    mask.set_bit(row, true);
                }
            }
            keep.push((partition.date, file.clone(), mask.finish()));
        }
    }
    drop(seen);

    // Pass 2: stream every file again, keeping the marked rows, newest window first.
    let target = current_schema(schema);
    let staging = format!(
        "{}/staging/{run_id}/{}",
        layout::BOOKKEEPING_DIR,
        layout::current_dir(source, &schema.dataset)
    );
    let plain = schema.columns.iter().filter(|c| !c.dictionary).map(|c| c.name.as_str());
    let mut writer = PartWriter::with_columns(dest.clone(), staging, target.clone(), plain, config);
    let mut rows = 0u64;
    for (date, file, mask) in &keep {
        if mask.count_set_bits() == 0 {
            continue;
        }
        let days = (*date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
        let mut offset = 0;
        let mut batches = std::pin::pin!(open_parquet(dest, file, None).await?);
        while let Some(batch) = batches.try_next().await? {
            let selected = BooleanArray::new(mask.slice(offset, batch.num_rows()), None);
            offset += batch.num_rows();
            let kept = arrow::compute::filter_record_batch(&batch, &selected)
                .map_err(|e| SinkError::Parquet { path: file.clone(), source: e.into() })?;
            if kept.num_rows() == 0 {
                continue;
            }
            let mut columns: Vec<ArrayRef> = kept.columns().to_vec();
            columns.push(Arc::new(Date32Array::from(vec![days; kept.num_rows()])));
            let with_date = RecordBatch::try_new(target.clone(), columns)
                .map_err(|e| SinkError::Parquet { path: file.clone(), source: e.into() })?;
            rows += with_date.num_rows() as u64;
            writer.write(&with_date).await?;
        }
    }
    let staged = writer.finish().await?;
    let relative = layout::current_dir(source, &schema.dataset);
    let files = match format {
        OutputFormat::Parquet => commit::publish_dir(dest, &relative, &staged).await?,
        OutputFormat::Delta => {
            let commit = WindowCommit {
                app_id: "cxlake:current".into(),
                date: partitions[0].date,
                version: Utc::now().timestamp_millis(),
                run_id: run_id.to_string(),
            };
            delta::publish(dest, TableSpec::current(source, schema), &commit, &staged).await?.files
        }
    };
    Ok(Some(CurrentReport {
        dataset: schema.dataset.clone(),
        path: relative,
        history_rows,
        rows,
        files: files.len(),
    }))
}

/// Where a table is, as DuckDB should read it: an absolute local path or an s3:// URL.
fn location(dest: &Destination, relative: &str) -> String {
    match (&dest.local_dir, &dest.s3) {
        (Some(dir), _) => dir.join(relative).display().to_string(),
        (None, Some(s3)) => format!("s3://{}/{}", s3.bucket, dest.path(relative)),
        (None, None) => relative.to_string(),
    }
}

fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The DuckDB views over every dataset that has a history: `<source>_<dataset>` and
/// `<source>_<dataset>_current`.
pub fn views_sql(
    dest: &Destination,
    source: &str,
    datasets: &[(String, bool)],
    format: OutputFormat,
) -> String {
    let mut sql = format!(
        "-- DuckDB views over the cxlake lake at {}, generated by cxlake {}.\n\
         -- Use: duckdb -init {}\n",
        dest.display,
        env!("CARGO_PKG_VERSION"),
        location(dest, &layout::views_file())
    );
    if dest.s3.is_some() {
        sql.push_str(
            "-- On S3: LOAD httpfs and CREATE SECRET (TYPE s3, ...) first; this file holds no credentials.\n",
        );
    }
    if format == OutputFormat::Delta {
        sql.push_str("-- Delta tables need the delta extension (INSTALL delta once, online).\nLOAD delta;\n");
    }
    for (dataset, has_current) in datasets {
        let history = location(dest, &layout::dataset_dir(source, dataset));
        let current = location(dest, &layout::current_dir(source, dataset));
        let (history_scan, current_scan) = match format {
            OutputFormat::Parquet => (
                format!(
                    "read_parquet({}, hive_partitioning = true, hive_types = {{'date': DATE}})",
                    sql_string(&format!("{history}/date=*/*.parquet"))
                ),
                format!("read_parquet({})", sql_string(&format!("{current}/*.parquet"))),
            ),
            OutputFormat::Delta => (
                format!("delta_scan({})", sql_string(&history)),
                format!("delta_scan({})", sql_string(&current)),
            ),
        };
        sql.push_str(&format!(
            "CREATE OR REPLACE VIEW {source}_{dataset} AS SELECT * FROM {history_scan};\n"
        ));
        if *has_current {
            sql.push_str(&format!(
                "CREATE OR REPLACE VIEW {source}_{dataset}_current AS SELECT * FROM {current_scan};\n"
            ));
        }
    }
    sql
}

/// Refreshes the current tables of `datasets` and rewrites `_cxlake/views.sql` for every
/// dataset of `source` the lake holds.
pub async fn refresh(
    dest: &Destination,
    source: &str,
    datasets: &[Arc<DatasetSchema>],
    format: OutputFormat,
    run_id: &str,
) -> Result<Vec<CurrentReport>, SinkError> {
    let mut reports = Vec::new();
    for schema in datasets {
        if let Some(report) =
            refresh_dataset(dest, source, schema, format, run_id, PartWriterConfig::default()).await?
        {
            tracing::info!(dataset = %schema.dataset, rows = report.rows, history_rows = report.history_rows, "Current table refreshed");
            reports.push(report);
        }
    }
    write_views(dest, source, format).await?;
    Ok(reports)
}

/// Writes `_cxlake/views.sql` for the datasets of `source` found in the lake.
pub async fn write_views(dest: &Destination, source: &str, format: OutputFormat) -> Result<(), SinkError> {
    let histories = commit::child_dirs(dest, source).await?;
    let currents = commit::child_dirs(dest, &format!("{source}_current")).await?;
    let present: Vec<(String, bool)> = histories
        .into_iter()
        .filter(|d| layout::is_identifier(d))
        .map(|d| {
            let has_current = currents.contains(&d);
            (d, has_current)
        })
        .collect();
    let sql = views_sql(dest, source, &present, format);
    let path = dest.path(&layout::views_file());
    object_store::ObjectStoreExt::put(&dest.store, &path, sql.into_bytes().into())
        .await
        .map_err(|e| SinkError::store(&path, e))?;
    Ok(())
}
