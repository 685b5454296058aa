//! Whether a job's whole input is idle.
//!
//! A source that ends its input after a quiet spell (the Kafka source's `exit_when_idle`) asks
//! the whole job first: a join's quiet side must not close its windows and end while the
//! other side is still being read, or has not started yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The idleness of every reader of one run: one reader per source and worker.
#[derive(Debug, Default)]
pub(crate) struct InputIdleness {
    /// Readers in the run: sources × workers.
    readers: usize,
    /// Each reader's slot in `idle`, given once when its vote is created.
    slots: Mutex<HashMap<(String, usize), usize>>,
    /// Per slot: whether that reader is idle (an ended reader counts as idle).
    idle: Mutex<Vec<bool>>,
}

impl InputIdleness {
    /// Idleness for a run of `sources` sources on `workers` workers.
    pub(crate) fn new(sources: usize, workers: usize) -> Self {
        InputIdleness {
            readers: sources * workers,
            ..InputIdleness::default()
        }
    }

    /// The slot of the reader of `source` on `worker` (busy until it says otherwise).
    fn slot(&self, source: &str, worker: usize) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let next = slots.len();
        let slot = *slots.entry((source.to_string(), worker)).or_insert(next);
        if slot == next {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(false);
        }
        slot
    }

    /// Records the reader's state; whether every reader of the run has now said it is idle.
    fn set(&self, slot: usize, idle: bool) -> bool {
        let mut all = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        all[slot] = idle;
        all.len() >= self.readers && all.iter().all(|idle| *idle)
    }
}

/// One reader's voice in the job's idleness, from
/// [`SourceContext::idle_vote`](crate::SourceContext::idle_vote).
#[derive(Debug, Clone)]
pub struct IdleVote {
    board: Arc<InputIdleness>,
    slot: usize,
}

impl IdleVote {
    pub(crate) fn new(board: Arc<InputIdleness>, source: &str, worker: usize) -> Self {
        let slot = board.slot(source, worker);
        IdleVote { board, slot }
    }

    /// Says whether this reader is idle; returns whether every reader of every source of the
    /// job is idle or has ended, which is when an idle reader may end its input. A reader that
    /// has not said anything yet counts as busy.
    pub fn vote(&self, idle: bool) -> bool {
        self.board.set(self.slot, idle)
    }

    /// The reader's input ended: from now on it counts as idle.
    pub(crate) fn ended(&self) {
        self.board.set(self.slot, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_is_idle_only_when_every_reader_says_so() {
        let board = Arc::new(InputIdleness::new(2, 2));
        let orders: Vec<IdleVote> = (0..2)
            .map(|w| IdleVote::new(Arc::clone(&board), "orders", w))
            .collect();
        let views: Vec<IdleVote> = (0..2)
            .map(|w| IdleVote::new(Arc::clone(&board), "views", w))
            .collect();
        assert!(!views[0].vote(true));
        assert!(!views[1].vote(true), "the orders readers have not spoken");
        assert!(!orders[0].vote(true));
        assert!(!orders[1].vote(false));
        orders[1].ended();
        assert!(orders[0].vote(true));
        assert!(!views[1].vote(false), "a reader that gets input again is busy");
    }
}
