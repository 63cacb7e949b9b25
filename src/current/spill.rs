//! A full build's key records, partitioned by hash and spilled to local files when they outgrow
//! their memory, so that the first build of a current table over a history of any size holds
//! one partition of keys at a time instead of every key.
//!
//! A full build has to find, for every key of the history, its winning row: the newest window
//! that has it, then the greatest version, then the last row in file order. Holding a map of
//! every key (hash, version, where) cost ~250 bytes a row: a 1.4M-row Loop window peaked at
//! 403 MiB. Here every row becomes a fixed 45-byte record appended to one of [`FANOUT`] buckets
//! by the top bits of its key hash; when the buffered records pass the allowance, every bucket
//! is appended to its file. Then each bucket is read back alone (a bucket still larger than the
//! allowance is split again by the next bits), sorted, and its keys' winners marked in a bitmap
//! per history file (one bit per row). Records of one key always share a bucket, so each
//! bucket's answer is final. A history that fits the allowance never touches the disk.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Buckets per split: 64 at each level, 4,096 at two (a bucket file each).
const FANOUT: usize = 64;
const BITS: u32 = FANOUT.trailing_zeros();
const RECORD: usize = 16 + 1 + 16 + 4 + 4 + 4;

/// One row with a key: where it is and what decides between rows of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyRecord {
    pub hash: u128,
    /// `None` when the dataset declares no version or the row's version is null (both sort first).
    pub version: Option<u128>,
    pub partition: u32,
    pub file: u32,
    pub row: u32,
}

impl KeyRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_le_bytes());
        out.push(u8::from(self.version.is_some()));
        out.extend_from_slice(&self.version.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.partition.to_le_bytes());
        out.extend_from_slice(&self.file.to_le_bytes());
        out.extend_from_slice(&self.row.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> KeyRecord {
        let u128_at = |at: usize| u128::from_le_bytes(bytes[at..at + 16].try_into().expect("16 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        KeyRecord {
            hash: u128_at(0),
            version: (bytes[16] == 1).then(|| u128_at(17)),
            partition: u32_at(33),
            file: u32_at(37),
            row: u32_at(41),
        }
    }

    /// The bucket of this record at split `level` (0 = the first split).
    fn bucket(&self, level: u32) -> usize {
        ((self.hash >> (128 - BITS * (level + 1))) as usize) & (FANOUT - 1)
    }
}

/// Per window (partition index): rows repeating an earlier row's key and version, and the first
/// such row in file order (file, row).
pub(super) type WindowDuplicates = std::collections::BTreeMap<u32, (u64, (u32, u32))>;

/// Records of one split level: in memory until they pass the allowance, then in files.
struct Buckets {
    level: u32,
    memory: Vec<Vec<u8>>,
    files: Vec<Option<(PathBuf, BufWriter<File>)>>,
    buffered: usize,
    allowance: usize,
    scratch: PathBuf,
    name: String,
    /// Bytes written to bucket files, at every level.
    spilled: Arc<AtomicU64>,
}

impl Buckets {
    fn new(level: u32, allowance: usize, scratch: PathBuf, name: String, spilled: Arc<AtomicU64>) -> Buckets {
        Buckets {
            spilled,
            level,
            memory: vec![Vec::new(); FANOUT],
            files: (0..FANOUT).map(|_| None).collect(),
            buffered: 0,
            allowance,
            scratch,
            name,
        }
    }

    fn push(&mut self, record: &KeyRecord) -> std::io::Result<()> {
        record.encode(&mut self.memory[record.bucket(self.level)]);
        self.buffered += RECORD;
        if self.buffered >= self.allowance {
            self.spill()?;
        }
        Ok(())
    }

    /// Appends every bucket's buffered records to its file.
    fn spill(&mut self) -> std::io::Result<()> {
        for (index, records) in self.memory.iter_mut().enumerate() {
            if records.is_empty() {
                continue;
            }
            if self.files[index].is_none() {
                let path = self.scratch.join(format!("{}-{index}.keys", self.name));
                self.files[index] =
                    Some((path.clone(), BufWriter::with_capacity(64 << 10, File::create(path)?)));
            }
            let (_, file) = self.files[index].as_mut().expect("opened above");
            file.write_all(records)?;
            self.spilled.fetch_add(records.len() as u64, Ordering::Relaxed);
            records.clear();
            records.shrink_to_fit();
        }
        self.buffered = 0;
        Ok(())
    }

    /// Hands each bucket's records to `each`, one bucket at a time; a bucket larger than the
    /// allowance is split again (by the next bits of the hash) first.
    fn drain(mut self, each: &mut impl FnMut(Vec<KeyRecord>)) -> std::io::Result<()> {
        for index in 0..FANOUT {
            let in_memory = std::mem::take(&mut self.memory[index]);
            let Some((path, file)) = self.files[index].take() else {
                each(in_memory.chunks_exact(RECORD).map(KeyRecord::decode).collect());
                continue;
            };
            file.into_inner().map_err(|e| e.into_error())?;
            let spilled = std::fs::metadata(&path)?.len() as usize;
            // Past two splits (4,096 buckets) a bucket this large is one key's rows: sort it.
            if spilled + in_memory.len() > self.allowance && self.level < 2 {
                let mut deeper = Buckets::new(
                    self.level + 1,
                    self.allowance,
                    self.scratch.clone(),
                    format!("{}-{index}", self.name),
                    self.spilled.clone(),
                );
                let mut reader = BufReader::with_capacity(64 << 10, File::open(&path)?);
                let mut record = [0u8; RECORD];
                loop {
                    match reader.read_exact(&mut record) {
                        Ok(()) => deeper.push(&KeyRecord::decode(&record))?,
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e),
                    }
                }
                std::fs::remove_file(&path)?;
                for record in in_memory.chunks_exact(RECORD) {
                    deeper.push(&KeyRecord::decode(record))?;
                }
                deeper.drain(each)?;
            } else {
                let mut bytes = std::fs::read(&path)?;
                std::fs::remove_file(&path)?;
                bytes.extend_from_slice(&in_memory);
                drop(in_memory);
                each(bytes.chunks_exact(RECORD).map(KeyRecord::decode).collect());
            }
        }
        Ok(())
    }
}

