//! The task group member's consumer context: rebalances start and hand over tasks.

use std::sync::Arc;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::running::RunningTasks;
use crate::context::{self, Refusals};

/// Hands revoked tasks over before the partitions are released, and notes assigned ones
/// for the member's loop to start.
pub(super) struct TaskContext {
    running: Arc<RunningTasks>,
    refusals: Refusals,
}

impl TaskContext {
    pub(super) fn new(running: Arc<RunningTasks>) -> Self {
        TaskContext {
            running,
            refusals: Refusals::default(),
        }
    }

    pub(super) fn refusals(&self) -> &Refusals {
        &self.refusals
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<u32> {
    tpl.elements()
        .iter()
        .map(|e| e.partition().max(0) as u32)
        .collect()
}

impl ClientContext for TaskContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.refusals.note_log(fac, log_message);
        context::log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.refusals.note(&error, reason);
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for TaskContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // A member that lost its partitions (it was gone past the session timeout) has
            // successors already: its tasks end without a last checkpoint.
            let lost = consumer.assignment_lost();
            self.running.release(&partitions(tpl), lost);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // The member reads no record: the tasks do.
            if let Err(e) = consumer.pause(tpl) {
                tracing::warn!(error = %e, "cannot pause the task group's partitions");
            }
            self.running.assign(&partitions(tpl));
        }
    }
}
