//! The Kafka connector's errors: each keeps the client's [`KafkaError`] as its source and says
//! what the connector was doing when it failed.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use sluice_engine::{BoxError, ConnectorError, Retry};

use super::context::Refusal;

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
    /// A topic the job depends on has not the partitions the job expects (or does not exist).
    #[error("topic '{topic}' on {brokers} has {found} partitions; {expected}")]
    Partitions {
        /// The topic.
        topic: String,
        /// The brokers asked.
        brokers: String,
        /// How many it has (0: it does not exist).
        found: usize,
        /// What the job expects, and why.
        expected: String,
    },
    /// The partitions a rebalance assigned could not be taken.
    #[error("cannot take the assigned partitions: {0}")]
    Assignment(String),
    /// The brokers refused the client: bad credentials, a failed TLS handshake, or a listener
    /// of another security protocol. Retrying does not help.
    #[error("Kafka at {brokers}: {refusal}: {reason}")]
    Refused {
        /// The bootstrap servers.
        brokers: String,
        /// What was refused.
        refusal: Refusal,
        /// librdkafka's description.
        reason: String,
    },
}

impl KafkaConnectorError {
    /// Whether restarting the job may mend this: brokers that are down, slow or electing a
    /// leader may come back; a refused login or permission, a refused topic setting or a
    /// record the format cannot encode will be refused again.
    pub fn retry(&self) -> Retry {
        match self {
            KafkaConnectorError::Client { source, .. } | KafkaConnectorError::Delivery { source, .. } => {
                source.rdkafka_error_code().map_or(Retry::Restart, retry_for_code)
            }
            KafkaConnectorError::TopicRefused { code, .. } => retry_for_code(*code),
            KafkaConnectorError::Encode { .. } | KafkaConnectorError::Refused { .. } => Retry::Stop,
            KafkaConnectorError::DeadLetterScan { .. }
            | KafkaConnectorError::Assignment(_)
            | KafkaConnectorError::Partitions { .. } => Retry::Restart,
        }
    }

    /// A client error with what the connector was doing.
    pub(crate) fn client(context: impl Into<String>, source: KafkaError) -> Self {
        KafkaConnectorError::Client {
            context: context.into(),
            source,
        }
    }
}

/// Whether a restart may mend what the brokers answered with `code`.
fn retry_for_code(code: RDKafkaErrorCode) -> Retry {
    match code {
        RDKafkaErrorCode::Authentication
        | RDKafkaErrorCode::SaslAuthenticationFailed
        | RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::GroupAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed
        | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        | RDKafkaErrorCode::DelegationTokenAuthorizationFailed
        | RDKafkaErrorCode::MessageSizeTooLarge
        | RDKafkaErrorCode::InvalidPartitions
        | RDKafkaErrorCode::InvalidReplicationFactor
        | RDKafkaErrorCode::InvalidConfig
        | RDKafkaErrorCode::PolicyViolation => Retry::Stop,
        _ => Retry::Restart,
    }
}

/// Puts [`KafkaConnectorError::retry`]'s hint on an error leaving a source or sink, for the
/// engine's restart strategy; other errors pass unchanged.
pub(crate) fn with_retry_hint(error: BoxError) -> BoxError {
    ConnectorError::hint_if(error, KafkaConnectorError::retry)
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

    #[test]
    fn a_refused_login_stops_the_job_and_a_broker_down_may_be_retried() {
        let refused = KafkaConnectorError::Delivery {
            what: "writes",
            topic: "revenue".into(),
            source: KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed),
        };
        assert_eq!(refused.retry(), Retry::Stop);
        let login = KafkaConnectorError::client(
            "Kafka consumer failed",
            KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::SaslAuthenticationFailed),
        );
        let hinted = with_retry_hint(login.into());
        let hint = hinted.downcast_ref::<ConnectorError>().expect("a hint is put on");
        assert_eq!(hint.retry(), Retry::Stop);
        assert!(hint.get_ref().downcast_ref::<KafkaConnectorError>().is_some());
        let down = KafkaConnectorError::client(
            "Kafka consumer failed",
            KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown),
        );
        assert_eq!(down.retry(), Retry::Restart);
    }
}
