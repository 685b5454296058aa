//! A handle on a running job for the console: what it shows, and savepoint and stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::coordinator::Coordinator;
use crate::error::{EngineError, Result};
use crate::metrics::JobMetrics;
use crate::status::{CheckpointHistory, ErrorRecord, GraphView, JobLife, JobState};

/// A view of a running job that any thread can hold: its state, graph, metrics, partitions,
/// checkpoints, and the savepoint and stop actions. Cloning is cheap.
#[derive(Clone)]
pub struct JobObserver {
    inner: Arc<Observed>,
}

pub(crate) struct Observed {
    pub name: String,
    pub workers: usize,
    pub graph: GraphView,
    pub metrics: JobMetrics,
    pub life: Arc<JobLife>,
    pub coordinator: Option<Arc<Coordinator>>,
    pub stop: Box<dyn Fn() + Send + Sync>,
}

impl JobObserver {
    pub(crate) fn new(observed: Observed) -> Self {
        JobObserver {
            inner: Arc::new(observed),
        }
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Worker threads per attempt.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// Operators and edges.
    pub fn graph(&self) -> &GraphView {
        &self.inner.graph
    }

    /// Live counters and gauges, partitions and sink reports.
    pub fn metrics(&self) -> &JobMetrics {
        &self.inner.metrics
    }

    /// Running, restarting, failed, finished or stopped.
    pub fn state(&self) -> JobState {
        self.inner.life.state()
    }

    /// Restarts after failures so far.
    pub fn restarts(&self) -> u32 {
        self.inner.life.restarts()
    }

    /// When the job started, milliseconds since the epoch.
    pub fn started_at_ms(&self) -> i64 {
        self.inner.life.started_at_ms
    }

    /// The failures of the job's attempts, oldest first (the last 20).
    pub fn errors(&self) -> Vec<ErrorRecord> {
        self.inner.life.errors()
    }

    /// Recent checkpoints and the latest restore; `None` when checkpoints are off.
    pub fn checkpoints(&self) -> Option<CheckpointHistory> {
        self.inner.coordinator.as_ref().map(|c| c.history())
    }

    /// The interval between checkpoints; `None` when checkpoints are off.
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        self.inner.coordinator.as_ref().map(|c| c.interval())
    }

    /// Takes a checkpoint now and keeps it as savepoint `name`; see
    /// [`JobHandle::savepoint`](crate::JobHandle::savepoint).
    ///
    /// # Errors
    /// When checkpoints are off, none completes within `timeout`, or the name is taken.
    pub fn savepoint(&self, name: &str, timeout: Duration) -> Result<PathBuf> {
        self.coordinator()?.savepoint(name, timeout)
    }

    /// Stops the job; with checkpoints, after a final checkpoint (waiting up to `timeout` for
    /// it), whose id it returns, so a restart resumes exactly where the job stopped.
    ///
    /// # Errors
    /// When the final checkpoint does not complete in time; the job is not stopped then.
    pub fn stop(&self, timeout: Duration) -> Result<Option<u64>> {
        let last = match &self.inner.coordinator {
            Some(c) => Some(c.checkpoint_now(timeout)?),
            None => None,
        };
        (self.inner.stop)();
        Ok(last)
    }

    fn coordinator(&self) -> Result<&Arc<Coordinator>> {
        self.inner
            .coordinator
            .as_ref()
            .ok_or_else(|| EngineError::InvalidConfig {
                key: "checkpoints",
                reason: "savepoints need checkpoints to be configured".into(),
            })
    }
}
