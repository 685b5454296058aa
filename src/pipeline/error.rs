use std::path::PathBuf;

use sluice_cassandra::CassandraError;
use sluice_engine::EngineError;

/// Why a pipeline could not be read or run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file cannot be read.
    #[error("{}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A security setting cannot be used (a secret that cannot be read, a key without its
    /// certificate).
    #[error(transparent)]
    Security(#[from] crate::security::SecuritySettingError),
    /// The file says something invalid.
    #[error("{}:{line}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An integer sum does not fit the 64 bits of a column (and a float would round it).
    #[error(
        "column '{column}' (key {key}, window starting at {window_start}): the integer sum {sum} does not fit 64 bits"
    )]
    SumOutOfRange {
        /// The aggregate's column.
        column: String,
        /// The window's key, as JSON.
        key: String,
        /// Start of the window (epoch ms).
        window_start: i64,
        /// The exact sum.
        sum: i128,
    },
    /// The sink's store cannot be used.
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    /// The job failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The Kafka cluster refused what the pipeline needs of it (the partitions of its topic,
    /// its repartition topic).
    #[error("Kafka at {brokers}: {reason}")]
    Kafka {
        /// The cluster's bootstrap servers.
        brokers: String,
        /// Why.
        reason: String,
    },
    /// A pipeline without `[scale_out]` was asked to run spread over processes.
    #[error("pipeline '{0}' has no [scale_out] section")]
    NotScaledOut(String),
    /// A stage of a pipeline spread over processes failed (named in the text).
    #[error("{0}")]
    Stage(String),
}
