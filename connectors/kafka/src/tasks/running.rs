//! The tasks a member runs: started when assigned, handed over when revoked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_engine::{EngineError, Job, JobHandle, Retry};

/// How long a task whose job failed (or was superseded) waits before it starts again here,
/// if the group still gives it to this member.
const RESTART_DELAY: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    /// Partitions the group gave this member.
    assigned: BTreeSet<u32>,
    /// The jobs of the tasks running here.
    running: BTreeMap<u32, JobHandle>,
    /// Tasks whose job ended here because their input ended: not started again until the
    /// group moves them.
    done: BTreeSet<u32>,
    /// Tasks whose job failed in a way a restart may mend, or was superseded by another
    /// member's: not started again before then.
    not_before: BTreeMap<u32, Instant>,
}

/// The member's tasks, shared by its loop and its rebalance callbacks.
pub(super) struct RunningTasks {
    /// The task group, for logs.
    group: String,
    state: Mutex<State>,
    handover_timeout: Duration,
}

impl RunningTasks {
    pub(super) fn new(group: &str, handover_timeout: Duration) -> Self {
        RunningTasks {
            group: group.to_string(),
            state: Mutex::new(State::default()),
            handover_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The group gave this member `partitions`.
    pub(super) fn assign(&self, partitions: &[u32]) {
        tracing::info!(group = %self.group, ?partitions, "tasks assigned");
        self.lock().assigned.extend(partitions);
    }

    /// The group takes `tasks` away: their last checkpoints are taken together and published
    /// before this returns (unless the assignment was `lost`: then they just end).
    pub(super) fn release(&self, tasks: &[u32], lost: bool) {
        let handles: Vec<(u32, JobHandle)> = {
            let mut state = self.lock();
            tasks
                .iter()
                .filter_map(|q| {
                    state.assigned.remove(q);
                    state.done.remove(q);
                    state.not_before.remove(q);
                    state.running.remove(q).map(|h| (*q, h))
                })
                .collect()
        };
        self.hand_over(handles, lost);
    }

    /// Hands every running task over, as when the member leaves the group.
    pub(super) fn release_all(&self) {
        let running = {
            let mut state = self.lock();
            state.assigned.clear();
            state.done.clear();
            state.not_before.clear();
            std::mem::take(&mut state.running)
        };
        self.hand_over(running.into_iter().collect(), false);
    }

    /// Ends `tasks`: all at once, each with a last checkpoint unless `lost`.
    fn hand_over(&self, tasks: Vec<(u32, JobHandle)>, lost: bool) {
        std::thread::scope(|scope| {
            for (q, handle) in tasks {
                scope.spawn(move || self.hand_over_one(q, handle, lost));
            }
        });
    }

    fn hand_over_one(&self, q: u32, handle: JobHandle, lost: bool) {
        let group = &self.group;
        if lost {
            tracing::warn!(%group, task = q, "task lost to another member: ending it without a checkpoint");
            handle.abort();
            let _ = handle.join();
            return;
        }
        if !handle.is_finished() {
            match handle.checkpoint(self.handover_timeout) {
                Ok(id) => {
                    tracing::info!(%group, task = q, checkpoint = id.0, "last checkpoint before the handover")
                }
                Err(e) => {
                    tracing::warn!(%group, task = q, error = %e, "no last checkpoint before the handover")
                }
            }
            handle.stop();
        }
        // Joining waits for the last checkpoint's upload to be published.
        match handle.join() {
            Ok(_) => tracing::info!(%group, task = q, "task handed over"),
            Err(e) => {
                tracing::warn!(%group, task = q, error = %e, "task ended with an error at its handover")
            }
        }
    }

    /// Starts the job of every assigned task not running or done here. A task that cannot be
    /// built or started (the checkpoint store out of reach, say) is tried again after a delay.
    pub(super) fn start_assigned(&self, jobs: &dyn Fn(u32) -> Result<Job, EngineError>) {
        let mut state = self.lock();
        let now = Instant::now();
        let waiting: Vec<u32> = state
            .assigned
            .iter()
            .filter(|q| {
                !state.running.contains_key(q)
                    && !state.done.contains(q)
                    && state.not_before.get(q).is_none_or(|t| now >= *t)
            })
            .copied()
            .collect();
        for q in waiting {
            match jobs(q).and_then(|job| job.start()) {
                Ok(handle) => {
                    tracing::info!(group = %self.group, task = q, "task started");
                    state.not_before.remove(&q);
                    state.running.insert(q, handle);
                }
                Err(e) => {
                    tracing::error!(group = %self.group, task = q, error = %e, "task cannot start; trying again");
                    state.not_before.insert(q, Instant::now() + RESTART_DELAY);
                }
            }
        }
    }

    /// Collects the tasks whose jobs ended. A task superseded by another member's run, or
    /// failed in a way a restart may mend, starts again after a short delay if the group
    /// still gives it to this member (the group's next rebalance settles who owns it).
    ///
    /// # Errors
    /// A task's failure that a restart cannot mend (a bad record, a broken job, a refused
    /// login): the member stops.
    pub(super) fn reap(&self) -> Result<(), EngineError> {
        let ended: Vec<(u32, JobHandle)> = {
            let mut state = self.lock();
            let finished: Vec<u32> = state
                .running
                .iter()
                .filter(|(_, h)| h.is_finished())
                .map(|(q, _)| *q)
                .collect();
            finished
                .into_iter()
                .filter_map(|q| state.running.remove(&q).map(|h| (q, h)))
                .collect()
        };
        for (q, handle) in ended {
            match handle.join() {
                Ok(_) => {
                    tracing::info!(group = %self.group, task = q, "task finished: its input ended");
                    self.lock().done.insert(q);
                }
                Err(e @ EngineError::Superseded { .. }) => {
                    tracing::warn!(group = %self.group, task = q, error = %e, "task taken over by another member");
                    self.lock().not_before.insert(q, Instant::now() + RESTART_DELAY);
                }
                Err(e) if e.retry() == Retry::Restart => {
                    tracing::error!(group = %self.group, task = q, error = %e, "task failed; starting it again");
                    self.lock().not_before.insert(q, Instant::now() + RESTART_DELAY);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
