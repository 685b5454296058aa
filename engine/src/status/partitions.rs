//! Where each source partition stands: offset, lag, watermark, idleness, published by the
//! worker that reads it.

use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

/// One source partition as its reader last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    /// The source operator.
    pub source: String,
    /// The partition.
    pub partition: u32,
    /// The worker reading it.
    pub worker: usize,
    /// Next offset to read, when the reader has one.
    pub next_offset: Option<u64>,
    /// Offset one past the newest record the partition holds, when the reader knows it.
    pub end_offset: Option<u64>,
    /// Records between the next offset and the end of the partition.
    pub lag: Option<u64>,
    /// The partition's watermark (milliseconds since the epoch); none before its first record.
    pub watermark: Option<i64>,
    /// Idle: it does not hold the job's watermark back.
    pub idle: bool,
    /// Paused by watermark alignment.
    pub paused: bool,
    /// Records read from it by this worker.
    pub records: u64,
}

/// The latest [`PartitionStatus`] of every partition of every source of a job.
#[derive(Debug, Clone, Default)]
pub struct PartitionBoard {
    partitions: Arc<DashMap<(Arc<str>, u32), PartitionStatus>>,
}

impl PartitionBoard {
    /// Records what the reader of `status.partition` saw.
    pub(crate) fn publish(&self, status: PartitionStatus) {
        self.partitions
            .insert((Arc::from(status.source.as_str()), status.partition), status);
    }

    /// `worker` no longer reads `partition`; the entry stays if another worker took it over.
    pub(crate) fn withdraw(&self, source: &str, partition: u32, worker: usize) {
        self.partitions
            .remove_if(&(Arc::from(source), partition), |_, s| s.worker == worker);
    }

    /// Every partition, by source and partition.
    pub fn all(&self) -> Vec<PartitionStatus> {
        let mut all: Vec<PartitionStatus> = self.partitions.iter().map(|e| e.value().clone()).collect();
        all.sort_by(|a, b| (&a.source, a.partition).cmp(&(&b.source, b.partition)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(partition: u32, worker: usize) -> PartitionStatus {
        PartitionStatus {
            source: "orders".into(),
            partition,
            worker,
            next_offset: Some(7),
            end_offset: None,
            lag: None,
            watermark: None,
            idle: false,
            paused: false,
            records: 0,
        }
    }

    #[test]
    fn a_partition_taken_over_by_another_worker_stays_when_the_first_withdraws() {
        let board = PartitionBoard::default();
        board.publish(status(0, 0));
        board.publish(status(1, 0));
        board.publish(status(0, 1));
        board.withdraw("orders", 0, 0);
        board.withdraw("orders", 1, 0);
        assert_eq!(board.all(), vec![status(0, 1)]);
    }
}
