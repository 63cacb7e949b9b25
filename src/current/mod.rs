//! Current tables: for each entities dataset, exactly one row per declared key (`pid`, `id`, or
//! several columns) — the row from the latest window that has it, and within a window the row
//! with the greatest `version` (or the last one) — at `<dest>/<source>_current/<dataset>/`, in the
//! lake's format, with the window's `date` as an ordinary column. Events datasets (a key appears
//! once) get no materialised copy: their `_current` view ([`views`]) deduplicates at query time.
//!
//! Salted CX re-exports a record in every window where it changed, and customers and agents
//! repeat in every window that references them, so the history holds many rows per key.
//!
//! **A refresh costs what changed, not what the lake holds.** The table is a set of segments
//! (the files one refresh wrote for one date) listed in a [`manifest`] with the fingerprint of
//! every window it reflects. A refresh
//! 1. compares the windows' fingerprints with the manifest's: new, rerun and deleted windows are
//!    the *changed* dates; nothing changed, nothing is read;
//! 2. reads the key and version columns of the changed windows only, and picks each key's
//!    candidate row (newest changed window, then greatest version, then last row);
//! 3. rewrites only the segments that must change: those of a changed date (their rows were
//!    replaced or deleted) and those whose key filter may hold a candidate key (the candidate
//!    may be newer than their row). Reading those segments' keys decides exactly: a candidate
//!    newer than the table's row replaces it, an older one is dropped;
//! 4. for a key whose row came from a changed window and that the new contents no longer have
//!    (a window deleted, a rerun without that record), looks back through the older windows —
//!    newest first, key columns only, stopping as soon as every such key is found;
//! 5. writes the kept rows and the winners grouped by date, one new segment per date, and swaps
//!    the rewritten segments for the new ones (one Delta commit, or renames then the manifest).
//!
//! The result equals a rebuild from the whole history (`cxlake current --full`, also what
//! happens without a usable manifest); a test compares the two. Rows are never held: a full
//! rebuild reads every window's keys, an incremental refresh the changed windows', as 45-byte
//! records held up to a quarter of the build's memory share, then spilled by hash partition to
//! temporary files and decided one partition at a time ([`spill`]); a full rebuild's answer is
//! one bit per history row, an incremental one's a 32-byte candidate per changed key, and a
//! segment's keys are read batch by batch. So the first build of a 1.75M-row window and the
//! next night's refresh of another both stay within the budget.
//!
//! Why arrow + parquet here and not Polars (from the design card): the job is "newest window
//! wins", and the windows are already sorted by their partition, so it is streaming passes with
//! no sort and no join. A Polars `sort → unique(keep=last) → sink` does the same work with a
//! sort, and would roughly double this crate's build time and binary for one function.

mod keys;
mod manifest;
mod spill;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, Date32Array};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::budget::MemoryBudget;
use crate::schema::{DatasetKind, DatasetSchema};
use crate::sink::delta::{WindowCommit, PARTITION_COLUMN};
use crate::sink::parquet::{read_batches, PartWriter, PartWriterConfig, WrittenFile};
use crate::sink::table::Table;
use crate::sink::{commit, layout, Destination, OutputFormat, SinkError};
use crate::state::StateStore;
use keys::{KeyFilter, KeyReader, KeyedRow, OrderedVersion};
pub use manifest::{duplicate_keys, table_files, DuplicateKeys};
use manifest::{Manifest, Segment};
use spill::{KeyRecord, KeySpill};
pub use views::{dedup_select, lake_tables, views_sql, write_views, CurrentView, ViewTable};

/// Left in the lake while a source's current tables lag behind its history because a refresh
/// failed: `status` shows it, and the next run refreshes them whatever it commits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RefreshFailure {
    pub run_id: String,
    pub failed_at: chrono::DateTime<Utc>,
    pub error: String,
}

/// How a refresh went about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshMode {
    /// No window changed since the last refresh: nothing read, nothing written.
    Unchanged,
    /// Only the changed windows and the affected segments were read and rewritten.
    Incremental,
    /// Rebuilt from the whole history (asked for, or no usable manifest).
    Full,
}

