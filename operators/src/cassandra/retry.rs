use std::time::Duration;

use rand::Rng;
use scylla::errors::{ConnectionPoolError, DbError, ExecutionError, PrepareError, RequestAttemptError};

/// Exponential backoff with jitter for retryable write failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Largest delay between two attempts.
    pub max: Duration,
    /// A write retried for this long fails the job.
    pub give_up_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            give_up_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The pause before retry number `attempt` (0-based): half the exponential step plus a
    /// random part of the other half, so writers that failed together do not retry together.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let step = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.max);
        let half = step / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros().min(u128::from(u64::MAX)) as u64);
        half + Duration::from_micros(jitter)
    }
}

/// What to do about a failed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Transient (timeout, overload, node unreachable): the same idempotent write may succeed later.
    Retryable(String),
    /// The store refuses this write (invalid value, schema mismatch, no permission): retrying
    /// cannot help.
    Rejected(String),
}

/// Sorts a driver error into retryable and permanent.
pub(crate) fn classify(error: &ExecutionError) -> Failure {
    let text = error.to_string();
    let retryable = match error {
        ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::ConnectionPoolError(_)
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_)
        | ExecutionError::UseKeyspaceError(_) => true,
        ExecutionError::PrepareError(e) => matches!(
            e,
            PrepareError::ConnectionPoolError(
                ConnectionPoolError::Broken { .. } | ConnectionPoolError::Initializing
            ) | PrepareError::AllAttemptsFailed { .. }
        ),
        ExecutionError::LastAttemptError(e) => attempt_retryable(e),
        _ => false,
    };
    if retryable {
        Failure::Retryable(text)
    } else {
        Failure::Rejected(text)
    }
}

fn attempt_retryable(error: &RequestAttemptError) -> bool {
    match error {
        RequestAttemptError::DbError(db, _) => matches!(
            db,
            DbError::Overloaded
                | DbError::IsBootstrapping
                | DbError::Unavailable { .. }
                | DbError::WriteTimeout { .. }
                | DbError::ReadTimeout { .. }
                | DbError::WriteFailure { .. }
                | DbError::RateLimitReached { .. }
                | DbError::TruncateError
                | DbError::ServerError
        ),
        RequestAttemptError::UnableToAllocStreamId | RequestAttemptError::BrokenConnectionError(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_up_to_the_cap_with_jitter() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
        };
        for _ in 0..100 {
            let first = b.delay(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = b.delay(20);
            assert!(late >= Duration::from_secs(1) && late <= Duration::from_secs(2));
        }
        let delays: Vec<_> = (0..50).map(|_| b.delay(3)).collect();
        assert!(delays.iter().any(|d| *d != delays[0]), "jitter varies the delay");
    }

    #[test]
    fn timeouts_and_overload_are_retried_invalid_rows_are_not() {
        let overloaded = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Overloaded,
            "busy".into(),
        ));
        assert!(matches!(classify(&overloaded), Failure::Retryable(_)));
        let timeout = ExecutionError::RequestTimeout(Duration::from_secs(1));
        assert!(matches!(classify(&timeout), Failure::Retryable(_)));
        let invalid = ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Invalid,
            "unknown column".into(),
        ));
        assert!(matches!(classify(&invalid), Failure::Rejected(m) if m.contains("unknown column")));
    }
}
