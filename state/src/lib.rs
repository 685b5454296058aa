//! Keyed state for Sluice operators.
//!
//! Keyed state is addressed by *(operator, key group, key, namespace)*: the operator's stable
//! name selects a table, the [`KeyGroup`] (a hash bucket of the key, fixed maximum per job) is
//! the unit that is snapshotted, restored and moved between workers, and the namespace is
//! usually a window. Operators never see the storage: they open a typed [`KeyedTable`] from a
//! [`StateBackend`] and read and write values through it, so a different backend slots in
//! without touching operator code.
//!
//! ```
//! use sluice_state::{KeyGroup, StateBackend};
//!
//! # fn main() -> Result<(), sluice_state::StateError> {
//! let backend = StateBackend::memory();
//! let mut counts = backend.open_table::<String, u64, u64>("clicks_per_minute")?;
//! let kg = KeyGroup::of(&"u-42".to_string(), 128);
//! counts.upsert(kg, &"u-42".to_string(), &0, &mut || 0, &mut |n| *n += 1)?;
//! counts.upsert(kg, &"u-42".to_string(), &0, &mut || 0, &mut |n| *n += 1)?;
//! assert_eq!(counts.get(kg, &"u-42".to_string(), &0)?, Some(2));
//! # Ok(())
//! # }
//! ```

mod backend;
pub mod checkpoint;
mod error;
mod key_group;
mod memory;
mod rocks;
mod snapshot;
mod table;

pub use backend::StateBackend;
pub use error::{Result, StateError};
pub use key_group::{DEFAULT_MAX_KEY_GROUPS, KeyGroup, KeyGroupRange};
pub use memory::MemoryTable;
pub use rocks::{DEFAULT_MEMORY_BUDGET, DbCheckpoint, RocksDbConfig, RocksTable, WorkerDb};
pub use snapshot::{STATE_FORMAT_VERSION, TableSnapshot};
pub use table::{KeyedTable, StateKey, StateValue};
