//! Current tables: for each entities dataset, exactly one row per declared key (`pid`, `id`, or several
//! columns) — the row from the latest window that has it, and within a window the row with the
//! greatest `version` (or the last one) — at `<dest>/<source>_current/<dataset>/`, in the lake's format,
//! with the window's `date` as an ordinary column. And `_cxlake/views.sql`, DuckDB views over
//! the history and current tables (`duckdb -init <dest>/_cxlake/views.sql`). Events datasets
//! (a key appears once) get no materialised copy: their `_current` view deduplicates at query time.
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
use arrow::row::{RowConverter, SortField};
use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use serde::{Deserialize, Serialize};

use crate::schema::{DatasetKind, DatasetSchema, SchemaRegistry};
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
    only: Option<&[String]>,
) -> Result<impl futures::Stream<Item = Result<RecordBatch, SinkError>>, SinkError> {
    let path = dest.path(relative);
    let parquet_error = |source| SinkError::Parquet { path: relative.to_string(), source };
    let reader = StoreFileReader::open(dest, path).await?;
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(parquet_error)?;
    if let Some(columns) = only {
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().map(String::as_str));
        builder = builder.with_projection(mask);
    }
    let stream = builder.with_batch_size(8192).build().map_err(parquet_error)?;
    let relative = relative.to_string();
    Ok(stream.map_err(move |source| SinkError::Parquet { path: relative.clone(), source }))
}

/// A 128-bit fingerprint of a key's bytes: the set holds these instead of the keys themselves.
fn key_hash(key: &[u8]) -> u128 {
    // SipHash with fixed keys: deterministic, and 128 bits make a collision between two of even
    // billions of keys vanishingly unlikely (~n²/2¹²⁹).
    let mut low = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut low);
    let mut high = std::collections::hash_map::DefaultHasher::new();
    (key, 0x9e37_79b9_u32).hash(&mut high);
    (u128::from(high.finish()) << 64) | u128::from(low.finish())
}

/// Reads a batch of key (and version) columns into per-row key hashes and versions. A key of
/// any declared type, one column or several, is encoded by Arrow's row format, whose bytes are
/// equal exactly when the values are; a row with a null in its key has no key and is not kept.
struct KeyReader {
    converter: RowConverter,
}

impl KeyReader {
    fn new(schema: &DatasetSchema) -> Result<KeyReader, SinkError> {
        let arrow = schema.arrow_schema();
        let fields = schema
            .key
            .iter()
            .map(|name| {
                let field = arrow.field_with_name(name).expect("key columns are declared (checked at load)");
                SortField::new(field.data_type().clone())
            })
            .collect();
        let converter = RowConverter::new(fields)
            .map_err(|e| SinkError::Parquet { path: schema.qualified_name(), source: e.into() })?;
        Ok(KeyReader { converter })
    }

    /// Appends one (hash, version) per row of `batch`, whose columns are the key columns and
    /// then, if declared, the version column (in the file's column order: located by name).
    fn read(
        &self,
        schema: &DatasetSchema,
        batch: &RecordBatch,
        out: &mut Vec<Option<(u128, Option<OrderedVersion>)>>,
        file: &str,
    ) -> Result<(), SinkError> {
        let error =
            |e: arrow::error::ArrowError| SinkError::Parquet { path: file.to_string(), source: e.into() };
        let column = |name: &str| {
            batch.column_by_name(name).cloned().ok_or_else(|| SinkError::CorruptState {
                path: file.to_string(),
                message: format!("column `{name}` is missing from the data file"),
            })
        };
        let keys: Vec<ArrayRef> = schema.key.iter().map(|k| column(k)).collect::<Result<_, _>>()?;
        let versions = match &schema.version {
            Some(v) => Some(version_values(&column(v)?).map_err(error)?),
            None => None,
        };
        let rows = self.converter.convert_columns(&keys).map_err(error)?;
        for i in 0..batch.num_rows() {
            if keys.iter().any(|k| k.is_null(i)) {
                out.push(None);
                continue;
            }
            let version = versions.as_ref().map(|v| v[i]);
            out.push(Some((key_hash(rows.row(i).as_ref()), version)));
        }
        Ok(())
    }
}

/// A version value that orders like the column's type: nulls first, then by value (text by its
/// row-format bytes, which sort as the strings do).
type OrderedVersion = Option<u128>;