/// One dataset's current table after a refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentReport {
    pub dataset: String,
    /// Where the table is, relative to the lake root.
    pub path: String,
    pub mode: RefreshMode,
    /// Rows in the table: one per distinct key.
    pub rows: u64,
    pub files: usize,
    /// Windows whose contents changed since the last refresh (all of them in a full rebuild).
    pub windows_changed: usize,
    /// Key rows read from the history and from the table's segments to decide the winners.
    pub keys_read: u64,
    /// Rows written to new segments, and segments replaced by them.
    pub rows_written: u64,
    pub segments_rewritten: usize,
    /// Bytes fetched from Parquet files (history and table) and bytes of Parquet written.
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    /// Rows of the history that repeat another row's key and version within their window.
    #[serde(default)]
    pub duplicate_keys: u64,
    /// Bytes of key records a full build wrote to temporary files (its keys outgrew a quarter of
    /// its memory share).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_spilled: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl CurrentReport {
    /// One line for the run report and the `current` command.
    pub fn summary(&self) -> String {
        let how = match self.mode {
            RefreshMode::Unchanged => "unchanged".to_string(),
            mode => format!(
                "{} refresh: {} window(s) changed, {} row(s) written, {} segment(s) replaced, {:.1} MB read, {:.1} MB written, {:.2} s",
                if mode == RefreshMode::Full { "full" } else { "incremental" },
                self.windows_changed,
                self.rows_written,
                self.segments_rewritten,
                self.bytes_read as f64 / 1e6,
                self.bytes_written as f64 / 1e6,
                self.seconds
            ),
        };
        let spilled = match self.bytes_spilled {
            0 => String::new(),
            n => format!(", {:.1} MB of keys spilled to disk", n as f64 / 1e6),
        };
        let duplicates = match self.duplicate_keys {
            0 => String::new(),
            n => format!("; {n} history row(s) repeat a key and version within their window — the last in file order is kept; see `cxlake drift`"),
        };
        format!("current table {}: {} rows, one per key ({how}{spilled}){duplicates}", self.path, self.rows)
    }
}

/// One window's files of a dataset's history.
struct HistoryPartition {
    date: NaiveDate,
    /// Paths relative to the lake root, in write order.
    files: Vec<String>,
    /// Equal exactly when the window holds the same files (a rerun writes new ones).
    fingerprint: String,
}

/// The committed windows of a dataset, newest first.
async fn history(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
    format: OutputFormat,
) -> Result<Vec<HistoryPartition>, SinkError> {
    let table = Table::history(dest, source, schema, format);
    let records = match table.indexed_by_records() {
        true => StateStore::new(dest.clone()).load_windows(source).await?,
        false => Vec::new(),
    };
    let mut partitions: Vec<HistoryPartition> = table
        .partitions(&records)
        .await?
        .into_iter()
        .map(|p| HistoryPartition {
            date: p.date,
            fingerprint: manifest::window_fingerprint(p.identity.iter().map(String::as_str)),
            files: p.files,
        })
        .collect();
    partitions.sort_by_key(|p| std::cmp::Reverse(p.date));
    Ok(partitions)
}

/// `batch`'s columns in the order of `target`'s fields, found by name; a field the batch lacks (a
/// column a later declaration added) is all nulls. `with_date`: `target`'s last field, `date`,
/// is taken from the batch too (else left for the caller).
pub fn conform_by_name(
    batch: &RecordBatch,
    target: &SchemaRef,
    with_date: bool,
) -> Result<Vec<ArrayRef>, arrow::error::ArrowError> {
    let fields = target.fields();
    let wanted = if with_date { fields.len() } else { fields.len() - 1 };
    fields
        .iter()
        .take(wanted)
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => Err(arrow::error::ArrowError::SchemaError(format!(
                "column `{}` is {} in a file and {} in the declaration",
                field.name(),
                column.data_type(),
                field.data_type()
            ))),
            None if field.is_nullable() => {
                Ok(arrow::array::new_null_array(field.data_type(), batch.num_rows()))
            }
            None => Err(arrow::error::ArrowError::SchemaError(format!(
                "required column `{}` is missing from a file",
                field.name()
            ))),
        })
        .collect()
}

/// The current table's schema: the dataset's columns and the load columns, as its history files
/// have them ([`crate::schema::load::stored_schema`]), then `date`.
pub fn current_schema(schema: &DatasetSchema) -> SchemaRef {
    let stored = crate::schema::load::stored_schema(schema);
    let mut fields: Vec<Field> = stored.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(PARTITION_COLUMN, DataType::Date32, false));
    Arc::new(Schema::new_with_metadata(fields, stored.metadata().clone()))
}

/// Rows of one file that go into the new segment of `date`.
struct Selection {
    date: NaiveDate,
    /// Relative to the lake root: a history file, or a segment file of the table.
    file: String,
    mask: BooleanBuffer,
    /// Segment files have the `date` column already; history files get it added.
    has_date: bool,
}

/// What a refresh writes and what it replaces.
struct Plan {
    selections: Vec<Selection>,
    /// Indexes into the previous manifest's segments.
    replaced: BTreeSet<usize>,
    windows_changed: usize,
}

/// A key's winner among the changed windows: the row at `file`/`row` of partition `partition`.
#[derive(Debug, Clone, Copy)]
struct Winner {
    partition: usize,
    file: usize,
    row: usize,
}

/// A key's candidate row among the changed windows (a [`Winner`] in 32 bytes).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    hash: u128,
    partition: u32,
    file: u32,
    row: u32,
    /// Settled otherwise: the table's row is newer, or an orphan's older window took its place.
    removed: bool,
}

