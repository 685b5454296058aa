use std::sync::{Arc, Mutex, MutexGuard};

use sluice_engine::{BoxError, CheckpointId, Data, Sink, SinkFactory, Timestamp, Watermark};

/// Collects a stream's records in memory, for tests and small reports.
///
/// The handle is shared: keep a clone outside the job and read it after (or while) it runs.
/// Each worker hands its records over in chunks, when its watermark advances and at the end.
#[derive(Debug)]
pub struct CollectSink<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink {
            records: Arc::clone(&self.records),
        }
    }
}

impl<T> Default for CollectSink<T> {
    fn default() -> Self {
        CollectSink {
            records: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T: Data> CollectSink<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes and returns everything collected so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }

    /// A copy of everything collected so far.
    pub fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// Number of records collected so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl<T: Data> SinkFactory<T> for CollectSink<T> {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<T>>, BoxError> {
        Ok(Box::new(CollectWriter {
            shared: self.clone(),
            local: Vec::new(),
        }))
    }
}

struct CollectWriter<T> {
    shared: CollectSink<T>,
    local: Vec<T>,
}

impl<T: Data> CollectWriter<T> {
    fn hand_over(&mut self) {
        if !self.local.is_empty() {
            self.shared.lock().append(&mut self.local);
        }
    }
}

impl<T: Data> Sink<T> for CollectWriter<T> {
    fn write(&mut self, value: T, _ts: Timestamp) -> Result<(), BoxError> {
        self.local.push(value);
        if self.local.len() >= 1024 {
            self.hand_over();
        }
        Ok(())
    }

    fn on_watermark(&mut self, _wm: Watermark) -> Result<(), BoxError> {
        self.hand_over();
        Ok(())
    }

    fn on_checkpoint(&mut self, _id: CheckpointId) -> Result<(), BoxError> {
        // What a checkpoint covers must be visible before it completes.
        self.hand_over();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.hand_over();
        Ok(())
    }
}
