use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord};
use sluice_engine::{BoxError, CheckpointId, Data, Sink, SinkFactory, Timestamp};

use super::config::KafkaConfig;
use super::delivery::{ReportingContext, flush_checked, idempotent_producer, send_waiting};
use super::error::{KafkaConnectorError, with_retry_hint};
use super::format::RecordSerializer;

/// Writes a stream to a Kafka topic with an idempotent producer.
///
/// Delivery is **at-least-once**: every write is acknowledged before a checkpoint or the end
/// of the job completes, and a failed delivery fails the job, but a job restarted from an
/// earlier point writes the records after that point again. Consumers that need exactly-once
/// results must deduplicate (e.g. by key).
pub struct KafkaSink<T> {
    config: KafkaConfig,
    topic: String,
    serializer: Arc<dyn RecordSerializer<T>>,
}

impl<T> Clone for KafkaSink<T> {
    fn clone(&self) -> Self {
        KafkaSink {
            config: self.config.clone(),
            topic: self.topic.clone(),
            serializer: Arc::clone(&self.serializer),
        }
    }
}

impl<T: Data> KafkaSink<T> {
    /// Writes to `topic`, encoding each value with `serializer`.
    pub fn new(config: KafkaConfig, topic: impl Into<String>, serializer: impl RecordSerializer<T>) -> Self {
        KafkaSink {
            config,
            topic: topic.into(),
            serializer: Arc::new(serializer),
        }
    }
}

impl<T: Data> SinkFactory<T> for KafkaSink<T> {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<T>>, BoxError> {
        self.writer().map_err(with_retry_hint)
    }
}

impl<T: Data> KafkaSink<T> {
    fn writer(&self) -> Result<Box<dyn Sink<T>>, BoxError> {
        let producer = idempotent_producer(&self.config, "writes")?;
        Ok(Box::new(KafkaWriter {
            topic: self.topic.clone(),
            serializer: Arc::clone(&self.serializer),
            producer,
        }))
    }
}

struct KafkaWriter<T> {
    topic: String,
    serializer: Arc<dyn RecordSerializer<T>>,
    producer: BaseProducer<ReportingContext>,
}

impl<T> KafkaWriter<T> {
    fn flush(&self) -> Result<(), BoxError> {
        flush_checked(&self.producer, Duration::from_secs(60), || {
            format!("writes to topic '{}' not acknowledged", self.topic)
        })
    }
}

impl<T: Data> KafkaWriter<T> {
    fn send(&mut self, value: T, ts: Timestamp) -> Result<(), BoxError> {
        let (key, payload) =
            self.serializer
                .serialize(&value)
                .map_err(|reason| KafkaConnectorError::Encode {
                    topic: self.topic.clone(),
                    reason,
                })?;
        let mut record = BaseRecord::<Vec<u8>, Vec<u8>>::to(&self.topic)
            .payload(&payload)
            .timestamp(ts);
        if let Some(k) = &key {
            record = record.key(k);
        }
        send_waiting(&self.producer, record)
    }
}

impl<T: Data> Sink<T> for KafkaWriter<T> {
    fn write(&mut self, value: T, ts: Timestamp) -> Result<(), BoxError> {
        self.send(value, ts).map_err(with_retry_hint)
    }

    fn on_checkpoint(&mut self, _id: CheckpointId) -> Result<(), BoxError> {
        self.flush().map_err(with_retry_hint)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.flush().map_err(with_retry_hint)
    }
}
