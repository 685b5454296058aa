//! What the readers of one source share (who is idle, how many partitions each holds), and
//! the end of a bounded read once every reader has been idle long enough.

use super::*;

/// What the readers of one source know together, to decide that the input is finished: every
/// partition of the topics is assigned to some reader (each reader publishes the size of its
/// current assignment), no rebalance happened for the idle time, and every reader has been
/// idle for it.
pub(super) struct GroupProgress {
    pub(super) idle: Vec<AtomicBool>,
    pub(super) assigned: Vec<std::sync::atomic::AtomicUsize>,
    /// Partitions of the subscribed topics, from the metadata (read when first needed).
    pub(super) total_partitions: std::sync::OnceLock<usize>,
    pub(super) last_rebalance: Mutex<Instant>,
}

impl GroupProgress {
    /// Nobody idle, nothing assigned, for `readers` readers.
    pub(super) fn new(readers: usize) -> Self {
        GroupProgress {
            idle: (0..readers).map(|_| AtomicBool::new(false)).collect(),
            assigned: (0..readers)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
            total_partitions: std::sync::OnceLock::new(),
            last_rebalance: Mutex::new(Instant::now()),
        }
    }

    pub(super) fn rebalanced(&self) {
        *self.last_rebalance.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub(super) fn settled_for(&self, limit: Duration) -> bool {
        let assigned: usize = self.assigned.iter().map(|a| a.load(Ordering::SeqCst)).sum();
        let covered = self
            .total_partitions
            .get()
            .is_some_and(|total| assigned >= *total);
        covered
            && self
                .last_rebalance
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= limit
    }
}

/// Number of partitions of each of `topics`, or `None` if the metadata cannot be read or a
/// topic does not exist (yet).
pub(super) fn count_partitions(
    consumer: &BaseConsumer<ReaderContext>,
    topics: &[Arc<str>],
) -> Option<Vec<i32>> {
    let mut counts = Vec::with_capacity(topics.len());
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == &**topic)?
            .partitions()
            .len();
        if partitions == 0 {
            return None;
        }
        counts.push(i32::try_from(partitions).ok()?);
    }
    Some(counts)
}

impl<T: Data> ReaderState<T> {
    /// Ends the input once every reader of the source has been idle long enough.
    pub(super) fn idle_exit(
        &mut self,
        consumer: &BaseConsumer<ReaderContext>,
        batch: &mut SourceOutput<'_, T>,
    ) -> Result<bool, BoxError> {
        let Some(limit) = self.exit_when_idle else {
            return Ok(false);
        };
        if self.votes.total_partitions.get().is_none() {
            // Without the partition count nothing proves every partition is being read.
            match count_partitions(consumer, &self.topics) {
                Some(counts) => {
                    let _ = self
                        .votes
                        .total_partitions
                        .set(counts.iter().sum::<i32>() as usize);
                }
                None => return Ok(false),
            }
        }
        // Idle: no record for `limit`, and every partition read to its end (not merely
        // silent, as behind a broker that stalls).
        let idle = self.last_record.elapsed() >= limit && self.read_to_end();
        self.votes.idle[self.worker].store(idle, Ordering::SeqCst);
        let source_idle =
            idle && self.votes.settled_for(limit) && self.votes.idle.iter().all(|v| v.load(Ordering::SeqCst));
        // One quiet source of a join must not end while the other is still being read.
        if !self.job_idle.vote(source_idle) || !source_idle {
            return Ok(false);
        }
        if let Some(dlq) = &self.dead_letter {
            dlq.flush()?;
        }
        for (topic, partition) in std::mem::take(&mut self.assigned) {
            if let Some(ti) = self.topic_index(&topic) {
                batch.partition_end(partition_id(ti, partition));
            }
        }
        self.finished = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_settles_only_once_every_partition_is_assigned() {
        let p = GroupProgress::new(2);
        assert!(
            !p.settled_for(Duration::ZERO),
            "the partition count is not known yet"
        );
        let _ = p.total_partitions.set(4);
        p.assigned[0].store(2, Ordering::SeqCst);
        assert!(!p.settled_for(Duration::ZERO), "two partitions have no reader");
        p.assigned[1].store(2, Ordering::SeqCst);
        assert!(p.settled_for(Duration::ZERO));
    }

    #[test]
    fn a_rebalance_restarts_the_wait() {
        let p = GroupProgress::new(1);
        let _ = p.total_partitions.set(1);
        p.assigned[0].store(1, Ordering::SeqCst);
        *p.last_rebalance.lock().unwrap_or_else(|e| e.into_inner()) =
            Instant::now() - Duration::from_secs(60);
        assert!(p.settled_for(Duration::from_secs(30)));
        p.rebalanced();
        assert!(
            !p.settled_for(Duration::from_secs(30)),
            "a rebalance just happened"
        );
    }
}
