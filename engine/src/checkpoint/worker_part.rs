use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use sluice_state::StateBackend;
use sluice_state::checkpoint::{CheckpointStore, DatabaseEntry, WorkerEntry};

use crate::checkpoint::coordinator::{Coordinator, WorkerAck};
use crate::error::{EngineError, Result};
use crate::ids::CheckpointId;
use crate::participant::{EventTime, Participant};
use crate::runtime::WorkerInput;
use crate::snapshot::OperatorSnapshot;
use crate::source::SourcePosition;
use crate::time::Watermark;

/// What one worker writes per checkpoint besides its database: the snapshots of its stateful
/// operators, and the input watermark of every operator.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct WorkerSnapshots {
    pub operators: Vec<(String, OperatorSnapshot)>,
    pub watermarks: Vec<(String, Watermark)>,
}

pub(crate) fn encode_snapshots(job: &str, snapshots: &WorkerSnapshots) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(snapshots, bincode::config::standard()).map_err(|e| {
        EngineError::Checkpoint {
            job: job.to_string(),
            reason: format!("cannot encode operator snapshots: {e}"),
        }
    })
}

pub(crate) fn decode_snapshots(job: &str, bytes: &[u8]) -> Result<WorkerSnapshots> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(s, _)| s)
        .map_err(|e| EngineError::Checkpoint {
            job: job.to_string(),
            reason: format!("cannot decode operator snapshots: {e}"),
        })
}

/// One worker's side of the checkpoint protocol, stepped by the worker loop.
pub(crate) struct WorkerPart {
    coordinator: Arc<Coordinator>,
    job: String,
    worker: usize,
    backend: StateBackend,
    /// The newest checkpoint whose barrier this worker's sources emitted.
    injected: u64,
    acknowledged: u64,
    committed: u64,
    /// Positions of the sources (by input index) at the newest barrier, with the event time
    /// they had read per partition.
    positions: Vec<(usize, String, SourcePosition, EventTime)>,
    watermark: Watermark,
    finished: bool,
}

impl WorkerPart {
    pub(crate) fn new(
        coordinator: Arc<Coordinator>,
        job: &str,
        worker: usize,
        backend: StateBackend,
    ) -> Self {
        let settled = coordinator.settled();
        WorkerPart {
            coordinator,
            job: job.to_string(),
            worker,
            backend,
            injected: settled,
            acknowledged: settled,
            committed: settled,
            positions: Vec::new(),
            watermark: Watermark::MAX,
            finished: false,
        }
    }

    /// Advances the protocol. Returns whether the sources must stay paused.
    pub(crate) fn step(
        &mut self,
        inputs: &mut [(usize, Box<dyn WorkerInput>)],
        participants: &[Rc<RefCell<dyn Participant>>],
    ) -> Result<bool> {
        let triggered = self.coordinator.triggered();
        if triggered > self.injected {
            self.inject(triggered, inputs)?;
        }
        let settled = self.coordinator.settled();
        let id = CheckpointId(self.injected);
        if self.acknowledged < self.injected
            && settled < self.injected
            && participants.iter().all(|p| p.borrow().reached(id))
        {
            self.acknowledged = self.injected;
            self.write_part(id, participants)?;
        }
        let paused = self.coordinator.settled() < self.injected;
        if !paused && self.committed < self.injected {
            self.committed = self.injected;
            if self.coordinator.completed() >= self.injected {
                for (index, _, position, _) in &self.positions {
                    if let Some(source) = inputs.get_mut(*index).and_then(|(_, i)| i.source()) {
                        source.checkpoint_complete(position)?;
                    }
                }
            }
        }
        Ok(paused)
    }

    fn inject(&mut self, id: u64, inputs: &mut [(usize, Box<dyn WorkerInput>)]) -> Result<()> {
        self.injected = id;
        self.positions.clear();
        self.watermark = Watermark::MAX;
        for (index, (_, input)) in inputs.iter_mut().enumerate() {
            if let Some(source) = input.source() {
                let (position, event_time) = source.inject_barrier(CheckpointId(id))?;
                self.watermark = self.watermark.min(source.watermark());
                self.positions
                    .push((index, source.name().to_string(), position, event_time));
            }
        }
        Ok(())
    }

    fn write_part(&self, id: CheckpointId, participants: &[Rc<RefCell<dyn Participant>>]) -> Result<()> {
        let Some(dir) = self.coordinator.dir_of(id.0) else {
            return Ok(());
        };
        let mut snapshots = WorkerSnapshots::default();
        for p in participants {
            let mut p = p.borrow_mut();
            if let Some(wm) = p.input_watermark(id) {
                snapshots.watermarks.push((p.name().to_string(), wm));
            }
            if let Some(s) = p.take_snapshot(id)? {
                if !s.tables.is_empty() || !s.local.is_empty() {
                    snapshots.operators.push((p.name().to_string(), s));
                }
            }
        }
        let bytes = encode_snapshots(&self.job, &snapshots)?;
        let snapshot = CheckpointStore::write_file(&dir, &format!("worker-{}.snap", self.worker), &bytes)?;
        let database = match self.backend.rocksdb_database() {
            Some(db) => {
                let name = format!("worker-{}.db", self.worker);
                let checkpoint = db.checkpoint(&dir.join(&name))?;
                Some(DatabaseEntry {
                    dir: name,
                    files: checkpoint.files,
                })
            }
            None => None,
        };
        let ack = WorkerAck {
            entry: WorkerEntry {
                worker: self.worker,
                key_groups: self.backend.key_groups(),
                snapshot,
                database,
            },
            positions: self
                .positions
                .iter()
                .map(|(_, name, p, t)| (name.clone(), p.clone(), t.clone()))
                .collect(),
            watermark: self.watermark,
            stateful: snapshots.operators.into_iter().map(|(name, _)| name).collect(),
        };
        self.coordinator.ack(self.worker, id.0, ack)
    }

    /// The checkpoint this worker takes part in (or took part in last).
    pub(crate) fn in_flight(&self) -> CheckpointId {
        CheckpointId(self.injected)
    }

    /// This worker has no more input. Returns whether every worker is done, so it may exit.
    pub(crate) fn finish(&mut self) -> bool {
        if !std::mem::replace(&mut self.finished, true) {
            self.coordinator.worker_finished();
        }
        self.coordinator.all_finished()
    }

    /// Starts checkpoints when they are due and abandons one past its timeout. Every worker
    /// asks on its ticks, so one worker stuck (in a sink's flush, say) stops neither.
    pub(crate) fn poll_coordinator(&self) -> Result<()> {
        self.coordinator.poll()
    }

    /// Lets paused sources keep their connections alive.
    pub(crate) fn keep_sources_alive(&self, inputs: &mut [(usize, Box<dyn WorkerInput>)]) -> Result<()> {
        for (_, input) in inputs.iter_mut() {
            if let Some(source) = input.source() {
                if !source.is_finished() {
                    source.keep_alive()?;
                }
            }
        }
        Ok(())
    }
}
