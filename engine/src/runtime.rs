//! The contracts between a worker's loop and what it drives: inputs it pulls from, exchange
//! senders it flushes, and operators it ticks. Everything above imports these; they import
//! nothing of the runtime.

use crate::error::Result;
use crate::ids::CheckpointId;
use crate::participant::SourceControl;
use crate::time::Timestamp;

/// What driving an input did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drive {
    /// Records or control messages moved.
    Worked,
    /// Nothing was available.
    Waiting,
    /// The input has ended.
    Finished,
}

/// Something the worker loop pulls from: a source reader or an exchange receiver.
pub(crate) trait WorkerInput {
    fn drive(&mut self) -> Result<Drive>;
    /// The input as a checkpointed source, if it is one.
    fn source(&mut self) -> Option<&mut dyn SourceControl> {
        None
    }
    fn tick(&mut self, _now: Timestamp) -> Result<()> {
        Ok(())
    }
    /// A processing-time tick while the worker is paused for a checkpoint.
    fn tick_paused(&mut self, _now: Timestamp) {}
    fn is_finished(&self) -> bool;
    /// The newest checkpoint barrier this input passed on (exchange receivers).
    fn passed_barrier(&self) -> Option<CheckpointId> {
        None
    }
}

/// Type-erased view of a sender for the worker loop.
pub(crate) trait Flush {
    /// Sends what the channels accept. Returns whether anything was sent.
    fn flush(&mut self) -> Result<bool>;
    /// Whether more is queued than the channels take: upstream must pause.
    fn is_blocked(&self) -> bool;
    /// Whether everything, including end-of-input, has been handed to the channels.
    fn is_drained(&self) -> bool;
}

/// Something the worker calls on every processing-time tick.
pub(crate) trait Tick {
    fn tick(&mut self, now: Timestamp) -> Result<()>;
}
