//! What every job spread over processes shares: where a task keeps its state and
//! checkpoints, and running one [`TaskGroup`] per stage until the process stops.
//!
//! A stage's task *q* is a job of its own with one worker, RocksDB state in
//! `<state_dir>/tasks/<stage>-<q>` (emptied when the task starts here: the checkpoint store
//! holds every task's newest state) and checkpoints published under `<store>/<stage>-<q>`.
//! A task's Kafka sources start from the earliest offset when it has no published
//! checkpoint to restore (`StartFrom::Earliest`): offsets are committed to Kafka when a
//! checkpoint completes locally, which can be before it is published, so the group's
//! committed offsets may be ahead of every state the store holds.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_engine::{CheckpointConfig, EngineError, Job, JobConfig, StateBackendConfig};
use sluice_kafka::TaskGroup;

use crate::shop::checkpoint_store;

/// Where the tasks of a job spread over processes keep their state and checkpoints.
#[derive(Debug, Clone)]
pub struct TaskStore {
    state_dir: PathBuf,
    store: String,
    interval: Duration,
}

impl TaskStore {
    /// Tasks with local state under `state_dir` and checkpoints every `interval`, published
    /// in the checkpoint store at `store` (`s3://bucket/prefix`).
    pub fn new(state_dir: impl Into<PathBuf>, store: &str, interval: Duration) -> Self {
        TaskStore {
            state_dir: state_dir.into(),
            store: store.trim_end_matches('/').to_string(),
            interval,
        }
    }

    /// The configuration of job `job`'s task `q` of `stage`: one worker, RocksDB state and
    /// checkpoints in the task's own directory (emptied first) and under `<store>/<stage>-<q>`.
    ///
    /// # Errors
    /// A task directory that cannot be emptied; a store URL the S3 client does not take.
    pub fn job_config(&self, job: &str, stage: &str, q: u32) -> sluice_engine::Result<JobConfig> {
        let name = format!("{stage}-{q}");
        let dir = self.state_dir.join("tasks").join(&name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| EngineError::InvalidConfig {
                key: "state_dir",
                reason: format!("cannot empty {}: {e}", dir.display()),
            })?;
        }
        let checkpoints = CheckpointConfig::new(dir.join("checkpoints"))
            .interval(self.interval)
            .remote(checkpoint_store(&format!("{}/{name}", self.store))?);
        Ok(JobConfig::new(format!("{job}-{name}"))
            .workers(1)
            .state_backend(StateBackendConfig::rocksdb(dir.join("state")))
            .checkpoints(checkpoints))
    }
}

/// The builder of a stage's task jobs.
pub type TaskJobs = Box<dyn Fn(u32) -> sluice_engine::Result<Job> + Send>;

/// The consumer group of `stage` of the job whose group is `group`.
pub fn stage_group(group: &str, stage: &str) -> String {
    format!("{group}-stage-{stage}")
}

/// Runs each stage's task group on a thread of its own until `stop` is set, then hands the
/// tasks over and leaves the groups. A group that fails sets `stop`, so the others hand over
/// too.
///
/// # Errors
/// The first group that failed, named by its stage.
pub fn run_stages(stages: Vec<(String, TaskGroup, TaskJobs)>, stop: &Arc<AtomicBool>) -> Result<(), String> {
    let threads: Vec<_> = stages
        .into_iter()
        .map(|(stage, group, jobs)| {
            let stop = Arc::clone(stop);
            std::thread::Builder::new()
                .name(format!("sluice-{stage}"))
                .spawn(move || {
                    let outcome = group.run(&jobs, &stop);
                    if outcome.is_err() {
                        stop.store(true, Ordering::Release);
                    }
                    outcome.map_err(|e| format!("stage {stage}: {e}"))
                })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| {
            stop.store(true, Ordering::Release);
            format!("cannot start a stage's thread: {e}")
        })?;
    let mut first_error = None;
    for thread in threads {
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Err("a stage's thread panicked".to_string()));
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