/// The version column as orderable numbers (Int64, timestamps, dates, floats, text prefixes).
fn version_values(column: &ArrayRef) -> Result<Vec<OrderedVersion>, arrow::error::ArrowError> {
    use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
    // Flip the sign bit so that signed order becomes unsigned order.
    let signed = |v: i64| u128::from((v as u64) ^ (1 << 63));
    let n = column.len();
    Ok(match column.data_type() {
        DataType::Int64 => {
            let a = column.as_primitive::<Int64Type>();
            (0..n).map(|i| a.is_valid(i).then(|| signed(a.value(i)))).collect()
        }
        DataType::Timestamp(_, _) => {
            let a = column.as_primitive::<TimestampMicrosecondType>();
            (0..n).map(|i| a.is_valid(i).then(|| signed(a.value(i)))).collect()
        }
        DataType::Date32 => {
            let a = column.as_primitive::<Date32Type>();
            (0..n).map(|i| a.is_valid(i).then(|| signed(i64::from(a.value(i))))).collect()
        }
        DataType::Float64 => {
            let a = column.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| {
                    a.is_valid(i).then(|| {
                        let bits = a.value(i).to_bits();
                        // IEEE total order as unsigned integers.
                        u128::from(if bits >> 63 == 1 { !bits } else { bits | (1 << 63) })
                    })
                })
                .collect()
        }
        DataType::Utf8 => {
            let a = column.as_string::<i32>();
            (0..n)
                .map(|i| {
                    a.is_valid(i).then(|| {
                        // The first 16 bytes, big-endian: ties beyond them fall back to row order.
                        let mut prefix = [0u8; 16];
                        let bytes = a.value(i).as_bytes();
                        let len = bytes.len().min(16);
                        prefix[..len].copy_from_slice(&bytes[..len]);
                        u128::from_be_bytes(prefix)
                    })
                })
                .collect()
        }
        other => {
            return Err(arrow::error::ArrowError::InvalidArgumentError(format!(
                "version column of type {other} cannot be ordered"
            )))
        }
    })
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
    let keys = KeyReader::new(schema)?;
    let mut projection = schema.key.clone();
    projection.extend(schema.version.iter().filter(|v| !schema.key.contains(v)).cloned());

    // Pass 1: newest window first. Within a window the row with the greatest version wins (or,
    // without a version column, the last row of the last file).
    let mut seen: HashSet<u128> = HashSet::new();
    let mut keep: Vec<(NaiveDate, String, BooleanBuffer)> = Vec::new();
    let mut history_rows = 0u64;
    for partition in &partitions {
        let mut per_file = Vec::with_capacity(partition.files.len());
        for file in &partition.files {
            let mut rows = Vec::new();
            let mut batches = std::pin::pin!(open_parquet(dest, file, Some(&projection)).await?);
            while let Some(batch) = batches.try_next().await? {
                keys.read(schema, &batch, &mut rows, file)?;
            }
            history_rows += rows.len() as u64;
            per_file.push(rows);
        }
        // The winner of each key within this window: (file, row), scanning newest-last order
        // backwards so that on equal versions the later row wins.
        let mut winners: std::collections::HashMap<u128, (Option<OrderedVersion>, usize, usize)> =
            std::collections::HashMap::new();
        for (f, rows) in per_file.iter().enumerate().rev() {
            for (r, row) in rows.iter().enumerate().rev() {
                let Some((hash, version)) = row else { continue };
                if seen.contains(hash) {
                    continue;
                }
                match winners.get(hash) {
                    Some((best, _, _)) if *version <= *best => {}
                    _ => {
                        winners.insert(*hash, (*version, f, r));
                    }
                }
            }
        }
        let mut masks: Vec<BooleanBufferBuilder> = per_file
            .iter()
            .map(|rows| {
                let mut mask = BooleanBufferBuilder::new(rows.len());
                mask.append_n(rows.len(), false);
                mask
            })
            .collect();
        for (hash, (_, f, r)) in winners {
            masks[f].set_bit(r, true);
            seen.insert(hash);
        }
        for (file, mut mask) in partition.files.iter().zip(masks).rev() {
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

/// What a table's `_current` view reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentView {
    /// No current view (a dataset whose schema is not known here).
    None,
    /// The materialised current table (entities).
    Table,
    /// The history, deduplicated at query time (events): the newest window's row of each key.
    Dedup { key: Vec<String>, version: Option<String> },
}

/// One table the views file covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewTable {
    pub source: String,
    pub dataset: String,
    pub format: OutputFormat,
    pub current: CurrentView,
}

