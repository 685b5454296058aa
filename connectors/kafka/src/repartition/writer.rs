//! The writing side of a repartition topic: one per worker, after the stream to re-key.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord};
use serde::Serialize;
use sluice_engine::state::KeyGroup;
use sluice_engine::{
    BoxError, CheckpointId, ConnectorError, Data, PartitionId, Retry, Sink, SinkFactory, Timestamp, Watermark,
};

use super::Repartition;
use super::envelope::{Envelope, encode_into};
use super::located::Located;
use crate::admin::ensure_topic;
use crate::delivery::{ReportingContext, flush_checked, idempotent_producer, send_waiting};
use crate::error::{KafkaConnectorError, with_retry_hint};

/// Longest time between two rounds of watermark records while records are written (they are
/// also sent at each advance of the worker's watermark).
const MARK_INTERVAL: Duration = Duration::from_millis(100);

/// The key function of a repartition.
pub(super) type KeyFn<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// Creates a [`RepartitionWriter`] per worker.
pub(super) struct RepartitionSink<T, K> {
    pub(super) repartition: Repartition,
    pub(super) key: KeyFn<T, K>,
}

impl<T, K> SinkFactory<Located<T>> for RepartitionSink<T, K>
where
    T: Data + Serialize,
    K: Hash + 'static,
{
    fn create(&self, worker: usize, workers: usize) -> Result<Box<dyn Sink<Located<T>>>, BoxError> {
        let r = &self.repartition;
        ensure_topic(&r.config, &r.topic, r.partitions as i32).map_err(with_retry_hint)?;
        r.check_partitions().map_err(with_retry_hint)?;
        let own = r
            .upstream_partitions_of(Some((worker, workers)))
            .map_err(with_retry_hint)?;
        let producer = idempotent_producer(&r.config, "repartition writes")?;
        Ok(Box::new(RepartitionWriter {
            topic: r.topic.clone(),
            partitions: r.partitions,
            bound: sluice_engine::millis(r.out_of_orderness),
            key: Arc::clone(&self.key),
            producer,
            upstream: own
                .into_iter()
                .map(|p| (PartitionId(p), Upstream::new()))
                .collect(),
            combined: i64::MIN,
            marks_sent: Instant::now(),
            payload: Vec::new(),
        }))
    }
}

/// What the writer knows of one upstream partition whose records it wrote.
struct Upstream {
    /// Offset of the last record written, and the index its next output gets.
    last: Option<(u64, u32)>,
    /// Largest event timestamp written.
    max_ts: i64,
    /// Watermark last sent (or `i64::MIN`).
    sent: i64,
    /// Whether it was last announced idle.
    idle: bool,
    /// No longer idle: its watermark is to be sent even if it did not move.
    announce: bool,
}

impl Upstream {
    fn new() -> Self {
        Upstream {
            last: None,
            max_ts: i64::MIN,
            sent: i64::MIN,
            idle: false,
            announce: false,
        }
    }

    /// Its watermark: its largest event time minus the bound, or the worker's watermark if
    /// that is higher (it is the lowest of the worker's partitions that are not idle, so it
    /// is a watermark of each of them, as the upstream source's own watermark is).
    fn watermark(&self, bound: i64, combined: i64) -> i64 {
        self.max_ts.saturating_sub(bound).max(combined)
    }
}

/// Writes each record to the partition of its key's group, with its id, and the watermark of
/// every upstream partition it writes for to every partition.
struct RepartitionWriter<T, K> {
    topic: String,
    partitions: u32,
    bound: i64,
    key: KeyFn<T, K>,
    producer: BaseProducer<ReportingContext>,
    /// The upstream partitions this writer speaks for: its worker's share of the upstream
    /// source's partitions (a record of any other is refused).
    upstream: BTreeMap<PartitionId, Upstream>,
    /// The worker's watermark (the input watermark of this sink).
    combined: i64,
    marks_sent: Instant,
    /// The record being sent, encoded (the producer copies it).
    payload: Vec<u8>,
}

impl<T: Serialize, K: Hash> RepartitionWriter<T, K> {
    fn send(
        &mut self,
        partition: u32,
        envelope: &Envelope<&T>,
        ts: Option<Timestamp>,
    ) -> Result<(), BoxError> {
        encode_into(envelope, &mut self.payload).map_err(|reason| KafkaConnectorError::Encode {
            topic: self.topic.clone(),
            reason,
        })?;
        let mut record = BaseRecord::<(), [u8]>::to(&self.topic)
            .partition(partition as i32)
            .payload(self.payload.as_slice());
        if let Some(ts) = ts {
            record = record.timestamp(ts);
        }
        send_waiting(&self.producer, record)
    }

    /// Sends `envelope` to every partition.
    fn broadcast(&mut self, envelope: &Envelope<&T>) -> Result<(), BoxError> {
        (0..self.partitions).try_for_each(|q| self.send(q, envelope, None))
    }

