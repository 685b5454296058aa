use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::CheckpointId;
use crate::time::{Timestamp, Watermark};

/// Types that flow through streams: owned, cloneable (a stream may feed several operators)
/// and sendable to another worker.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// A checkpoint barrier: everything before it belongs to checkpoint `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barrier {
    /// The checkpoint this barrier starts.
    pub id: CheckpointId,
}

/// The receiving end of an edge: what flows between operators on one worker.
///
/// Records, watermarks, idleness, barriers and end-of-input travel in the same order they
/// were produced.
pub trait Push<T>: 'static {
    /// A record with its event timestamp.
    fn push(&mut self, value: T, ts: Timestamp) -> Result<()>;
    /// The sender's watermark advanced.
    fn watermark(&mut self, wm: Watermark) -> Result<()>;
    /// The sender has no data for now and should not hold back the watermark.
    fn idle(&mut self) -> Result<()>;
    /// A checkpoint barrier.
    fn barrier(&mut self, barrier: Barrier) -> Result<()>;
    /// The sender will send nothing more.
    fn end(&mut self) -> Result<()>;
}

/// Control messages without the record type: what side outputs forward on behalf of the
/// operator that owns them.
pub trait Control: 'static {
    /// See [`Push::watermark`].
    fn watermark(&mut self, wm: Watermark) -> Result<()>;
    /// See [`Push::idle`].
    fn idle(&mut self) -> Result<()>;
    /// See [`Push::barrier`].
    fn barrier(&mut self, barrier: Barrier) -> Result<()>;
    /// See [`Push::end`].
    fn end(&mut self) -> Result<()>;
}

/// An operator's output: the consumers of one stream on this worker.
///
/// Pushing a record hands it to every consumer (cloned for all but the last).
pub struct Output<T> {
    targets: Rc<RefCell<Vec<Box<dyn Push<T>>>>>,
}

impl<T> Clone for Output<T> {
    fn clone(&self) -> Self {
        Output {
            targets: Rc::clone(&self.targets),
        }
    }
}

impl<T: Data> Default for Output<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Data> Output<T> {
    /// An output with no consumer yet.
    pub fn new() -> Self {
        Output {
            targets: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// Adds a consumer. Streams do this for you; it is for driving an operator by hand (e.g.
    /// in a unit test).
    pub fn attach(&self, target: Box<dyn Push<T>>) {
        self.targets.borrow_mut().push(target);
    }

    pub(crate) fn consumers(&self) -> usize {
        self.targets.borrow().len()
    }

    /// Emits `value` with event timestamp `ts`.
    #[inline]
    pub fn push(&mut self, value: T, ts: Timestamp) -> Result<()> {
        let mut targets = self.targets.borrow_mut();
        match targets.len() {
            1 => targets[0].push(value, ts),
            0 => Ok(()),
            n => {
                for t in &mut targets[..n - 1] {
                    t.push(value.clone(), ts)?;
                }
                targets[n - 1].push(value, ts)
            }
        }
    }
}

impl<T: Data> Control for Output<T> {
    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        self.targets
            .borrow_mut()
            .iter_mut()
            .try_for_each(|t| t.watermark(wm))
    }

    fn idle(&mut self) -> Result<()> {
        self.targets.borrow_mut().iter_mut().try_for_each(|t| t.idle())
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        self.targets
            .borrow_mut()
            .iter_mut()
            .try_for_each(|t| t.barrier(barrier))
    }

    fn end(&mut self) -> Result<()> {
        self.targets.borrow_mut().iter_mut().try_for_each(|t| t.end())
    }
}