fn sql_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The DuckDB views over every dataset of every source that has a history:
/// `<source>_<dataset>` and `<source>_<dataset>_current`.
pub fn views_sql(dest: &Destination, tables: &[ViewTable]) -> String {
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
    if tables.iter().any(|t| t.format == OutputFormat::Delta) {
        sql.push_str("-- Delta tables need the delta extension (INSTALL delta once, online).\nLOAD delta;\n");
    }
    for table in tables {
        let (source, dataset) = (&table.source, &table.dataset);
        let history = location(dest, &layout::dataset_dir(source, dataset));
        let current = location(dest, &layout::current_dir(source, dataset));
        let (history_scan, current_scan) = match table.format {
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
        match &table.current {
            CurrentView::None => {}
            CurrentView::Table => sql.push_str(&format!(
                "CREATE OR REPLACE VIEW {source}_{dataset}_current AS SELECT * FROM {current_scan};\n"
            )),
            CurrentView::Dedup { key, version } => {
                let partition: Vec<String> = key.iter().map(|k| sql_identifier(k)).collect();
                let mut order = vec!["date DESC".to_string()];
                if let Some(version) = version {
                    order.push(format!("{} DESC NULLS LAST", sql_identifier(version)));
                }
                sql.push_str(&format!(
                    "CREATE OR REPLACE VIEW {source}_{dataset}_current AS SELECT * FROM {source}_{dataset} \
                     QUALIFY row_number() OVER (PARTITION BY {} ORDER BY {}) = 1;\n",
                    partition.join(", "),
                    order.join(", ")
                ));
            }
        }
    }
    sql
}

/// Refreshes the current tables of `datasets` of one source: entities get their materialised
/// table rebuilt; events have none (a stale one, from a lake written before datasets had kinds,
/// is removed). The views file is the caller's to rewrite, once, with [`write_views`].
pub async fn refresh_tables(
    dest: &Destination,
    source: &str,
    datasets: &[Arc<DatasetSchema>],
    format: OutputFormat,
    run_id: &str,
) -> Result<Vec<CurrentReport>, SinkError> {
    let mut reports = Vec::new();
    for schema in datasets {
        match schema.kind {
            DatasetKind::Entities => {
                if let Some(report) =
                    refresh_dataset(dest, source, schema, format, run_id, PartWriterConfig::default()).await?
                {
                    tracing::info!(dataset = %schema.dataset, rows = report.rows, history_rows = report.history_rows, "Current table refreshed");
                    reports.push(report);
                }
            }
            DatasetKind::Events => {
                let relative = layout::current_dir(source, &schema.dataset);
                if commit::delete_dir(dest, &relative).await? > 0 {
                    tracing::info!(dataset = %schema.dataset, "Removed the materialised current table of an events dataset; its _current view deduplicates at query time");
                }
                if let Some(dir) = &dest.local_dir {
                    let _ = std::fs::remove_dir_all(dir.join(&relative));
                }
            }
        }
    }
    Ok(reports)
}

/// The tables of the whole lake: every source with window records, every dataset directory
/// of it that holds data, in the format found there, with the current view its schema calls for.
pub async fn lake_tables(dest: &Destination, schemas: &SchemaRegistry) -> Result<Vec<ViewTable>, SinkError> {
    let mut tables = Vec::new();
    for source in StateStore::new(dest.clone()).sources().await? {
        let currents = commit::child_dirs(dest, &format!("{source}_current")).await?;
        for dataset in commit::child_dirs(dest, &source).await? {
            if !layout::is_identifier(&dataset) {
                continue;
            }
            let Some(format) = delta::existing_format(dest, &layout::dataset_dir(&source, &dataset)).await?
            else {
                continue;
            };
            let current = if currents.contains(&dataset) {
                CurrentView::Table
            } else {
                match schemas.dataset(&source, &dataset) {
                    Ok(schema) if schema.kind == DatasetKind::Events => {
                        CurrentView::Dedup { key: schema.key.clone(), version: schema.version.clone() }
                    }
                    _ => CurrentView::None,
                }
            };
            tables.push(ViewTable { source: source.clone(), dataset, format, current });
        }
    }
    Ok(tables)
}

/// Writes `_cxlake/views.sql` for every table in the lake, whichever source wrote it.
pub async fn write_views(dest: &Destination, schemas: &SchemaRegistry) -> Result<(), SinkError> {
    let sql = views_sql(dest, &lake_tables(dest, schemas).await?);
    let path = dest.path(&layout::views_file());
    object_store::ObjectStoreExt::put(&dest.store, &path, sql.into_bytes().into())
        .await
        .map_err(|e| SinkError::store(&path, e))?;
    Ok(())
}
