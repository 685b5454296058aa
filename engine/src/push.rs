use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::CheckpointId;
use crate::metrics::Counter;
use crate::time::{Timestamp, Watermark};

/// Types that flow through streams: owned, cloneable (a stream may feed several operators)
/// and sendable to another worker.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// Most records an output the engine drives collects before handing them on.
pub(crate) const BATCH_CAPACITY: usize = 512;

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
    /// Records in order, with their event timestamps; takes them all out of `batch`. The
    /// default pushes them one by one; consumers override it to do their per-call work
    /// (borrowing, counting, guarding against panics) once per batch.
    fn push_batch(&mut self, batch: &mut Vec<(T, Timestamp)>) -> Result<()> {
        batch.drain(..).try_for_each(|(value, ts)| self.push(value, ts))
    }
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
/// Pushing a record hands it to every consumer (cloned for all but the last). An output the
/// engine drives itself collects records into a batch instead ([`Output::batching`]) and
/// hands the batch on when it is full, when it is flushed, and before any watermark,
/// idleness, barrier or end, so consumers see everything in the order it was pushed.
pub struct Output<T> {
    targets: Rc<RefCell<Vec<Box<dyn Push<T>>>>>,
    /// Records not handed on yet, when batching; never more than `capacity`.
    batch: Vec<(T, Timestamp)>,
    capacity: usize,
    /// Counts the records handed on from batches, when set.
    emitted: Option<Arc<Counter>>,
}

impl<T> Clone for Output<T> {
    /// Another handle on the same consumers, without the batch (a clone does not batch).
    fn clone(&self) -> Self {
        Output {
            targets: Rc::clone(&self.targets),
            batch: Vec::new(),
            capacity: 0,
            emitted: None,
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
            batch: Vec::new(),
            capacity: 0,
            emitted: None,
        }
    }

    /// This output, collecting up to `capacity` records before handing them on. Whoever
    /// drives it must [`flush`](Output::flush) it when a unit of work is done.
    pub(crate) fn batching(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self.batch = Vec::with_capacity(capacity);
        self
    }

    /// Adds a consumer. Streams do this for you; it is for driving an operator by hand (e.g.
    /// in a unit test).
    pub fn attach(&self, target: Box<dyn Push<T>>) {
        self.targets.borrow_mut().push(target);
    }

    /// This batching output, counting in `emitted` the records it hands on.
    pub(crate) fn counting(mut self, emitted: Arc<Counter>) -> Self {
        self.emitted = Some(emitted);
        self
    }

    pub(crate) fn consumers(&self) -> usize {
        self.targets.borrow().len()
    }

    /// Emits `value` with event timestamp `ts`.
    #[inline(always)]
    pub fn push(&mut self, value: T, ts: Timestamp) -> Result<()> {
        if self.capacity == 0 {
            return self.push_now(value, ts);
        }
        // The batch never grows past its capacity: it is handed on when it reaches it.
        if self.batch.len() + 1 < self.capacity {
            self.batch.push((value, ts));
            return Ok(());
        }
        self.batch.push((value, ts));
        self.flush()
    }

    /// Hands `value` to every consumer at once (an output that does not batch).
    #[inline(never)]
    fn push_now(&mut self, value: T, ts: Timestamp) -> Result<()> {
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

    /// Hands on the records collected so far.
    #[inline]
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        if let Some(emitted) = &self.emitted {
            emitted.add(self.batch.len() as u64);
        }
        let result = hand_on(&mut self.targets.borrow_mut(), &mut self.batch);
        self.batch.clear();
        result
    }

    /// Emits the records of `batch` in order, after any collected before, taking them out of
    /// it.
    pub(crate) fn push_batch(&mut self, batch: &mut Vec<(T, Timestamp)>) -> Result<()> {
        self.flush()?;
        if let Some(emitted) = &self.emitted {
            emitted.add(batch.len() as u64);
        }
        hand_on(&mut self.targets.borrow_mut(), batch)
    }
}

