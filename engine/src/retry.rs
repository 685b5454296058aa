//! Whether restarting a failed job may help: [`EngineError::retry`], and the hint connectors
//! put on their errors.

use std::error::Error;
use std::fmt;

use crate::error::{BoxError, EngineError};

/// What restarting the job from its last checkpoint can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A restart may mend it: a broker or node down, a timeout, a connection lost.
    Restart,
    /// It will fail the same way again (bad credentials, no permission, a missing table, a
    /// broken job): the job stops whatever its restart strategy says.
    Stop,
}

/// An error from outside the engine (a connector, a user's source or sink) with a hint on
/// whether a restart may help. Its message is the wrapped error's; errors without a hint are
/// treated as [`Retry::Restart`].
///
/// ```
/// use sluice_engine::{ConnectorError, Retry};
/// let e = ConnectorError::new(Retry::Stop, "table shop.t: no MODIFY permission");
/// assert_eq!(e.retry(), Retry::Stop);
/// assert_eq!(e.to_string(), "table shop.t: no MODIFY permission");
/// ```
pub struct ConnectorError {
    retry: Retry,
    error: BoxError,
}

impl ConnectorError {
    /// `error` with the hint `retry`.
    pub fn new(retry: Retry, error: impl Into<BoxError>) -> Self {
        ConnectorError {
            retry,
            error: error.into(),
        }
    }

    /// `error` with `retry(e)`'s hint if it is an `E` (a connector's own error type); any
    /// other error unchanged. Connectors call this where errors leave their sources and sinks.
    pub fn hint_if<E: Error + Send + Sync + 'static>(
        error: BoxError,
        retry: impl FnOnce(&E) -> Retry,
    ) -> BoxError {
        match error.downcast::<E>() {
            Ok(e) => Box::new(ConnectorError::new(retry(&e), *e)),
            Err(other) => other,
        }
    }

    /// The hint.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// The wrapped error (e.g. to downcast it to the connector's own error type).
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        self.error.as_ref()
    }

    /// The wrapped error.
    pub fn into_inner(self) -> BoxError {
        self.error
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorError")
            .field("retry", &self.retry)
            .field("error", &self.error)
            .finish()
    }
}

/// Transparent: the wrapped error's source is this error's source.
impl Error for ConnectorError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}

impl EngineError {
    /// Whether restarting the job from its last checkpoint may help. Failures of operators,
    /// sources, sinks and state may pass (unless their error carries a [`ConnectorError`]
    /// saying [`Retry::Stop`]); a broken job definition, a bad record, an unusable
    /// checkpoint, an engine bug or an explicit stop do not.
    pub fn retry(&self) -> Retry {
        match self {
            EngineError::OperatorFailed { source, .. }
            | EngineError::SourceFailed { source, .. }
            | EngineError::SinkFailed { source, .. } => retry_of(source.as_ref()),
            EngineError::OperatorPanicked { .. }
            | EngineError::State { .. }
            | EngineError::WorkerPanicked { .. } => Retry::Restart,
            EngineError::RestartsExhausted { last, .. } => last.retry(),
            EngineError::DuplicateOperator { .. }
            | EngineError::InvalidOperatorName { .. }
            | EngineError::DanglingStream { .. }
            | EngineError::InvalidJob { .. }
            | EngineError::InvalidConfig { .. }
            | EngineError::BadRecord { .. }
            | EngineError::Checkpoint { .. }
            | EngineError::Superseded { .. }
            | EngineError::Aborted
            | EngineError::SimulatedCrash { .. }
            | EngineError::Internal { .. } => Retry::Stop,
        }
    }

    /// Whether [`EngineError::retry`] says a restart may help.
    pub fn is_restartable(&self) -> bool {
        self.retry() == Retry::Restart
    }
}

/// The hint of the first [`ConnectorError`] in `error`'s chain; [`Retry::Restart`] if none.
pub(crate) fn retry_of(error: &(dyn Error + 'static)) -> Retry {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(hinted) = e.downcast_ref::<ConnectorError>() {
            return hinted.retry;
        }
        next = e.source();
    }
    Retry::Restart
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that wraps another, as connectors' errors wrap their clients'.
    #[derive(Debug)]
    struct Wrapping(ConnectorError);

    impl fmt::Display for Wrapping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "while writing: {}", self.0)
        }
    }

    impl Error for Wrapping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_hint_is_found_anywhere_in_the_chain_and_defaults_to_restart() {
        let plain: BoxError = "connection reset".into();
        assert_eq!(retry_of(plain.as_ref()), Retry::Restart);
        let stop = ConnectorError::new(Retry::Stop, "authentication failed");
        assert_eq!(retry_of(&stop), Retry::Stop);
        let wrapped = Wrapping(ConnectorError::new(Retry::Stop, "authentication failed"));
        assert_eq!(retry_of(&wrapped), Retry::Stop);
        assert_eq!(wrapped.to_string(), "while writing: authentication failed");
    }
}
