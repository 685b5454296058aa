//! The Kafka cluster and CQL store the job talks to, with the job's topics in place.

use sluice_engine::BoxError;
use sluice_kafka::{KafkaConnectorError, topic_exists};

use super::error::ShopError;
use super::settings::{OnBadRecord, ShopSettings};
use crate::embedded::Endpoints;
use crate::security::SecuritySettingError;

/// Reaches or starts the services (in-process ones for what the settings leave out) and
/// creates the job's topics where missing. With `events = 0` the job only reads, so the
/// topics must exist already.
pub fn start_services(settings: &ShopSettings) -> Result<Endpoints, ShopError> {
    let mut endpoints = Endpoints::start(
        settings.brokers.as_deref(),
        settings.cassandra.as_deref(),
        &settings.keyspace,
    )?;
    let setting = |e: SecuritySettingError| ShopError::Setting {
        key: e.key,
        reason: e.reason,
    };
    if !endpoints.kafka_is_embedded() {
        endpoints.kafka = settings
            .kafka_security
            .apply_to(endpoints.kafka.clone(), "kafka_security", Some("SLUICE_KAFKA"))
            .map_err(setting)?;
    }
    if settings.cassandra.is_some() {
        endpoints.cql = settings
            .cassandra_security
            .apply_to(
                endpoints.cql.clone(),
                "cassandra_security",
                Some("SLUICE_CASSANDRA"),
            )
            .map_err(setting)?;
    }
    let kafka_error = |error: BoxError| match error.downcast_ref::<KafkaConnectorError>() {
        // Says "Kafka at ..." itself.
        Some(refused @ KafkaConnectorError::Refused { .. }) => ShopError::Refused(refused.to_string()),
        _ => ShopError::Kafka {
            brokers: endpoints.kafka.brokers().to_string(),
            reason: error.to_string(),
        },
    };
    for topic in [&settings.orders_topic, &settings.page_views_topic] {
        if !endpoints.kafka_is_embedded() {
            // Also the first contact: an unreachable broker fails here, in 10 s.
            if topic_exists(&endpoints.kafka, topic).map_err(kafka_error)? {
                continue;
            }
            if settings.events == 0 {
                return Err(kafka_error(
                    format!(
                        "topic '{topic}' does not exist (with --events 0 the job only reads existing topics)"
                    )
                    .into(),
                ));
            }
        }
        endpoints.create_topic(topic, settings.partitions)?;
    }
    if settings.on_bad_record == OnBadRecord::DeadLetter(()) {
        endpoints.create_topic(&settings.dead_letter_topic(), 1)?;
    }
    Ok(endpoints)
}
