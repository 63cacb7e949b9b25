//! Counting the process's heap: the allocator the binary installs, which knows at every moment
//! how many bytes are allocated and the most there ever were.
//!
//! Why count at all: the memory budget ([`crate::budget`]) decides before work starts what it may
//! hold; this measures what it did hold, so `make bench` and the tests can compare the two
//! (peak RSS also counts the binary, thread stacks and what the allocator keeps after a free).
//! Two relaxed atomic adds per allocation cost nothing measurable next to the work they count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counted. Installed by `main.rs` as the global allocator.
pub struct CountingAllocator;

impl CountingAllocator {
    #[inline]
    fn grew(by: usize) {
        let now = ALLOCATED.fetch_add(by, Ordering::Relaxed) + by;
        // Most allocations do not set a new peak; a load is cheaper than a contended fetch_max.
        if now > PEAK.load(Ordering::Relaxed) {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            Self::grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            Self::grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                Self::grew(new_size - layout.size());
            } else {
                ALLOCATED.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

/// Tunes glibc's malloc for a process whose large buffers come and go on many threads (unless
/// the matching `MALLOC_*_` variable says otherwise). Called first thing in `main`, before any
/// thread exists. Measured on 2 cores, peak RSS of a conversion (heap peak 110–146 MiB alike):
///
/// | allocator | turns 685 MB | engagements 307 MB | Dixa JSON 283 MB |
/// |---|---|---|---|
/// | glibc defaults | 270 MiB | 276 MiB | 209 MiB |
/// | + two arenas, mmap above 256 KiB, trim above 4 MiB (kept) | 200–214 MiB | 199–236 MiB | 159–161 MiB |
/// | mimalloc 2.0.9 | 272–277 MiB | 291–297 MiB | 238–263 MiB |
/// | jemalloc 5.3 | 267–294 MiB | 268–277 MiB | 245–258 MiB |
///
/// with the same user time for all four. The threshold is a trade: on turns (`--raw off`, 3 runs
/// each) 256 KiB gives 175–181 MiB and 1.1–1.5 s of system time, 1 MiB 188–215 MiB and 0.9–1.1 s,
/// 4 MiB 222–239 MiB and 0.8 s, 32 MiB 228–244 MiB and 0.7 s, for a wall time 0–5 % longer at
/// 256 KiB; the lowest peak is kept, as the budget's headroom. Why: glibc gives each thread
/// that contends for the allocator an arena of its own, up to eight per core, and an arena keeps
/// what was freed in it; and its mmap threshold grows with every large free, so after the first
/// batches are dropped every later multi-MiB buffer is carved from an arena and fragments it.
/// A fixed threshold gives those buffers back to the system the moment they are freed.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, parameter, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2),
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 256 << 10),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 4 << 20),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt only sets a tunable; no thread allocates concurrently this early.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}

/// The most bytes that were allocated at one time since the process started.
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// The process's peak resident set so far, in bytes (`getrusage`), or 0 where unknown.
pub fn peak_rss() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a whole `rusage` into the pointer it is given.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0 {
            // SAFETY: initialised by the successful call above; ru_maxrss is in KiB on Linux.
            return (unsafe { usage.assume_init() }.ru_maxrss.max(0) as u64) * 1024;
        }
    }
    0
}
