use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::error::{Result, StateError};
use crate::key_group::DEFAULT_MAX_KEY_GROUPS;
use crate::key_group::KeyGroupRange;
use crate::memory::MemoryTable;
use crate::rocks::{RocksTable, WorkerDb};
use crate::table::{KeyedTable, StateKey, StateValue};

/// Where a worker's keyed state lives. Cheap to clone; clones share the set of open tables.
#[derive(Debug, Clone)]
pub struct StateBackend {
    kind: BackendKind,
    range: KeyGroupRange,
    open: Arc<Mutex<HashSet<String>>>,
}

#[derive(Debug, Clone)]
enum BackendKind {
    Memory,
    RocksDb(Arc<WorkerDb>),
}

impl StateBackend {
    /// Heap state: values live as Rust objects in hash maps, one map per key group.
    pub fn memory() -> Self {
        Self::memory_for(KeyGroupRange::all(DEFAULT_MAX_KEY_GROUPS))
    }

    /// Heap state owning the key groups in `range`.
    pub fn memory_for(range: KeyGroupRange) -> Self {
        StateBackend {
            kind: BackendKind::Memory,
            range,
            open: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// State in the worker's RocksDB database `db`, which owns the key groups of its range.
    pub fn rocksdb(db: WorkerDb) -> Self {
        StateBackend {
            range: db.key_groups(),
            kind: BackendKind::RocksDb(Arc::new(db)),
            open: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The worker's RocksDB database, when state lives in RocksDB.
    pub fn rocksdb_database(&self) -> Option<&WorkerDb> {
        match &self.kind {
            BackendKind::RocksDb(db) => Some(db),
            BackendKind::Memory => None,
        }
    }

    /// Names of the tables opened so far.
    pub fn open_tables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Refuses state the job no longer has an operator for: every table recorded in the
    /// backend (restored from a checkpoint) must have been opened again.
    ///
    /// # Errors
    /// [`StateError::Checkpoint`] naming the first table no operator opened.
    pub fn check_all_tables_claimed(&self) -> Result<()> {
        let Some(db) = self.rocksdb_database() else {
            return Ok(());
        };
        let open = self.open_tables();
        for table in db.tables()? {
            if !open.contains(&table) {
                return Err(StateError::Checkpoint {
                    checkpoint: db.path().display().to_string(),
                    reason: format!(
                        "it holds state of operator '{table}', which the job no longer has \
                         (renamed or removed); restore into the job that wrote it or start fresh"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The key groups whose state this backend holds.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// A short name of the backend kind, for logs and reports.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            BackendKind::Memory => "memory",
            BackendKind::RocksDb(_) => "rocksdb",
        }
    }

    /// Opens the table of `operator`, holding values of type `V` under keys `K` and namespaces `N`.
    ///
    /// # Errors
    /// [`StateError::DuplicateTable`] when the operator already opened a table in this backend.
    pub fn open_table<K: StateKey, N: StateKey, V: StateValue>(
        &self,
        operator: &str,
    ) -> Result<Box<dyn KeyedTable<K, N, V>>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if !open.insert(operator.to_string()) {
            return Err(StateError::DuplicateTable {
                operator: operator.to_string(),
            });
        }
        match &self.kind {
            BackendKind::Memory => Ok(Box::new(MemoryTable::<K, N, V>::new(operator, self.range))),
            BackendKind::RocksDb(db) => Ok(Box::new(RocksTable::<K, N, V>::open(operator, Arc::clone(db))?)),
        }
    }
}
