//! Taking and giving up partitions: the consumer context and its rebalance callbacks.

use std::collections::HashMap;

use super::*;

/// A rebalance seen by the consumer, to be turned into partition starts and revocations.
pub(super) enum Rebalanced {
    /// Partitions taken, with the offset each starts at.
    Assigned(Vec<(String, i32, i64)>),
    Revoked(Vec<(String, i32)>),
}

/// Applies start offsets on assignment, hands partitions over on revocation and reports
/// rebalances to the reader.
pub(super) struct ReaderContext {
    pub(super) start: StartFrom,
    /// Where this reader reports its assignment, as soon as the group changes it.
    pub(super) progress: Arc<GroupProgress>,
    /// This reader's partitions, as the `assigned_partitions` gauge.
    pub(super) assigned: Arc<sluice_engine::Gauge>,
    pub(super) worker: usize,
    pub(super) offsets: Arc<StartOffsets>,
    /// Why taking an assignment failed, for the next poll to report.
    pub(super) failure: Mutex<Option<String>>,
    pub(super) events: Mutex<Vec<Rebalanced>>,
    /// Whether `events` holds something (checked without the lock on every record).
    pub(super) has_events: AtomicBool,
    /// Bad credentials or a failed TLS handshake, for the next poll to report.
    pub(super) refusals: Refusals,
    /// The partitions' high watermarks from the client's statistics, for their lag.
    pub(super) ends: Mutex<HashMap<(String, i32), i64>>,
    /// The bootstrap servers, for error messages.
    pub(super) brokers: String,
}

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        context::log(level, fac, log_message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                // librdkafka lists an internal partition -1 and -1001 for unknown offsets.
                if partition >= 0 && p.hi_offset >= 0 {
                    ends.insert((topic.clone(), partition), p.hi_offset);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition is news (it is caught up), not an error.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        self.refusals.note(&error, reason);
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

pub(super) fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ReaderContext {
    /// Takes `tpl` as this reader's partitions, each starting where the run says (a restored
    /// checkpoint or the previous owner), else per [`StartFrom`], looked up as a concrete
    /// offset. A failure is kept for the reader's next poll to report.
    pub(super) fn take(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        if let Err(e) = self.try_take(consumer, tpl) {
            tracing::error!(error = %e, "cannot take the assigned partitions");
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    }

    pub(super) fn try_take(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> Result<(), String> {
        let partitions = partitions_of(tpl);
        let unknown: Vec<(String, i32)> = partitions
            .iter()
            .filter(|(t, p)| self.offsets.get(t, *p).is_none())
            .cloned()
            .collect();
        let resolved = resolve(consumer, self.start, &unknown)?;
        let mut starts = Vec::with_capacity(partitions.len());
        for (topic, partition) in &partitions {
            let offset = match self.offsets.get(topic, *partition) {
                Some(o) => o,
                None => unknown
                    .iter()
                    .position(|(t, p)| t == topic && p == partition)
                    .and_then(|i| resolved.get(i).copied())
                    .ok_or_else(|| format!("no start offset for {topic}/{partition}"))?,
            };
            tpl.set_partition_offset(topic, *partition, Offset::Offset(offset))
                .map_err(|e| format!("cannot set the start of {topic}/{partition}: {e}"))?;
            starts.push((topic.clone(), *partition, offset));
        }
        consumer
            .assign(tpl)
            .map_err(|e| format!("cannot take partitions {partitions:?}: {e}"))?;
        self.progress.assigned[self.worker].store(tpl.count(), Ordering::SeqCst);
        self.assigned.set(tpl.count() as i64);
        self.progress.rebalanced();
        tracing::info!(partitions = ?starts, "partitions assigned");
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.push(Rebalanced::Assigned(starts));
        self.has_events.store(true, Ordering::Release);
        Ok(())
    }
}

impl ConsumerContext for ReaderContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.take(consumer, tpl);
            return;
        }
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            tracing::warn!(?err, "rebalance error; giving up the assignment");
        }
        let revoked = partitions_of(tpl);
        tracing::info!(partitions = ?revoked, "partitions revoked");
        hand_over(consumer, &revoked, &self.offsets);
        self.progress.assigned[self.worker].store(0, Ordering::SeqCst);
        self.assigned.set(0);
        self.progress.rebalanced();
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.push(Rebalanced::Revoked(revoked));
        self.has_events.store(true, Ordering::Release);
        drop(events);
        if let Err(e) = consumer.unassign() {
            tracing::error!(error = %e, "cannot give up the revoked partitions");
        }
    }
}

/// Records where the next owner of each revoked partition continues: after the last record
/// this reader polled. Records of it still in the stash are handed downstream by this reader
/// at its next poll. (Dropping them for the next owner to read again loses them when the
/// partition comes back to this same consumer: librdkafka then resumes at its own fetch
/// position, past them.) Nothing is committed to the group: only a completed checkpoint
/// covers what was read.
pub(super) fn hand_over(
    consumer: &BaseConsumer<ReaderContext>,
    revoked: &[(String, i32)],
    offsets: &StartOffsets,
) {
    let positions = match consumer.position() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read positions of revoked partitions");
            return;
        }
    };
    for e in positions.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        if !revoked.iter().any(|(t, p)| t == topic && *p == partition) {
            continue;
        }
        let Offset::Offset(next) = e.offset() else {
            // Nothing was read since the assignment: the next owner starts where this one did.
            continue;
        };
        tracing::debug!(%topic, partition, next, "handing over a revoked partition");
        offsets.set(topic, partition, StartKind::HandedOver, next);
    }
}
