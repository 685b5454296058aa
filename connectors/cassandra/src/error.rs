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
