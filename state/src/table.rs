use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::key_group::{KeyGroup, KeyGroupRange};
use crate::snapshot::TableSnapshot;

/// Types usable as state keys and namespaces: hashable, comparable, serde-encodable.
pub trait StateKey: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static> StateKey for T {}

/// Types usable as state values (accumulators, per-key state): serde-encodable.
pub trait StateValue: Clone + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + Send + 'static> StateValue for T {}

/// The type names of key, namespace and value, stored with state and checked on restore.
pub(crate) fn type_signature<K, N, V>() -> String {
    format!(
        "{} / {} / {}",
        std::any::type_name::<K>(),
        std::any::type_name::<N>(),
        std::any::type_name::<V>()
    )
}

/// One operator's keyed state: values addressed by (key group, key, namespace).
///
/// Backends implement this trait; operators only use it. Every method may fail because a
/// backend may be on disk, so every method returns a [`Result`].
pub trait KeyedTable<K, N, V>: Send {
    /// The operator (table) name.
    fn operator(&self) -> &str;

    /// A copy of the value stored for `(key, ns)`.
    fn get(&mut self, key_group: KeyGroup, key: &K, ns: &N) -> Result<Option<V>>;

    /// Applies `update` to the value of `(key, ns)`, creating it with `init` when absent.
    /// Returns `true` when the value was created by this call.
    fn upsert(
        &mut self,
        key_group: KeyGroup,
        key: &K,
        ns: &N,
        init: &mut dyn FnMut() -> V,
        update: &mut dyn FnMut(&mut V),
    ) -> Result<bool>;

    /// Stores `value` for `(key, ns)`, replacing what was there.
    fn put(&mut self, key_group: KeyGroup, key: K, ns: N, value: V) -> Result<()>;

    /// Removes and returns the value of `(key, ns)`.
    fn remove(&mut self, key_group: KeyGroup, key: &K, ns: &N) -> Result<Option<V>>;

    /// Number of entries held.
    fn len(&self) -> usize;

    /// The key groups this table owns.
    fn key_groups(&self) -> KeyGroupRange;

    /// Whether the table holds no entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes the entries of the key groups in `range` into a snapshot.
    ///
    /// A backend that keeps entries on disk may only write its pending changes and name the
    /// table ([`TableSnapshot::in_backend`]): the entries are then part of the backend's own
    /// checkpoint.
    fn snapshot(&mut self, range: KeyGroupRange) -> Result<TableSnapshot>;

    /// Loads the entries of `snapshot` that fall in this table's key-group range, keeping the
    /// entries already present for other key groups.
    fn restore(&mut self, snapshot: &TableSnapshot) -> Result<()>;
}
