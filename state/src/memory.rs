use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use rustc_hash::FxBuildHasher;

use crate::error::{Result, StateError};
use crate::key_group::{KeyGroup, KeyGroupRange};
use crate::snapshot::{STATE_FORMAT_VERSION, TableSnapshot};
use crate::table::{KeyedTable, StateKey, StateValue, type_signature};

type GroupMap<K, N, V> = HashMap<(K, N), V, FxBuildHasher>;

/// The decoded entries of one key group.
type Entries<K, N, V> = Vec<((K, N), V)>;

/// A heap table: one hash map of `(key, namespace) → value` per key group.
pub struct MemoryTable<K, N, V> {
    operator: String,
    range: KeyGroupRange,
    groups: Vec<GroupMap<K, N, V>>,
    len: usize,
}

/// Borrowed form of the `(key, namespace)` tuple, so lookups do not clone the key.
struct Lookup<'a, K, N>(&'a K, &'a N);

impl<K: Hash, N: Hash> Hash for Lookup<'_, K, N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must match the derived `Hash` of `(K, N)`: fields in order, nothing else.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl<K: Eq, N: Eq> Equivalent<(K, N)> for Lookup<'_, K, N> {
    fn equivalent(&self, key: &(K, N)) -> bool {
        *self.0 == key.0 && *self.1 == key.1
    }
}

impl<K: StateKey, N: StateKey, V: StateValue> MemoryTable<K, N, V> {
    /// An empty table for `operator` owning the key groups in `range`.
    pub fn new(operator: &str, range: KeyGroupRange) -> Self {
        MemoryTable {
            operator: operator.to_string(),
            range,
            groups: (0..range.len()).map(|_| GroupMap::default()).collect(),
            len: 0,
        }
    }

    fn group(&mut self, key_group: KeyGroup) -> Result<&mut GroupMap<K, N, V>> {
        let idx = usize::from(key_group.0.wrapping_sub(self.range.start));
        match self.groups.get_mut(idx) {
            Some(g) if self.range.contains(key_group) => Ok(g),
            _ => Err(StateError::KeyGroupOutOfRange {
                key_group: key_group.0,
                range: self.range,
            }),
        }
    }
}

impl<K: StateKey, N: StateKey, V: StateValue> KeyedTable<K, N, V> for MemoryTable<K, N, V> {
    fn operator(&self) -> &str {
        &self.operator
    }

    fn get(&mut self, key_group: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        Ok(self.group(key_group)?.get(&Lookup(key, ns)).cloned())
    }

    fn upsert(
        &mut self,
        key_group: KeyGroup,
        key: &K,
        ns: &N,
        init: &mut dyn FnMut() -> V,
        update: &mut dyn FnMut(&mut V),
    ) -> Result<bool> {
        let group = self.group(key_group)?;
        if let Some(v) = group.get_mut(&Lookup(key, ns)) {
            update(v);
            return Ok(false);
        }
        let mut v = init();
        update(&mut v);
        group.insert((key.clone(), ns.clone()), v);
        self.len += 1;
        Ok(true)
    }

    fn put(&mut self, key_group: KeyGroup, key: K, ns: N, value: V) -> Result<()> {
        if self.group(key_group)?.insert((key, ns), value).is_none() {
            self.len += 1;
        }
        Ok(())
    }

