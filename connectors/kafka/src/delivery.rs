use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use sluice_engine::BoxError;

use super::config::KafkaConfig;
use super::context::Refusals;
use super::error::{Context, KafkaConnectorError};

/// Keeps the first delivery failure of a producer for its owner to report.
#[derive(Default)]
pub(crate) struct DeliveryReport {
    failure: Mutex<Option<KafkaConnectorError>>,
}

impl DeliveryReport {
    /// The first failure since the last call, as an error.
    pub(crate) fn check(&self) -> Result<(), BoxError> {
        match self.failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(failure) => Err(failure.into()),
            None => Ok(()),
        }
    }
}

/// A producer context that logs and records failed deliveries and refusals (bad
/// credentials, failed TLS handshakes); `what` names the writes in error messages.
pub(crate) struct ReportingContext {
    report: Arc<DeliveryReport>,
    what: &'static str,
    brokers: String,
    refusals: Refusals,
}

impl ReportingContext {
    /// A context for a producer writing to `brokers`.
    pub(crate) fn new(brokers: &str, what: &'static str) -> Self {
        ReportingContext {
            report: Arc::new(DeliveryReport::default()),
            what,
            brokers: brokers.to_string(),
            refusals: Refusals::default(),
        }
    }

    /// The first failed delivery or refusal since the last call, as an error.
    pub(crate) fn check(&self) -> Result<(), BoxError> {
        self.report.check()?;
        Ok(self.refusals.check(&self.brokers)?)
    }
}

impl ClientContext for ReportingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::context::log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.refusals.note(&error, reason);
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

/// An idempotent producer to the cluster of `config` (writes in order, none twice on a
/// retry), batching for 5 ms; `what` names its writes in errors.
pub(crate) fn idempotent_producer(
    config: &KafkaConfig,
    what: &'static str,
) -> Result<BaseProducer<ReportingContext>, KafkaConnectorError> {
    config
        .client_config(&[("enable.idempotence", "true"), ("linger.ms", "5")])
        .create_with_context(ReportingContext::new(config.brokers(), what))
        .context(|| format!("cannot create a producer for {what} to {}", config.brokers()))
}

/// Waits up to `limit` until every write queued in `producer` is acknowledged, in short
/// rounds so that a failed delivery or a refusal ends the wait at once.
pub(crate) fn flush_checked(
    producer: &BaseProducer<ReportingContext>,
    limit: Duration,
    context: impl FnOnce() -> String,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + limit;
    loop {
        let flushed = producer.flush(Duration::from_millis(500));
        producer.context().check()?;
        match flushed {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(KafkaConnectorError::client(context(), e).into());
            }
            Err(_) => {}
        }
    }
}

impl ProducerContext for ReportingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let mut failure = self.report.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| KafkaConnectorError::Delivery {
                what: self.what,
                topic: m.topic().to_string(),
                source: e.clone(),
            });
        }
    }
}

/// Queues `record`, waiting for acknowledgements while the producer's queue is full
/// (backpressure); fails early if a delivery failed meanwhile.
pub(crate) fn send_waiting<K, P>(
    producer: &BaseProducer<ReportingContext>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), BoxError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                producer.poll(Duration::from_millis(20));
                producer.context().check()?;
                record = r;
            }
            Err((e, r)) => {
                return Err(
                    KafkaConnectorError::client(format!("cannot write to topic '{}'", r.topic), e).into(),
                );
            }
        }
    }
    producer.poll(Duration::ZERO);
    producer.context().check()
}
