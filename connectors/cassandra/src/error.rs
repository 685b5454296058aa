use sluice_engine::{BoxError, ConnectorError, Retry};
use thiserror::Error;

/// What went wrong between a Cassandra sink and its store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CassandraError {
    /// A setting is invalid.
    #[error("invalid Cassandra setting '{key}': {reason}")]
    Config {
        /// The setting.
        key: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The store cannot be reached or the session cannot be set up.
    #[error("cannot connect to Cassandra: {0}")]
    Connect(String),
    /// The store refused the credentials (or asked for some and none were configured).
    #[error("Cassandra at {nodes}: authentication failed: {reason}")]
    Authentication {
        /// The contact points.
        nodes: String,
        /// What the store or the driver said.
        reason: String,
    },
    /// The TLS handshake failed: an untrusted or misnamed certificate, a client certificate
    /// the node refused, or a node that does not speak TLS.
    #[error("Cassandra at {nodes}: TLS handshake failed: {reason}")]
    Tls {
        /// The contact points.
        nodes: String,
        /// What OpenSSL said.
        reason: String,
    },
    /// The target table does not exist or cannot be read.
    #[error("table {table}: {reason}")]
    Table {
        /// `keyspace.table`.
        table: String,
        /// What the store said.
        reason: String,
    },
    /// The row type and the table's columns do not fit together.
    #[error("row type {row} does not fit table {table}: {reason}")]
    Mapping {
        /// The Rust row type.
        row: &'static str,
        /// `keyspace.table`.
        table: String,
        /// Which column or field, and why.
        reason: String,
    },
    /// A row's value could not be encoded for its column.
    #[error("table {table}, column '{column}': {reason}")]
    Encode {
        /// `keyspace.table`.
        table: String,
        /// The column.
        column: String,
        /// Why.
        reason: String,
    },
    /// The store refused one row's values for good (retrying cannot help; other rows are
    /// unaffected).
    #[error("table {table}: the store rejected the row with key {key}: {reason}")]
    Rejected {
        /// `keyspace.table`.
        table: String,
        /// The row's partition key values.
        key: String,
        /// What the store said.
        reason: String,
    },
    /// The store refuses writes to the table whatever the row holds (no permission, bad
    /// credentials, table or keyspace gone): the sink stops at once, without retrying.
    #[error("table {table}: the store refuses writes: {reason}")]
    Refused {
        /// `keyspace.table`.
        table: String,
        /// What the store said.
        reason: String,
    },
    /// Writes kept failing with retryable errors for longer than the retry limit allows.
    #[error("table {table}: writes failed for {seconds} s, giving up: {reason}")]
    GaveUp {
        /// `keyspace.table`.
        table: String,
        /// How long the sink retried.
        seconds: u64,
        /// The last error.
        reason: String,
    },
    /// A statement could not be run (schema helper, reads).
    #[error("{what}: {reason}")]
    Statement {
        /// What was being done.
        what: String,
        /// What the driver or store said.
        reason: String,
    },
}

impl CassandraError {
    /// Whether restarting the job may mend this: a store that cannot be reached or kept
    /// failing may come back; a setting, a table, a row or a permission the store refuses
    /// will be refused again.
    pub fn retry(&self) -> Retry {
        match self {
            CassandraError::Connect(_) | CassandraError::GaveUp { .. } | CassandraError::Statement { .. } => {
                Retry::Restart
            }
            CassandraError::Config { .. }
            | CassandraError::Table { .. }
            | CassandraError::Mapping { .. }
            | CassandraError::Encode { .. }
            | CassandraError::Rejected { .. }
            | CassandraError::Refused { .. }
            | CassandraError::Authentication { .. }
            | CassandraError::Tls { .. } => Retry::Stop,
        }
    }
}

/// Puts [`CassandraError::retry`]'s hint on an error leaving the sink, for the engine's
/// restart strategy; other errors pass unchanged.
pub(crate) fn with_retry_hint(error: BoxError) -> BoxError {
    ConnectorError::hint_if(error, CassandraError::retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_table_stops_the_job_and_an_unreachable_store_may_be_retried() {
        let refused: BoxError = CassandraError::Refused {
            table: "shop.t".into(),
            reason: "no MODIFY permission".into(),
        }
        .into();
        let hinted = with_retry_hint(refused);
        let hint = hinted.downcast_ref::<ConnectorError>().expect("a hint is put on");
        assert_eq!(hint.retry(), Retry::Stop);
        assert!(hint.get_ref().downcast_ref::<CassandraError>().is_some());
        assert_eq!(
            hinted.to_string(),
            "table shop.t: the store refuses writes: no MODIFY permission"
        );

        let down = with_retry_hint(CassandraError::Connect("connection refused".into()).into());
        let hint = down.downcast_ref::<ConnectorError>().expect("a hint is put on");
        assert_eq!(hint.retry(), Retry::Restart);

        let other = with_retry_hint("something else".into());
        assert!(other.downcast_ref::<ConnectorError>().is_none());
    }
}
