//! The process's CPU workers: one fixed pool of threads for decoding and Parquet encoding.
//!
//! Threads are created once per process (`--threads N`, default the cores this process may use,
//! cgroup quotas included) and live until it exits. A fixed pool keeps the allocator's per-thread
//! arenas bounded: spawning a thread per file or per row group gave every new thread its own
//! malloc arena, and the memory they kept outgrew what the parallel work saved.
//!
//! Work is a closure run once ([`spawn`]); work that must stay in order (one row group's column
//! writers, one file's batches) is a [`Strand`]: its jobs run one at a time, in submission
//! order, on whichever worker is free. Jobs never block on each other, so any number of strands
//! share any number of workers without deadlock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    sender: Mutex<mpsc::Sender<Job>>,
    threads: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();
static CONFIGURED: AtomicUsize = AtomicUsize::new(0);

/// The cores this process may use: `sched_getaffinity` and the cgroup CPU quota, as the standard
/// library reads them.
pub fn available() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Sets the pool's size before its first use (`--threads`); later calls change nothing.
pub fn configure(threads: usize) {
    CONFIGURED.store(threads.max(1), Ordering::SeqCst);
}

/// The number of worker threads.
pub fn threads() -> usize {
    pool().threads
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let threads = match CONFIGURED.load(Ordering::SeqCst) {
            0 => available(),
            n => n,
        };
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("cxlake-cpu-{i}"))
                .spawn(move || loop {
                    let job = match receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .expect("a worker thread starts");
        }
        Pool { sender: Mutex::new(sender), threads }
    })
}

/// Runs `job` on a worker. A panicking job is caught: its result channel closes, which the
/// waiting side reports.
pub fn spawn(job: impl FnOnce() + Send + 'static) {
    let job: Job = Box::new(move || {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    });
    pool()
        .sender
        .lock()
        .expect("pool sender lock")
        .send(job)
        .expect("worker threads live as long as the process");
}

/// Jobs that run one at a time, in the order they were submitted, on the shared workers.
#[derive(Clone, Default)]
pub struct Strand {
    inner: Arc<Mutex<StrandState>>,
}

#[derive(Default)]
struct StrandState {
    queue: VecDeque<Job>,
    running: bool,
}

impl Strand {
    pub fn new() -> Strand {
        Strand::default()
    }

    /// Queues `job` after every job submitted before it.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        let mut state = self.inner.lock().expect("strand lock");
        state.queue.push_back(Box::new(job));
        if state.running {
            return;
        }
        state.running = true;
        drop(state);
        let inner = self.inner.clone();
        spawn(move || loop {
            let next = {
                let mut state = inner.lock().expect("strand lock");
                match state.queue.pop_front() {
                    Some(job) => job,
                    None => {
                        state.running = false;
                        return;
                    }
                }
            };
            // One job's panic must not stop the strand: later jobs report through their own
            // channels.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(next));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strand_runs_its_jobs_in_order_while_others_run_alongside() {
        let strands: Vec<Strand> = (0..4).map(|_| Strand::new()).collect();
        let seen = Arc::new(Mutex::new(vec![Vec::new(); 4]));
        let (done_tx, done_rx) = mpsc::channel();
        for i in 0..200 {
            for (s, strand) in strands.iter().enumerate() {
                let seen = seen.clone();
                let done = done_tx.clone();
                strand.submit(move || {
                    seen.lock().unwrap()[s].push(i);
                    done.send(()).unwrap();
                });
            }
        }
        for _ in 0..800 {
            done_rx.recv().unwrap();
        }
        for order in seen.lock().unwrap().iter() {
            assert_eq!(*order, (0..200).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_job_closes_its_channel_and_the_workers_go_on() {
        let (tx, rx) = mpsc::channel::<u32>();
        spawn(move || {
            let _sender = tx;
            panic!("a job fails");
        });
        assert_eq!(rx.recv().ok(), None);
        let (tx, rx) = mpsc::channel();
        spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv().ok(), Some(7));
    }
}
