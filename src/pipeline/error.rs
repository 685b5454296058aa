use std::path::PathBuf;

use sluice_engine::EngineError;
use sluice_operators::cassandra::CassandraError;

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
    /// The sink's store cannot be used.
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    /// The job failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}
