use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::error::{Result, StateError};
use crate::key_group::DEFAULT_MAX_KEY_GROUPS;
use crate::key_group::KeyGroupRange;
use crate::memory::MemoryTable;
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

    /// The key groups whose state this backend holds.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// A short name of the backend kind, for logs and reports.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            BackendKind::Memory => "memory",
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
        match self.kind {
            BackendKind::Memory => Ok(Box::new(MemoryTable::<K, N, V>::new(operator, self.range))),
        }
    }
}
