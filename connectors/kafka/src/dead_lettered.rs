//! What a dead-letter topic already holds, so a job that reads records again (after a crash,
//! with or without a checkpoint) does not write a bad record a second time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice_engine::BoxError;

use super::config::KafkaConfig;
use super::error::{Context, KafkaConnectorError};

/// Header naming the consumer group of the job that dead-lettered a record.
pub(crate) const GROUP_HEADER: &str = "sluice.group";

/// Longest a scan of the dead-letter topic may take.
const SCAN_LIMIT: Duration = Duration::from_secs(120);

/// Origin of a dead-lettered record: topic, partition, offset.
pub(crate) type Origin = (String, i32, i64);

/// Reads `topic` from its beginning to its current end and returns the origins of the records
/// that group `group` dead-lettered from `topics`.
///
/// # Errors
/// When the topic cannot be read to its end in time.
pub(crate) fn already_dead_lettered(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    topics: &[String],
) -> Result<HashSet<Origin>, BoxError> {
    let mut found = HashSet::new();
    let consumer: BaseConsumer = config
        .client_config(&[
            ("group.id", "sluice-dead-letter-scan"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ])
        .create()
        .context(|| format!("cannot read dead-letter topic '{topic}'"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context(|| format!("cannot read dead-letter topic '{topic}'"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .context(|| format!("cannot read the offsets of dead-letter topic '{topic}'"))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
            ends.push((p, high));
        }
    }
    if ends.is_empty() {
        return Ok(found);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + SCAN_LIMIT;
    let mut remaining = ends.len();
    let mut done = vec![false; ends.len()];
    while remaining > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaConnectorError::DeadLetterScan {
                topic: topic.to_string(),
                limit: SCAN_LIMIT,
            }
            .into());
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.context(|| format!("cannot read dead-letter topic '{topic}'"))?;
        if let Some(i) = ends.iter().position(|(p, _)| *p == m.partition()) {
            if m.offset() + 1 >= ends[i].1 && !done[i] {
                done[i] = true;
                remaining -= 1;
            }
        }
        let Some(headers) = m.headers() else {
            continue;
        };
        let header = |key: &str| {
            headers
                .iter()
                .find(|h| h.key == key)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
        };
        if header(GROUP_HEADER) != Some(group) {
            continue;
        }
        let (Some(t), Some(p), Some(o)) = (
            header("sluice.topic"),
            header("sluice.partition").and_then(|p| p.parse::<i32>().ok()),
            header("sluice.offset").and_then(|o| o.parse::<i64>().ok()),
        ) else {
            continue;
        };
        if topics.iter().any(|ours| ours == t) {
            found.insert((t.to_string(), p, o));
        }
    }
    Ok(found)
}

/// The dead-lettered origins of one source, read once per run and shared by its readers.
#[derive(Default)]
pub(crate) struct DeadLetterLog(Mutex<Option<Arc<HashSet<Origin>>>>);

impl DeadLetterLog {
    /// The origins, reading them with `scan` if no reader did yet.
    ///
    /// # Errors
    /// What `scan` returns.
    pub(crate) fn get_or_scan(
        &self,
        scan: impl FnOnce() -> Result<HashSet<Origin>, BoxError>,
    ) -> Result<Arc<HashSet<Origin>>, BoxError> {
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = log.as_ref() {
            return Ok(Arc::clone(found));
        }
        let found = Arc::new(scan()?);
        *log = Some(Arc::clone(&found));
        Ok(found)
    }
}
