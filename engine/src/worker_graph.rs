//! The runtime graph of one worker: what its loop drives, flushes, ticks and checkpoints.

use std::cell::RefCell;
use std::rc::Rc;

use crate::participant::Participant;
use crate::runtime::{Flush, Tick, WorkerInput};

/// One worker's instance of the job graph, assembled by the build function and handed to the
/// worker loop.
#[derive(Default)]
pub(crate) struct WorkerGraph {
    /// Worker inputs with their level: 0 for sources, `exchange id + 1` for exchange receivers.
    pub(crate) inputs: Vec<(usize, Box<dyn WorkerInput>)>,
    /// Exchange senders with their exchange id.
    pub(crate) senders: Vec<(usize, Rc<RefCell<dyn Flush>>)>,
    /// Operators with processing-time hooks.
    pub(crate) tickers: Vec<Rc<RefCell<dyn Tick>>>,
    /// Operators and sinks, for checkpoints.
    pub(crate) participants: Vec<Rc<RefCell<dyn Participant>>>,
}

impl WorkerGraph {
    /// Orders the inputs so the most downstream are driven first: sources first in the list
    /// would starve the exchanges.
    pub(crate) fn drive_downstream_first(&mut self) {
        self.inputs.sort_by_key(|input| std::cmp::Reverse(input.0));
    }
}
