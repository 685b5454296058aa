use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hashbrown::{Equivalent, HashMap};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};
use rustc_hash::FxBuildHasher;

use crate::error::{Result, StateError};
use crate::key_group::{KeyGroup, KeyGroupRange};
use crate::rocks::codec;
use crate::rocks::db::WorkerDb;
use crate::snapshot::{STATE_FORMAT_VERSION, TableSnapshot};
use crate::table::{KeyedTable, StateKey, StateValue, type_signature};

/// Bookkeeping bytes counted per cached entry on top of its encoded size.
const ENTRY_OVERHEAD: usize = 64;

/// A cached entry: the value (`None` once removed) and whether RocksDB is behind it.
struct Slot<V> {
    value: Option<V>,
    dirty: bool,
}

/// One operator's table in a worker's RocksDB database.
///
/// Reads and writes go through a write-back cache of hot entries: an entry is read from RocksDB
/// once, updated in memory, and written back in batches when the caches of all tables exceed
/// their share of the memory budget and at every snapshot. The cache is emptied whenever it is
/// written back, so it holds only entries touched since.
pub struct RocksTable<K, N, V> {
    operator: String,
    db: Arc<WorkerDb>,
    range: KeyGroupRange,
    cache: HashMap<(KeyGroup, K, N), Slot<V>, FxBuildHasher>,
    cached_bytes: usize,
    len: usize,
    key_buf: Vec<u8>,
    _types: PhantomData<fn() -> (K, N, V)>,
}

/// Borrowed form of the cache key, so lookups do not clone.
struct Lookup<'a, K, N>(KeyGroup, &'a K, &'a N);

impl<K: Hash, N: Hash> Hash for Lookup<'_, K, N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must match the derived `Hash` of `(KeyGroup, K, N)`: fields in order, nothing else.
        self.0.hash(state);
        self.1.hash(state);
        self.2.hash(state);
    }
}

impl<K: Eq, N: Eq> Equivalent<(KeyGroup, K, N)> for Lookup<'_, K, N> {
    fn equivalent(&self, key: &(KeyGroup, K, N)) -> bool {
        self.0 == key.0 && *self.1 == key.1 && *self.2 == key.2
    }
}

impl<K: StateKey, N: StateKey, V: StateValue> RocksTable<K, N, V> {
    /// Opens the table of `operator` in `db`, checking the types recorded for it.
    pub(crate) fn open(operator: &str, db: Arc<WorkerDb>) -> Result<Self> {
        db.open_table(operator, &type_signature::<K, N, V>())?;
        let mut table = RocksTable {
            operator: operator.to_string(),
            range: db.key_groups(),
            db,
            cache: HashMap::default(),
            cached_bytes: 0,
            len: 0,
            key_buf: Vec::with_capacity(64),
            _types: PhantomData,
        };
        table.len = table.count_stored()?;
        Ok(table)
    }

    fn storage_error(&self, what: &str, e: impl std::fmt::Display) -> StateError {
        StateError::Storage {
            path: self.db.path().display().to_string(),
            reason: format!("table '{}': {what}: {e}", self.operator),
        }
    }

    fn count_stored(&self) -> Result<usize> {
        let (lower, upper) = codec::group_bounds(self.range);
        let mut read = ReadOptions::default();
        read.set_iterate_range(lower..upper);
        let family = family(&self.db, &self.operator)?;
        let mut n = 0;
        for entry in self.db.db.iterator_cf_opt(&family, read, IteratorMode::Start) {
            entry.map_err(|e| self.storage_error("cannot count entries", e))?;
            n += 1;
        }
        Ok(n)
    }

    fn check_range(&self, key_group: KeyGroup) -> Result<()> {
        if self.range.contains(key_group) {
            Ok(())
        } else {
            Err(StateError::KeyGroupOutOfRange {
                key_group: key_group.0,
                range: self.range,
            })
        }
    }

    /// Makes sure `(key group, key, ns)` is cached, reading it from RocksDB on a miss.
    fn load(&mut self, key_group: KeyGroup, key: &K, ns: &N) -> Result<&mut Slot<V>> {
        self.check_range(key_group)?;
        if !self.cache.contains_key(&Lookup(key_group, key, ns)) {
            codec::encode_key(&self.operator, &mut self.key_buf, key_group, key, ns)?;
            let db = Arc::clone(&self.db);
            let family = family(&db, &self.operator)?;
            let stored = db
                .db
                .get_pinned_cf(&family, &self.key_buf)
                .map_err(|e| self.storage_error("cannot read", e))?;
            let (value, value_bytes) = match stored {
                Some(bytes) => (
                    Some(codec::decode_value::<V>(&self.operator, &bytes)?),
                    bytes.len(),
                ),
                None => (None, std::mem::size_of::<V>()),
            };
            let bytes = self.key_buf.len() + value_bytes + ENTRY_OVERHEAD;
            self.account(bytes as isize);
            self.cache
                .insert((key_group, key.clone(), ns.clone()), Slot { value, dirty: false });
        }
        self.cache
            .get_mut(&Lookup(key_group, key, ns))
            .ok_or_else(|| StateError::Storage {
                path: String::new(),
                reason: "the write-back cache lost an entry".into(),
            })
    }

