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

/// A step of completing a checkpoint, at which a recovery test can make the job crash
/// ([`CheckpointConfig::crash_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckpointStep {
    /// One worker has written and acknowledged its part; the others have not.
    FirstAck,
    /// Every worker has written its part; the manifest is not written yet.
    AfterSnapshot,
    /// The manifest is in its temporary file, not synced.
    AfterManifestWrite,
    /// The manifest is synced, not yet renamed into place.
    BeforeManifestRename,
    /// The checkpoint is complete; the sources have neither resumed nor committed offsets.
    AfterManifestRename,
}

impl CheckpointStep {
    /// Every step, in the order a checkpoint passes them.
    pub const ALL: [CheckpointStep; 5] = [
        CheckpointStep::FirstAck,
        CheckpointStep::AfterSnapshot,
        CheckpointStep::AfterManifestWrite,
        CheckpointStep::BeforeManifestRename,
        CheckpointStep::AfterManifestRename,
    ];

    /// The step's name (also the name `SLUICE_FAIL_POINT` takes).
    pub fn name(self) -> &'static str {
        match self {
            CheckpointStep::FirstAck => "after-first-ack",
            CheckpointStep::AfterSnapshot => "after-snapshot",
            CheckpointStep::AfterManifestWrite => "after-manifest-write",
            CheckpointStep::BeforeManifestRename => "before-manifest-rename",
            CheckpointStep::AfterManifestRename => "after-manifest-rename",
        }
    }
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
    pub(crate) crash_at: Option<(CheckpointStep, u64)>,
    #[cfg(feature = "remote-checkpoints")]
    pub(crate) remote: Option<super::remote::RemoteCheckpoints>,
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
            crash_at: None,
            #[cfg(feature = "remote-checkpoints")]
            remote: None,
        }
    }

    /// Also keeps the checkpoints in object storage: each completed checkpoint is uploaded
    /// and published there, and a run whose local directory holds none restores from the
    /// newest published one (on another machine, say). Each run claims a new epoch when it
    /// starts; a run superseded by a newer one fails at its next checkpoint instead of
    /// publishing over it.
    #[cfg(feature = "remote-checkpoints")]
    pub fn remote(mut self, remote: super::remote::RemoteCheckpoints) -> Self {
        self.remote = Some(remote);
        self
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

    /// For recovery tests: the job fails with [`EngineError::SimulatedCrash`] when the `nth`
    /// checkpoint of its run (1-based) reaches `step`, leaving the checkpoint directory exactly
    /// as a crash of the process there would. Restart the job (a new [`crate::Job`] on the same
    /// directories) to recover from it.
    ///
    /// [`EngineError::SimulatedCrash`]: crate::EngineError::SimulatedCrash
    pub fn crash_at(mut self, step: CheckpointStep, nth: u64) -> Self {
        self.crash_at = Some((step, nth.max(1)));
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
