use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rocksdb::{Cache, WriteBufferManager};

/// Default memory budget of all RocksDB databases opened from one [`RocksDbConfig`].
pub const DEFAULT_MEMORY_BUDGET: usize = 256 * 1024 * 1024;

/// Settings of the RocksDB state backend.
///
/// Every worker opens its own database under [`RocksDbConfig::dir`]; all databases opened from
/// one config (and its clones) share one block cache and one write-buffer manager whose
/// memtables are charged to that cache, so together they stay within
/// [`RocksDbConfig::memory_budget`]. A quarter of the budget is set aside for the write-back
/// caches of hot entries in front of the databases.
///
/// ```
/// use sluice_state::RocksDbConfig;
/// let config = RocksDbConfig::new("/var/lib/sluice/revenue").memory_budget(512 << 20);
/// assert_eq!(config.budget_bytes(), 512 << 20);
/// ```
#[derive(Clone)]
pub struct RocksDbConfig {
    pub(crate) dir: PathBuf,
    pub(crate) budget: usize,
    pub(crate) memory: Arc<SharedMemory>,
}

/// The memory every database of one config shares.
pub(crate) struct SharedMemory {
    pub(crate) cache: Cache,
    pub(crate) write_buffers: WriteBufferManager,
    /// Estimated bytes held by the write-back caches of all tables.
    pub(crate) hot_bytes: AtomicUsize,
    /// Most bytes the write-back caches may hold together.
    pub(crate) hot_limit: usize,
}

impl SharedMemory {
    fn new(budget: usize) -> Self {
        let disk_budget = budget - budget / 4;
        let cache = Cache::new_lru_cache(disk_budget);
        // Memtables are charged to the block cache: one limit for both. Reaching the limit
        // flushes memtables. (Stalling writers instead can wait forever for a flush that the
        // stall itself prevents.)
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager_with_cache(disk_budget / 2, false, cache.clone());
        SharedMemory {
            cache,
            write_buffers,
            hot_bytes: AtomicUsize::new(0),
            hot_limit: budget / 4,
        }
    }
}

impl std::fmt::Debug for RocksDbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbConfig")
            .field("dir", &self.dir)
            .field("memory_budget", &self.budget)
            .finish()
    }
}

impl RocksDbConfig {
    /// Databases live under `dir` (one subdirectory per worker), with the default budget.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RocksDbConfig {
            dir: dir.into(),
            budget: DEFAULT_MEMORY_BUDGET,
            memory: Arc::new(SharedMemory::new(DEFAULT_MEMORY_BUDGET)),
        }
    }

    /// Bytes all databases of this config may use together: block cache, memtables and the
    /// write-back caches of hot entries. At least 16 MiB.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes.max(16 << 20);
        self.memory = Arc::new(SharedMemory::new(self.budget));
        self
    }

    /// The directory holding the working databases.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The memory budget in bytes.
    pub fn budget_bytes(&self) -> usize {
        self.budget
    }

    /// Current memory use of memtables, in bytes.
    pub fn memtable_usage(&self) -> usize {
        self.memory.write_buffers.get_usage()
    }

    /// Estimated bytes held by the write-back caches of hot entries.
    pub fn hot_entry_usage(&self) -> usize {
        self.memory.hot_bytes.load(Ordering::Relaxed)
    }

    /// Current memory use of the shared block cache (memtable reservations included), in bytes.
    pub fn cache_usage(&self) -> usize {
        self.memory.cache.get_usage()
    }
}
