//! Where each Kafka partition starts reading.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Where the engine or the run says a partition continues, strongest last: a position the
/// job was configured with ([`KafkaSource::start_at`](super::KafkaSource::start_at)), one a
/// restored checkpoint holds, one the partition's previous owner in this run handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum StartKind {
    Configured,
    Restored,
    HandedOver,
}

/// The start of every partition of a source that the run knows, shared by its readers, so a
/// partition neither skips nor repeats records whoever reads it, whatever the group's
/// committed offsets say.
#[derive(Debug, Default)]
pub(crate) struct StartOffsets(Mutex<HashMap<(String, i32), (StartKind, i64)>>);

impl StartOffsets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), (StartKind, i64)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `partition` of `topic` continues at `offset`, unless a stronger kind of
    /// start is known already (a restore never undoes a hand-over of this run; a configured
    /// start never overrides a restore).
    pub(crate) fn set(&self, topic: &str, partition: i32, kind: StartKind, offset: i64) {
        let mut starts = self.lock();
        let entry = starts
            .entry((topic.to_string(), partition))
            .or_insert((kind, offset));
        if kind >= entry.0 {
            *entry = (kind, offset);
        }
    }

    /// Where `partition` of `topic` continues, if the run knows.
    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lock().get(&(topic.to_string(), partition)).map(|(_, o)| *o)
    }
}

/// How long a look-up of offsets at assignment may take.
const LOOKUP: Duration = Duration::from_secs(10);

/// Where a partition starts that the run knows nothing about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The consumer group's committed offset, or the earliest offset without one.
    #[default]
    CommittedOrEarliest,
    /// The consumer group's committed offset, or the end without one.
    CommittedOrLatest,
    /// The earliest offset, whatever was committed.
    Earliest,
    /// The end of the partition, whatever was committed.
    Latest,
}

/// The concrete offset each of `partitions` starts at per `start`, looked up on the brokers
/// (committed offsets, beginning and end), so every assigned partition has a position from
/// the start, which checkpoints record even before it delivers a record.
///
/// # Errors
/// When the brokers do not answer the look-up.
pub(crate) fn resolve<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    start: StartFrom,
    partitions: &[(String, i32)],
) -> Result<Vec<i64>, String> {
    let committed = match start {
        StartFrom::CommittedOrEarliest | StartFrom::CommittedOrLatest if !partitions.is_empty() => {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in partitions {
                tpl.add_partition(topic, *partition);
            }
            let found = consumer
                .committed_offsets(tpl, LOOKUP)
                .map_err(|e| format!("cannot read the group's committed offsets: {e}"))?;
            partitions
                .iter()
                .map(|(t, p)| match found.find_partition(t, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) if o >= 0 => Some(o),
                    _ => None,
                })
                .collect()
        }
        _ => vec![None; partitions.len()],
    };
    partitions
        .iter()
        .zip(committed)
        .map(|((topic, partition), committed)| {
            if let Some(o) = committed {
                return Ok(o);
            }
            let (low, high) = consumer
                .fetch_watermarks(topic, *partition, LOOKUP)
                .map_err(|e| format!("cannot read the offsets of {topic}/{partition}: {e}"))?;
            Ok(match start {
                StartFrom::Earliest | StartFrom::CommittedOrEarliest => low,
                StartFrom::Latest | StartFrom::CommittedOrLatest => high,
            })
        })
        .collect()
}
