use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use sluice_engine::{BoxError, CheckpointId, Data, Message, Sink, SinkFactory, Timestamp};

use super::config::KafkaConfig;
use super::dead_letter::DeliveryReport;
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

struct SinkContext(Arc<DeliveryReport>);

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::context::log(level, fac, log_message);
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.0.record(result, "a write");
    }
}

impl<T: Data> SinkFactory<T> for KafkaSink<T> {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<T>>, BoxError> {
        let report = Arc::new(DeliveryReport::default());
        let producer = self
            .config
            .client_config(&[("enable.idempotence", "true"), ("linger.ms", "5")])
            .create_with_context(SinkContext(Arc::clone(&report)))
            .map_err(|e| {
                Message(format!(
                    "cannot create a producer for {}: {e}",
                    self.config.brokers()
                ))
            })?;
        Ok(Box::new(KafkaWriter {
            topic: self.topic.clone(),
            serializer: Arc::clone(&self.serializer),
            producer,
            report,
        }))
    }
}

struct KafkaWriter<T> {
    topic: String,
    serializer: Arc<dyn RecordSerializer<T>>,
    producer: BaseProducer<SinkContext>,
    report: Arc<DeliveryReport>,
}

impl<T> KafkaWriter<T> {
    fn check(&self) -> Result<(), BoxError> {
        match self.report.take() {
            Some(failure) => Err(Message(failure).into()),
            None => Ok(()),
        }
    }

    fn flush(&self) -> Result<(), BoxError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| Message(format!("writes to topic '{}' not acknowledged: {e}", self.topic)))?;
        self.check()
    }
}

impl<T: Data> Sink<T> for KafkaWriter<T> {
    fn write(&mut self, value: T, ts: Timestamp) -> Result<(), BoxError> {
        let (key, payload) = self
            .serializer
            .serialize(&value)
            .map_err(|e| Message(format!("cannot encode a record for topic '{}': {e}", self.topic)))?;
        let mut record = BaseRecord::<Vec<u8>, Vec<u8>>::to(&self.topic)
            .payload(&payload)
            .timestamp(ts);
        if let Some(k) = &key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                // The producer's queue is full: wait for acknowledgements (backpressure).
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(20));
                    self.check()?;
                    record = r;
                }
                Err((e, _)) => {
                    return Err(Message(format!("cannot write to topic '{}': {e}", self.topic)).into());
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        self.check()
    }

    fn on_checkpoint(&mut self, _id: CheckpointId) -> Result<(), BoxError> {
        self.flush()
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.flush()
    }
}
