use std::path::PathBuf;

use sluice_cassandra::CassandraError;
use sluice_engine::EngineError;

/// Why the e-commerce job could not run.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// A setting has a value the job cannot use.
    #[error("setting '{key}': {reason}")]
    Setting {
        /// The setting (flag name).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings file cannot be read or parsed.
    #[error("settings file {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (with line and column for parse errors).
        reason: String,
    },
    /// Kafka could not be reached or refused a request.
    #[error("Kafka at {brokers}: {reason}")]
    Kafka {
        /// The bootstrap servers.
        brokers: String,
        /// What went wrong.
        reason: String,
    },
    /// A service refused the job: bad credentials, a failed TLS handshake. The message names
    /// the service.
    #[error("{0}")]
    Refused(String),
    /// A service could not be started or reached.
    #[error(transparent)]
    Service(#[from] crate::embedded::ServiceError),
    /// Producing the input failed.
    #[error(transparent)]
    Produce(#[from] crate::producer::ProduceError),
    /// The CQL store could not be reached or refused a request.
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    /// The job failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}
