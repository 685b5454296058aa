use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sluice_state::StateError;
use sluice_state::checkpoint::{
    CheckpointStore, Manifest, ManifestOperator, RestorePoint, WorkerEntry, fail_point,
};

use crate::checkpoint::config::{CheckpointConfig, CheckpointStep, RestoreFrom};
use crate::error::{EngineError, Result};
use crate::graph::JobGraph;
use crate::metrics::{Counter, Gauge, JobMetrics};
use crate::participant::EventTime;
use crate::source::SourcePosition;
use crate::status::checkpoints::{CheckpointHistory, CheckpointLog, RestoreRecord};
use crate::time::Watermark;

/// What one worker reports when its part of a checkpoint is on disk.
pub(crate) struct WorkerAck {
    pub entry: WorkerEntry,
    /// Next offsets of the worker's source readers, by source name, with the event time each
    /// partition had reached.
    pub positions: Vec<(String, SourcePosition, EventTime)>,
    pub watermark: Watermark,
    /// Operators that had state to snapshot.
    pub stateful: Vec<String>,
}

struct InFlight {
    id: u64,
    /// 1-based number of this checkpoint among those this coordinator started.
    ordinal: u64,
    dir: PathBuf,
    started: Instant,
    acks: Vec<Option<WorkerAck>>,
}

struct CheckpointMetrics {
    completed: Arc<Counter>,
    abandoned: Arc<Counter>,
    last_duration_ms: Arc<Gauge>,
    last_bytes: Arc<Gauge>,
    last_id: Arc<Gauge>,
}

/// Runs a job's checkpoints: starts one every interval, collects the workers' parts, writes
/// the manifest, keeps the newest few. Shared by the workers of every attempt of a job.
///
/// Protocol: the coordinator publishes checkpoint `N`; each worker injects barrier `N` into its
/// sources and pauses them; operators snapshot when barrier `N` has arrived on all their
/// inputs, sinks flush; once every operator of a worker is done, the worker writes its
/// snapshots and RocksDB checkpoint and acknowledges. The last acknowledgement writes the
/// manifest atomically; `N` is then complete, the sources resume and commit their offsets.
pub(crate) struct Coordinator {
    config: CheckpointConfig,
    store: CheckpointStore,
    job: String,
    graph: JobGraph,
    workers: usize,
    max_key_groups: u16,
    backend: &'static str,
    next_id: AtomicU64,
    triggered: AtomicU64,
    settled: AtomicU64,
    completed: AtomicU64,
    inflight: Mutex<Option<InFlight>>,
    last_settled: Mutex<Instant>,
    requested: AtomicBool,
    /// Offsets of the checkpoint the current attempt restored: a partition no reader has
    /// reported yet (not assigned yet, say) keeps its restored offset, which the restored
    /// state is consistent with.
    base_offsets: Mutex<BTreeMap<String, BTreeMap<u32, u64>>>,
    /// Event time per partition of the checkpoint the current attempt restored, likewise.
    base_event_time: Mutex<BTreeMap<String, BTreeMap<u32, i64>>>,
    /// The restored checkpoint's reader states, kept with `base_offsets`.
    base_reader_state: Mutex<BTreeMap<String, BTreeMap<u32, Vec<u8>>>>,
    /// Workers of the current attempt that ran out of input.
    finished_workers: AtomicUsize,
    /// Set once a checkpoint completed in this process: later attempts restore the latest.
    any_completed: AtomicBool,
    /// Checkpoints started by this coordinator.
    started: AtomicU64,
    /// Where a simulated crash happens: a step of the n-th checkpoint this coordinator starts.
    crash_at: Mutex<Option<(CheckpointStep, u64)>>,
    /// A simulated crash happened ([`CheckpointConfig::crash_at`]): nothing more may change.
    crashed: AtomicBool,
    metrics: CheckpointMetrics,
    /// Recent checkpoints and the latest restore, for the console.
    log: CheckpointLog,
    /// Uploads completed checkpoints to object storage (`CheckpointConfig::remote`).
    #[cfg(feature = "remote-checkpoints")]
    uploader: Option<super::upload::Uploader>,
}

