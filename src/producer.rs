//! A producer for generated input: JSON records into Kafka topics, with backpressure from
//! librdkafka's bounded queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;
use sluice_engine::JobHandle;
use sluice_kafka::{KafkaConfig, LoggingContext};

/// Producing failed.
#[derive(Debug, thiserror::Error)]
#[error("Kafka at {brokers}: {reason}")]
pub struct ProduceError {
    /// The bootstrap servers.
    pub brokers: String,
    /// What went wrong.
    pub reason: String,
}

/// Remembers failed deliveries, so that a flush can report them, and refusals (bad
/// credentials, failed TLS handshakes), which end producing at once.
#[derive(Default)]
struct DeliveryCheck {
    failed: AtomicU64,
    first: Mutex<Option<String>>,
    logging: LoggingContext,
}

impl ClientContext for DeliveryCheck {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.logging.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.logging.error(error, reason);
    }
}

impl ProducerContext for DeliveryCheck {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
            first.get_or_insert_with(|| {
                format!(
                    "a record to '{}' partition {} was not delivered: {error}",
                    message.topic(),
                    message.partition()
                )
            });
        }
    }
}

/// Sends JSON records; a full local queue makes `send` wait for deliveries instead of
/// growing. [`JsonProducer::flush`] fails if any record was not delivered.
pub struct JsonProducer {
    producer: BaseProducer<DeliveryCheck>,
    brokers: String,
    payload: Vec<u8>,
    sent: u64,
}

impl JsonProducer {
    /// A producer for `kafka` (20 ms linger, batches of up to 10,000 records, at most
    /// 200,000 records queued).
    pub fn new(kafka: &KafkaConfig) -> Result<Self, ProduceError> {
        let producer = kafka
            .client_config(&[
                ("linger.ms", "20"),
                ("batch.num.messages", "10000"),
                ("queue.buffering.max.messages", "200000"),
            ])
            .create_with_context(DeliveryCheck::default())
            .map_err(|e| ProduceError {
                brokers: kafka.brokers().to_string(),
                reason: format!("cannot create a producer: {e}"),
            })?;
        Ok(JsonProducer {
            producer,
            brokers: kafka.brokers().to_string(),
            payload: Vec::with_capacity(256),
            sent: 0,
        })
    }

    /// Sends `value` as JSON with `key` and, if given, `ts` as the record's timestamp.
    pub fn send<T: Serialize>(
        &mut self,
        topic: &str,
        key: &str,
        value: &T,
        ts: Option<i64>,
    ) -> Result<(), ProduceError> {
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        let encoded = serde_json::to_writer(&mut payload, value).map_err(|e| self.error(e.to_string()));
        let sent = encoded.and_then(|()| self.send_raw(topic, key, &payload, ts));
        self.payload = payload;
        sent
    }

    /// Sends `payload` unchanged.
    pub fn send_raw(
        &mut self,
        topic: &str,
        key: &str,
        payload: &[u8],
        ts: Option<i64>,
    ) -> Result<(), ProduceError> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        if let Some(ts) = ts {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    self.producer.poll(Duration::from_millis(5));
                    self.refused()?;
                    record = back;
                }
                Err((e, _)) => return Err(self.error(format!("cannot produce to '{topic}': {e}"))),
            }
        }
        self.sent += 1;
        if self.sent % 4096 == 0 {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Waits until the brokers acknowledged every record sent; fails if any was refused, or
    /// the brokers refused the producer itself (bad credentials, a failed TLS handshake).
    pub fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        let deadline = std::time::Instant::now() + timeout;
        // In short rounds, so that a refusal ends the wait at once.
        while let Err(e) = self.producer.flush(Duration::from_millis(500)) {
            self.refused()?;
            if std::time::Instant::now() >= deadline {
                return Err(self.error(format!("not every record was acknowledged: {e}")));
            }
        }
        let context = self.producer.context();
        match context.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => {
                let first = context
                    .first
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Err(self.error(format!(
                    "{n} records were not delivered; {}",
                    first.unwrap_or_default()
                )))
            }
        }
    }

    /// The refusal the brokers answered with, if any.
    fn refused(&self) -> Result<(), ProduceError> {
        self.producer
            .context()
            .logging
            .refused(&self.brokers)
            .map_err(|e| ProduceError {
                brokers: self.brokers.clone(),
                reason: match e {
                    sluice_kafka::KafkaConnectorError::Refused { refusal, reason, .. } => {
                        format!("{refusal}: {reason}")
                    }
                    other => other.to_string(),
                },
            })
    }

    fn error(&self, reason: String) -> ProduceError {
        ProduceError {
            brokers: self.brokers.clone(),
            reason,
        }
    }
}

/// Holds a producer back so it is at most `max_lag` records ahead of what a running job's
/// sources have read: generated input then goes in at the pace the job takes it, and a broker
/// that keeps little (such as the in-process one, 5 MB per partition) loses nothing.
pub struct LagLimit<'a> {
    job: &'a JobHandle,
    sources: Vec<String>,
    max_lag: u64,
}

impl<'a> LagLimit<'a> {
    /// Limits the lag behind the sum of `records_out` of `sources` of `job`.
    pub fn new(job: &'a JobHandle, sources: &[&str], max_lag: u64) -> Self {
        LagLimit {
            job,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            max_lag,
        }
    }

    /// Records the sources have read.
    pub fn read(&self) -> u64 {
        let metrics = self.job.metrics();
        self.sources.iter().map(|s| metrics.total(s, "records_out")).sum()
    }

    /// Waits until the sources' readers hold `partitions` partitions in all (their
    /// `assigned_partitions` gauges), the job ended, or `timeout` passed, so that every
    /// partition is being read when input starts to arrive (a partition that gets its first
    /// records well after the others could see them fall behind the watermark).
    pub fn wait_for_assignment(&self, partitions: i64, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let metrics = self.job.metrics();
        while std::time::Instant::now() < deadline && !self.job.is_finished() {
            let assigned: i64 = self
                .sources
                .iter()
                .map(|s| metrics.gauge_sum(s, "assigned_partitions"))
                .sum();
            if assigned >= partitions {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `produced` is at most the limit ahead, or the job has ended.
    pub fn wait(&self, produced: u64) {
        while produced.saturating_sub(self.read()) > self.max_lag && !self.job.is_finished() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
