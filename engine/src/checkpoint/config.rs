use std::path::PathBuf;
use std::time::Duration;

use sluice_state::RocksDbConfig;

/// Where operators keep keyed state.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum StateBackendConfig {
    /// On the heap, one hash map per key group; checkpoints serialise it.
    #[default]
    Memory,
    /// In one RocksDB database per worker; checkpoints hard-link its files.
    RocksDb(RocksDbConfig),
}

impl StateBackendConfig {
    /// RocksDB state with working databases under `dir` and the default memory budget.
    pub fn rocksdb(dir: impl Into<PathBuf>) -> Self {
        StateBackendConfig::RocksDb(RocksDbConfig::new(dir))
    }

    /// The backend's short name, as manifests record it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            StateBackendConfig::Memory => "memory",
            StateBackendConfig::RocksDb(_) => "rocksdb",
        }
    }
}

/// Where a job's first attempt takes its state from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RestoreFrom {
    /// The newest complete checkpoint that verifies (falling back over damaged newer ones);
    /// nothing when no checkpoint was ever completed. Refuses to start when checkpoints exist
    /// but none is usable.
    #[default]
    Latest,
    /// No state: ignore existing checkpoints (they are kept; new ones get higher ids).
    Fresh,
    /// The named savepoint.
    Savepoint(String),
}

/// Periodic checkpoints of state and source offsets.
///
/// ```
/// use std::time::Duration;
/// use sluice_engine::CheckpointConfig;
/// let config = CheckpointConfig::new("/var/lib/sluice/revenue/checkpoints")
///     .interval(Duration::from_secs(1))
///     .retain(3);
/// assert_eq!(config.interval_duration(), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    pub(crate) dir: PathBuf,
    pub(crate) interval: Duration,
    pub(crate) retain: usize,
    pub(crate) timeout: Duration,
    pub(crate) restore: RestoreFrom,
}

impl CheckpointConfig {
    /// Checkpoints under `dir` every 10 s, keeping the newest 3, each given 2 minutes to
    /// complete; the job restores from the latest one.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointConfig {
            dir: dir.into(),
            interval: Duration::from_secs(10),
            retain: 3,
            timeout: Duration::from_secs(120),
            restore: RestoreFrom::Latest,
        }
    }

    /// Time between the end of one checkpoint and the start of the next.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Number of complete checkpoints kept (savepoints are never deleted).
    pub fn retain(mut self, retain: usize) -> Self {
        self.retain = retain;
        self
    }

    /// Longest time a checkpoint may take before it is abandoned.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where the first attempt takes its state from.
    pub fn restore_from(mut self, restore: RestoreFrom) -> Self {
        self.restore = restore;
        self
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The interval between checkpoints.
    pub fn interval_duration(&self) -> Duration {
        self.interval
    }
}
