use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use sluice_engine::BoxError;

use super::config::KafkaConfig;
use super::context::LoggingContext;
use super::error::{Context, KafkaConnectorError};

/// Creates `topic` with `partitions` partitions unless it exists.
///
/// # Errors
/// When the broker cannot be reached or refuses to create the topic.
pub fn ensure_topic(config: &KafkaConfig, topic: &str, partitions: i32) -> Result<(), BoxError> {
    if topic_exists(config, topic)? {
        return Ok(());
    }
    let admin: AdminClient<LoggingContext> = config
        .client_config(&[])
        .create_with_context(LoggingContext::default())
        .context(|| format!("cannot create a Kafka admin client for {}", config.brokers()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = runtime
        .block_on(admin.create_topics([&new_topic], &options))
        .context(|| format!("cannot create topic '{topic}' on {}", config.brokers()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaConnectorError::TopicRefused {
                    topic: name,
                    brokers: config.brokers().to_string(),
                    code,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// A hint for a plaintext client whose connections were closed during its first request:
/// what a listener that expects TLS or SASL does.
fn protocol_hint(config: &KafkaConfig, last_error: &str) -> &'static str {
    let plaintext = config
        .get("security.protocol")
        .is_none_or(|p| p.eq_ignore_ascii_case("plaintext"));
    if plaintext && last_error.contains("state APIVERSION_QUERY") {
        "; a listener that expects TLS or SASL closes a plaintext client's connection this way: check the security settings"
    } else {
        ""
    }
}

/// Whether the brokers know `topic` (asking does not create it).
///
/// # Errors
/// When the brokers do not answer within 10 s, or refuse the client (bad credentials, a
/// failed TLS handshake: [`KafkaConnectorError::Refused`], as soon as it happens).
pub fn topic_exists(config: &KafkaConfig, topic: &str) -> Result<bool, BoxError> {
    Ok(partition_count(config, topic)?.is_some())
}

/// The number of partitions of `topic`, or `None` if the brokers do not know it (asking does
/// not create it).
///
/// # Errors
/// As [`topic_exists`].
pub fn partition_count(config: &KafkaConfig, topic: &str) -> Result<Option<usize>, BoxError> {
    let consumer: BaseConsumer<LoggingContext> = config
        .client_config(&[("allow.auto.create.topics", "false")])
        .create_with_context(LoggingContext::default())
        .context(|| format!("cannot create a Kafka client for {}", config.brokers()))?;
    // Asked in short rounds, so that a refusal ends the wait at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metadata = loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_millis(500)) {
            Ok(metadata) => break metadata,
            Err(e) => {
                // Serves the client's queued events (logs, errors) to its context, where a
                // refusal shows; a poll with no time left would serve only one.
                let _ = consumer.poll(Duration::from_millis(100));
                consumer.context().refused(config.brokers())?;
                if Instant::now() >= deadline {
                    let last = consumer
                        .context()
                        .last_error()
                        .map(|reason| format!(" (last error: {reason}){}", protocol_hint(config, &reason)))
                        .unwrap_or_default();
                    return Err(KafkaConnectorError::client(
                        format!("no metadata from {} within 10 s{last}", config.brokers()),
                        e,
                    )
                    .into());
                }
            }
        }
    };
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len()))
}