/// The candidates of an incremental refresh, sorted by key hash (as the spill hands them out).
#[derive(Default)]
struct Candidates {
    sorted: Vec<Candidate>,
}

impl Candidates {
    fn push(&mut self, r: &KeyRecord) {
        debug_assert!(self.sorted.last().is_none_or(|last| last.hash < r.hash), "winners come sorted");
        self.sorted.push(Candidate {
            hash: r.hash,
            partition: r.partition,
            file: r.file,
            row: r.row,
            removed: false,
        });
    }

    fn position(&self, hash: u128) -> Option<usize> {
        self.sorted.binary_search_by(|c| c.hash.cmp(&hash)).ok().filter(|i| !self.sorted[*i].removed)
    }

    fn get(&self, hash: u128) -> Option<&Candidate> {
        self.position(hash).map(|i| &self.sorted[i])
    }

    fn remove(&mut self, hash: u128) {
        if let Some(i) = self.position(hash) {
            self.sorted[i].removed = true;
        }
    }

    fn live(&self) -> impl Iterator<Item = &Candidate> {
        self.sorted.iter().filter(|c| !c.removed)
    }
}

/// One dataset's refresh: where it reads and writes, and what it has read so far.
struct Refresh<'a> {
    dest: &'a Destination,
    source: &'a str,
    schema: &'a DatasetSchema,
    keys: KeyReader,
    bytes_read: Arc<AtomicU64>,
    keys_read: u64,
    /// Windows read in this refresh, and for those with rows that repeat a key and version,
    /// how many and where the first such row is (file, row).
    read_dates: BTreeSet<NaiveDate>,
    duplicates: BTreeMap<NaiveDate, (u64, String, usize)>,
    bytes_spilled: u64,
}