    /// Sends, to every partition, the watermark of every upstream partition whose watermark
    /// moved or that is no longer idle; with `all`, of every one (idle ones as idle, after
    /// their watermark).
    fn send_marks(&mut self, all: bool) -> Result<(), BoxError> {
        self.marks_sent = Instant::now();
        let mut marks = Vec::new();
        for (p, u) in &mut self.upstream {
            let watermark = u.watermark(self.bound, self.combined);
            if all || watermark > u.sent || u.announce {
                u.sent = u.sent.max(watermark);
                u.announce = false;
                marks.push(Envelope::Watermark {
                    upstream: p.0,
                    watermark,
                });
            }
            if all && u.idle {
                marks.push(Envelope::Idle { upstream: p.0 });
            }
        }
        marks.iter().try_for_each(|m| self.broadcast(m))
    }

    fn flush(&self) -> Result<(), BoxError> {
        flush_checked(&self.producer, Duration::from_secs(60), || {
            format!("writes to repartition topic '{}' not acknowledged", self.topic)
        })
    }
}

impl<T, K> Sink<Located<T>> for RepartitionWriter<T, K>
where
    T: Data + Serialize,
    K: Hash + 'static,
{
    fn write(&mut self, record: Located<T>, ts: Timestamp) -> Result<(), BoxError> {
        let (bound, combined) = (self.bound, self.combined);
        let Some(u) = self.upstream.get_mut(&record.partition) else {
            return Err(ConnectorError::new(
                Retry::Stop,
                format!(
                    "repartition topic '{}': a record of upstream partition {} reached the writer of a worker that does not read it: the upstream source must assign partitions itself (not group_assignment), read the topics given to Repartition::new in that order, and read only the partitions given to Repartition::upstream_partitions",
                    self.topic, record.partition
                ),
            )
            .into());
        };
        let index = match u.last {
            Some((offset, next)) if offset == record.offset => next,
            _ => 0,
        };
        u.last = Some((record.offset, index + 1));
        u.max_ts = u.max_ts.max(ts);
        let resumed = std::mem::take(&mut u.idle);
        let watermark = u.watermark(bound, combined);
        if resumed {
            // Every partition hears that it holds event time back again before its record.
            u.announce = false;
            u.sent = u.sent.max(watermark);
            let mark = Envelope::Watermark {
                upstream: record.partition.0,
                watermark,
            };
            self.broadcast(&mark).map_err(with_retry_hint)?;
        }
        let key = (self.key)(&record.value);
        let partition = u32::from(KeyGroup::of(&key, self.partitions as u16).0);
        let envelope = Envelope::Record {
            upstream: record.partition.0,
            offset: record.offset,
            index,
            ts,
            value: &record.value,
        };
        self.send(partition, &envelope, Some(ts))
            .map_err(with_retry_hint)?;
        if self.marks_sent.elapsed() >= MARK_INTERVAL {
            self.send_marks(false).map_err(with_retry_hint)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: Watermark) -> Result<(), BoxError> {
        self.combined = self.combined.max(wm.0);
        for u in self.upstream.values_mut() {
            if std::mem::take(&mut u.idle) {
                u.announce = true;
            }
        }
        self.send_marks(false).map_err(with_retry_hint)?;
        if wm == Watermark::MAX {
            // The input has ended: nothing more comes from any upstream partition written here.
            self.flush().map_err(with_retry_hint)?;
        }
        Ok(())
    }

    fn on_idle(&mut self) -> Result<(), BoxError> {
        // The last watermarks first: a burst's final advance may not have been sent yet.
        self.send_marks(false).map_err(with_retry_hint)?;
        let mut idle = Vec::new();
        for (p, u) in &mut self.upstream {
            if !u.idle {
                u.idle = true;
                idle.push(Envelope::Idle { upstream: p.0 });
            }
        }
        idle.iter()
            .try_for_each(|m| self.broadcast(m))
            .map_err(with_retry_hint)
    }

    fn on_checkpoint(&mut self, _id: CheckpointId) -> Result<(), BoxError> {
        // Every mark again, so a reader restored from a checkpoint hears from every upstream
        // partition, idle ones included.
        self.send_marks(true).map_err(with_retry_hint)?;
        self.flush().map_err(with_retry_hint)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.send_marks(false).map_err(with_retry_hint)?;
        self.flush().map_err(with_retry_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_watermark_is_its_own_or_the_workers_whichever_is_higher() {
        let mut u = Upstream::new();
        assert_eq!(u.watermark(100, i64::MIN), i64::MIN, "nothing written yet");
        assert_eq!(
            u.watermark(100, 500),
            500,
            "an empty partition follows its worker"
        );
        u.max_ts = 1_000;
        assert_eq!(u.watermark(100, i64::MIN), 900);
        assert_eq!(u.watermark(100, 950), 950);
        assert_eq!(u.watermark(100, i64::MAX), i64::MAX, "the input ended");
    }
}