/// Hands `batch` to every consumer in `targets` (a copy to all but the last), emptying it.
fn hand_on<T: Data>(targets: &mut [Box<dyn Push<T>>], batch: &mut Vec<(T, Timestamp)>) -> Result<()> {
    let Some((last, others)) = targets.split_last_mut() else {
        batch.clear();
        return Ok(());
    };
    let mut copy = Vec::new();
    for target in others {
        copy.clear();
        copy.extend(batch.iter().cloned());
        target.push_batch(&mut copy)?;
    }
    last.push_batch(batch)
}

impl<T: Data> Control for Output<T> {
    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        self.flush()?;
        self.targets
            .borrow_mut()
            .iter_mut()
            .try_for_each(|t| t.watermark(wm))
    }

    fn idle(&mut self) -> Result<()> {
        self.flush()?;
        self.targets.borrow_mut().iter_mut().try_for_each(|t| t.idle())
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        self.flush()?;
        self.targets
            .borrow_mut()
            .iter_mut()
            .try_for_each(|t| t.barrier(barrier))
    }

    fn end(&mut self) -> Result<()> {
        self.flush()?;
        self.targets.borrow_mut().iter_mut().try_for_each(|t| t.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes down what reaches it, in order.
    struct Trace(Rc<RefCell<Vec<String>>>);

    impl Push<u32> for Trace {
        fn push(&mut self, value: u32, ts: Timestamp) -> Result<()> {
            self.0.borrow_mut().push(format!("{value}@{ts}"));
            Ok(())
        }
        fn push_batch(&mut self, batch: &mut Vec<(u32, Timestamp)>) -> Result<()> {
            self.0.borrow_mut().push(format!("batch of {}", batch.len()));
            batch.drain(..).try_for_each(|(value, ts)| self.push(value, ts))
        }
        fn watermark(&mut self, wm: Watermark) -> Result<()> {
            self.0.borrow_mut().push(format!("watermark {}", wm.0));
            Ok(())
        }
        fn idle(&mut self) -> Result<()> {
            self.0.borrow_mut().push("idle".into());
            Ok(())
        }
        fn barrier(&mut self, barrier: Barrier) -> Result<()> {
            self.0.borrow_mut().push(format!("barrier {}", barrier.id.0));
            Ok(())
        }
        fn end(&mut self) -> Result<()> {
            self.0.borrow_mut().push("end".into());
            Ok(())
        }
    }

    #[test]
    fn a_batching_output_hands_records_on_in_order_before_any_control_message() {
        let (first, second) = (Rc::default(), Rc::default());
        let mut out = Output::<u32>::new().batching(3);
        out.attach(Box::new(Trace(Rc::clone(&first))));
        out.attach(Box::new(Trace(Rc::clone(&second))));
        out.push(1, 10).unwrap();
        out.push(2, 20).unwrap();
        assert!(first.borrow().is_empty(), "collected, not handed on yet");
        out.watermark(Watermark(15)).unwrap();
        out.push(3, 30).unwrap();
        out.push(4, 40).unwrap();
        out.push(5, 50).unwrap();
        out.push(6, 60).unwrap();
        out.barrier(Barrier { id: CheckpointId(7) }).unwrap();
        out.push(7, 70).unwrap();
        out.flush().unwrap();
        out.end().unwrap();
        let expected = [
            "batch of 2",
            "1@10",
            "2@20",
            "watermark 15",
            "batch of 3",
            "3@30",
            "4@40",
            "5@50",
            "batch of 1",
            "6@60",
            "barrier 7",
            "batch of 1",
            "7@70",
            "end",
        ];
        assert_eq!(*first.borrow(), expected);
        assert_eq!(*second.borrow(), expected);
    }

    #[test]
    fn an_output_that_does_not_batch_hands_each_record_on_at_once() {
        let seen = Rc::default();
        let mut out = Output::<u32>::new();
        out.attach(Box::new(Trace(Rc::clone(&seen))));
        out.push(1, 10).unwrap();
        assert_eq!(*seen.borrow(), ["1@10"]);
    }
}
