use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use sluice_state::checkpoint::{CheckpointStore, RestorePoint};
use sluice_state::{KeyGroupRange, RocksDbConfig, WorkerDb};

use crate::checkpoint::worker_part::{WorkerSnapshots, decode_snapshots};
use crate::error::{EngineError, Result};
use crate::graph::JobGraph;
use crate::ids::PartitionId;
use crate::participant::Participant;
use crate::runtime::WorkerInput;
use crate::source::SourcePosition;
use crate::time::Watermark;

fn refuse(job: &str, reason: String) -> EngineError {
    EngineError::Checkpoint {
        job: job.to_string(),
        reason,
    }
}

/// Checks that the state in `point` can be restored into `graph`: same key-group count, a
/// compatible backend, and every operator with state still present with the same kind and
/// types. Operators without state may be added, removed or changed.
pub(crate) fn check_compatible(
    job: &str,
    max_key_groups: u16,
    backend: &str,
    graph: &JobGraph,
    point: &RestorePoint,
) -> Result<()> {
    let m = &point.manifest;
    let at = point.dir.display();
    if m.max_key_groups != max_key_groups {
        return Err(refuse(
            job,
            format!(
                "checkpoint {at} was taken with max_key_groups = {}, the job has {}; key groups cannot change",
                m.max_key_groups, max_key_groups
            ),
        ));
    }
    if m.backend == "rocksdb" && backend != "rocksdb" {
        return Err(refuse(
            job,
            format!("checkpoint {at} holds RocksDB state; configure the RocksDB state backend to restore it"),
        ));
    }
    for op in m.operators.iter().filter(|o| o.stateful) {
        match graph.operator(&op.name) {
            None => {
                return Err(refuse(
                    job,
                    format!(
                        "checkpoint {at} holds state of operator '{}' ({}), which the job no longer has; \
                         restore into the job that wrote it or start fresh",
                        op.name, op.kind
                    ),
                ));
            }
            Some(now) if now.kind.as_str() != op.kind || now.output_type != op.output_type => {
                return Err(refuse(
                    job,
                    format!(
                        "operator '{}' changed since checkpoint {at}: it was {} producing {}, it is {} producing {}",
                        op.name, op.kind, op.output_type, now.kind, now.output_type
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if m.fingerprint != graph.fingerprint() {
        tracing::warn!(job = %job, checkpoint = %at, "the job graph changed since the checkpoint; its stateful operators still match");
    }
    Ok(())
}

/// The working RocksDB database of `worker`, restored from `point` when there is one.
pub(crate) fn open_database(
    config: &RocksDbConfig,
    worker: usize,
    range: KeyGroupRange,
    point: Option<&RestorePoint>,
) -> Result<WorkerDb> {
    let path = config.dir().join(format!("worker-{worker}"));
    let sources: Vec<_> = point
        .map(|p| {
            p.manifest
                .workers
                .iter()
                .filter_map(|w| w.database.as_ref().map(|d| (w.key_groups, p.dir.join(&d.dir))))
                .collect()
        })
        .unwrap_or_default();
    if sources.is_empty() {
        Ok(WorkerDb::create_empty(config, &path, range)?)
    } else {
        Ok(WorkerDb::restore(config, &path, range, &sources)?)
    }
}

/// Loads the operator snapshots of every worker of `point`.
pub(crate) fn read_snapshots(job: &str, point: &RestorePoint) -> Result<Vec<WorkerSnapshots>> {
    point
        .manifest
        .workers
        .iter()
        .map(|w| {
            let bytes = CheckpointStore::read_file(&point.dir, &w.snapshot)?;
            decode_snapshots(job, &bytes)
        })
        .collect()
}

/// The input watermark operator `name` had on `worker` (of `workers`) when `snapshots` were
/// taken: that worker's own with the same worker count (its sources are the same), else the
/// lowest of any worker, which never finds late what the run before found on time.
fn restored_watermark(
    snapshots: &[WorkerSnapshots],
    name: &str,
    worker: usize,
    workers: usize,
) -> Option<Watermark> {
    let of_worker = |s: &WorkerSnapshots| s.watermarks.iter().find(|(n, _)| n == name).map(|(_, wm)| *wm);
    if snapshots.len() == workers {
        return snapshots.get(worker).and_then(of_worker);
    }
    snapshots.iter().filter_map(of_worker).min()
}

/// Restores one worker's operators and sources from `point`.
pub(crate) fn restore_worker(
    job: &str,
    point: &RestorePoint,
    snapshots: &[WorkerSnapshots],
    (worker, workers): (usize, usize),
    participants: &[Rc<RefCell<dyn Participant>>],
    inputs: &mut [(usize, Box<dyn WorkerInput>)],
) -> Result<()> {
    for p in participants {
        let mut p = p.borrow_mut();
        let mine: Vec<_> = snapshots
            .iter()
            .flat_map(|s| &s.operators)
            .filter(|(name, _)| name == p.name())
            .map(|(_, s)| s)
            .collect();
        if !mine.is_empty() {
            p.restore(&mine)?;
        }
        if let Some(wm) = restored_watermark(snapshots, p.name(), worker, workers) {
            p.restore_watermark(wm)?;
        }
    }
    for (_, input) in inputs.iter_mut() {
        let Some(source) = input.source() else {
            continue;
        };
        if let Some(times) = point.manifest.event_time.get(source.name()) {
            let event_time = times.iter().map(|(p, t)| (PartitionId(*p), *t)).collect();
            source.restore_event_time(&event_time);
        }
        if let Some(offsets) = point.manifest.offsets.get(source.name()) {
            let mut position = SourcePosition::of_offsets(offsets.iter().map(|(p, o)| (PartitionId(*p), *o)));
            if let Some(states) = point.manifest.reader_state.get(source.name()) {
                position.state = states.iter().map(|(p, s)| (PartitionId(*p), s.clone())).collect();
            }
            source.seek(&position)?;
        }
    }
    tracing::debug!(job, dir = %Path::new(&point.dir).display(), "worker restored");
    Ok(())
}