impl Refresh<'_> {
    async fn open(
        &self,
        relative: &str,
        only: Option<&[String]>,
    ) -> Result<impl futures::Stream<Item = Result<RecordBatch, SinkError>> + use<>, SinkError> {
        read_batches(self.dest, relative, only, self.bytes_read.clone()).await
    }

    /// Key hash and version of every row of a window, per file.
    async fn read_partition(
        &mut self,
        partition: &HistoryPartition,
    ) -> Result<Vec<Vec<KeyedRow>>, SinkError> {
        let projection = KeyReader::projection(self.schema);
        let mut per_file = Vec::with_capacity(partition.files.len());
        for file in &partition.files {
            let mut rows = Vec::new();
            let mut batches = std::pin::pin!(self.open(file, Some(&projection)).await?);
            while let Some(batch) = batches.try_next().await? {
                self.keys.read(self.schema, &batch, &mut rows, file)?;
            }
            self.keys_read += rows.len() as u64;
            per_file.push(rows);
        }
        self.read_dates.insert(partition.date);
        let (count, first) = count_duplicates(&per_file);
        if let Some((file, row)) = first {
            self.duplicates.insert(partition.date, (count, partition.files[file].clone(), row));
        }
        Ok(per_file)
    }

    /// The duplicate keys of the table's windows after this refresh: those read now, and the
    /// previous manifest's for the windows not read again.
    async fn duplicate_keys(
        &self,
        previous: Option<&Manifest>,
        windows: &BTreeMap<NaiveDate, String>,
    ) -> Result<BTreeMap<NaiveDate, manifest::DuplicateKeys>, SinkError> {
        let mut all: BTreeMap<NaiveDate, manifest::DuplicateKeys> = previous
            .map(|m| {
                m.duplicate_keys
                    .iter()
                    .filter(|(date, _)| windows.contains_key(date) && !self.read_dates.contains(date))
                    .map(|(date, d)| (*date, d.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (date, (rows, file, row)) in &self.duplicates {
            let example = example_key(self.dest, self.schema, file, *row).await?;
            all.insert(*date, manifest::DuplicateKeys { rows: *rows, example });
        }
        Ok(all)
    }

    /// The key records of `which` partitions (indexes into `partitions`, newest first) in a
    /// [`KeySpill`] that holds at most `allowance` bytes of them, and each file's row count
    /// (per partition; empty for those not read).
    async fn spill_keys(
        &mut self,
        partitions: &[HistoryPartition],
        which: &[usize],
        allowance: usize,
    ) -> Result<(KeySpill, Vec<Vec<usize>>), SinkError> {
        let projection = KeyReader::projection(self.schema);
        let mut spill = KeySpill::new(allowance).map_err(|e| self.scratch_error(e))?;
        let mut file_rows: Vec<Vec<usize>> = vec![Vec::new(); partitions.len()];
        let mut keyed = Vec::new();
        for &p in which {
            let partition = &partitions[p];
            for (f, file) in partition.files.iter().enumerate() {
                let mut row = 0usize;
                let mut batches = std::pin::pin!(self.open(file, Some(&projection)).await?);
                while let Some(batch) = batches.try_next().await? {
                    keyed.clear();
                    self.keys.read(self.schema, &batch, &mut keyed, file)?;
                    for entry in &keyed {
                        if let Some((hash, version)) = entry {
                            let record = KeyRecord {
                                hash: *hash,
                                version: version.flatten(),
                                partition: p as u32,
                                file: f as u32,
                                row: row as u32,
                            };
                            spill.push(record).map_err(|e| self.scratch_error(e))?;
                        }
                        row += 1;
                    }
                }
                file_rows[p].push(row);
            }
            self.read_dates.insert(partition.date);
        }
        self.keys_read += spill.records;
        Ok((spill, file_rows))
    }

    /// Each key's winner among the spilled records (see [`KeySpill::winners`]); the rows that
    /// repeat a key and version within a window are recorded for the report.
    fn spilled_winners(
        &mut self,
        partitions: &[HistoryPartition],
        spill: KeySpill,
        winner: impl FnMut(&KeyRecord),
    ) -> Result<(), SinkError> {
        self.bytes_spilled += spill.spilled_bytes();
        let duplicates = spill.winners(winner).map_err(|e| self.scratch_error(e))?;
        for (p, (count, (file, row))) in duplicates {
            let partition = &partitions[p as usize];
            self.duplicates
                .insert(partition.date, (count, partition.files[file as usize].clone(), row as usize));
        }
        Ok(())
    }

    fn scratch_error(&self, e: std::io::Error) -> SinkError {
        SinkError::Local {
            path: std::env::temp_dir().display().to_string(),
            message: format!(
                "spilling the keys of {} to a temporary directory: {e}",
                self.schema.qualified_name()
            ),
        }
    }

    /// A full rebuild: every window, newest first; a key's row comes from the newest window
    /// that has it. Key records go through a [`KeySpill`] holding at most `allowance` bytes of
    /// them; the answer is one bit per history row.
    async fn plan_full(
        &mut self,
        partitions: &[HistoryPartition],
        previous: Option<&Manifest>,
        allowance: usize,
    ) -> Result<Plan, SinkError> {
        let all: Vec<usize> = (0..partitions.len()).collect();
        let (spill, file_rows) = self.spill_keys(partitions, &all, allowance).await?;
        let mut masks: Vec<Vec<BooleanBufferBuilder>> = file_rows
            .iter()
            .map(|files| {
                files
                    .iter()
                    .map(|rows| {
                        let mut mask = BooleanBufferBuilder::new(*rows);
                        mask.append_n(*rows, false);
                        mask
                    })
                    .collect()
            })
            .collect();
        self.spilled_winners(partitions, spill, |r| {
            masks[r.partition as usize][r.file as usize].set_bit(r.row as usize, true)
        })?;
        let selections = masks
            .iter_mut()
            .enumerate()
            .flat_map(|(p, files)| {
                files.iter_mut().enumerate().map(move |(f, mask)| Selection {
                    date: partitions[p].date,
                    file: partitions[p].files[f].clone(),
                    mask: mask.finish(),
                    has_date: false,
                })
            })
            .collect();
        Ok(Plan {
            selections,
            replaced: (0..previous.map_or(0, |m| m.segments.len())).collect(),
            windows_changed: partitions.len(),
        })
    }

    /// An incremental refresh against the previous manifest (see the module's documentation).
    async fn plan_incremental(
        &mut self,
        partitions: &[HistoryPartition],
        previous: &Manifest,
        filters: &[KeyFilter],
        allowance: usize,
    ) -> Result<Plan, SinkError> {
        let mut changed: BTreeSet<NaiveDate> =
            previous.windows.keys().filter(|d| !partitions.iter().any(|p| p.date == **d)).copied().collect();
        changed.extend(
            partitions
                .iter()
                .filter(|p| previous.windows.get(&p.date) != Some(&p.fingerprint))
                .map(|p| p.date),
        );

        // 2. Each key's candidate from the changed windows, newest first: spilled like a full
        // build's keys, then held as 32 bytes per key, sorted by hash.
        let changed_partitions: Vec<usize> =
            (0..partitions.len()).filter(|i| changed.contains(&partitions[*i].date)).collect();
        let (spill, _) = self.spill_keys(partitions, &changed_partitions, allowance).await?;
        let mut candidates = Candidates::default();
        self.spilled_winners(partitions, spill, |r| candidates.push(r))?;
        let candidates = &mut candidates;
        let date_of = |c: &Candidate| partitions[c.partition as usize].date;

        // 3. The segments that must change, and what stays of them: those of a changed date, and
        // those holding a key whose candidate is newer than their row.
        let maybe_affected: Vec<usize> = previous
            .segments
            .iter()
            .zip(filters)
            .enumerate()
            .filter(|(_, (segment, filter))| {
                changed.contains(&segment.date) || candidates.live().any(|c| filter.may_contain(c.hash))
            })
            .map(|(index, _)| index)
            .collect();
        let mut replaced = BTreeSet::new();
        let mut selections = Vec::new();
        // Keys whose row came from a changed window that no longer offers it at that date or later.
        let mut orphans: HashMap<u128, NaiveDate> = HashMap::new();
        for index in maybe_affected {
            let segment = &previous.segments[index];
            let from_changed_window = changed.contains(&segment.date);
            let mut kept = Vec::new();
            for file in &segment.files {
                // Batch by batch: a segment's keys are never all held at once.
                let mut mask = BooleanBufferBuilder::new(0);
                let mut batches = std::pin::pin!(self.open(&file.path, Some(&self.schema.key)).await?);
                while let Some(batch) = batches.try_next().await? {
                    let hashes = self.keys.hashes(self.schema, &batch, &file.path)?;
                    self.keys_read += hashes.len() as u64;
                    for hash in hashes {
                        let Some(hash) = hash else {
                            mask.append(false);
                            continue;
                        };
                        let candidate = candidates.get(hash).map(date_of);
                        let keep = if from_changed_window {
                            if candidate.is_none_or(|date| date < segment.date) {
                                orphans.insert(hash, segment.date);
                            }
                            false
                        } else {
                            match candidate {
                                Some(date) if date > segment.date => false,
                                Some(_) => {
                                    // The table's row is from a newer window than the candidate.
                                    candidates.remove(hash);
                                    true
                                }
                                None => true,
                            }
                        };
                        mask.append(keep);
                    }
                }
                kept.push(Selection {
                    date: segment.date,
                    file: file.path.clone(),
                    mask: mask.finish(),
                    has_date: true,
                });
            }
            // A segment that loses no row stays as it is (a candidate that matched it was older).
            if from_changed_window || kept.iter().any(|s| s.mask.count_set_bits() < s.mask.len()) {
                replaced.insert(index);
                selections.extend(kept);
            }
        }

        // 4. Orphans: the newest unchanged window older than their old row that has them, unless
        // their candidate is newer still.
        let mut winners: Vec<Winner> = Vec::new();
        let newest_orphan = orphans.values().max().copied();
        for (index, partition) in partitions.iter().enumerate() {
            let Some(newest) = newest_orphan else { break };
            if changed.contains(&partition.date) || partition.date >= newest {
                continue;
            }
            orphans.retain(|h, _| candidates.get(*h).is_none_or(|c| date_of(c) < partition.date));
            if orphans.is_empty() {
                break;
            }
            let per_file = self.read_partition(partition).await?;
            for (hash, (file, row)) in partition_winners(&per_file, |h| !orphans.contains_key(h)) {
                orphans.remove(&hash);
                candidates.remove(hash);
                winners.push(Winner { partition: index, file, row });
            }
        }

        winners.extend(candidates.live().map(|c| Winner {
            partition: c.partition as usize,
            file: c.file as usize,
            row: c.row as usize,
        }));
        selections.extend(history_selections(partitions, winners));
        Ok(Plan { selections, replaced, windows_changed: changed.len() })
    }
}

/// Rows of one window that repeat an earlier row's key and version (both null counts as equal),
/// and the first such row (file, row).
fn count_duplicates(per_file: &[Vec<KeyedRow>]) -> (u64, Option<(usize, usize)>) {
    let mut seen: HashSet<(u128, Option<OrderedVersion>)> = HashSet::new();
    let mut count = 0;
    let mut first = None;
    for (f, rows) in per_file.iter().enumerate() {
        for (r, row) in rows.iter().enumerate() {
            let Some(keyed) = row else { continue };
            if !seen.insert(*keyed) {
                count += 1;
                first.get_or_insert((f, r));
            }
        }
    }
    (count, first)
}

/// The key of row `row` of a history file, its columns' values joined with `, `.
async fn example_key(
    dest: &Destination,
    schema: &DatasetSchema,
    file: &str,
    row: usize,
) -> Result<String, SinkError> {
    let mut batches = std::pin::pin!(read_batches(dest, file, Some(&schema.key), Arc::default()).await?);
    let mut offset = 0;
    while let Some(batch) = batches.try_next().await? {
        if row < offset + batch.num_rows() {
            let values: Vec<String> = schema
                .key
                .iter()
                .map(|name| {
                    batch
                        .column_by_name(name)
                        .and_then(|c| arrow::util::display::array_value_to_string(c, row - offset).ok())
                        .unwrap_or_default()
                })
                .collect();
            return Ok(values.join(", "));
        }
        offset += batch.num_rows();
    }
    Ok(String::new())
}

/// The winning row of each key within one window, skipping keys `skip` says are settled: the
/// greatest version, and on equal versions (or none declared) the later row of the later file.
fn partition_winners(
    per_file: &[Vec<KeyedRow>],
    skip: impl Fn(&u128) -> bool,
) -> HashMap<u128, (usize, usize)> {
    let mut winners: HashMap<u128, (Option<OrderedVersion>, usize, usize)> = HashMap::new();
    for (f, rows) in per_file.iter().enumerate().rev() {
        for (r, row) in rows.iter().enumerate().rev() {
            let Some((hash, version)) = row else { continue };
            if skip(hash) {
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
    winners.into_iter().map(|(hash, (_, f, r))| (hash, (f, r))).collect()
}

/// The winners' rows as one selection per history file that has any.
fn history_selections(partitions: &[HistoryPartition], winners: Vec<Winner>) -> Vec<Selection> {
    let mut rows: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for winner in winners {
        rows.entry((winner.partition, winner.file)).or_default().push(winner.row);
    }
    rows.into_iter()
        .map(|((partition, file), rows)| {
            let len = rows.iter().max().map_or(0, |r| r + 1);
            let mut mask = BooleanBufferBuilder::new(len);
            mask.append_n(len, false);
            for row in rows {
                mask.set_bit(row, true);
            }
            Selection {
                date: partitions[partition].date,
                file: partitions[partition].files[file].clone(),
                mask: mask.finish(),
                has_date: false,
            }
        })
        .collect()
}

/// Segments written by a refresh, staged, with their key filters.
struct StagedSegment {
    date: NaiveDate,
    files: Vec<WrittenFile>,
    filter: KeyFilter,
}

impl Refresh<'_> {
    /// Writes the selected rows grouped by date, newest first: one staged segment per date.
    async fn write(
        &mut self,
        selections: Vec<Selection>,
        run_id: &str,
        config: PartWriterConfig,
    ) -> Result<Vec<StagedSegment>, SinkError> {
        let target = current_schema(self.schema);
        let mut by_date: BTreeMap<NaiveDate, Vec<Selection>> = BTreeMap::new();
        for selection in selections.into_iter().filter(|s| s.mask.count_set_bits() > 0) {
            by_date.entry(selection.date).or_default().push(selection);
        }
        let table_dir = layout::current_dir(self.source, &self.schema.dataset);
        let mut staged = Vec::new();
        for (date, selections) in by_date.into_iter().rev() {
            let dir = format!("{}/staging/{run_id}/{table_dir}/date={date}", layout::BOOKKEEPING_DIR);
            let plain = self.schema.columns.iter().filter(|c| !c.dictionary).map(|c| c.name.as_str());
            let mut writer = PartWriter::with_columns(self.dest.clone(), dir, target.clone(), plain, config);
            let mut hashes = Vec::new();
            let days = (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
            for selection in selections {
                let file = &selection.file;
                let error =
                    |e: arrow::error::ArrowError| SinkError::Parquet { path: file.clone(), source: e.into() };
                let mut offset = 0;
                let mut batches = std::pin::pin!(self.open(file, None).await?);
                while let Some(batch) = batches.try_next().await? {
                    let len = batch.num_rows().min(selection.mask.len().saturating_sub(offset));
                    let mut mask = selection.mask.slice(offset, len);
                    if len < batch.num_rows() {
                        // A winners' mask ends at its last selected row.
                        let mut padded = BooleanBufferBuilder::new(batch.num_rows());
                        padded.append_buffer(&mask);
                        padded.append_n(batch.num_rows() - len, false);
                        mask = padded.finish();
                    }
                    offset += batch.num_rows();
                    let kept = arrow::compute::filter_record_batch(&batch, &BooleanArray::new(mask, None))
                        .map_err(error)?;
                    if kept.num_rows() == 0 {
                        continue;
                    }
                    // Files of older declarations lack the columns later ones added: by name,
                    // with nulls for what a file does not have.
                    let mut columns = conform_by_name(&kept, &target, selection.has_date).map_err(error)?;
                    if !selection.has_date {
                        columns.push(Arc::new(Date32Array::from(vec![days; kept.num_rows()])));
                    }
                    let rows = RecordBatch::try_new(target.clone(), columns).map_err(error)?;
                    // The filter keeps the low 64 bits of each hash: 8 bytes per key, not 16.
                    hashes.extend(
                        self.keys.hashes(self.schema, &rows, file)?.into_iter().flatten().map(|h| h as u64),
                    );
                    writer.write(&rows).await?;
                }
            }
            let files = writer.finish().await?;
            let filter = KeyFilter::from_low_bits(hashes);
            staged.push(StagedSegment { date, files, filter });
        }
        Ok(staged)
    }
}

/// Rebuilds or updates one dataset's current table. `full` rebuilds it from the whole history.
pub async fn refresh_dataset(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
    format: OutputFormat,
    run_id: &str,
    memory: &MemoryBudget,
    full: bool,
) -> Result<Option<CurrentReport>, SinkError> {
    let started = std::time::Instant::now();
    let partitions = history(dest, source, schema, format).await?;
    let table_dir = layout::current_dir(source, &schema.dataset);
    let previous = if full { None } else { usable_manifest(dest, source, schema, format).await? };
    if partitions.is_empty() && previous.is_none() {
        return Ok(None);
    }
    let windows: BTreeMap<NaiveDate, String> =
        partitions.iter().map(|p| (p.date, p.fingerprint.clone())).collect();
    // A build holds a quarter of its share in key records, then its writer the whole.
    let reservation = memory.reserve_full().await;
    let mut refresh = Refresh {
        dest,
        source,
        schema,
        keys: KeyReader::new(schema)?,
        bytes_read: Arc::default(),
        keys_read: 0,
        read_dates: BTreeSet::new(),
        duplicates: BTreeMap::new(),
        bytes_spilled: 0,
    };
    // Key filters are read only when there are changes to apply; without them, a full rebuild.
    let filters = match &previous {
        Some(manifest) if manifest.windows != windows => {
            manifest::load_filters(dest, source, &schema.dataset, manifest).await?
        }
        _ => None,
    };
    let previous = previous.filter(|manifest| manifest.windows == windows || filters.is_some());
    let (plan, mode) = match (&previous, &filters) {
        (Some(manifest), _) if manifest.windows == windows => {
            return Ok(Some(CurrentReport {
                dataset: schema.dataset.clone(),
                path: table_dir,
                mode: RefreshMode::Unchanged,
                rows: manifest.rows(),
                files: manifest.files().count(),
                windows_changed: 0,
                keys_read: 0,
                rows_written: 0,
                segments_rewritten: 0,
                bytes_read: 0,
                bytes_written: 0,
                seconds: started.elapsed().as_secs_f64(),
                duplicate_keys: manifest.duplicate_keys.values().map(|d| d.rows).sum(),
                bytes_spilled: 0,
            }));
        }
        (Some(manifest), Some(filters)) => (
            refresh.plan_incremental(&partitions, manifest, filters, reservation.bytes() / 4).await?,
            RefreshMode::Incremental,
        ),
        _ => (refresh.plan_full(&partitions, None, reservation.bytes() / 4).await?, RefreshMode::Full),
    };
    // A third of the share: the rest reads the history's row groups back (a whole row group's
    // column chunks are fetched at once, and wide nested rows decode large) while the writer
    // encodes. A full build of 426,503 Dixa conversations peaked at 271 MiB resident with the
    // whole share, 252 MiB with half.
    let config = PartWriterConfig::default().within(reservation.bytes() / 3);
    let staged = refresh.write(plan.selections, run_id, config).await?;
    let duplicate_keys = refresh.duplicate_keys(previous.as_ref(), &windows).await?;
    for (date, duplicates) in &duplicate_keys {
        if refresh.read_dates.contains(date) {
            tracing::warn!(dataset = %schema.qualified_name(), window = %date, rows = duplicates.rows, example = %duplicates.example, "Rows share a key and a version within one window: the declared key may not identify a row (the current table keeps the last in file order)");
        }
    }
    let table = Published { windows, duplicate_keys };
    let manifest =
        publish(dest, source, schema, format, run_id, previous.as_ref(), &plan.replaced, staged, table)
            .await?;
    let new_segments = manifest.segments.iter().filter(|s| s.id.ends_with(run_id));
    let (rows_written, bytes_written) = new_segments
        .flat_map(|s| s.files.iter())
        .fold((0, 0), |(rows, bytes), f| (rows + f.rows, bytes + f.bytes));
    Ok(Some(CurrentReport {
        dataset: schema.dataset.clone(),
        path: table_dir,
        mode,
        rows: manifest.rows(),
        files: manifest.files().count(),
        windows_changed: plan.windows_changed,
        keys_read: refresh.keys_read,
        rows_written,
        segments_rewritten: plan.replaced.len(),
        bytes_read: refresh.bytes_read.load(Ordering::Relaxed),
        bytes_written,
        seconds: started.elapsed().as_secs_f64(),
        duplicate_keys: manifest.duplicate_keys.values().map(|d| d.rows).sum(),
        bytes_spilled: refresh.bytes_spilled,
    }))
}

/// What the new manifest says besides its segments.
struct Published {
    windows: BTreeMap<NaiveDate, String>,
    duplicate_keys: BTreeMap<NaiveDate, manifest::DuplicateKeys>,
}

/// The previous manifest, if the table is still exactly what it describes.
async fn usable_manifest(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
    format: OutputFormat,
) -> Result<Option<Manifest>, SinkError> {
    let Some(manifest) = manifest::load(dest, source, schema).await? else {
        return Ok(None);
    };
    let files = manifest.files().map(|f| f.path.as_str());
    let intact =
        Table::current(dest, source, schema, format).is_exactly(files, manifest.delta_version).await?;
    if !intact {
        tracing::info!(dataset = %schema.dataset, "The current table differs from its manifest; rebuilding it in full");
        return Ok(None);
    }
    Ok(Some(manifest))
}

/// Moves the staged segments into the table in place of the replaced ones and saves the new
/// manifest. Parquet: key filters, then the files under names unique to the run, then the
/// manifest (the commit point), then the replaced files and any leftovers are deleted. Delta:
/// key filters, then one commit that removes the replaced files and adds the new ones, then the
/// manifest with the version it describes.
#[allow(clippy::too_many_arguments)]
async fn publish(
    dest: &Destination,
    source: &str,
    schema: &DatasetSchema,
    format: OutputFormat,
    run_id: &str,
    previous: Option<&Manifest>,
    replaced: &BTreeSet<usize>,
    staged: Vec<StagedSegment>,
    table: Published,
) -> Result<Manifest, SinkError> {
    let dataset = &schema.dataset;
    let segment_id = |date: NaiveDate| format!("{date}-{run_id}");
    for segment in &staged {
        let path = dest.path(&layout::current_key_filter_file(source, dataset, &segment_id(segment.date)));
        object_store::ObjectStoreExt::put(&dest.store, &path, segment.filter.to_bytes().into())
            .await
            .map_err(|e| SinkError::store(&path, e))?;
    }
    let staged_files: Vec<WrittenFile> = staged.iter().flat_map(|s| s.files.iter().cloned()).collect();
    let mut kept: Vec<Segment> = previous
        .map(|m| {
            m.segments
                .iter()
                .enumerate()
                .filter(|(i, _)| !replaced.contains(i))
                .map(|(_, s)| s.clone())
                .collect()
        })
        .unwrap_or_default();
    let replaced_files: BTreeSet<String> = previous
        .map(|m| replaced.iter().flat_map(|i| m.segments[*i].files.iter().map(|f| f.path.clone())).collect())
        .unwrap_or_default();
    let target = Table::current(dest, source, schema, format);
    let (published, delta_version) = if staged_files.is_empty()
        && replaced_files.is_empty()
        && previous.is_some()
    {
        // Changed windows whose rows all lost to newer ones: only the manifest changes.
        (Vec::new(), previous.and_then(|m| m.delta_version))
    } else {
        let commit = WindowCommit {
            app_id: "cxlake:current".into(),
            date: staged.first().map_or_else(|| Utc::now().date_naive(), |s| s.date),
            version: Utc::now().timestamp_millis(),
            run_id: run_id.to_string(),
        };
        target.add_replacing(&commit, &staged_files, previous.is_some().then_some(&replaced_files)).await?
    };
    let mut published = published.into_iter();
    for segment in &staged {
        let files = published.by_ref().take(segment.files.len()).collect();
        kept.push(Segment { id: segment_id(segment.date), date: segment.date, files });
    }
    kept.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
    crate::sink::crash_if_asked("before-current-manifest");
    let mut manifest = Manifest::new(schema, table.windows, kept);
    manifest.delta_version = delta_version;
    manifest.duplicate_keys = table.duplicate_keys;
    manifest::save(dest, source, dataset, &manifest).await?;

    // After the commit point: what the manifest no longer lists goes.
    let listed_filters: BTreeSet<String> = manifest
        .segments
        .iter()
        .map(|s| layout::current_key_filter_file(source, dataset, &s.id))
        .chain([layout::current_manifest_file(source, dataset)])
        .collect();
    commit::delete_except(dest, &layout::current_state_dir(source, dataset), &listed_filters).await?;
    let listed: BTreeSet<String> = manifest.files().map(|f| f.path.clone()).collect();
    target.keep_only(&listed).await?;
    Ok(manifest)
}

/// Refreshes the current tables of `datasets` of one source: entities get their materialised
/// table updated (or rebuilt, with `full`); events have none (a stale one, from a lake written
/// before datasets had kinds, is removed). The views file is the caller's to rewrite, once,
/// with [`write_views`].
pub async fn refresh_tables(
    dest: &Destination,
    source: &str,
    datasets: &[Arc<DatasetSchema>],
    format: OutputFormat,
    run_id: &str,
    memory: &MemoryBudget,
    full: bool,
) -> Result<Vec<CurrentReport>, SinkError> {
    let mut reports = Vec::new();
    for schema in datasets {
        match schema.kind {
            DatasetKind::Entities => {
                if let Some(report) =
                    refresh_dataset(dest, source, schema, format, run_id, memory, full).await?
                {
                    tracing::info!(dataset = %schema.dataset, mode = ?report.mode, rows = report.rows, rows_written = report.rows_written, bytes_read = report.bytes_read, bytes_spilled = report.bytes_spilled, "Current table refreshed");
                    reports.push(report);
                }
            }
            DatasetKind::Events => {
                let relative = layout::current_dir(source, &schema.dataset);
                if commit::delete_dir(dest, &relative).await? > 0 {
                    tracing::info!(dataset = %schema.dataset, "Removed the materialised current table of an events dataset; its _current view deduplicates at query time");
                }
                commit::delete_dir(dest, &layout::current_state_dir(source, &schema.dataset)).await?;
                if let Some(dir) = &dest.local_dir {
                    let _ = std::fs::remove_dir_all(dir.join(&relative));
                }
            }
        }
    }
    Ok(reports)
}
