//! Writing a stream of `RecordBatch`es as ZSTD Parquet part files.
//!
//! One [`PartWriter`] writes one partition directory: `part-00000.parquet`, `part-00001.parquet`…
//! rolling to a new file past [`PartWriterConfig::target_file_bytes`]. Row groups are closed by
//! size (rows or bytes, whichever first) so that memory stays flat and scans get large, well
//! compressed row groups. Each file is hashed (SHA-256) and sized as it streams out, for the
//! bookkeeping record. Following arrow-rs, the writer is an `AsyncArrowWriter` over an
//! object-store `BufWriter` (single put or multipart upload, as the size demands).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use sha2::{Digest, Sha256};

use super::layout;
use super::row_groups::{EncodedRowGroup, RowGroupEncoder};
use super::{Destination, SinkError};
use crate::schema::load::{self, LoadStamp};
use crate::schema::DatasetSchema;

/// One Parquet file as written, for the window's bookkeeping record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenFile {
    /// Path relative to the lake root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Encoded bytes a column buffers before it compresses a page. Every column of a row group holds
/// one such page while it fills, so with 80 columns (engagements) parquet's default of 1 MiB is
/// 80 MiB of buffers; half of it costs no measurable size with ZSTD (see BENCHMARKS.md).
const DATA_PAGE_BYTES: usize = 512 << 10;

#[derive(Debug, Clone, Copy)]
pub struct PartWriterConfig {
    /// Start a new part file once the current one has this many bytes.
    pub target_file_bytes: usize,
    /// Close a row group at this many rows…
    pub row_group_rows: usize,
    /// …or at this many bytes of Arrow data, whichever comes first (decided from the data alone,
    /// so that row groups can be encoded in parallel: see [`super::row_groups`]).
    pub row_group_bytes: usize,
    /// Arrow data waiting for the encoders at most (the writer's other bound on memory).
    pub queued_bytes: usize,
    pub zstd_level: i32,
    /// Bytes buffered before a file's upload turns multipart, and the size of each part.
    pub upload_chunk_bytes: usize,
    /// Parts of one file uploading at once (each holds its bytes until the store has them).
    pub upload_concurrency: usize,
}

impl PartWriterConfig {
    /// Bytes buffered per file before its upload turns multipart (S3 wants at least 5 MiB).
    pub const DEFAULT_UPLOAD_CHUNK: usize = 10 << 20;
}

impl Default for PartWriterConfig {
    fn default() -> Self {
        PartWriterConfig {
            target_file_bytes: 256 << 20,
            row_group_rows: 1 << 20,
            row_group_bytes: 64 << 20,
            queued_bytes: 32 << 20,
            zstd_level: 3,
            upload_chunk_bytes: PartWriterConfig::DEFAULT_UPLOAD_CHUNK,
            upload_concurrency: 8,
        }
    }
}

impl PartWriterConfig {
    /// These settings shrunk to fit a conversion allowed `memory` bytes in all. A writer holds
    /// up to two row groups being encoded (their column chunks, compressed, and each column's
    /// open page and dictionary) plus the queue in front of them, and its upload's parts in
    /// flight (an eighth of the allowance, at least one). Measured with the defaults (64 MiB row
    /// groups, 32 MiB queue), a whole conversion's heap peaks at 110–146 MiB and its resident
    /// set at 175–262 MiB; a row group gets a quarter of the allowance and the queue an eighth,
    /// which gives a full reservation (224 MiB) 56 MiB row groups and a 28 MiB queue. Smaller row groups cost a
    /// little size (dictionaries start over in each), never correctness.
    pub fn within(self, memory: usize) -> PartWriterConfig {
        PartWriterConfig {
            row_group_bytes: self.row_group_bytes.min(memory / 4).max(4 << 20),
            queued_bytes: self.queued_bytes.min(memory / 8).max(1 << 20),
            upload_concurrency: self
                .upload_concurrency
                .min(memory / 8 / self.upload_chunk_bytes.max(1))
                .max(1),
            ..self
        }
    }

