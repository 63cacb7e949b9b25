//! Encoding a stream of batches into Parquet row groups on every CPU worker, in order.
//!
//! A row group's boundaries are decided from the data alone — at most `row_group_rows` rows and
//! about `row_group_bytes` of Arrow data — so a row group is known to be complete the moment its
//! last batch arrives, without waiting for the encoder's verdict. That lets row group *k + 1*
//! start encoding on one worker while row group *k* is still compressing on another: each row
//! group is a [`Lane`] (its column writers, fed batch by batch on a [`Strand`]), and finished
//! lanes are handed back strictly in order. The output is the same bytes whatever the number of
//! workers (DuckDB's `COPY … TO` parallelises Parquet the same way, by row group).
//!
//! Memory is bounded twice: Arrow data queued for encoding (a semaphore of KiB, released as
//! each batch is encoded) and lanes in flight (as many as workers, at least two; the oldest is
//! awaited before a new one opens).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use tokio::sync::{oneshot, Semaphore};

use crate::cores::{self, Strand};

/// A finished row group: its column chunks, in schema order, and its row count.
pub struct EncodedRowGroup {
    pub chunks: Vec<ArrowColumnChunk>,
    pub rows: usize,
}

/// One row group being encoded.
struct Lane {
    strand: Strand,
    writers: Arc<Mutex<LaneState>>,
    rows: usize,
    bytes: usize,
    closed: Option<oneshot::Receiver<Result<Vec<ArrowColumnChunk>>>>,
}

struct LaneState {
    writers: Vec<ArrowColumnWriter>,
    error: Option<ParquetError>,
}

/// Cuts batches into row groups and encodes them on the workers.
pub struct RowGroupEncoder {
    schema: SchemaRef,
    factory: ArrowRowGroupWriterFactory,
    row_group_rows: usize,
    row_group_bytes: usize,
    max_lanes: usize,
    /// Arrow data waiting for an encoder, across the lanes of one writer, in KiB.
    queued: Arc<Semaphore>,
    max_queued_kib: usize,
    /// Oldest first; only the last one may still take batches.
    lanes: VecDeque<Lane>,
    /// Row groups opened so far (the index parquet's column writers are created with).
    opened: usize,
}

impl RowGroupEncoder {
    pub fn new(
        schema: SchemaRef,
        properties: WriterProperties,
        row_group_rows: usize,
        row_group_bytes: usize,
        queued_bytes: usize,
    ) -> Result<RowGroupEncoder> {
        // The factory is what `ArrowWriter` derives from the schema and properties; the file it
        // was made for is discarded (each part file has its own `SerializedFileWriter`).
        let (_, factory) =
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))?.into_serialized_writer()?;
        Ok(RowGroupEncoder {
            schema,
            factory,
            row_group_rows: row_group_rows.max(1),
            row_group_bytes: row_group_bytes.max(1),
            max_lanes: cores::threads().max(2),
            queued: Arc::new(Semaphore::new((queued_bytes >> 10).max(1))),
            max_queued_kib: (queued_bytes >> 10).max(1),
            lanes: VecDeque::new(),
            opened: 0,
        })
    }

    /// Queues `batch` for encoding. Returns the row groups that finished, in order (possibly
    /// none), once there is room for more.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<Vec<EncodedRowGroup>> {
        let mut finished = Vec::new();
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.lanes.back().is_none_or(|lane| lane.closed.is_some()) {
                while self.lanes.len() >= self.max_lanes {
                    finished.push(self.take_oldest().await?);
                }
                self.open_lane()?;
            }
            let lane = self.lanes.back_mut().expect("opened above");
            let take = (self.row_group_rows - lane.rows).min(batch.num_rows() - offset);
            let slice = batch.slice(offset, take);
            offset += take;
            let bytes: usize =
                slice.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).sum();
            lane.rows += take;
            lane.bytes += bytes;
            // A batch larger than the whole queue waits for it to empty.
            let kib = (bytes >> 10).clamp(1, self.max_queued_kib) as u32;
            let permit =
                self.queued.clone().acquire_many_owned(kib).await.expect("the semaphore is never closed");
            let (state, schema) = (lane.writers.clone(), self.schema.clone());
            lane.strand.submit(move || {
                let mut state = state.lock().expect("lane lock");
                if state.error.is_none() {
                    if let Err(e) = encode(&mut state.writers, &schema, &slice) {
                        state.error = Some(e);
                    }
                }
                drop(permit);
            });
            if lane.rows >= self.row_group_rows || lane.bytes >= self.row_group_bytes {
                self.close_last();
            }
        }
        // Hand back whatever already finished, so the file grows while encoding goes on.
        while let Some(rx) = self.lanes.front_mut().and_then(|lane| lane.closed.as_mut()) {
            match rx.try_recv() {
                Ok(result) => {
                    let lane = self.lanes.pop_front().expect("front exists");
                    finished.push(EncodedRowGroup { chunks: result?, rows: lane.rows });
                }
                Err(_) => break,
            }
        }
        Ok(finished)
    }

    /// Ends the current row group (a file boundary follows) and returns every row group still
    /// being encoded, in order.
    pub async fn flush(&mut self) -> Result<Vec<EncodedRowGroup>> {
        self.close_last();
        let mut finished = Vec::with_capacity(self.lanes.len());
        while !self.lanes.is_empty() {
            finished.push(self.take_oldest().await?);
        }
        Ok(finished)
    }

    fn open_lane(&mut self) -> Result<()> {
        let writers = self.factory.create_column_writers(self.opened)?;
        self.opened += 1;
        self.lanes.push_back(Lane {
            strand: Strand::new(),
            writers: Arc::new(Mutex::new(LaneState { writers, error: None })),
            rows: 0,
            bytes: 0,
            closed: None,
        });
        Ok(())
    }

    /// No more batches for the newest lane: its writers close after the batches queued before.
    fn close_last(&mut self) {
        let Some(lane) = self.lanes.back_mut().filter(|lane| lane.closed.is_none()) else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        let state = lane.writers.clone();
        lane.strand.submit(move || {
            let mut state = state.lock().expect("lane lock");
            let result = match state.error.take() {
                Some(e) => Err(e),
                None => {
                    std::mem::take(&mut state.writers).into_iter().map(ArrowColumnWriter::close).collect()
                }
            };
            let _ = tx.send(result);
        });
        lane.closed = Some(rx);
    }

    async fn take_oldest(&mut self) -> Result<EncodedRowGroup> {
        if self.lanes.len() == 1 {
            self.close_last();
        }
        let mut lane = self.lanes.pop_front().expect("a lane to take");
        let rx = lane.closed.take().expect("only closed lanes are taken");
        let chunks = rx.await.map_err(|_| ParquetError::General("a row group encoder stopped".into()))??;
        Ok(EncodedRowGroup { chunks, rows: lane.rows })
    }
}

/// Encodes one batch into a row group's column writers (one per leaf column, schema order).
fn encode(writers: &mut [ArrowColumnWriter], schema: &SchemaRef, batch: &RecordBatch) -> Result<()> {
    let mut writers = writers.iter_mut();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for leaf in compute_leaves(field, column)? {
            writers
                .next()
                .ok_or_else(|| ParquetError::General("more leaves than column writers".into()))?
                .write(&leaf)?;
        }
    }
    Ok(())
}
