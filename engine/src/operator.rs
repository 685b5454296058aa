use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;

use sluice_state::{KeyGroupRange, StateBackend};

use crate::busy;
use crate::error::{EngineError, Result, panic_message};
use crate::ids::{CheckpointId, WorkerId};
use crate::metrics::{Counter, Gauge, JobMetrics};
use crate::participant::Participant;
use crate::push::{BATCH_CAPACITY, Barrier, Control, Data, Output, Push};
use crate::runtime::Tick;
use crate::snapshot::OperatorSnapshot;
use crate::time::{Timestamp, Watermark};

/// What an operator instance knows about where it runs.
#[derive(Clone)]
pub struct OperatorContext {
    pub(crate) name: Arc<str>,
    pub(crate) worker: WorkerId,
    pub(crate) workers: usize,
    pub(crate) max_key_groups: u16,
    pub(crate) state: StateBackend,
    pub(crate) metrics: JobMetrics,
}

impl OperatorContext {
    /// A context for running operator `name` by hand, outside a job, as worker `worker` of
    /// `workers` with in-memory state (for unit tests of operators).
    pub fn standalone(name: &str, worker: usize, workers: usize, max_key_groups: u16) -> Self {
        let range = KeyGroupRange::for_worker(worker, workers, max_key_groups);
        OperatorContext {
            name: Arc::from(name),
            worker: WorkerId(worker),
            workers,
            max_key_groups,
            state: StateBackend::memory_for(range),
            metrics: JobMetrics::default(),
        }
    }

    /// The operator's stable name (also its state namespace and metrics label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker running this instance.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// Number of workers of the job.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The job's maximum number of key groups.
    pub fn max_key_groups(&self) -> u16 {
        self.max_key_groups
    }

    /// The key groups whose state this instance owns.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.state.key_groups()
    }

    /// This worker's state backend.
    pub fn state(&self) -> &StateBackend {
        &self.state
    }

    /// The counter `name` of this operator on this worker.
    pub fn counter(&self, name: &'static str) -> Arc<Counter> {
        self.metrics.counter(&self.name, name, self.worker.0)
    }

    /// The gauge `name` of this operator on this worker.
    pub fn gauge(&self, name: &'static str) -> Arc<Gauge> {
        self.metrics.gauge(&self.name, name, self.worker.0)
    }
}

/// A one-input operator. Only [`Operator::process`] is required; the lifecycle hooks have
/// defaults.
///
/// The engine calls the hooks in order: `open` once, then `process` for records and
/// `on_watermark` when the input watermark advances (before forwarding it), `on_processing_time`
/// on a timer tick, `snapshot` on a checkpoint barrier, and `on_end` once after the final
/// watermark when the input ends.
pub trait Operator: 'static {
    /// Input record type.
    type In: Data;
    /// Output record type.
    type Out: Data;

    /// Handles one record with its event timestamp.
    fn process(&mut self, value: Self::In, ts: Timestamp, out: &mut Output<Self::Out>) -> Result<()>;

    /// Prepares the instance (open state tables, create counters).
    fn open(&mut self, _ctx: &OperatorContext) -> Result<()> {
        Ok(())
    }

    /// The input watermark advanced to `wm`; fire event-time timers here.
    fn on_watermark(&mut self, _wm: Watermark, _out: &mut Output<Self::Out>) -> Result<()> {
        Ok(())
    }

    /// The wall clock reached `now`; fire processing-time timers here.
    fn on_processing_time(&mut self, _now: Timestamp, _out: &mut Output<Self::Out>) -> Result<()> {
        Ok(())
    }

    /// Captures the state of this instance for checkpoint `id`.
    fn snapshot(&mut self, _id: CheckpointId) -> Result<OperatorSnapshot> {
        Ok(OperatorSnapshot::default())
    }

    /// Loads state captured by [`Operator::snapshot`] (possibly by other workers: keep only
    /// the key groups of [`OperatorContext::key_groups`]).
    fn restore(&mut self, _snapshot: &OperatorSnapshot) -> Result<()> {
        Ok(())
    }

    /// After a restore, before any record: the input watermark this operator had when the
    /// checkpoint was taken. Operators that judge records by the watermark (windows, joins,
    /// process functions) take it up, so a replay finds late exactly what the run before the
    /// crash found late. Timers are not fired here.
    fn restore_watermark(&mut self, _wm: Watermark) {}

    /// The input has ended (after the final `+inf` watermark); emit what is left.
    fn on_end(&mut self, _out: &mut Output<Self::Out>) -> Result<()> {
        Ok(())
    }
}

/// The runtime instance of an operator on one worker: catches errors and panics and names
/// them, forwards progress downstream, counts records.
pub(crate) struct OperatorNode<O: Operator> {
    pub(crate) name: Arc<str>,
    op: O,
    out: Output<O::Out>,
    side_outputs: Vec<Box<dyn Control>>,
    records_in: Arc<Counter>,
    /// Nanoseconds spent in the operator's own calls.
    busy: Arc<Counter>,
    /// The input watermark, for the console.
    watermark_gauge: Arc<Gauge>,
    watermark: Watermark,
    /// The input said it is idle, and no watermark came since.
    idle: bool,
    ended: bool,
    /// The newest barrier that passed, with the snapshot taken for it and the input watermark
    /// then.
    barrier: Option<(CheckpointId, Option<OperatorSnapshot>, Watermark)>,
}

