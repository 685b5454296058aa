use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use sluice_engine::{BoxError, Message};

use super::admin::ensure_topic;
use super::config::KafkaConfig;

/// Keeps the first delivery failure for the writer to report.
#[derive(Default)]
pub(crate) struct DeliveryReport {
    failure: Mutex<Option<String>>,
}

impl DeliveryReport {
    pub(crate) fn record(&self, result: &DeliveryResult<'_>, what: &str) {
        if let Err((e, m)) = result {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| format!("{what} to topic '{}' failed: {e}", m.topic()));
        }
    }

    pub(crate) fn take(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pub(crate) struct DeadLetterContext(Arc<DeliveryReport>);

impl ClientContext for DeadLetterContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::context::log(level, fac, log_message);
    }
}

impl ProducerContext for DeadLetterContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.0.record(result, "a dead-letter write");
    }
}

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
    producer: BaseProducer<DeadLetterContext>,
    report: Arc<DeliveryReport>,
}

impl DeadLetterWriter {
    /// Connects and creates `topic` (one partition) if it is missing.
    pub(crate) fn open(config: &KafkaConfig, topic: &str) -> Result<Self, BoxError> {
        if let Err(e) = ensure_topic(config, topic, 1) {
            // Brokers that auto-create topics, or refuse the admin API, still take the writes.
            tracing::warn!(topic, error = %e, "could not create the dead-letter topic");
        }
        let report = Arc::new(DeliveryReport::default());
        let producer = config
            .client_config(&[("enable.idempotence", "true"), ("linger.ms", "5")])
            .create_with_context(DeadLetterContext(Arc::clone(&report)))
            .map_err(|e| Message(format!("cannot create the dead-letter producer: {e}")))?;
        Ok(DeadLetterWriter {
            topic: topic.to_string(),
            producer,
            report,
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
        let mut pending = out;
        loop {
            match self.producer.send(pending) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    self.producer.poll(Duration::from_millis(50));
                    pending = r;
                }
                Err((e, _)) => return Err(Message(format!("cannot queue a dead-letter record: {e}")).into()),
            }
        }
        self.producer.poll(Duration::ZERO);
        self.check()
    }

    /// Serves delivery reports; fails if a write was rejected.
    pub(crate) fn check(&self) -> Result<(), BoxError> {
        self.producer.poll(Duration::ZERO);
        match self.report.take() {
            Some(failure) => Err(Message(failure).into()),
            None => Ok(()),
        }
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
