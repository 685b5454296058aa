//! The Kafka cluster and CQL store the job talks to, with the job's topics in place.

use sluice_kafka::topic_exists;

use super::error::ShopError;
use super::settings::{OnBadRecord, ShopSettings};
use crate::embedded::Endpoints;

/// Reaches or starts the services (in-process ones for what the settings leave out) and
/// creates the job's topics where missing. With `events = 0` the job only reads, so the
/// topics must exist already.
pub fn start_services(settings: &ShopSettings) -> Result<Endpoints, ShopError> {
    let endpoints = Endpoints::start(
        settings.brokers.as_deref(),
        settings.cassandra.as_deref(),
        &settings.keyspace,
    )?;
    let kafka_error = |reason: String| ShopError::Kafka {
        brokers: endpoints.kafka.brokers().to_string(),
        reason,
    };
    for topic in [&settings.orders_topic, &settings.page_views_topic] {
        if !endpoints.kafka_is_embedded() {
            // Also the first contact: an unreachable broker fails here, in 10 s.
            if topic_exists(&endpoints.kafka, topic).map_err(|e| kafka_error(e.to_string()))? {
                continue;
            }
            if settings.events == 0 {
                return Err(kafka_error(format!(
                    "topic '{topic}' does not exist (with --events 0 the job only reads existing topics)"
                )));
            }
        }
        endpoints.create_topic(topic, settings.partitions)?;
    }
    if settings.on_bad_record == OnBadRecord::DeadLetter(()) {
        endpoints.create_topic(&settings.dead_letter_topic(), 1)?;
    }
    Ok(endpoints)
}
