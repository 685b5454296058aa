//! Drives one operator by hand.

use std::cell::RefCell;
use std::rc::Rc;

use sluice_engine::{
    Barrier, CheckpointId, Data, Operator, OperatorContext, OperatorSnapshot, Output, Push, Result,
    Timestamp, Watermark,
};

/// Everything an operator emitted, in order.
type Emitted<T> = Rc<RefCell<Vec<(T, Timestamp)>>>;

struct Collector<T>(Emitted<T>);

impl<T: Data> Push<T> for Collector<T> {
    fn push(&mut self, value: T, ts: Timestamp) -> Result<()> {
        self.0.borrow_mut().push((value, ts));
        Ok(())
    }
    fn watermark(&mut self, _wm: Watermark) -> Result<()> {
        Ok(())
    }
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
    fn barrier(&mut self, _barrier: Barrier) -> Result<()> {
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Runs one [`Operator`] without a job: the test hands it records, watermarks and
/// processing time, takes snapshots and restores them (into other worker counts too), and
/// reads what it emitted with its timestamps. Watermarks that do not advance are ignored, as
/// in a job.
///
/// ```
/// use sluice_engine::{Operator, Output, Result, Timestamp};
/// use sluice_testing::OperatorHarness;
///
/// struct Double;
/// impl Operator for Double {
///     type In = i64;
///     type Out = i64;
///     fn process(&mut self, v: i64, ts: Timestamp, out: &mut Output<i64>) -> Result<()> {
///         out.push(v * 2, ts)
///     }
/// }
/// # fn main() -> Result<()> {
/// let mut h = OperatorHarness::new(Double)?;
/// h.process(21, 1_000)?;
/// assert_eq!(h.take_output(), vec![(42, 1_000)]);
/// # Ok(())
/// # }
/// ```
pub struct OperatorHarness<O: Operator> {
    op: O,
    ctx: OperatorContext,
    out: Output<O::Out>,
    emitted: Emitted<O::Out>,
    watermark: Watermark,
}

impl<O: Operator> OperatorHarness<O> {
    /// Opens `op` as operator `op` on the only worker of a job, with in-memory state.
    ///
    /// # Errors
    /// What the operator's `open` returns.
    pub fn new(op: O) -> Result<Self> {
        Self::with_context(op, OperatorContext::standalone("op", 0, 1, 128))
    }

    /// Opens `op` in `ctx` (e.g. [`OperatorContext::standalone`] for worker 1 of 2).
    ///
    /// # Errors
    /// What the operator's `open` returns.
    pub fn with_context(mut op: O, ctx: OperatorContext) -> Result<Self> {
        op.open(&ctx)?;
        let emitted: Emitted<O::Out> = Rc::default();
        let out = Output::new();
        out.attach(Box::new(Collector(Rc::clone(&emitted))));
        Ok(OperatorHarness {
            op,
            ctx,
            out,
            emitted,
            watermark: Watermark::MIN,
        })
    }

    /// The operator's context.
    pub fn context(&self) -> &OperatorContext {
        &self.ctx
    }

    /// The operator itself.
    pub fn operator(&mut self) -> &mut O {
        &mut self.op
    }

    /// Hands the operator a record with event time `ts`.
    ///
    /// # Errors
    /// What the operator returns.
    pub fn process(&mut self, value: O::In, ts: Timestamp) -> Result<()> {
        self.op.process(value, ts, &mut self.out)
    }

    /// Advances the input watermark to `wm` (ignored unless it moves forward).
    ///
    /// # Errors
    /// What the operator returns.
    pub fn watermark(&mut self, wm: Watermark) -> Result<()> {
        if wm > self.watermark {
            self.watermark = wm;
            self.op.on_watermark(wm, &mut self.out)?;
        }
        Ok(())
    }

    /// The input watermark so far.
    pub fn current_watermark(&self) -> Watermark {
        self.watermark
    }

    /// Tells the operator that processing time is `now`.
    ///
    /// # Errors
    /// What the operator returns.
    pub fn processing_time(&mut self, now: Timestamp) -> Result<()> {
        self.op.on_processing_time(now, &mut self.out)
    }

    /// Takes a snapshot for checkpoint `id`.
    ///
    /// # Errors
    /// What the operator returns.
    pub fn snapshot(&mut self, id: u64) -> Result<OperatorSnapshot> {
        self.op.snapshot(CheckpointId(id))
    }

    /// Restores `snapshots` (of every worker that took one) into this operator, as a job
    /// restoring a checkpoint does.
    ///
    /// # Errors
    /// What the operator returns.
    pub fn restore(&mut self, snapshots: &[OperatorSnapshot]) -> Result<()> {
        for s in snapshots {
            self.op.restore(s)?;
        }
        Ok(())
    }

    /// Ends the input: the final `+inf` watermark, then `on_end`.
    ///
    /// # Errors
    /// What the operator returns.
    pub fn end(&mut self) -> Result<()> {
        self.watermark(Watermark::MAX)?;
        self.op.on_end(&mut self.out)
    }

    /// Removes and returns what the operator emitted so far, with timestamps.
    pub fn take_output(&mut self) -> Vec<(O::Out, Timestamp)> {
        std::mem::take(&mut *self.emitted.borrow_mut())
    }
}
