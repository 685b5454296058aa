use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use sluice_engine::BoxError;

use super::error::KafkaConnectorError;

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

/// A producer context that logs and records failed deliveries; `what` names the writes in
/// error messages.
pub(crate) struct ReportingContext {
    pub(crate) report: Arc<DeliveryReport>,
    pub(crate) what: &'static str,
}

impl ClientContext for ReportingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::context::log(level, fac, log_message);
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
                producer.context().report.check()?;
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
    producer.context().report.check()
}