    fn remove(&mut self, key_group: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        let removed = self.group(key_group)?.remove(&Lookup(key, ns));
        if removed.is_some() {
            self.len -= 1;
        }
        Ok(removed)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn snapshot(&mut self, range: KeyGroupRange) -> Result<TableSnapshot> {
        let mut groups = Vec::new();
        for kg in range.iter().filter(|kg| self.range.contains(*kg)) {
            let map = &self.groups[usize::from(kg.0 - self.range.start)];
            if map.is_empty() {
                continue;
            }
            let entries: Vec<(&(K, N), &V)> = map.iter().collect();
            let bytes =
                bincode::serde::encode_to_vec(&entries, bincode::config::standard()).map_err(|e| {
                    StateError::Encode {
                        operator: self.operator.clone(),
                        reason: e.to_string(),
                    }
                })?;
            groups.push((kg.0, bytes));
        }
        Ok(TableSnapshot {
            format_version: STATE_FORMAT_VERSION,
            operator: self.operator.clone(),
            type_signature: type_signature::<K, N, V>(),
            range,
            groups,
            in_backend: false,
        })
    }

    fn restore(&mut self, snapshot: &TableSnapshot) -> Result<()> {
        snapshot.check_compatible(&self.operator, &type_signature::<K, N, V>())?;
        if snapshot.in_backend {
            return Err(StateError::BackendMismatch {
                operator: self.operator.clone(),
                detail:
                    "the snapshot's entries live in a RocksDB checkpoint; restore it with the RocksDB backend"
                        .into(),
            });
        }
        for (kg, bytes) in &snapshot.groups {
            let kg = KeyGroup(*kg);
            if !self.range.contains(kg) {
                continue;
            }
            let (entries, _): (Entries<K, N, V>, usize) =
                bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map_err(|e| {
                    StateError::Decode {
                        operator: self.operator.clone(),
                        reason: format!("key group {kg}: {e}"),
                    }
                })?;
            for ((k, n), v) in entries {
                self.put(kg, k, n, v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateBackend;

    #[test]
    fn upsert_get_remove() {
        let mut t = MemoryTable::<String, i64, u64>::new("t", KeyGroupRange::all(128));
        let k = "a".to_string();
        let kg = KeyGroup::of(&k, 128);
        assert!(t.upsert(kg, &k, &1, &mut || 10, &mut |v| *v += 1).unwrap());
        assert!(!t.upsert(kg, &k, &1, &mut || 10, &mut |v| *v += 1).unwrap());
        assert_eq!(t.get(kg, &k, &1).unwrap(), Some(12));
        assert_eq!(t.get(kg, &k, &2).unwrap(), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(kg, &k, &1).unwrap(), Some(12));
        assert!(t.is_empty());
    }

    #[test]
    fn out_of_range_key_group_is_an_error() {
        let mut t = MemoryTable::<u32, (), u32>::new("t", KeyGroupRange { start: 0, end: 64 });
        let err = t.put(KeyGroup(100), 1, (), 1).unwrap_err();
        assert!(err.to_string().contains("key group 100"), "{err}");
    }

    #[test]
    fn snapshot_restores_into_split_ranges() {
        let all = KeyGroupRange::all(128);
        let mut t = MemoryTable::<u32, (), u64>::new("sum", all);
        for k in 0..1000u32 {
            t.put(KeyGroup::of(&k, 128), k, (), u64::from(k) * 2).unwrap();
        }
        let snap = t.snapshot(all).unwrap();
        let mut total = 0;
        for w in 0..3 {
            let range = KeyGroupRange::for_worker(w, 3, 128);
            let mut part = MemoryTable::<u32, (), u64>::new("sum", range);
            part.restore(&snap).unwrap();
            total += part.len();
            for k in 0..1000u32 {
                let kg = KeyGroup::of(&k, 128);
                if range.contains(kg) {
                    assert_eq!(part.get(kg, &k, &()).unwrap(), Some(u64::from(k) * 2));
                }
            }
        }
        assert_eq!(total, 1000);
    }

    #[test]
    fn incompatible_snapshot_is_refused() {
        let all = KeyGroupRange::all(128);
        let mut t = MemoryTable::<u32, (), u64>::new("sum", all);
        t.put(KeyGroup::of(&1u32, 128), 1, (), 1).unwrap();
        let snap = t.snapshot(all).unwrap();
        let mut other = MemoryTable::<String, (), u64>::new("sum", all);
        let err = other.restore(&snap).unwrap_err();
        assert!(matches!(err, StateError::IncompatibleFormat { .. }), "{err}");
        let mut renamed = MemoryTable::<u32, (), u64>::new("total", all);
        assert!(matches!(
            renamed.restore(&snap),
            Err(StateError::WrongOperator { .. })
        ));
        let mut old = snap.clone();
        old.format_version = 0;
        assert!(t.restore(&old).is_err());
    }

    #[test]
    fn backend_refuses_duplicate_tables() {
        let b = StateBackend::memory();
        assert!(b.open_table::<u32, (), u32>("x").is_ok());
        assert!(matches!(
            b.open_table::<u32, (), u32>("x"),
            Err(StateError::DuplicateTable { .. })
        ));
    }
}
