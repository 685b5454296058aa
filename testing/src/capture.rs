//! A sink that records what a job writes, with timestamps, for assertions.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sluice_engine::{BoxError, CheckpointId, Data, Sink, SinkFactory, Timestamp, Watermark};

/// One record a job wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured<T> {
    /// The record.
    pub value: T,
    /// Its event timestamp.
    pub timestamp: Timestamp,
    /// The worker that wrote it.
    pub worker: usize,
}

/// When a worker's writes become visible (are "durable" for the test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// At once, as each record is written.
    Immediate,
    /// At checkpoint barriers, at the end of input and when the job stops, like a sink that
    /// batches its writes: a crash loses what was not handed over yet.
    Batched,
}

#[derive(Debug, Default)]
struct Gate {
    writes_blocked: bool,
    /// Workers whose checkpoint barriers wait (`None`: every worker's).
    checkpoints_blocked: Option<Option<usize>>,
    waiting: usize,
}

#[derive(Debug)]
struct Shared<T> {
    records: Mutex<Vec<Captured<T>>>,
    gate: Mutex<Gate>,
    opened: Condvar,
    delivery: Delivery,
}

/// Records what a job writes, in the order each worker handed it over, with the event
/// timestamp and the worker. Clone it into the job; read it from the test.
///
/// [`CaptureSink::block`] makes every write wait (a stalled store: backpressure), and
/// [`CaptureSink::block_checkpoints`] makes checkpoint barriers wait in the sink (a flush that
/// does not return).
///
/// ```
/// use sluice_testing::CaptureSink;
/// let sink = CaptureSink::<u64>::new();
/// assert!(sink.values().is_empty());
/// ```
#[derive(Debug)]
pub struct CaptureSink<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for CaptureSink<T> {
    fn clone(&self) -> Self {
        CaptureSink {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: Data> Default for CaptureSink<T> {
    fn default() -> Self {
        Self::with_delivery(Delivery::Immediate)
    }
}

impl<T: Data> CaptureSink<T> {
    /// A sink whose writes are visible at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink that hands its writes over only at checkpoint barriers, at the end of input and
    /// when the job stops, like a batching store client: a crash loses what it still holds.
    pub fn batched() -> Self {
        Self::with_delivery(Delivery::Batched)
    }

    fn with_delivery(delivery: Delivery) -> Self {
        CaptureSink {
            shared: Arc::new(Shared {
                records: Mutex::new(Vec::new()),
                gate: Mutex::new(Gate::default()),
                opened: Condvar::new(),
                delivery,
            }),
        }
    }

    fn records_lock(&self) -> MutexGuard<'_, Vec<Captured<T>>> {
        self.shared.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.shared.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything handed over so far.
    pub fn records(&self) -> Vec<Captured<T>> {
        self.records_lock().clone()
    }

    /// The values handed over so far.
    pub fn values(&self) -> Vec<T> {
        self.records_lock().iter().map(|c| c.value.clone()).collect()
    }

    /// Number of records handed over so far.
    pub fn len(&self) -> usize {
        self.records_lock().len()
    }

    /// Whether nothing was handed over.
    pub fn is_empty(&self) -> bool {
        self.records_lock().is_empty()
    }

    /// Makes every write wait until [`CaptureSink::unblock`].
    pub fn block(&self) {
        self.gate().writes_blocked = true;
    }

    /// Makes every checkpoint barrier wait in the sink until [`CaptureSink::unblock`].
    pub fn block_checkpoints(&self) {
        self.gate().checkpoints_blocked = Some(None);
    }

    /// Makes the checkpoint barriers of `worker` wait in its sink until
    /// [`CaptureSink::unblock`].
    pub fn block_checkpoints_on(&self, worker: usize) {
        self.gate().checkpoints_blocked = Some(Some(worker));
    }

    /// Lets writes and barriers through again.
    pub fn unblock(&self) {
        let mut gate = self.gate();
        gate.writes_blocked = false;
        gate.checkpoints_blocked = None;
        self.shared.opened.notify_all();
    }

    /// Number of workers waiting in the sink right now.
    pub fn waiting(&self) -> usize {
        self.gate().waiting
    }

    fn pass(&self, worker: usize, checkpoint: bool) {
        let mut gate = self.gate();
        let blocked = |g: &Gate| {
            if checkpoint {
                g.checkpoints_blocked
                    .is_some_and(|only| only.is_none_or(|w| w == worker))
            } else {
                g.writes_blocked
            }
        };
        if blocked(&gate) {
            gate.waiting += 1;
            while blocked(&gate) {
                gate = self.shared.opened.wait(gate).unwrap_or_else(|p| p.into_inner());
            }
            gate.waiting -= 1;
        }
    }
}

impl<T: Data> SinkFactory<T> for CaptureSink<T> {
    fn create(&self, worker: usize, _workers: usize) -> Result<Box<dyn Sink<T>>, BoxError> {
        Ok(Box::new(CaptureWriter {
            sink: self.clone(),
            worker,
            held: Vec::new(),
        }))
    }
}

struct CaptureWriter<T> {
    sink: CaptureSink<T>,
    worker: usize,
    held: Vec<Captured<T>>,
}

impl<T: Data> CaptureWriter<T> {
    fn hand_over(&mut self) {
        if !self.held.is_empty() {
            self.sink.records_lock().append(&mut self.held);
        }
    }
}

impl<T: Data> Sink<T> for CaptureWriter<T> {
    fn write(&mut self, value: T, timestamp: Timestamp) -> Result<(), BoxError> {
        self.sink.pass(self.worker, false);
        let captured = Captured {
            value,
            timestamp,
            worker: self.worker,
        };
        match self.sink.shared.delivery {
            Delivery::Immediate => self.sink.records_lock().push(captured),
            Delivery::Batched => self.held.push(captured),
        }
        Ok(())
    }

    fn on_watermark(&mut self, _wm: Watermark) -> Result<(), BoxError> {
        Ok(())
    }

    fn on_checkpoint(&mut self, _id: CheckpointId) -> Result<(), BoxError> {
        self.sink.pass(self.worker, true);
        self.hand_over();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.hand_over();
        Ok(())
    }
}
