//! Decoding one file on every CPU worker, with the result of decoding it on one.
//!
//! A format splits its input into chunks of whole records on the reading thread ([`ChunkReader`]:
//! the JSON array scanner's elements, CSV records cut where quote parity says a line ends), and
//! a [`ChunkDecoder`] turns one chunk into one batch. Chunks are dealt to the workers of
//! [`crate::cores`] as they are read; batches, rejects, counts and drift come back in chunk order,
//! so rows, line numbers and the first failure are exactly what one thread would give. The same
//! chunking is used whatever the number of workers, which is what makes the output identical.
//!
//! At most `workers + 1` chunks are in flight: memory is a few chunks, whatever the file.

use std::collections::VecDeque;
use std::sync::mpsc;

use super::{DecodeError, DecodeStats, DecodedBatch, Drift};
use crate::cores;

/// Splits a file into chunks of whole records, in order, on the reading thread.
pub trait ChunkReader {
    type Chunk: Send + 'static;
    fn next_chunk(&mut self) -> Result<Option<Self::Chunk>, DecodeError>;
    /// A decoded chunk handed back, for its buffers to be filled again.
    fn recycle(&mut self, chunk: Self::Chunk);
}

/// Decodes one chunk into one batch. Decoders are reused, one per chunk in flight.
pub trait ChunkDecoder: Send + 'static {
    type Chunk: Send + 'static;
    fn decode(&mut self, chunk: &Self::Chunk) -> Result<ChunkOutcome, DecodeError>;
}

/// One chunk's result.
pub struct ChunkOutcome {
    /// The chunk's rows in batches, in order (none when it had no rows at all).
    pub decoded: Vec<DecodedBatch>,
    pub stats: DecodeStats,
    pub drift: Drift,
}

type Done<D, C> = (D, C, Result<ChunkOutcome, DecodeError>);

/// Runs a reader and its decoders; yields outcomes in chunk order.
pub struct ParallelDecoder<R: ChunkReader, D: ChunkDecoder<Chunk = R::Chunk>> {
    reader: R,
    make: Box<dyn FnMut() -> D>,
    idle: Vec<D>,
    pending: VecDeque<mpsc::Receiver<Done<D, R::Chunk>>>,
    max_pending: usize,
    read_all: bool,
    /// Batches of the last chunk not yet handed out.
    queue: VecDeque<DecodedBatch>,
    /// The reader's error, returned after the chunks read before it.
    read_error: Option<DecodeError>,
    failed: bool,
}

impl<R: ChunkReader, D: ChunkDecoder<Chunk = R::Chunk>> ParallelDecoder<R, D> {
    /// `memory`: what the chunks in flight may hold at once, each costing about `chunk_cost`
    /// (its bytes and its decoded batches); at least one is always in flight.
    pub fn new(
        reader: R,
        make: impl FnMut() -> D + 'static,
        memory: Option<usize>,
        chunk_cost: usize,
    ) -> Self {
        let allowed = memory.map_or(usize::MAX, |bytes| (bytes / chunk_cost.max(1)).max(1));
        ParallelDecoder {
            reader,
            make: Box::new(make),
            idle: Vec::new(),
            pending: VecDeque::new(),
            max_pending: (cores::threads() + 1).min(allowed),
            read_all: false,
            queue: VecDeque::new(),
            read_error: None,
            failed: false,
        }
    }

    /// The next batch, in file order, with its chunk's counts and drift added to `stats` and
    /// `drift` (absent columns are the format's to decide); `None` at the end.
    pub fn next_batch(
        &mut self,
        stats: &mut DecodeStats,
        drift: &mut Drift,
    ) -> Result<Option<DecodedBatch>, DecodeError> {
        loop {
            if let Some(batch) = self.queue.pop_front() {
                return Ok(Some(batch));
            }
            let Some(outcome) = self.next_outcome()? else {
                return Ok(None);
            };
            stats.rows_read += outcome.stats.rows_read;
            stats.rows_written += outcome.stats.rows_written;
            stats.rows_rejected += outcome.stats.rows_rejected;
            drift.add_counts(&outcome.drift);
            self.queue.extend(outcome.decoded);
        }
    }

    /// The next chunk's outcome, `None` once every chunk was decoded. After an error, nothing more.
    fn next_outcome(&mut self) -> Result<Option<ChunkOutcome>, DecodeError> {
        if self.failed {
            return Ok(None);
        }
        let result = self.advance();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn advance(&mut self) -> Result<Option<ChunkOutcome>, DecodeError> {
        while !self.read_all && self.pending.len() < self.max_pending {
            match self.reader.next_chunk() {
                Ok(Some(chunk)) => {
                    let mut decoder = self.idle.pop().unwrap_or_else(&mut self.make);
                    let (tx, rx) = mpsc::sync_channel(1);
                    cores::spawn(move || {
                        let outcome = decoder.decode(&chunk);
                        let _ = tx.send((decoder, chunk, outcome));
                    });
                    self.pending.push_back(rx);
                }
                Ok(None) => self.read_all = true,
                Err(e) => {
                    self.read_all = true;
                    self.read_error = Some(e);
                }
            }
        }
        let Some(rx) = self.pending.pop_front() else {
            return match self.read_error.take() {
                Some(e) => Err(e),
                None => Ok(None),
            };
        };
        let (decoder, chunk, outcome) =
            rx.recv().map_err(|_| DecodeError::Internal("a decoding worker stopped".to_string()))?;
        self.idle.push(decoder);
        self.reader.recycle(chunk);
        outcome.map(Some)
    }

    /// Every decoder, once all chunks are done (for what they saw across chunks).
    pub fn decoders(&self) -> &[D] {
        &self.idle
    }
}
