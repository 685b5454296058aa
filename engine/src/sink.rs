use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;

use crate::busy;
use crate::error::{BoxError, EngineError, Result, panic_message};
use crate::ids::CheckpointId;
use crate::metrics::Counter;
use crate::participant::Participant;
use crate::push::{Barrier, Data, Push};
use crate::snapshot::OperatorSnapshot;
use crate::time::{Timestamp, Watermark};

/// Where a stream's records leave the job. One instance runs on each worker.
pub trait Sink<T>: 'static {
    /// Writes one record.
    ///
    /// # Errors
    /// A write that cannot be done; the job stops with the sink's name.
    fn write(&mut self, value: T, ts: Timestamp) -> Result<(), BoxError>;

    /// Writes the records of `batch` in order, taking them out of it. The default writes
    /// them one by one.
    ///
    /// # Errors
    /// As [`Sink::write`].
    fn write_batch(&mut self, batch: &mut Vec<(T, Timestamp)>) -> Result<(), BoxError> {
        batch.drain(..).try_for_each(|(value, ts)| self.write(value, ts))
    }

    /// The input watermark advanced.
    fn on_watermark(&mut self, _wm: Watermark) -> Result<(), BoxError> {
        Ok(())
    }

    /// The input has no data for now and does not hold event time back (every partition
    /// upstream of this sink is idle), until its next record or watermark.
    fn on_idle(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Checkpoint `id` reached this sink: make every earlier write durable before returning.
    fn on_checkpoint(&mut self, _id: CheckpointId) -> Result<(), BoxError> {
        Ok(())
    }

    /// The input ended, or the job is stopping: write out everything written so far.
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Creates one sink instance per worker.
pub trait SinkFactory<T>: 'static {
    /// The sink for `worker` of `workers`.
    ///
    /// # Errors
    /// When the destination cannot be reached.
    fn create(&self, worker: usize, workers: usize) -> Result<Box<dyn Sink<T>>, BoxError>;

    /// What the sinks write to their store, over all workers, for the console; `None` (the
    /// default) when there is nothing beyond the records they take.
    fn report(&self) -> Option<Arc<dyn crate::status::SinkReport>> {
        None
    }
}

pub(crate) struct SinkNode<T> {
    pub(crate) name: Arc<str>,
    pub(crate) sink: Box<dyn Sink<T>>,
    pub(crate) records_in: Arc<Counter>,
    /// Nanoseconds spent in the sink's own calls.
    pub(crate) busy: Arc<Counter>,
    pub(crate) ended: bool,
    /// The newest barrier this sink acknowledged.
    pub(crate) barrier: Option<CheckpointId>,
}

impl<T> SinkNode<T> {
    fn guarded<R>(&mut self, f: impl FnOnce(&mut dyn Sink<T>) -> Result<R, BoxError>) -> Result<R> {
        let sink = &mut self.sink;
        let result = busy::timed(&self.busy, || catch_unwind(AssertUnwindSafe(|| f(sink.as_mut()))));
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(EngineError::SinkFailed {
                sink: self.name.to_string(),
                source,
            }),
            Err(payload) => Err(EngineError::OperatorPanicked {
                operator: self.name.to_string(),
                message: panic_message(payload.as_ref()),
            }),
        }
    }
}

impl<T: 'static> Participant for SinkNode<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn reached(&self, id: CheckpointId) -> bool {
        self.ended || self.barrier.is_some_and(|b| b >= id)
    }

    fn take_snapshot(&mut self, _id: CheckpointId) -> Result<Option<OperatorSnapshot>> {
        Ok(None)
    }

    fn restore(&mut self, _snapshots: &[&OperatorSnapshot]) -> Result<()> {
        Ok(())
    }

    fn flush_on_stop(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        self.guarded(|s| s.finish())?;
        Ok(())
    }
}

/// Shared handle to a sink node: what the upstream output and the worker's checkpoint
/// participants hold.
pub(crate) struct SinkInput<T>(pub(crate) Rc<RefCell<SinkNode<T>>>);

impl<T: Data> Push<T> for SinkInput<T> {
    #[inline]
    fn push(&mut self, value: T, ts: Timestamp) -> Result<()> {
        let mut node = self.0.borrow_mut();
        node.records_in.inc();
        node.guarded(|s| s.write(value, ts))
    }

    #[inline]
    fn push_batch(&mut self, batch: &mut Vec<(T, Timestamp)>) -> Result<()> {
        let mut node = self.0.borrow_mut();
        node.records_in.add(batch.len() as u64);
        node.guarded(|s| s.write_batch(batch))
    }

    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        self.0.borrow_mut().guarded(|s| s.on_watermark(wm))
    }

    fn idle(&mut self) -> Result<()> {
        self.0.borrow_mut().guarded(|s| s.on_idle())
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        let mut node = self.0.borrow_mut();
        node.guarded(|s| s.on_checkpoint(barrier.id))?;
        node.barrier = Some(barrier.id);
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        let mut node = self.0.borrow_mut();
        if node.ended {
            return Ok(());
        }
        node.ended = true;
        node.guarded(|s| s.finish())?;
        Ok(())
    }
}
