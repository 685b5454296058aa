//! Where each Kafka partition starts reading.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

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

/// How long look-ups keep retrying errors the brokers recover from by themselves: a group
/// coordinator still loading (a fresh or restarted cluster), a leader election, a timeout.
const RECOVERY: Duration = Duration::from_secs(60);

/// Whether the brokers recover from `e` by themselves, so the look-up is worth repeating.
fn is_transient(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
        )
    )
}

/// Runs `lookup` until it succeeds, fails for good, or transient failures outlast
/// [`RECOVERY`]; `what` names it in the error.
fn retrying<T>(what: impl Fn() -> String, mut lookup: impl FnMut() -> KafkaResult<T>) -> Result<T, String> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match lookup() {
            Ok(found) => return Ok(found),
            Err(e) if is_transient(&e) && started.elapsed() < RECOVERY => {
                tracing::info!(error = %e, "{}: retrying", what());
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(format!("{}: {e}", what())),
        }
    }
}

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
            let found = retrying(
                || "cannot read the group's committed offsets".to_string(),
                || consumer.committed_offsets(tpl.clone(), LOOKUP),
            )?;
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
            let (low, high) = retrying(
                || format!("cannot read the offsets of {topic}/{partition}"),
                || consumer.fetch_watermarks(topic, *partition, LOOKUP),
            )?;
            Ok(match start {
                StartFrom::Earliest | StartFrom::CommittedOrEarliest => low,
                StartFrom::Latest | StartFrom::CommittedOrLatest => high,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn error(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MetadataFetch(code)
    }

    #[test]
    fn a_coordinator_still_loading_is_waited_for() {
        let calls = Cell::new(0);
        let found = retrying(
            || "committed offsets".into(),
            || {
                calls.set(calls.get() + 1);
                match calls.get() {
                    1 => Err(error(RDKafkaErrorCode::NotCoordinator)),
                    2 => Err(error(RDKafkaErrorCode::CoordinatorLoadInProgress)),
                    _ => Ok(7),
                }
            },
        );
        assert_eq!(found, Ok(7));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn a_lasting_failure_is_reported_at_once() {
        let calls = Cell::new(0);
        let found: Result<i64, String> = retrying(
            || "committed offsets".into(),
            || {
                calls.set(calls.get() + 1);
                Err(error(RDKafkaErrorCode::GroupAuthorizationFailed))
            },
        );
        let message = found.expect_err("not retried");
        assert!(message.starts_with("committed offsets: "), "{message}");
        assert_eq!(calls.get(), 1);
    }
}