/// Collects a full build's key records and answers, bucket by bucket, which rows win.
pub(super) struct KeySpill {
    buckets: Buckets,
    _scratch: tempfile::TempDir,
    pub records: u64,
    spilled: Arc<AtomicU64>,
}

impl KeySpill {
    /// Records are buffered up to `allowance` bytes before they go to files in a temporary
    /// directory (`TMPDIR`, removed when this is dropped).
    pub(super) fn new(allowance: usize) -> std::io::Result<KeySpill> {
        let scratch = tempfile::Builder::new().prefix("cxlake-keys-").tempdir()?;
        let spilled = Arc::default();
        let allowance = allowance.max(RECORD * FANOUT);
        let buckets =
            Buckets::new(0, allowance, scratch.path().to_path_buf(), "b".into(), Arc::clone(&spilled));
        Ok(KeySpill { buckets, _scratch: scratch, records: 0, spilled })
    }

    /// Bytes of key records written to files so far (0 when they fit the allowance).
    pub(super) fn spilled_bytes(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    pub(super) fn push(&mut self, record: KeyRecord) -> std::io::Result<()> {
        self.records += 1;
        self.buckets.push(&record)
    }

    /// Calls `winner` once per key of the records — its row in the newest window that has it,
    /// with the greatest version, and the last in file order among equals — in ascending order
    /// of key hash, and returns the rows that repeat a key and version within a window.
    pub(super) fn winners(self, mut winner: impl FnMut(&KeyRecord)) -> std::io::Result<WindowDuplicates> {
        let mut duplicates = WindowDuplicates::new();
        self.buckets.drain(&mut |mut records: Vec<KeyRecord>| {
            // Per key: newest window (lowest partition index) first, then greatest version, then
            // the last row of the last file. The first record of each key wins.
            records.sort_unstable_by(|a, b| {
                (a.hash, a.partition)
                    .cmp(&(b.hash, b.partition))
                    .then_with(|| (b.version, b.file, b.row).cmp(&(a.version, a.file, a.row)))
            });
            let mut start = 0;
            while start < records.len() {
                let first = records[start];
                winner(&first);
                // Rows of the same key, window and version: all but the first in file order are
                // repeats; the earliest repeat is the second-smallest (file, row), here the
                // next-to-last of the run (the run is in descending file order).
                let mut run_start = start;
                while run_start < records.len() && records[run_start].hash == first.hash {
                    let head = records[run_start];
                    let mut end = run_start + 1;
                    while end < records.len()
                        && records[end].hash == head.hash
                        && records[end].partition == head.partition
                        && records[end].version == head.version
                    {
                        end += 1;
                    }
                    if end - run_start > 1 {
                        let repeat = records[end - 2];
                        let entry =
                            duplicates.entry(head.partition).or_insert((0, (repeat.file, repeat.row)));
                        entry.0 += (end - run_start - 1) as u64;
                        entry.1 = entry.1.min((repeat.file, repeat.row));
                    }
                    run_start = end;
                }
                start = run_start;
            }
        })?;
        Ok(duplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    /// The answer by the obvious method: every record in one map.
    fn expected(records: &[KeyRecord]) -> Answer {
        let mut best: HashMap<u128, KeyRecord> = HashMap::new();
        for r in records {
            let better = match best.get(&r.hash) {
                None => true,
                Some(b) => {
                    r.partition < b.partition
                        || (r.partition == b.partition
                            && (r.version, r.file, r.row) > (b.version, b.file, b.row))
                }
            };
            if better {
                best.insert(r.hash, *r);
            }
        }
        let winners = best.values().map(|r| ((r.partition, r.file, r.row), ())).collect();
        let mut in_order = records.to_vec();
        in_order.sort_by_key(|r| (r.partition, r.file, r.row));
        let mut seen = std::collections::HashSet::new();
        let mut duplicates = WindowDuplicates::new();
        for r in in_order {
            if !seen.insert((r.hash, r.partition, r.version)) {
                let entry = duplicates.entry(r.partition).or_insert((0, (r.file, r.row)));
                entry.0 += 1;
            }
        }
        (winners, duplicates)
    }

    fn records(count: u32, keys: u32) -> Vec<KeyRecord> {
        // A deterministic shuffle of keys over windows, files and versions, with repeats.
        let mut rng = crate::test_rng::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next_u64();
        (0..count)
            .map(|i| {
                let key = next() % u64::from(keys);
                KeyRecord {
                    hash: crate::current::keys::key_hash(&key.to_le_bytes()),
                    version: (next() % 4 != 0).then(|| u128::from(next() % 3)),
                    partition: (next() % 3) as u32,
                    file: (next() % 2) as u32,
                    row: i,
                }
            })
            .collect()
    }

    type Answer = (BTreeMap<(u32, u32, u32), ()>, WindowDuplicates);

    /// The spill's answer, and the bytes it wrote to files.
    fn answer(records: &[KeyRecord], allowance: usize) -> (Answer, u64) {
        let mut spill = KeySpill::new(allowance).unwrap();
        for r in records {
            spill.push(*r).unwrap();
        }
        let mut winners = BTreeMap::new();
        let spilled = Arc::clone(&spill.spilled);
        let mut last = None;
        let duplicates = spill
            .winners(|r| {
                assert!(last < Some(r.hash), "winners come in ascending hash order");
                last = Some(r.hash);
                assert!(winners.insert((r.partition, r.file, r.row), ()).is_none());
            })
            .unwrap();
        ((winners, duplicates), spilled.load(Ordering::Relaxed))
    }

    #[test]
    fn winners_and_repeats_are_the_same_in_memory_spilled_and_split_twice() {
        let records = records(60_000, 20_000);
        let truth = expected(&records);
        assert!(!truth.1.is_empty(), "the data has repeated keys and versions");
        let bytes = (records.len() * RECORD) as u64;
        // Everything in memory: nothing written.
        assert_eq!(answer(&records, 64 << 20), (truth.clone(), 0));
        // Spilled once, each bucket file small enough to read back whole.
        let (once, spilled) = answer(&records, 1 << 20);
        assert_eq!(once, truth);
        assert!((bytes / 2..=bytes).contains(&spilled), "spilled {spilled} of {bytes}");
        // Buckets larger than the allowance: split again, so more than the records were written.
        let (twice, spilled) = answer(&records, 16 << 10);
        assert_eq!(twice, truth);
        assert!(spilled > bytes, "spilled {spilled} of {bytes}");
    }
}
