//! The process's memory budget (`--memory-budget`, default 256 MiB): what every conversion,
//! current-table build and raw-archive compressor may hold, decided before it starts.
//!
//! A conversion's memory is bounded by the Parquet writer's row groups in flight and its queue
//! and by the decoder's chunks in flight, not by its input size: with the writer's defaults
//! (64 MiB row groups, 32 MiB queue) `make bench` measures a heap peak of 110–146 MiB for a whole
//! process converting a 300 MB engagements file, a 685 MB turns file or a 283 MB Dixa array
//! (the counting allocator of [`crate::heap`]), and a resident peak of 175–242 MiB. So each
//! conversion reserves an estimate from its input size, capped at [`FULL_CONVERSION`], before
//! it starts decoding, sizes its writer to what it got ([`PartWriterConfig::within`]), and
//! gives it back when its staged files are written. A budget smaller than one full conversion
//! still runs one at a time, with smaller row groups. Downloads are spooled to disk and take no
//! budget, so the next window's export and downloads overlap this window's conversions.
//!
//! Why a semaphore of MiB and not a measured RSS: an allocator's RSS lags frees and is shared by
//! every task in the process, so it cannot tell a task whether *it* may start. A reservation is
//! decided before the memory is used, which is what keeps the peak flat. The run report puts
//! the budget next to the measured peaks (`memory` in the JSON report).
//!
//! [`PartWriterConfig::within`]: crate::sink::parquet::PartWriterConfig::within

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const MIB: u64 = 1 << 20;

/// What one conversion of a large input reserves: its resident peak, not only its heap. With the
/// writer's default row groups its heap peaks at 110–146 MiB (two row groups being encoded, the
/// queue in front of them, the decoder's chunks, the upload buffer), and the allocator keeps
/// more resident than is allocated: peak RSS of one conversion 175–242 MiB. Reserving the heap
/// alone let a large conversion and a medium one overlap in a `sync` and peak at 266–270 MiB
/// under a 256 MiB budget; reserving this, the next large file waits, which costs nothing on
/// few cores since each conversion already keeps every core busy.
pub const FULL_CONVERSION: u64 = 224 * MIB;

/// The smallest `--memory-budget`: what one conversion of a large file holds however little it
/// is given (measured heap of a 60 MB turns conversion: 60 MiB at a 24 MiB budget, 69 at 64,
/// 84 at 96, 88 at 256) — each column writer's open page and dictionary (up to 1 MiB each), a
/// chunk being decoded and an upload part. A smaller budget could not keep its promise.
pub const MIN_BUDGET: u64 = 64 * MIB;

/// Floor of any reservation: buffers, a decoded batch, and the Parquet footer of a tiny file.
const SMALL_CONVERSION: u64 = 16 * MIB;

/// The default `--memory-budget`: one large conversion and the small datasets of a window, and
/// room for what is not reserved (the runtime, HTTP clients, the allocator's own slack) within
/// a Kubernetes limit of 256–512 MiB.
pub const DEFAULT_BUDGET: u64 = 256 * MIB;

/// Shared by every conversion of a run.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    total_mib: u32,
    semaphore: Arc<Semaphore>,
    reserved_mib: Arc<AtomicU32>,
    peak_reserved_mib: Arc<AtomicU32>,
}

/// Memory held by one running conversion; returned to the budget when dropped.
#[derive(Debug)]
pub struct Reservation {
    mib: u32,
    reserved_mib: Arc<AtomicU32>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved_mib.fetch_sub(self.mib, Ordering::SeqCst);
    }
}

impl Reservation {
    pub fn mib(&self) -> u32 {
        self.mib
    }

    pub fn bytes(&self) -> usize {
        (self.mib as usize) << 20
    }
}

impl MemoryBudget {
    /// A budget of `bytes`, at least one small conversion's worth.
    pub fn new(bytes: u64) -> MemoryBudget {
        let total_mib = (bytes.max(SMALL_CONVERSION) / MIB).min(u64::from(u32::MAX >> 4)) as u32;
        MemoryBudget {
            total_mib,
            semaphore: Arc::new(Semaphore::new(total_mib as usize)),
            reserved_mib: Arc::new(AtomicU32::new(0)),
            peak_reserved_mib: Arc::new(AtomicU32::new(0)),
        }
    }

    pub fn total_mib(&self) -> u32 {
        self.total_mib
    }

    /// The most that was reserved at any one time so far.
    pub fn peak_reserved_mib(&self) -> u32 {
        self.peak_reserved_mib.load(Ordering::SeqCst)
    }

    /// What converting `input_bytes` of CSV reserves. Arrow arrays of a CSV take about twice its
    /// size until a row group is flushed; beyond that the row group limits close it. A budget
    /// smaller than a large conversion still lets one run at a time (it then gets everything).
    pub fn estimate_mib(&self, input_bytes: u64) -> u32 {
        let estimate = input_bytes.saturating_mul(2).saturating_add(SMALL_CONVERSION).min(FULL_CONVERSION);
        ((estimate.div_ceil(MIB)) as u32).min(self.total_mib)
    }

    /// Waits until converting `input_bytes` fits in the budget, then holds its share.
    pub async fn reserve(&self, input_bytes: u64) -> Reservation {
        let mib = self.estimate_mib(input_bytes);
        let permit = Arc::clone(&self.semaphore)
            .acquire_many_owned(mib)
            .await
            .expect("the budget's semaphore is never closed");
        let now = self.reserved_mib.fetch_add(mib, Ordering::SeqCst) + mib;
        self.peak_reserved_mib.fetch_max(now, Ordering::SeqCst);
        Reservation { mib, reserved_mib: Arc::clone(&self.reserved_mib), _permit: permit }
    }
}

impl MemoryBudget {
    /// Waits for a large job's share (a current-table build, which sizes itself to it).
    pub async fn reserve_full(&self) -> Reservation {
        self.reserve(u64::MAX / 4).await
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget::new(DEFAULT_BUDGET)
    }
}

/// Parses a size such as `512MiB`, `1GiB`, `300MB` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a size; write e.g. 512MiB or 2GiB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => MIB as f64,
        "g" | "gb" => 1e9,
        "gib" => (1u64 << 30) as f64,
        other => return Err(format!("`{text}`: unknown unit `{other}`; use MiB or GiB")),
    };
    Ok((value * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("300MB").unwrap(), 300_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn small_inputs_reserve_little_and_large_ones_are_capped() {
        let budget = MemoryBudget::new(512 * MIB);
        assert_eq!(budget.estimate_mib(0), 16);
        assert_eq!(budget.estimate_mib(10 * MIB), 36);
        assert_eq!(budget.estimate_mib(3 << 30), 224);
        // A budget below one large conversion still admits it, alone.
        assert_eq!(MemoryBudget::new(100 * MIB).estimate_mib(3 << 30), 100);
        assert_eq!(MemoryBudget::new(0).total_mib(), 16);
    }

    #[tokio::test]
    async fn reservations_wait_for_room_and_the_peak_never_exceeds_the_budget() {
        let budget = MemoryBudget::new(448 * MIB);
        let first = budget.reserve(3 << 30).await;
        let second = budget.reserve(3 << 30).await;
        assert_eq!(budget.peak_reserved_mib(), 448);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(1 << 20).await.mib() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a full budget makes the next conversion wait");
        drop(first);
        assert_eq!(waiting.await.unwrap(), 18);
        drop(second);
        assert_eq!(budget.peak_reserved_mib(), 448);
    }
}
