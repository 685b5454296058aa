use std::time::Duration;

use rand::Rng;
use scylla::errors::{ConnectionPoolError, DbError, ExecutionError, PrepareError, RequestAttemptError};

use super::error::CassandraError;

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

/// What a failed write concerns, and so what the sink does about it. The class travels
/// with the store's message from the driver to the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Transient (timeout, overload, unavailable replicas, node unreachable): the same
    /// idempotent write may succeed later, so it is retried with backoff until the retry limit.
    Retryable(String),
    /// The store refuses this row's values (an empty key, a value it cannot take); other rows
    /// are unaffected, so the row goes to the sink's rejected-rows choice.
    RowRejected(String),
    /// The store refuses writes to the table whatever the row (no permission, bad
    /// credentials, table or keyspace gone, a statement it no longer accepts): neither
    /// retrying nor setting rows aside can help, so the job fails at once.
    Systemic(String),
}

/// Words of an invalid-request message that concern the table or keyspace rather than the
/// row (Cassandra and ScyllaDB wordings, lower case).
const SCHEMA_MESSAGES: [&str; 6] = [
    "unconfigured table",
    "does not exist",
    "undefined column",
    "unknown identifier",
    "unknown column",
    "no keyspace",
];

/// Sorts a driver error into retryable, row rejected and systemic.
pub(crate) fn classify(error: &ExecutionError) -> Failure {
    let class: fn(String) -> Failure = match error {
        ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::ConnectionPoolError(_)
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_)
        | ExecutionError::UseKeyspaceError(_) => Failure::Retryable,
        ExecutionError::PrepareError(PrepareError::ConnectionPoolError(
            ConnectionPoolError::Broken { .. } | ConnectionPoolError::Initializing,
        )) => Failure::Retryable,
        // Preparing failed on every connection: worth retrying if the nodes were
        // unreachable; otherwise it concerns the statement, never a row.
        ExecutionError::PrepareError(PrepareError::AllAttemptsFailed { first_attempt }) => {
            match attempt_class(first_attempt)(String::new()) {
                Failure::Retryable(_) => Failure::Retryable,
                _ => Failure::Systemic,
            }
        }
        // Values that do not serialize, or too many or too large for one request, are the
        // rows' doing (a refused batch is then retried row by row).
        ExecutionError::BadQuery(_) => Failure::RowRejected,
        ExecutionError::LastAttemptError(e) => attempt_class(e),
        _ => Failure::Systemic,
    };
    class(error.to_string())
}

/// A statement the sink prepares at start (reading the table's columns, the insert) failed:
/// a store that cannot be reached may come back (restart), anything else concerns the table
/// and will fail again.
pub(crate) fn prepare_failed(table: &str, what: &str, error: PrepareError) -> CassandraError {
    let reason = format!("{what}: {error}");
    match classify(&ExecutionError::PrepareError(error)) {
        Failure::Retryable(_) => CassandraError::Connect(format!("table {table}: {reason}")),
        Failure::RowRejected(_) | Failure::Systemic(_) => CassandraError::Table {
            table: table.to_string(),
            reason,
        },
    }
}

fn attempt_class(error: &RequestAttemptError) -> fn(String) -> Failure {
    match error {
        RequestAttemptError::DbError(db, message) => match db {
            DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::Unavailable { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadTimeout { .. }
            | DbError::WriteFailure { .. }
            | DbError::RateLimitReached { .. }
            | DbError::TruncateError
            | DbError::ServerError => Failure::Retryable,
            DbError::Invalid => {
                let message = message.to_lowercase();
                if SCHEMA_MESSAGES.iter().any(|m| message.contains(m)) {
                    Failure::Systemic
                } else {
                    Failure::RowRejected
                }
            }
            // Unauthorized, bad credentials, a configuration or syntax error, a protocol
            // error, codes this driver does not know: nothing about the row.
            _ => Failure::Systemic,
        },
        RequestAttemptError::UnableToAllocStreamId | RequestAttemptError::BrokenConnectionError(_) => {
            Failure::Retryable
        }
        RequestAttemptError::SerializationError(_) | RequestAttemptError::CqlRequestSerialization(_) => {
            Failure::RowRejected
        }
        _ => Failure::Systemic,
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

    fn db(error: DbError, message: &str) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(error, message.into()))
    }

    #[test]
    fn timeouts_and_overload_are_retried() {
        assert!(matches!(
            classify(&db(DbError::Overloaded, "busy")),
            Failure::Retryable(_)
        ));
        let unavailable = DbError::Unavailable {
            consistency: scylla::statement::Consistency::LocalQuorum,
            required: 2,
            alive: 1,
        };
        assert!(matches!(classify(&db(unavailable, "")), Failure::Retryable(_)));
        let timeout = ExecutionError::RequestTimeout(Duration::from_secs(1));
        assert!(matches!(classify(&timeout), Failure::Retryable(_)));
    }

    #[test]
    fn a_refused_value_rejects_the_row_a_refused_table_is_systemic() {
        for message in [
            "Key may not be empty",
            "Invalid null value in condition for column window_start",
            "Batch too large",
        ] {
            let class = classify(&db(DbError::Invalid, message));
            assert!(
                matches!(&class, Failure::RowRejected(m) if m.contains(message)),
                "{class:?}"
            );
        }
        let systemic = [
            (DbError::Invalid, "unconfigured table product_revenue_1m"),
            (DbError::Invalid, "Keyspace 'shop' does not exist"),
            (DbError::Invalid, "Undefined column name orders"),
            (
                DbError::Unauthorized,
                "User app has no MODIFY permission on <table shop.t>",
            ),
            (
                DbError::AuthenticationError,
                "Provided username app and/or password are incorrect",
            ),
            (DbError::ConfigError, "Cannot write to a materialized view"),
            (DbError::Other(0x1234), "a code this driver does not know"),
        ];
        for (error, message) in systemic {
            let class = classify(&db(error, message));
            assert!(
                matches!(&class, Failure::Systemic(m) if m.contains(message)),
                "{class:?}"
            );
        }
    }
}