    /// The one place where Parquet writer properties are decided. Columns in `plain_columns`
    /// skip dictionary encoding: for values unique per row a dictionary only costs CPU and memory
    /// until it overflows its page and falls back to plain anyway.
    pub fn writer_properties<'a>(
        &self,
        plain_columns: impl IntoIterator<Item = &'a str>,
    ) -> WriterProperties {
        let mut builder = WriterProperties::builder();
        for column in plain_columns {
            builder = builder.set_column_dictionary_enabled(column.into(), false);
        }
        builder
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.zstd_level).unwrap_or_default()))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_data_page_size_limit(DATA_PAGE_BYTES)
            .set_created_by(format!("cxlake version {}", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

#[derive(Default)]
struct Digested {
    hasher: Sha256,
    bytes: u64,
}

/// Passes bytes to the object store while hashing and counting them.
struct HashingWriter {
    inner: BufWriter,
    digest: Arc<Mutex<Digested>>,
}

impl AsyncFileWriter for HashingWriter {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        {
            let mut digest = self.digest.lock().expect("digest lock poisoned");
            digest.hasher.update(&bs);
            digest.bytes += bs.len() as u64;
        }
        // `put` hands the bytes on as they are; `write` would copy them into upload buffers.
        Box::pin(async move {
            self.inner.put(bs).await.map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        })
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        AsyncFileWriter::complete(&mut self.inner)
    }
}

/// A file's bytes as the Parquet writer produces them, taken out after each row group.
#[derive(Clone, Default)]
struct Spool(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("spool lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Spool {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().expect("spool lock")))
    }

    /// Makes room for a row group before it is appended: growing by doubling would copy what the
    /// spool holds into fresh pages each time.
    fn reserve(&self, bytes: usize) {
        self.0.lock().expect("spool lock").reserve(bytes);
    }
}

struct OpenFile {
    writer: SerializedFileWriter<Spool>,
    spool: Spool,
    out: HashingWriter,
    path: Path,
    rows: u64,
    digest: Arc<Mutex<Digested>>,
}

impl OpenFile {
    /// Sends what the writer produced so far on to the store.
    async fn drain(&mut self) -> parquet::errors::Result<()> {
        let bytes = self.spool.take();
        if bytes.is_empty() {
            return Ok(());
        }
        self.out.write(bytes).await
    }
}

/// Writes one partition directory's worth of part files.
pub struct PartWriter {
    dest: Destination,
    dir: String,
    schema: SchemaRef,
    config: PartWriterConfig,
    properties: WriterProperties,
    encoder: Option<RowGroupEncoder>,
    current: Option<OpenFile>,
    written: Vec<WrittenFile>,
    /// Added to every batch written: the load columns of a dataset's files.
    stamp: Option<LoadStamp>,
}

impl PartWriter {
    /// `dir` is relative to the lake root, e.g. a staging directory.
    pub fn new(dest: Destination, dir: String, schema: SchemaRef, config: PartWriterConfig) -> PartWriter {
        let properties = config.writer_properties([]);
        PartWriter::with_properties(dest, dir, schema, config, properties)
    }

    /// A writer of a declared dataset's files ([`load::stored_schema`]): it is given batches of
    /// the declared columns and adds `stamp`'s load columns; the columns' encoding hints apply.
    pub fn for_dataset(
        dest: Destination,
        dir: String,
        dataset: &DatasetSchema,
        stamp: LoadStamp,
        config: PartWriterConfig,
    ) -> PartWriter {
        let plain = dataset.columns.iter().filter(|c| !c.dictionary).map(|c| c.name.as_str());
        let mut writer = PartWriter::with_columns(dest, dir, load::stored_schema(dataset), plain, config);
        writer.stamp = Some(stamp);
        writer
    }

    /// A writer for `schema` whose `plain_columns` skip dictionary encoding.
    pub fn with_columns<'a>(
        dest: Destination,
        dir: String,
        schema: SchemaRef,
        plain_columns: impl IntoIterator<Item = &'a str>,
        config: PartWriterConfig,
    ) -> PartWriter {
        let properties = config.writer_properties(plain_columns);
        PartWriter::with_properties(dest, dir, schema, config, properties)
    }

    fn with_properties(
        dest: Destination,
        dir: String,
        schema: SchemaRef,
        config: PartWriterConfig,
        properties: WriterProperties,
    ) -> PartWriter {
        PartWriter {
            properties,
            dest,
            dir,
            schema,
            config,
            encoder: None,
            current: None,
            written: Vec::new(),
            stamp: None,
        }
    }

    fn parquet_error(&self, source: parquet::errors::ParquetError) -> SinkError {
        let path = match &self.current {
            Some(file) => file.path.to_string(),
            None => self
                .dest
                .path(&format!("{}/{}", self.dir, layout::part_file_name(self.written.len())))
                .to_string(),
        };
        SinkError::Parquet { path, source }
    }

    /// Queues `batch`; row groups are encoded on the CPU workers and appended in order.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if let Some(stamp) = &self.stamp {
            let stamped = stamp.stamp(batch, &self.schema).map_err(|e| self.parquet_error(e.into()))?;
            return self.write_stamped(&stamped).await;
        }
        self.write_stamped(batch).await
    }

    async fn write_stamped(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if self.encoder.is_none() {
            // Decided once, from the first batch: every file and row group of the writer agree.
            self.properties = super::dictionary::plain_where_distinct(self.properties.clone(), batch);
            let encoder = RowGroupEncoder::new(
                self.schema.clone(),
                self.properties.clone(),
                self.config.row_group_rows,
                self.config.row_group_bytes,
                self.config.queued_bytes,
            )
            .map_err(|e| self.parquet_error(e))?;
            self.encoder = Some(encoder);
        }
        let encoder = self.encoder.as_mut().expect("created above");
        let finished = match encoder.write(batch).await {
            Ok(finished) => finished,
            Err(e) => return Err(self.parquet_error(e)),
        };
        self.append(finished).await
    }

    /// Appends finished row groups to the open file, rolling to the next file past the target size.
    async fn append(&mut self, row_groups: Vec<EncodedRowGroup>) -> Result<(), SinkError> {
        for row_group in row_groups {
            if self.current.is_none() {
                self.current = Some(self.open_next()?);
            }
            let file = self.current.as_mut().expect("opened above");
            let parquet_error = |source| SinkError::Parquet { path: file.path.to_string(), source };
            let compressed: i64 = row_group.chunks.iter().map(|c| c.close().metadata.compressed_size()).sum();
            file.spool.reserve(usize::try_from(compressed).unwrap_or(0));
            let appended = (|| {
                let mut group = file.writer.next_row_group()?;
                for chunk in row_group.chunks {
                    chunk.append_to_row_group(&mut group)?;
                }
                group.close().map(|_| ())
            })();
            appended.map_err(parquet_error)?;
            file.rows += row_group.rows as u64;
            file.drain()
                .await
                .map_err(|source| SinkError::Parquet { path: file.path.to_string(), source })?;
            if file.writer.bytes_written() >= self.config.target_file_bytes {
                self.close_current().await?;
            }
        }
        Ok(())
    }

    /// Closes the current file (if any), so the next rows start a new one.
    pub async fn roll(&mut self) -> Result<(), SinkError> {
        if let Some(encoder) = self.encoder.as_mut() {
            let finished = match encoder.flush().await {
                Ok(finished) => finished,
                Err(e) => return Err(self.parquet_error(e)),
            };
            self.append(finished).await?;
        }
        self.close_current().await
    }

    /// Closes the last file and returns every file written. No rows means no files.
    pub async fn finish(mut self) -> Result<Vec<WrittenFile>, SinkError> {
        self.roll().await?;
        Ok(self.written)
    }

    /// Abandons the current file, cancelling its upload, and returns what was completed before.
    pub async fn abort(mut self) -> Vec<WrittenFile> {
        if let Some(mut file) = self.current.take() {
            let _ = file.out.inner.abort().await;
        }
        self.written
    }

    fn open_next(&self) -> Result<OpenFile, SinkError> {
        let name = layout::part_file_name(self.written.len());
        let path = self.dest.path(&format!("{}/{name}", self.dir));
        let digest = Arc::new(Mutex::new(Digested::default()));
        let inner =
            BufWriter::with_capacity(self.dest.store.clone(), path.clone(), self.config.upload_chunk_bytes)
                .with_max_concurrency(self.config.upload_concurrency);
        let out = HashingWriter { inner, digest: digest.clone() };
        let spool = Spool::default();
        // `ArrowWriter` writes the header and the Arrow schema's metadata; row groups are
        // appended to the lower-level writer it hands over.
        let (writer, _) =
            ArrowWriter::try_new(spool.clone(), self.schema.clone(), Some(self.properties.clone()))
                .and_then(ArrowWriter::into_serialized_writer)
                .map_err(|source| SinkError::Parquet { path: path.to_string(), source })?;
        Ok(OpenFile { writer, spool, out, path, rows: 0, digest })
    }

    async fn close_current(&mut self) -> Result<(), SinkError> {
        let Some(mut file) = self.current.take() else {
            return Ok(());
        };
        let finished = async {
            file.writer.finish()?;
            file.drain().await?;
            file.out.complete().await
        };
        if let Err(source) = finished.await {
            // No abort here: after a failed completion object_store's BufWriter may already be
            // shut down (aborting it then panics). An upload left open under staging is aborted
            // by the next run's sweep.
            return Err(SinkError::Parquet { path: file.path.to_string(), source });
        }
        let digest = std::mem::take(&mut *file.digest.lock().expect("digest lock poisoned"));
        self.written.push(WrittenFile {
            path: self.dest.relative(&file.path),
            rows: file.rows,
            bytes: digest.bytes,
            sha256: hex::encode(digest.hasher.finalize()),
        });
        Ok(())
    }
}

