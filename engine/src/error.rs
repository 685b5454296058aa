use std::fmt;

use sluice_state::StateError;

/// A boxed error from user code (operator functions, sources, sinks).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias for engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Errors raised while building or running a job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Two operators were given the same name.
    #[error("operator name '{operator}' is used twice; operator names must be unique in a job")]
    DuplicateOperator {
        /// The repeated name.
        operator: String,
    },
    /// An operator name is empty or contains characters reserved for state paths.
    #[error("operator name '{operator}' is invalid: {reason}")]
    InvalidOperatorName {
        /// The name given.
        operator: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A stream was produced but nothing consumes it.
    #[error(
        "the output of operator '{operator}' is never consumed (dangling stream); add a sink or another operator"
    )]
    DanglingStream {
        /// Operator whose output is unused.
        operator: String,
    },
    /// The job graph is unusable as a whole.
    #[error("invalid job '{job}': {reason}")]
    InvalidJob {
        /// Job name.
        job: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration '{key}': {reason}")]
    InvalidConfig {
        /// The configuration key.
        key: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// An operator returned an error.
    #[error("operator '{operator}' failed: {source}")]
    OperatorFailed {
        /// The operator's name.
        operator: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// An operator panicked; this is a bug in that operator.
    #[error("operator '{operator}' panicked: {message}")]
    OperatorPanicked {
        /// The operator's name.
        operator: String,
        /// The panic message.
        message: String,
    },
    /// A source could not be opened or read.
    #[error("source '{source_name}' failed: {source}")]
    SourceFailed {
        /// The source operator's name.
        source_name: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A record could not be decoded or had an unusable timestamp and the policy is `fail`.
    #[error("source '{source_name}': bad record at {location}: {reason}")]
    BadRecord {
        /// The source operator's name.
        source_name: String,
        /// Where the record came from (file/line, topic/partition/offset...).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sink could not write.
    #[error("sink '{sink}' failed: {source}")]
    SinkFailed {
        /// The sink's name.
        sink: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// A keyed-state operation failed.
    #[error("state of operator '{operator}': {source}")]
    State {
        /// The operator's name.
        operator: String,
        /// The backend's error.
        #[source]
        source: StateError,
    },
    /// A checkpoint cannot be taken or restored (no usable checkpoint, a job graph that no
    /// longer matches its state).
    #[error("job '{job}': {reason}")]
    Checkpoint {
        /// The job's name.
        job: String,
        /// What is wrong.
        reason: String,
    },
    /// A newer run of the job (another process, or a later start) has taken over its
    /// checkpoints in object storage: this run may not publish any more and stops.
    #[error("job '{job}': {reason}")]
    Superseded {
        /// The job's name.
        job: String,
        /// Which epochs.
        reason: String,
    },
    /// Another worker failed or the job was stopped, so this worker gave up.
    #[error("job aborted")]
    Aborted,
    /// The job stopped at a checkpoint step named by
    /// [`CheckpointConfig::crash_at`](crate::CheckpointConfig::crash_at), as a crash there would.
    #[error("simulated crash at checkpoint step '{step}'")]
    SimulatedCrash {
        /// The step.
        step: &'static str,
    },
    /// The engine broke one of its own rules (e.g. an exchange received bytes it cannot
    /// decode: a bug in Sluice, or a record type whose serde implementation does not read
    /// back what it writes); restarting would not help.
    #[error("internal error in operator '{operator}': {reason}")]
    Internal {
        /// The operator where it showed.
        operator: String,
        /// What went wrong.
        reason: String,
    },
    /// A worker thread died outside any operator (engine bug).
    #[error("worker {worker} panicked outside an operator: {message}")]
    WorkerPanicked {
        /// The worker index.
        worker: usize,
        /// The panic message.
        message: String,
    },
    /// The restart strategy gave up.
    #[error("job failed after {attempts} attempts; last error: {last}")]
    RestartsExhausted {
        /// How many attempts ran.
        attempts: u32,
        /// The error of the last attempt.
        #[source]
        last: Box<EngineError>,
    },
}

impl EngineError {
    /// Wraps an error raised by user code inside an operator. The engine fills in the name of
    /// the operator that returned it.
    pub fn user(err: impl Into<BoxError>) -> Self {
        EngineError::OperatorFailed {
            operator: String::new(),
            source: err.into(),
        }
    }

    /// Names the operator on an error created by [`EngineError::user`].
    pub(crate) fn in_operator(self, name: &str) -> Self {
        match self {
            EngineError::OperatorFailed { operator, source } if operator.is_empty() => {
                EngineError::OperatorFailed {
                    operator: name.to_string(),
                    source,
                }
            }
            EngineError::State { operator, source } if operator.is_empty() => EngineError::State {
                operator: name.to_string(),
                source,
            },
            other => other,
        }
    }
}

impl From<StateError> for EngineError {
    fn from(source: StateError) -> Self {
        if let StateError::Checkpoint { .. } = source {
            return EngineError::Checkpoint {
                job: String::new(),
                reason: source.to_string(),
            };
        }
        EngineError::State {
            operator: String::new(),
            source,
        }
    }
}

/// Text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// A plain message error for user code.
#[derive(Debug)]
pub struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}
