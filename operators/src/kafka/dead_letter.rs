use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sluice_engine::{BoxError, Message};

use super::admin::ensure_topic;
use super::config::KafkaConfig;
use super::delivery::{DeliveryReport, ReportingContext, send_waiting};

/// What a dead-lettered record came from.
pub(crate) struct PoisonRecord<'a> {
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
}

impl DeadLetterWriter {
    /// Connects and creates `topic` (one partition) if it is missing.
    pub(crate) fn open(config: &KafkaConfig, topic: &str) -> Result<Self, BoxError> {
        if let Err(e) = ensure_topic(config, topic, 1) {
            // Brokers that auto-create topics, or refuse the admin API, still take the writes.
            tracing::warn!(topic, error = %e, "could not create the dead-letter topic");
        }
        let context = ReportingContext {
            report: Arc::new(DeliveryReport::default()),
            what: "a dead-letter write",
        };
        let producer = config
            .client_config(&[("enable.idempotence", "true"), ("linger.ms", "5")])
            .create_with_context(context)
            .map_err(|e| Message(format!("cannot create the dead-letter producer: {e}")))?;
        Ok(DeadLetterWriter {
            topic: topic.to_string(),
            producer,
        })
    }

    /// Queues `record` for the dead-letter topic.
    pub(crate) fn write(&self, record: &PoisonRecord<'_>) -> Result<(), BoxError> {
        let (partition, offset) = (record.partition.to_string(), record.offset.to_string());
        let headers = [
            ("sluice.error", record.error),
            ("sluice.topic", record.topic),
            ("sluice.partition", partition.as_str()),
            ("sluice.offset", offset.as_str()),
        ];
        self.send(record.key, record.payload, &headers)
    }

    /// Queues a row a sink could not write, with `headers` saying where it was going and why.
    pub(crate) fn write_row(&self, payload: &[u8], headers: &[(&str, &str)]) -> Result<(), BoxError> {
        self.send(None, Some(payload), headers)
    }

    fn send(
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
        self.producer.context().report.check()
    }

    /// Waits until every queued write is acknowledged.
    pub(crate) fn flush(&self) -> Result<(), BoxError> {
        self.producer.flush(Duration::from_secs(30)).map_err(|e| {
            Message(format!(
                "dead-letter writes to '{}' not acknowledged: {e}",
                self.topic
            ))
        })?;
        self.check()
    }
}
