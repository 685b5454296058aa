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
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "sluice.error",
                value: Some(record.error),
            })
            .insert(Header {
                key: "sluice.topic",
                value: Some(record.topic),
            })
            .insert(Header {
                key: "sluice.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "sluice.offset",
                value: Some(&offset),
            });
        let mut out = BaseRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(k) = record.key {
            out = out.key(k);
        }
        if let Some(p) = record.payload {
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