/// Reads a Parquet file from the object store by ranges (footer first, then the column chunks
/// asked for), so a reader holds one row group's columns, never the whole file.
pub struct StoreFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    /// Bytes fetched so far, shared with whoever measures a job's reads.
    bytes_read: Arc<AtomicU64>,
}

impl StoreFileReader {
    pub async fn open(dest: &Destination, path: Path) -> Result<StoreFileReader, SinkError> {
        let meta = dest.store.head(&path).await.map_err(|e| SinkError::store(&path, e))?;
        Ok(StoreFileReader {
            store: dest.store.clone(),
            path,
            size: meta.size,
            bytes_read: Default::default(),
        })
    }

    /// Adds every byte this reader fetches to `counter`.
    pub fn counting(mut self, counter: Arc<AtomicU64>) -> StoreFileReader {
        self.bytes_read = counter;
        self
    }
}

/// Streams the batches of a Parquet file in the lake: every column, or `only` these; every byte
/// fetched is added to `counter`.
pub async fn read_batches(
    dest: &Destination,
    relative: &str,
    only: Option<&[String]>,
    counter: Arc<AtomicU64>,
) -> Result<impl futures::Stream<Item = Result<RecordBatch, SinkError>> + use<>, SinkError> {
    let path = dest.path(relative);
    let parquet_error = |source| SinkError::Parquet { path: relative.to_string(), source };
    let reader = StoreFileReader::open(dest, path).await?.counting(counter);
    let mut builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(parquet_error)?;
    if let Some(columns) = only {
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().map(String::as_str));
        builder = builder.with_projection(mask);
    }
    let stream = builder.with_batch_size(8192).build().map_err(parquet_error)?;
    let relative = relative.to_string();
    Ok(futures::TryStreamExt::map_err(stream, move |source| SinkError::Parquet {
        path: relative.clone(),
        source,
    }))
}

