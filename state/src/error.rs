use crate::key_group::KeyGroupRange;

/// Result alias for state operations.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// Errors raised by state backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Encoding a table into a snapshot failed.
    #[error("cannot encode state of operator '{operator}': {reason}")]
    Encode {
        /// Operator (table) name.
        operator: String,
        /// What the encoder reported.
        reason: String,
    },
    /// Decoding a snapshot failed: the bytes do not hold the expected types.
    #[error("cannot decode state of operator '{operator}': {reason}")]
    Decode {
        /// Operator (table) name.
        operator: String,
        /// What the decoder reported.
        reason: String,
    },
    /// A snapshot was written by an incompatible state format or for other types.
    #[error(
        "state of operator '{operator}' has format {found}, this build reads format {expected} \
         (or the key/value types changed: {detail})"
    )]
    IncompatibleFormat {
        /// Operator (table) name.
        operator: String,
        /// Format version this build understands.
        expected: u32,
        /// Format version found in the snapshot.
        found: u32,
        /// Which part did not match.
        detail: String,
    },
    /// A snapshot for one operator was offered to another operator's table.
    #[error("snapshot of operator '{found}' cannot be restored into operator '{expected}'")]
    WrongOperator {
        /// The table being restored.
        expected: String,
        /// The operator the snapshot belongs to.
        found: String,
    },
    /// A table was opened twice in the same backend.
    #[error("state table '{operator}' is already open")]
    DuplicateTable {
        /// Operator (table) name.
        operator: String,
    },
    /// The storage below a backend failed (RocksDB, the file system).
    #[error("state storage at {path}: {reason}")]
    Storage {
        /// The database or file involved.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A snapshot was taken by a backend that cannot restore into this one.
    #[error("state of operator '{operator}' cannot be restored here: {detail}")]
    BackendMismatch {
        /// Operator (table) name.
        operator: String,
        /// Why.
        detail: String,
    },
    /// A checkpoint or savepoint cannot be used.
    #[error("checkpoint {checkpoint}: {reason}")]
    Checkpoint {
        /// The checkpoint's directory or name.
        checkpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key group outside the table's range was used.
    #[error("key group {key_group} is outside the range {range} owned by this table")]
    KeyGroupOutOfRange {
        /// The offending key group.
        key_group: u16,
        /// The table's range.
        range: KeyGroupRange,
    },
}