/// Name under which checkpoint metrics are reported.
pub(crate) const METRICS_SCOPE: &str = "checkpoints";

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Coordinator {
    pub(crate) fn new(
        config: CheckpointConfig,
        job: &str,
        graph: JobGraph,
        workers: usize,
        max_key_groups: u16,
        backend: &'static str,
        metrics: &JobMetrics,
    ) -> Result<Self> {
        let store = CheckpointStore::open(&config.dir)?;
        store.remove_incomplete()?;
        #[cfg(feature = "remote-checkpoints")]
        let uploader = match &config.remote {
            Some(remote) => {
                let failed = |reason: String| EngineError::Checkpoint {
                    job: job.to_string(),
                    reason,
                };
                remote.claim().map_err(|e| failed(e.to_string()))?;
                // Nothing here to restore from: take the newest published checkpoint.
                if config.restore == RestoreFrom::Latest && store.list()?.iter().all(|c| !c.complete) {
                    remote
                        .download_latest(|id| store.checkpoint_dir(id))
                        .map_err(|e| failed(e.to_string()))?;
                }
                let uploader = super::upload::Uploader::start(remote.clone(), job, config.retain)
                    .map_err(|e| failed(format!("cannot start the upload thread: {e}")))?;
                Some(uploader)
            }
            None => None,
        };
        let newest = store.list()?.last().map_or(0, |c| c.id);
        let scope = |name| metrics.counter(METRICS_SCOPE, name, 0);
        let gauge = |name| metrics.gauge(METRICS_SCOPE, name, 0);
        let crash_at = Mutex::new(config.crash_at);
        Ok(Coordinator {
            config,
            store,
            job: job.to_string(),
            graph,
            workers,
            max_key_groups,
            backend,
            next_id: AtomicU64::new(newest + 1),
            triggered: AtomicU64::new(newest),
            settled: AtomicU64::new(newest),
            completed: AtomicU64::new(newest),
            inflight: Mutex::new(None),
            last_settled: Mutex::new(Instant::now()),
            requested: AtomicBool::new(false),
            any_completed: AtomicBool::new(false),
            started: AtomicU64::new(0),
            crash_at,
            crashed: AtomicBool::new(false),
            log: CheckpointLog::default(),
            finished_workers: AtomicUsize::new(0),
            base_offsets: Mutex::new(BTreeMap::new()),
            base_event_time: Mutex::new(BTreeMap::new()),
            base_reader_state: Mutex::new(BTreeMap::new()),
            #[cfg(feature = "remote-checkpoints")]
            uploader,
            metrics: CheckpointMetrics {
                completed: scope("completed"),
                abandoned: scope("abandoned"),
                last_duration_ms: gauge("last_duration_ms"),
                last_bytes: gauge("last_bytes"),
                last_id: gauge("last_id"),
            },
        })
    }

    /// Where an attempt takes its state from: the configured start for the first attempt,
    /// the latest complete checkpoint once one completed.
    pub(crate) fn restore_point(&self) -> Result<Option<RestorePoint>> {
        let from = if self.any_completed.load(Ordering::Acquire) {
            &RestoreFrom::Latest
        } else {
            &self.config.restore
        };
        let point = match from {
            RestoreFrom::Fresh => None,
            RestoreFrom::Latest => self.store.latest()?,
            RestoreFrom::Savepoint(name) => Some(self.store.savepoint(name)?),
        };
        *self.base_offsets.lock().unwrap_or_else(|p| p.into_inner()) = point
            .as_ref()
            .map(|p| p.manifest.offsets.clone())
            .unwrap_or_default();
        *self.base_event_time.lock().unwrap_or_else(|p| p.into_inner()) = point
            .as_ref()
            .map(|p| p.manifest.event_time.clone())
            .unwrap_or_default();
        *self.base_reader_state.lock().unwrap_or_else(|p| p.into_inner()) = point
            .as_ref()
            .map(|p| p.manifest.reader_state.clone())
            .unwrap_or_default();
        if let Some(p) = &point {
            for (id, reason) in &p.skipped {
                tracing::warn!(job = %self.job, checkpoint = id, %reason, "skipping unusable checkpoint");
            }
            tracing::info!(job = %self.job, checkpoint = p.manifest.checkpoint_id, dir = %p.dir.display(), "restoring");
            self.log.restored(RestoreRecord {
                checkpoint_id: p.manifest.checkpoint_id,
                dir: p.dir.display().to_string(),
                at_ms: crate::time::now_millis(),
            });
        }
        Ok(point)
    }

    /// Abandons whatever a failed attempt left in flight.
    pub(crate) fn new_attempt(&self) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inflight.take() {
            self.abandon(f, "the attempt ended");
        }
        self.settled
            .store(self.triggered.load(Ordering::Acquire), Ordering::Release);
        self.finished_workers.store(0, Ordering::Release);
    }

    /// A worker of the current attempt ran out of input.
    pub(crate) fn worker_finished(&self) {
        self.finished_workers.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether every worker of the current attempt ran out of input.
    pub(crate) fn all_finished(&self) -> bool {
        self.finished_workers.load(Ordering::Acquire) >= self.workers
    }

    /// The newest checkpoint the workers should take part in.
    #[inline]
    pub(crate) fn triggered(&self) -> u64 {
        self.triggered.load(Ordering::Acquire)
    }

    /// The newest checkpoint that completed or was abandoned.
    #[inline]
    pub(crate) fn settled(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }

    /// The newest complete checkpoint.
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// Asks for a checkpoint now (e.g. for a savepoint).
    pub(crate) fn request(&self) {
        self.requested.store(true, Ordering::Release);
    }

    /// Abandons the checkpoint in flight if it takes too long.
    pub(crate) fn enforce_timeout(&self) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if self.crashed() {
            return;
        }
        if inflight
            .as_ref()
            .is_some_and(|f| f.started.elapsed() > self.config.timeout)
        {
            if let Some(f) = inflight.take() {
                self.abandon(f, "it timed out");
            }
        }
    }

    /// The run ended (finished or stopped): a checkpoint still in flight cannot complete;
    /// the newest completed one is uploaded before the run returns.
    pub(crate) fn run_ended(&self) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if self.crashed() {
            return;
        }
        if let Some(f) = inflight.take() {
            self.abandon(f, "the job ended");
        }
        drop(inflight);
        #[cfg(feature = "remote-checkpoints")]
        if let Some(uploader) = &self.uploader {
            uploader.drain(Duration::from_secs(60));
        }
    }

    /// Starts the next checkpoint when it is due, and abandons one that takes too long. Fails
    /// once a newer run of the job has taken over its checkpoints in object storage.
    pub(crate) fn poll(&self) -> Result<()> {
        #[cfg(feature = "remote-checkpoints")]
        if let Some(reason) = self.uploader.as_ref().and_then(super::upload::Uploader::fenced) {
            return Err(EngineError::Superseded {
                job: self.job.clone(),
                reason,
            });
        }
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if self.crashed() {
            return Ok(());
        }
        if let Some(f) = inflight.as_ref() {
            if f.started.elapsed() > self.config.timeout {
                if let Some(f) = inflight.take() {
                    self.abandon(f, "it timed out");
                }
            }
            return Ok(());
        }
        if self.all_finished() {
            return Ok(());
        }
        let due = self
            .last_settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= self.config.interval;
        if !due && !self.requested.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let dir = self.store.prepare(id)?;
        let ordinal = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        *inflight = Some(InFlight {
            id,
            ordinal,
            dir,
            started: Instant::now(),
            acks: (0..self.workers).map(|_| None).collect(),
        });
        self.triggered.store(id, Ordering::Release);
        self.log.started(id, crate::time::now_millis());
        tracing::debug!(job = %self.job, checkpoint = id, "checkpoint started");
        Ok(())
    }

    /// The directory of the checkpoint in flight, if it is `id`.
    pub(crate) fn dir_of(&self, id: u64) -> Option<PathBuf> {
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight.as_ref().filter(|f| f.id == id).map(|f| f.dir.clone())
    }

    fn abandon(&self, f: InFlight, why: &str) {
        tracing::warn!(job = %self.job, checkpoint = f.id, "checkpoint abandoned: {why}");
        self.metrics.abandoned.inc();
        self.log.abandoned(f.id, elapsed_ms(f.started), why);
        let _ = std::fs::remove_dir_all(&f.dir);
        self.settle(f.id);
    }

    fn settle(&self, id: u64) {
        *self.last_settled.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.settled.fetch_max(id, Ordering::AcqRel);
    }

    /// The next checkpoint started crashes at `step`.
    pub(crate) fn crash_next_at(&self, step: CheckpointStep) {
        let next = self.started.load(Ordering::Acquire) + 1;
        *self.crash_at.lock().unwrap_or_else(|p| p.into_inner()) = Some((step, next));
    }

    /// Whether a simulated crash happened.
    pub(crate) fn crashed(&self) -> bool {
        self.crashed.load(Ordering::Acquire)
    }

    /// Checkpoint number `ordinal` of this run reached `step`: a crash test may end the process
    /// (`SLUICE_FAIL_POINT`) or the job ([`CheckpointConfig::crash_at`]) here.
    fn at_step(&self, ordinal: u64, step: CheckpointStep) -> Result<()> {
        fail_point(step.name());
        if *self.crash_at.lock().unwrap_or_else(|p| p.into_inner()) == Some((step, ordinal)) {
            self.crashed.store(true, Ordering::Release);
            tracing::warn!(job = %self.job, step = step.name(), "simulated crash");
            return Err(EngineError::SimulatedCrash { step: step.name() });
        }
        Ok(())
    }

    /// Worker `worker` finished its part of checkpoint `id`. The last one completes it.
    pub(crate) fn ack(&self, worker: usize, id: u64, ack: WorkerAck) -> Result<()> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if self.crashed() {
            return Err(EngineError::SimulatedCrash { step: "crashed" });
        }
        let Some(f) = inflight.as_mut().filter(|f| f.id == id) else {
            return Ok(());
        };
        if let Some(slot) = f.acks.get_mut(worker) {
            *slot = Some(ack);
        }
        if f.acks.iter().filter(|a| a.is_some()).count() == 1 {
            self.at_step(f.ordinal, CheckpointStep::FirstAck)?;
        }
        if f.acks.iter().any(Option::is_none) {
            return Ok(());
        }
        let Some(f) = inflight.take() else {
            return Ok(());
        };
        drop(inflight);
        let (id, dir, started) = (f.id, f.dir.clone(), f.started);
        self.log.acknowledged(id, elapsed_ms(started));
        match self.complete(f) {
            Ok(bytes) => {
                self.log.completed(id, elapsed_ms(started), bytes);
                self.completed.fetch_max(id, Ordering::AcqRel);
                self.any_completed.store(true, Ordering::Release);
                self.metrics.completed.inc();
                self.metrics.last_id.set(id as i64);
                self.metrics.last_bytes.set(bytes as i64);
                self.metrics
                    .last_duration_ms
                    .set(started.elapsed().as_millis() as i64);
                self.settle(id);
                tracing::debug!(job = %self.job, checkpoint = id, bytes, "checkpoint complete");
                #[allow(unused_mut)]
                let mut keep = self.config.retain;
                #[cfg(feature = "remote-checkpoints")]
                if let Some(uploader) = &self.uploader {
                    uploader.submit(id, dir.clone());
                    // What is still to be uploaded stays on disk.
                    if let Some(oldest) = uploader.oldest_in_use() {
                        keep = keep.max((id.saturating_sub(oldest) + 1) as usize);
                    }
                }
                if let Err(e) = self.store.retain(keep) {
                    tracing::warn!(job = %self.job, error = %e, "cannot remove old checkpoints");
                }
                Ok(())
            }
            // A crash leaves everything as it is.
            Err(e @ EngineError::SimulatedCrash { .. }) => Err(e),
            Err(e) => {
                tracing::warn!(job = %self.job, checkpoint = id, error = %e, "checkpoint failed");
                self.metrics.abandoned.inc();
                self.log.abandoned(id, elapsed_ms(started), &e.to_string());
                let _ = std::fs::remove_dir_all(&dir);
                self.settle(id);
                Ok(())
            }
        }
    }

    fn complete(&self, f: InFlight) -> Result<u64> {
        self.at_step(f.ordinal, CheckpointStep::AfterSnapshot)?;
        let acks: Vec<WorkerAck> = f.acks.into_iter().flatten().collect();
        let mut offsets = self
            .base_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut event_time = self
            .base_event_time
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut reader_state = self
            .base_reader_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (source, position, times) in acks.iter().flat_map(|a| &a.positions) {
            merge_position(
                offsets.entry(source.clone()).or_default(),
                reader_state.entry(source.clone()).or_default(),
                position,
            );
            let merged = event_time.entry(source.clone()).or_default();
            for (p, t) in times {
                let e = merged.entry(p.0).or_insert(*t);
                *e = (*e).max(*t);
            }
        }
        let stateful: Vec<&String> = acks.iter().flat_map(|a| &a.stateful).collect();
        let mut manifest = Manifest {
            format_version: 0,
            checkpoint_id: f.id,
            job: self.job.clone(),
            completed_at_ms: unix_millis(),
            fingerprint: self.graph.fingerprint(),
            operators: self
                .graph
                .operators
                .iter()
                .map(|o| ManifestOperator {
                    name: o.name.clone(),
                    kind: o.kind.to_string(),
                    output_type: o.output_type.clone(),
                    stateful: stateful.contains(&&o.name),
                })
                .collect(),
            max_key_groups: self.max_key_groups,
            backend: self.backend.to_string(),
            watermark: acks.iter().map(|a| a.watermark.0).min().unwrap_or(i64::MIN),
            offsets,
            event_time,
            reader_state: reader_state.into_iter().filter(|(_, s)| !s.is_empty()).collect(),
            workers: acks.into_iter().map(|a| a.entry).collect(),
            checksum: 0,
        };
        let mut crash = None;
        let committed = CheckpointStore::commit_with_steps(&f.dir, &mut manifest, &mut |name| {
            let step = CheckpointStep::ALL
                .into_iter()
                .find(|s| s.name() == name && *s != CheckpointStep::FirstAck);
            match step.map(|s| self.at_step(f.ordinal, s)) {
                Some(Err(e)) => {
                    crash = Some(e);
                    Err(StateError::Checkpoint {
                        checkpoint: f.dir.display().to_string(),
                        reason: format!("stopped at step '{name}'"),
                    })
                }
                _ => Ok(()),
            }
        });
        if let Some(e) = crash {
            return Err(e);
        }
        committed?;
        self.at_step(f.ordinal, CheckpointStep::AfterManifestRename)?;
        Ok(manifest.total_bytes())
    }

    /// Asks for a checkpoint and waits up to `timeout` for one to complete; returns its id.
    pub(crate) fn checkpoint_now(&self, timeout: Duration) -> Result<u64> {
        let before = self.completed();
        let abandoned = self.metrics.abandoned.get();
        self.request();
        let deadline = Instant::now() + timeout;
        while self.completed() <= before {
            let failed = if self.crashed() {
                Some("the job crashed".to_string())
            } else if self.metrics.abandoned.get() > abandoned {
                Some("it was abandoned".to_string())
            } else if Instant::now() >= deadline {
                Some(format!("none completed within {timeout:?}"))
            } else {
                None
            };
            if let Some(why) = failed {
                return Err(EngineError::Checkpoint {
                    job: self.job.clone(),
                    reason: format!("checkpoint asked for did not complete: {why}"),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(self.completed())
    }

    /// Asks for a checkpoint and copies the first one that completes after this call to
    /// savepoint `name`, waiting up to `timeout`.
    pub(crate) fn savepoint(&self, name: &str, timeout: Duration) -> Result<PathBuf> {
        let id = self
            .checkpoint_now(timeout)
            .map_err(|e| EngineError::Checkpoint {
                job: self.job.clone(),
                reason: format!("no savepoint '{name}': {e}"),
            })?;
        let path = self.store.create_savepoint(id, name)?;
        self.log.savepoint(id, name);
        Ok(path)
    }

    /// Recent checkpoints and the latest restore.
    pub(crate) fn history(&self) -> CheckpointHistory {
        self.log.history()
    }

    /// The interval between checkpoints.
    pub(crate) fn interval(&self) -> Duration {
        self.config.interval
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Merges a reader's `position` into a checkpoint's offsets and reader states of its source:
/// a partition's highest offset wins, and the reader state reported with it goes with it
/// (none if that report had none).
fn merge_position(
    offsets: &mut BTreeMap<u32, u64>,
    states: &mut BTreeMap<u32, Vec<u8>>,
    position: &SourcePosition,
) {
    for (p, o) in &position.offsets {
        let e = offsets.entry(p.0).or_insert(*o);
        if *o >= *e {
            *e = *o;
            match position.state.get(p) {
                Some(state) => states.insert(p.0, state.clone()),
                None => states.remove(&p.0),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PartitionId;

    #[test]
    fn a_partitions_reader_state_goes_with_its_highest_offset() {
        let mut offsets = BTreeMap::from([(0, 10), (1, 5)]);
        let mut states = BTreeMap::from([(0, vec![1]), (1, vec![2])]);
        let mut newer = SourcePosition::of_offsets([(PartitionId(0), 12), (PartitionId(1), 4)]);
        newer.state.insert(PartitionId(0), vec![3]);
        newer.state.insert(PartitionId(1), vec![4]);
        merge_position(&mut offsets, &mut states, &newer);
        assert_eq!(offsets, BTreeMap::from([(0, 12), (1, 5)]));
        assert_eq!(
            states,
            BTreeMap::from([(0, vec![3]), (1, vec![2])]),
            "partition 1's older report lost"
        );
        // A report of the same offset without state (a reader that keeps none) clears it.
        merge_position(
            &mut offsets,
            &mut states,
            &SourcePosition::of_offsets([(PartitionId(0), 12)]),
        );
        assert_eq!(states, BTreeMap::from([(1, vec![2])]));
        // A new partition comes with its state.
        let mut third = SourcePosition::of_offsets([(PartitionId(2), 1)]);
        third.state.insert(PartitionId(2), vec![9]);
        merge_position(&mut offsets, &mut states, &third);
        assert_eq!(offsets.get(&2), Some(&1));
        assert_eq!(states.get(&2), Some(&vec![9]));
    }
}