impl<O: Operator> OperatorNode<O> {
    pub(crate) fn new(
        ctx: &OperatorContext,
        op: O,
        out: Output<O::Out>,
        side_outputs: Vec<Box<dyn Control>>,
    ) -> Self {
        OperatorNode {
            name: Arc::clone(&ctx.name),
            records_in: ctx.counter("records_in"),
            busy: ctx.counter("busy_ns"),
            watermark_gauge: ctx.gauge("watermark"),
            op,
            out: out.batching(BATCH_CAPACITY).counting(ctx.counter("records_out")),
            side_outputs,
            watermark: Watermark::MIN,
            idle: false,
            ended: false,
            barrier: None,
        }
    }

    /// Runs `f` on the operator, turning errors and panics into errors that name it.
    #[inline]
    fn guarded<R>(&mut self, f: impl FnOnce(&mut O, &mut Output<O::Out>) -> Result<R>) -> Result<R> {
        let (op, out) = (&mut self.op, &mut self.out);
        let result = busy::timed(&self.busy, || catch_unwind(AssertUnwindSafe(|| f(op, out))));
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(e.in_operator(&self.name)),
            Err(payload) => Err(EngineError::OperatorPanicked {
                operator: self.name.to_string(),
                message: panic_message(payload.as_ref()),
            }),
        }
    }

    fn forward_control(&mut self, f: impl Fn(&mut dyn Control) -> Result<()>) -> Result<()> {
        f(&mut self.out)?;
        for side in &mut self.side_outputs {
            f(side.as_mut())?;
        }
        Ok(())
    }
}

impl<O: Operator> Tick for OperatorNode<O> {
    fn tick(&mut self, now: Timestamp) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.guarded(|op, out| {
            op.on_processing_time(now, out)?;
            out.flush()
        })
    }
}

impl<O: Operator> Participant for OperatorNode<O> {
    fn name(&self) -> &str {
        &self.name
    }

    fn reached(&self, id: CheckpointId) -> bool {
        self.ended || self.barrier.as_ref().is_some_and(|(b, ..)| *b >= id)
    }

    fn take_snapshot(&mut self, id: CheckpointId) -> Result<Option<OperatorSnapshot>> {
        match &mut self.barrier {
            Some((b, snapshot, _)) if *b == id && snapshot.is_some() => Ok(snapshot.take()),
            _ => self.guarded(|op, _| op.snapshot(id)).map(Some),
        }
    }

    fn restore(&mut self, snapshots: &[&OperatorSnapshot]) -> Result<()> {
        for s in snapshots {
            self.guarded(|op, _| op.restore(s))?;
        }
        Ok(())
    }

    fn input_watermark(&self, id: CheckpointId) -> Option<Watermark> {
        match &self.barrier {
            Some((b, _, wm)) if *b == id => Some(*wm),
            _ => Some(self.watermark),
        }
    }

    fn restore_watermark(&mut self, wm: Watermark) -> Result<()> {
        self.watermark = wm;
        self.guarded(|op, _| {
            op.restore_watermark(wm);
            Ok(())
        })
    }
}

/// Shared handle to a node; what upstream outputs and the worker's tick list hold.
pub(crate) struct NodeInput<O: Operator>(pub(crate) Rc<RefCell<OperatorNode<O>>>);

impl<O: Operator> Push<O::In> for NodeInput<O> {
    #[inline]
    fn push(&mut self, value: O::In, ts: Timestamp) -> Result<()> {
        let mut node = self.0.borrow_mut();
        node.records_in.inc();
        node.guarded(|op, out| {
            op.process(value, ts, out)?;
            out.flush()
        })
    }

    #[inline]
    fn push_batch(&mut self, batch: &mut Vec<(O::In, Timestamp)>) -> Result<()> {
        let mut node = self.0.borrow_mut();
        node.records_in.add(batch.len() as u64);
        node.guarded(|op, out| {
            batch
                .drain(..)
                .try_for_each(|(value, ts)| op.process(value, ts, out))?;
            out.flush()
        })
    }

    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        let mut node = self.0.borrow_mut();
        let resumed = std::mem::take(&mut node.idle);
        if wm <= node.watermark {
            // After idleness, a watermark that does not move says the input is active again.
            return match resumed {
                true => {
                    let current = node.watermark;
                    node.forward_control(|c| c.watermark(current))
                }
                false => Ok(()),
            };
        }
        node.watermark = wm;
        node.watermark_gauge.set(wm.0);
        node.guarded(|op, out| op.on_watermark(wm, out))?;
        node.forward_control(|c| c.watermark(wm))
    }

    fn idle(&mut self) -> Result<()> {
        let mut node = self.0.borrow_mut();
        node.idle = true;
        node.forward_control(|c| c.idle())
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        let mut node = self.0.borrow_mut();
        let snapshot = node.guarded(|op, _| op.snapshot(barrier.id))?;
        node.barrier = Some((barrier.id, Some(snapshot), node.watermark));
        node.forward_control(|c| c.barrier(barrier))
    }

    fn end(&mut self) -> Result<()> {
        let mut node = self.0.borrow_mut();
        if node.ended {
            return Ok(());
        }
        if node.watermark < Watermark::MAX {
            node.watermark = Watermark::MAX;
            node.guarded(|op, out| op.on_watermark(Watermark::MAX, out))?;
            node.forward_control(|c| c.watermark(Watermark::MAX))?;
        }
        node.guarded(|op, out| op.on_end(out))?;
        node.ended = true;
        node.forward_control(|c| c.end())
    }
}
