use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sluice_engine::BoxError;

use super::admin::ensure_topic;
use super::config::KafkaConfig;
use super::dead_lettered::{GROUP_HEADER, Origin};
use super::delivery::{ReportingContext, flush_checked, idempotent_producer, send_waiting};

/// What a dead-lettered record came from.
pub(crate) struct BadRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub error: &'a str,
}

/// Writes records that cannot be decoded, unchanged, to a dead-letter topic, with the error
/// and their origin (topic, partition, offset) as headers.
pub(crate) struct DeadLetterWriter {
    topic: String,
    producer: BaseProducer<ReportingContext>,
    /// The consumer group of the job writing bad records (a header, so a restore can find
    /// what this job wrote).
    group: Option<String>,
    /// Bad records an earlier run of the job already wrote.
    written: Arc<HashSet<Origin>>,
}

impl DeadLetterWriter {
    /// Connects and creates `topic` (one partition) if it is missing.
    pub(crate) fn open(config: &KafkaConfig, topic: &str) -> Result<Self, BoxError> {
        if let Err(e) = ensure_topic(config, topic, 1) {
            // Brokers that auto-create topics, or refuse the admin API, still take the writes.
            tracing::warn!(topic, error = %e, "could not create the dead-letter topic");
        }
        let producer = idempotent_producer(config, "dead letters")?;
        Ok(DeadLetterWriter {
            topic: topic.to_string(),
            producer,
            group: None,
            written: Arc::default(),
        })
    }

    /// Marks bad records with the job's consumer `group`.
    pub(crate) fn for_group(mut self, group: &str) -> Self {
        self.group = Some(group.to_string());
        self
    }

    /// Skips the bad records in `written`: what this job's group already dead-lettered
    /// (read from the topic when the job starts), so records read again after a crash are
    /// not written twice.
    pub(crate) fn skipping(mut self, written: Arc<HashSet<Origin>>) -> Self {
        self.written = written;
        self
    }

    /// Queues `record` for the dead-letter topic. Returns `false` when a run before a restore
    /// already wrote it.
    pub(crate) fn write(&self, record: &BadRecord<'_>) -> Result<bool, BoxError> {
        let origin = (record.topic.to_string(), record.partition, record.offset);
        if self.written.contains(&origin) {
            return Ok(false);
        }
        let (partition, offset) = (record.partition.to_string(), record.offset.to_string());
        let mut headers = vec![
            ("sluice.error", record.error),
            ("sluice.topic", record.topic),
            ("sluice.partition", partition.as_str()),
            ("sluice.offset", offset.as_str()),
        ];
        if let Some(group) = &self.group {
            headers.push((GROUP_HEADER, group.as_str()));
        }
        self.send(record.key, record.payload, &headers)?;
        Ok(true)
    }

    /// Queues a record with `headers`.
    pub(crate) fn send(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<(), BoxError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let mut out = BaseRecord::<[u8], [u8]>::to(&self.topic).headers(owned);
        if let Some(k) = key {
            out = out.key(k);
        }
        if let Some(p) = payload {
            out = out.payload(p);
        }
        send_waiting(&self.producer, out)
    }

    /// Serves delivery reports; fails if a write was rejected.
    pub(crate) fn check(&self) -> Result<(), BoxError> {
        self.producer.poll(Duration::ZERO);
        self.producer.context().check()
    }

    /// Waits until every queued write is acknowledged.
    pub(crate) fn flush(&self) -> Result<(), BoxError> {
        flush_checked(&self.producer, Duration::from_secs(60), || {
            format!("dead-letter writes to '{}' not acknowledged", self.topic)
        })
    }
}