    fn account(&mut self, delta: isize) {
        let shared = &self.db.config.memory.hot_bytes;
        if delta >= 0 {
            self.cached_bytes += delta as usize;
            shared.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.cached_bytes -= delta.unsigned_abs();
            shared.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// Writes back and drops the cache when the caches together exceed their budget.
    fn maybe_evict(&mut self) -> Result<()> {
        let memory = &self.db.config.memory;
        if memory.hot_bytes.load(Ordering::Relaxed) > memory.hot_limit {
            self.write_back()?;
            let held = self.cached_bytes;
            self.account(-(held as isize));
            self.cache.clear();
        }
        Ok(())
    }

    /// Writes every dirty cached entry to RocksDB in one batch.
    fn write_back(&mut self) -> Result<()> {
        let db = Arc::clone(&self.db);
        let family = family(&db, &self.operator)?;
        let mut batch = WriteBatch::default();
        let mut buf = std::mem::take(&mut self.key_buf);
        for ((kg, key, ns), slot) in self.cache.iter_mut().filter(|(_, s)| s.dirty) {
            codec::encode_key(&self.operator, &mut buf, *kg, key, ns)?;
            match &slot.value {
                Some(v) => batch.put_cf(&family, &buf, codec::encode_value(&self.operator, v)?),
                None => batch.delete_cf(&family, &buf),
            }
            slot.dirty = false;
        }
        drop(family);
        self.key_buf = buf;
        db.write(batch)
    }
}

impl<K: StateKey, N: StateKey, V: StateValue> KeyedTable<K, N, V> for RocksTable<K, N, V> {
    fn operator(&self) -> &str {
        &self.operator
    }

    fn get(&mut self, key_group: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        let value = self.load(key_group, key, ns)?.value.clone();
        self.maybe_evict()?;
        Ok(value)
    }

    fn upsert(
        &mut self,
        key_group: KeyGroup,
        key: &K,
        ns: &N,
        init: &mut dyn FnMut() -> V,
        update: &mut dyn FnMut(&mut V),
    ) -> Result<bool> {
        let slot = self.load(key_group, key, ns)?;
        slot.dirty = true;
        let created = match &mut slot.value {
            Some(v) => {
                update(v);
                false
            }
            empty => {
                let mut v = init();
                update(&mut v);
                *empty = Some(v);
                true
            }
        };
        if created {
            self.len += 1;
        }
        self.maybe_evict()?;
        Ok(created)
    }

    fn put(&mut self, key_group: KeyGroup, key: K, ns: N, value: V) -> Result<()> {
        let slot = self.load(key_group, &key, &ns)?;
        slot.dirty = true;
        if slot.value.replace(value).is_none() {
            self.len += 1;
        }
        self.maybe_evict()
    }

    fn remove(&mut self, key_group: KeyGroup, key: &K, ns: &N) -> Result<Option<V>> {
        let slot = self.load(key_group, key, ns)?;
        let removed = slot.value.take();
        if removed.is_some() {
            slot.dirty = true;
            self.len -= 1;
        }
        self.maybe_evict()?;
        Ok(removed)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// Writes the cached changes to RocksDB. The entries themselves are captured by the
    /// database checkpoint the engine takes next, so the snapshot only names the table.
    fn snapshot(&mut self, range: KeyGroupRange) -> Result<TableSnapshot> {
        self.write_back()?;
        Ok(TableSnapshot {
            format_version: STATE_FORMAT_VERSION,
            operator: self.operator.clone(),
            type_signature: type_signature::<K, N, V>(),
            range,
            groups: Vec::new(),
            in_backend: true,
        })
    }

    /// A snapshot held by the database was restored with it; one carrying entries (taken by
    /// the in-memory backend) is loaded entry by entry.
    fn restore(&mut self, snapshot: &TableSnapshot) -> Result<()> {
        snapshot.check_compatible(&self.operator, &type_signature::<K, N, V>())?;
        for (kg, bytes) in &snapshot.groups {
            let kg = KeyGroup(*kg);
            if !self.range.contains(kg) {
                continue;
            }
            let entries: Vec<((K, N), V)> = codec::decode_value(&self.operator, bytes)?;
            for ((k, n), v) in entries {
                self.put(kg, k, n, v)?;
            }
        }
        Ok(())
    }
}

/// The column family of `operator`.
fn family<'a>(db: &'a WorkerDb, operator: &str) -> Result<Arc<rocksdb::BoundColumnFamily<'a>>> {
    db.db.cf_handle(operator).ok_or_else(|| StateError::Storage {
        path: db.path().display().to_string(),
        reason: format!("missing column family of table '{operator}'"),
    })
}

impl<K, N, V> Drop for RocksTable<K, N, V> {
    fn drop(&mut self) {
        self.db
            .config
            .memory
            .hot_bytes
            .fetch_sub(self.cached_bytes, Ordering::Relaxed);
    }
}
