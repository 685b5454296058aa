//! In-process stand-ins for Kafka and Cassandra, so examples and tests run on a machine
//! without either: librdkafka's mock cluster (real Kafka protocol, in memory, no
//! persistence) and the in-memory CQL store.

use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
pub use sluice_cassandra::EmbeddedCql;
use sluice_kafka::KafkaConfig;

/// Records a producer may be ahead of the job reading them from the in-process broker, which
/// keeps only the newest 5 MB (or 100,000 batches) of each partition and drops older records:
/// see [`crate::producer::LagLimit`].
pub const EMBEDDED_MAX_LAG: u64 = 40_000;

/// A one-broker Kafka cluster in this process (stopped when dropped). Each partition keeps
/// only its newest 5 MB: keep producers close to the consumers ([`EMBEDDED_MAX_LAG`]).
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts the cluster.
    pub fn start() -> Result<Self, KafkaError> {
        Ok(EmbeddedKafka {
            cluster: MockCluster::new(1)?,
        })
    }

    /// How clients reach it.
    pub fn config(&self) -> KafkaConfig {
        KafkaConfig::new(self.cluster.bootstrap_servers())
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.cluster.create_topic(topic, partitions, 1)
    }
}

/// A Kafka cluster or CQL store could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Kafka.
    #[error("Kafka at {brokers}: {reason}")]
    Kafka {
        /// The bootstrap servers (`embedded` for the in-process one).
        brokers: String,
        /// What went wrong.
        reason: String,
    },
    /// The CQL store.
    #[error(transparent)]
    Cassandra(#[from] sluice_cassandra::CassandraError),
}

/// Where a job's Kafka and CQL store are: the addresses given, or in-process servers for
/// those not given (stopped when this is dropped).
pub struct Endpoints {
    /// How clients reach Kafka.
    pub kafka: KafkaConfig,
    /// How clients reach the CQL store.
    pub cql: sluice_cassandra::CassandraConfig,
    kafka_server: Option<EmbeddedKafka>,
    cql_server: Option<EmbeddedCql>,
}

impl Endpoints {
    /// Uses `brokers` and `cassandra` (`host:port`) when given and starts in-process servers
    /// otherwise; tables go to `keyspace`.
    pub fn start(
        brokers: Option<&str>,
        cassandra: Option<&str>,
        keyspace: &str,
    ) -> Result<Self, ServiceError> {
        let (kafka, kafka_server) = match brokers {
            Some(brokers) => (KafkaConfig::new(brokers), None),
            None => {
                let server = EmbeddedKafka::start().map_err(|e| ServiceError::Kafka {
                    brokers: "embedded".into(),
                    reason: format!("cannot start the in-process broker: {e}"),
                })?;
                (server.config(), Some(server))
            }
        };
        let (cql, cql_server) = match cassandra {
            Some(addr) => (sluice_cassandra::CassandraConfig::new([addr], keyspace), None),
            None => {
                let server = EmbeddedCql::start()?;
                (server.config(keyspace), Some(server))
            }
        };
        Ok(Endpoints {
            kafka,
            cql,
            kafka_server,
            cql_server,
        })
    }

    /// Whether Kafka is the in-process mock cluster.
    pub fn kafka_is_embedded(&self) -> bool {
        self.kafka_server.is_some()
    }

    /// Whether the CQL store is the in-process one.
    pub fn cql_is_embedded(&self) -> bool {
        self.cql_server.is_some()
    }

    /// How far a producer may run ahead of the job: [`EMBEDDED_MAX_LAG`] records with the
    /// in-process broker, unlimited otherwise.
    pub fn max_lag(&self) -> u64 {
        if self.kafka_is_embedded() {
            EMBEDDED_MAX_LAG
        } else {
            u64::MAX
        }
    }

    /// Creates `topic` if it does not exist.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), ServiceError> {
        let failed = |reason: String| ServiceError::Kafka {
            brokers: self.kafka.brokers().to_string(),
            reason,
        };
        match &self.kafka_server {
            Some(server) => server
                .create_topic(topic, partitions)
                .map_err(|e| failed(format!("cannot create topic '{topic}': {e}"))),
            None => {
                sluice_kafka::ensure_topic(&self.kafka, topic, partitions).map_err(|e| failed(e.to_string()))
            }
        }
    }

    /// Two lines saying where Kafka and the store are, and how to use real ones.
    pub fn describe(&self) -> String {
        let kafka = if self.kafka_is_embedded() {
            "in-process broker (librdkafka mock cluster); --brokers HOST:PORT for a real one".to_string()
        } else {
            self.kafka.brokers().to_string()
        };
        let cql = if self.cql_is_embedded() {
            "in-process CQL store (kassandra, in memory); --cassandra HOST:PORT for a real one".to_string()
        } else {
            self.cql.contact_points().join(",")
        };
        format!("  Kafka:     {kafka}\n  Cassandra: {cql}")
    }
}
