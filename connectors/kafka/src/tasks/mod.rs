//! Tasks of a job spread over processes: Kafka's consumer-group protocol decides which process
//! runs which task, and each task is a job of its own whose checkpoints live in shared
//! object storage, so a task's state moves with it.
//!
//! A [`TaskGroup`] is one stage of a job (the part between two topics): task *q* reads
//! partition *q* of the stage's input topics. Each process's group member subscribes to the
//! stage's lead topic with the cooperative-sticky assignor, never reads a record of it (its
//! partitions are paused), and runs a job for every partition it is assigned
//! (`running`). On a revoke, the task takes a last checkpoint, stops and waits until that
//! checkpoint is published before the partition is released; on an assignment, the task
//! starts from the newest published checkpoint. A process that lost its partitions without a
//! revoke (paused past the session timeout) is fenced by the checkpoint store: its successor
//! claimed a newer epoch, so it can never publish over the successor's checkpoints.

mod context;
mod running;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use sluice_engine::{BoxError, Job};

use crate::config::KafkaConfig;
use crate::error::{Context, KafkaConnectorError};
use context::TaskContext;
use running::RunningTasks;
pub use status::{TaskGroupStatus, TaskOwner, task_groups};

/// One stage of a job, spread over every process that runs this group.
#[derive(Debug, Clone)]
pub struct TaskGroup {
    config: KafkaConfig,
    group: String,
    topic: String,
    handover_timeout: Duration,
    session_timeout: Duration,
}

impl TaskGroup {
    /// The stage whose tasks are the partitions of `topic`, shared by every process in
    /// consumer group `group`.
    pub fn new(config: KafkaConfig, group: impl Into<String>, topic: impl Into<String>) -> Self {
        TaskGroup {
            config,
            group: group.into(),
            topic: topic.into(),
            handover_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(10),
        }
    }

    /// Longest wait for a revoked task's last checkpoint (default 60 s). A task whose last
    /// checkpoint does not complete in time is stopped anyway; its successor then starts from
    /// the checkpoint before and reads a little more again.
    pub fn handover_timeout(mut self, timeout: Duration) -> Self {
        self.handover_timeout = timeout;
        self
    }

    /// How long the group waits for a member that stopped answering (a crashed process)
    /// before its tasks go to the others (default 10 s; at least the brokers'
    /// `group.min.session.timeout.ms`, 6 s by default).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Runs the tasks this process is assigned until `stop` is set; `jobs(q)` builds the job
    /// of task `q` (reading partition `q` of the stage's topics, with checkpoints in object
    /// storage under a prefix of the task's own). When `stop` is set, it hands
    /// every task over (last checkpoint, stop) and leaves the group. A task whose input ends
    /// stays done until the group moves it.
    ///
    /// # Errors
    /// When the group cannot be joined, or a task fails for good (its job's own restarts
    /// exhausted); the other tasks are handed over first.
    pub fn run(
        &self,
        jobs: impl Fn(u32) -> sluice_engine::Result<Job>,
        stop: &AtomicBool,
    ) -> Result<(), BoxError> {
        let running = Arc::new(RunningTasks::new(&self.group, self.handover_timeout));
        let session = self.session_timeout.as_millis().to_string();
        let heartbeat = (self.session_timeout.as_millis() / 10).max(100).to_string();
        let client_id = format!("sluice-{}", std::process::id());
        // A handover (a checkpoint, then its upload) runs inside the rebalance callback, the
        // tasks in parallel: the member must not be evicted for not polling meanwhile.
        let max_poll = (self.handover_timeout.as_millis() * 3).max(300_000).to_string();
        let consumer: BaseConsumer<TaskContext> = self
            .config
            .client_config(&[
                ("group.id", self.group.as_str()),
                ("client.id", client_id.as_str()),
                ("partition.assignment.strategy", "cooperative-sticky"),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "false"),
                ("session.timeout.ms", session.as_str()),
                ("heartbeat.interval.ms", heartbeat.as_str()),
                ("max.poll.interval.ms", max_poll.as_str()),
            ])
            .create_with_context(TaskContext::new(Arc::clone(&running)))
            .context(|| format!("cannot create a consumer for {}", self.config.brokers()))?;
        consumer
            .subscribe(&[self.topic.as_str()])
            .map_err(|e| KafkaConnectorError::client(format!("cannot subscribe to '{}'", self.topic), e))?;
        tracing::info!(group = %self.group, topic = %self.topic, "joined the task group");
        let outcome = self.serve(&consumer, &running, &jobs, stop);
        running.release_all();
        consumer.unsubscribe();
        // Serves the revoke of what the group still gave this member.
        let _ = consumer.poll(Duration::from_millis(200));
        tracing::info!(group = %self.group, "left the task group");
        outcome
    }

    fn serve(
        &self,
        consumer: &BaseConsumer<TaskContext>,
        running: &RunningTasks,
        jobs: &dyn Fn(u32) -> sluice_engine::Result<Job>,
        stop: &AtomicBool,
    ) -> Result<(), BoxError> {
        while !stop.load(Ordering::Acquire) {
            if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                tracing::warn!(group = %self.group, error = %e, "task group consumer");
            }
            consumer.context().refusals().check(self.config.brokers())?;
            running.start_assigned(jobs);
            running.reap()?;
        }
        Ok(())
    }
}
