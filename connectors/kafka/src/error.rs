//! The Kafka connector's errors: each keeps the client's [`KafkaError`] as its source and says
//! what the connector was doing when it failed.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaConnectorError {
    /// A call to the Kafka client failed.
    #[error("{context}: {source}")]
    Client {
        /// What the connector was doing, e.g. "cannot subscribe to [\"orders\"]".
        context: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// The brokers refused to create a topic.
    #[error("cannot create topic '{topic}' on {brokers}: {code}")]
    TopicRefused {
        /// The topic.
        topic: String,
        /// The brokers asked.
        brokers: String,
        /// The brokers' answer.
        code: RDKafkaErrorCode,
    },
    /// A record could not be encoded for a topic.
    #[error("cannot encode a record for topic '{topic}': {reason}")]
    Encode {
        /// The topic.
        topic: String,
        /// The format's error.
        reason: String,
    },
    /// A write was not acknowledged: the brokers reported its delivery as failed.
    #[error("{what} to topic '{topic}' failed: {source}")]
    Delivery {
        /// Which writes, e.g. "writes" or "dead-letter writes".
        what: &'static str,
        /// The topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// The dead-letter topic could not be read to its end in time at start.
    #[error("could not read dead-letter topic '{topic}' to its end within {limit:?}")]
    DeadLetterScan {
        /// The dead-letter topic.
        topic: String,
        /// How long the source waited.
        limit: Duration,
    },
    /// The partitions a rebalance assigned could not be taken.
    #[error("cannot take the assigned partitions: {0}")]
    Assignment(String),
}

impl KafkaConnectorError {
    /// A client error with what the connector was doing.
    pub(crate) fn client(context: impl Into<String>, source: KafkaError) -> Self {
        KafkaConnectorError::Client {
            context: context.into(),
            source,
        }
    }
}

/// Wraps a client error with what the connector was doing.
pub(crate) trait Context<T> {
    /// The error, if any, as [`KafkaConnectorError::Client`] with `context()`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, KafkaConnectorError>;
}

impl<T> Context<T> for Result<T, KafkaError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, KafkaConnectorError> {
        self.map_err(|source| KafkaConnectorError::client(context(), source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_error_keeps_its_source_and_says_what_was_being_done() {
        let failed: Result<(), KafkaError> = Err(KafkaError::Subscription("no such topic".into()));
        let err = failed
            .context(|| "cannot subscribe to [\"orders\"]".into())
            .expect_err("failed");
        assert!(
            err.to_string().starts_with("cannot subscribe to [\"orders\"]: "),
            "{err}"
        );
        let source = std::error::Error::source(&err).expect("the client error is kept");
        assert!(source.downcast_ref::<KafkaError>().is_some(), "{source:?}");
    }
}
