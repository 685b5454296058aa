//! Whether a run has come to rest: every worker idle, nothing in flight.
//!
//! Each worker counts its loop turns and remembers the last turn in which something moved.
//! A run is quiet once every worker has completed two turns, both begun after the question
//! was asked, in which nothing moved: a message sent before the question was either received
//! in one of those turns (which would then not be quiet) or was never sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One worker's turn counters.
#[derive(Debug, Default)]
struct WorkerActivity {
    /// Completed loop turns.
    turns: AtomicU64,
    /// The last completed turn in which something moved (or which could not rest: a
    /// checkpoint in flight, data queued for another worker).
    last_busy: AtomicU64,
    /// The worker left its loop.
    exited: AtomicBool,
}

/// The turn counters of every worker of one run.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    workers: Vec<WorkerActivity>,
}

impl Activity {
    pub(crate) fn new(workers: usize) -> Self {
        Activity {
            workers: (0..workers).map(|_| WorkerActivity::default()).collect(),
        }
    }

    /// Worker `worker` completed a turn; `at_rest` says nothing moved and nothing waits.
    #[inline]
    pub(crate) fn turn(&self, worker: usize, at_rest: bool) {
        if let Some(w) = self.workers.get(worker) {
            let n = w.turns.load(Ordering::Relaxed) + 1;
            if !at_rest {
                w.last_busy.store(n, Ordering::Relaxed);
            }
            w.turns.store(n, Ordering::Release);
        }
    }

    /// Worker `worker` left its loop.
    pub(crate) fn exited(&self, worker: usize) {
        if let Some(w) = self.workers.get(worker) {
            w.exited.store(true, Ordering::Release);
        }
    }

    /// Waits up to `timeout` for the run to come to rest. Returns whether it did.
    pub(crate) fn wait_quiet(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let asked: Vec<u64> = self
                .workers
                .iter()
                .map(|w| w.turns.load(Ordering::Acquire))
                .collect();
            loop {
                let mut settled = true;
                let mut moved = false;
                for (w, asked) in self.workers.iter().zip(&asked) {
                    if w.exited.load(Ordering::Acquire) {
                        continue;
                    }
                    let done = w.turns.load(Ordering::Acquire);
                    if w.last_busy.load(Ordering::Relaxed) > *asked {
                        moved = true;
                    }
                    settled &= done >= asked + 2;
                }
                if moved {
                    break;
                }
                if settled {
                    return true;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_only_after_two_restful_turns_of_every_worker() {
        let a = Activity::new(2);
        a.turn(0, true);
        a.turn(1, false);
        assert!(
            !a.wait_quiet(Duration::from_millis(5)),
            "nobody turned since the question"
        );
        let a = std::sync::Arc::new(Activity::new(2));
        let worker = {
            let a = std::sync::Arc::clone(&a);
            std::thread::spawn(move || {
                for i in 0..200 {
                    // Worker 1 works on its first 20 turns, then rests.
                    a.turn(0, true);
                    a.turn(1, i >= 20);
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        };
        assert!(a.wait_quiet(Duration::from_secs(5)));
        let turns = a.workers[1].turns.load(Ordering::Acquire);
        assert!(turns >= 22, "quiet declared after {turns} turns");
        worker.join().unwrap();
    }

    #[test]
    fn exited_workers_are_quiet() {
        let a = Activity::new(1);
        a.exited(0);
        assert!(a.wait_quiet(Duration::from_millis(50)));
    }
}