impl AsyncFileReader for StoreFileReader {
    fn get_bytes(&mut self, range: std::ops::Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        Box::pin(async move {
            let bytes = self
                .store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
            self.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok(bytes)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new().load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaRegistry;
    use parquet::schema::types::ColumnPath;

    #[test]
    fn the_writer_shrinks_to_its_reservation() {
        let defaults = PartWriterConfig::default();
        let full = defaults.within(crate::budget::FULL_CONVERSION as usize);
        assert_eq!(
            (full.row_group_bytes, full.queued_bytes, full.upload_concurrency),
            (56 << 20, 28 << 20, 2)
        );
        let large = defaults.within(1 << 30);
        assert_eq!(
            (large.row_group_bytes, large.queued_bytes, large.upload_concurrency),
            (64 << 20, 32 << 20, 8)
        );
        let small = defaults.within(64 << 20);
        assert_eq!(
            (small.row_group_bytes, small.queued_bytes, small.upload_concurrency),
            (16 << 20, 8 << 20, 1)
        );
        let tiny = defaults.within(1 << 20);
        assert_eq!((tiny.row_group_bytes, tiny.queued_bytes), (4 << 20, 1 << 20), "floors");
    }

    #[test]
    fn declared_unique_columns_skip_dictionary_encoding() {
        let turn = SchemaRegistry::embedded().unwrap().get("saltedcx.turn").unwrap();
        let plain: Vec<&str> =
            turn.columns.iter().filter(|c| !c.dictionary).map(|c| c.name.as_str()).collect();
        assert_eq!(plain, ["pid", "engagement_pid", "response_to", "external_id"]);
        let properties = PartWriterConfig::default().writer_properties(plain);
        assert!(!properties.dictionary_enabled(&ColumnPath::from("pid")));
        assert!(
            properties.dictionary_enabled(&ColumnPath::from("content")),
            "repetitive text keeps its dictionary"
        );
        assert_eq!(
            properties.compression(&ColumnPath::from("content")),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
    }
}
