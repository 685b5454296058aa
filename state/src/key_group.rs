use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// Default number of key groups of a job: the most workers a job can ever be rescaled to.
pub const DEFAULT_MAX_KEY_GROUPS: u16 = 128;

/// A hash bucket of keys: the unit of keyed state that is routed, snapshotted and moved.
///
/// The key group of a key depends only on the key's `Hash` implementation and the job's
/// maximum number of key groups, never on the number of workers, so state written with
/// two workers can be restored with one or four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyGroup(pub u16);

impl KeyGroup {
    /// The key group of `key` among `max_key_groups` groups (xxh3 of the key's `Hash` stream,
    /// which is stable across processes and runs).
    #[inline]
    pub fn of<K: Hash + ?Sized>(key: &K, max_key_groups: u16) -> KeyGroup {
        let mut bytes = KeyBytes::default();
        key.hash(&mut bytes);
        Self::from_hash(bytes.digest(), max_key_groups)
    }

    /// The key group for an already computed 64-bit hash.
    pub fn from_hash(hash: u64, max_key_groups: u16) -> KeyGroup {
        let max = u64::from(max_key_groups.max(1));
        // Multiply-shift maps the high bits uniformly onto 0..max.
        KeyGroup((((hash >> 32) * max) >> 32) as u16)
    }

    /// The group's index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for KeyGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Collects a key's `Hash` stream so short keys are hashed in one xxh3 call; the digest is
/// the same as streaming xxh3 over the same bytes.
struct KeyBytes {
    short: [u8; 64],
    len: usize,
    long: Option<xxhash_rust::xxh3::Xxh3>,
}

impl Default for KeyBytes {
    fn default() -> Self {
        KeyBytes {
            short: [0; 64],
            len: 0,
            long: None,
        }
    }
}

impl KeyBytes {
    fn digest(&self) -> u64 {
        match &self.long {
            Some(streaming) => streaming.digest(),
            None => xxhash_rust::xxh3::xxh3_64(&self.short[..self.len]),
        }
    }
}

impl Hasher for KeyBytes {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        if let Some(streaming) = &mut self.long {
            streaming.update(bytes);
        } else if self.len + bytes.len() <= self.short.len() {
            self.short[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            let mut streaming = xxhash_rust::xxh3::Xxh3::new();
            streaming.update(&self.short[..self.len]);
            streaming.update(bytes);
            self.long = Some(streaming);
        }
    }

    fn finish(&self) -> u64 {
        self.digest()
    }
}

/// A contiguous range of key groups `[start, end)`, the share of keyed state owned by a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: u16,
    /// One past the last key group in the range.
    pub end: u16,
}

impl KeyGroupRange {
    /// All key groups of a job.
    pub fn all(max_key_groups: u16) -> Self {
        KeyGroupRange {
            start: 0,
            end: max_key_groups,
        }
    }

    /// The range owned by `worker` of `workers` (contiguous, sizes differ by at most one).
    pub fn for_worker(worker: usize, workers: usize, max_key_groups: u16) -> Self {
        let max = usize::from(max_key_groups);
        let workers = workers.max(1);
        let start = (worker * max).div_ceil(workers);
        let end = ((worker + 1) * max).div_ceil(workers);
        KeyGroupRange {
            start: start as u16,
            end: end as u16,
        }
    }

    /// The worker that owns `key_group` when `workers` split `max_key_groups` groups.
    pub fn worker_for(key_group: KeyGroup, workers: usize, max_key_groups: u16) -> usize {
        key_group.index() * workers.max(1) / usize::from(max_key_groups.max(1))
    }

    /// Whether the range holds `key_group`.
    pub fn contains(&self, key_group: KeyGroup) -> bool {
        (self.start..self.end).contains(&key_group.0)
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end.saturating_sub(self.start))
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key groups in the range.
    pub fn iter(&self) -> impl Iterator<Item = KeyGroup> {
        (self.start..self.end).map(KeyGroup)
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ranges_cover_all_groups_once() {
        for workers in 1..=9 {
            let mut next = 0;
            for w in 0..workers {
                let r = KeyGroupRange::for_worker(w, workers, 128);
                assert_eq!(r.start, next);
                next = r.end;
                for kg in r.iter() {
                    assert_eq!(KeyGroupRange::worker_for(kg, workers, 128), w);
                }
            }
            assert_eq!(next, 128);
        }
    }

    #[test]
    fn one_shot_and_streaming_digests_agree() {
        for key in ["", "p-7", &"x".repeat(63), &"long-key-".repeat(20)] {
            let mut streaming = xxhash_rust::xxh3::Xxh3::new();
            key.hash(&mut streaming);
            assert_eq!(
                KeyGroup::of(key, 128),
                KeyGroup::from_hash(streaming.finish(), 128)
            );
        }
    }

    #[test]
    fn key_groups_are_stable_and_spread() {
        assert_eq!(KeyGroup::of("p-7", 128), KeyGroup::of("p-7", 128));
        let mut used = std::collections::HashSet::new();
        for i in 0..10_000 {
            let kg = KeyGroup::of(&format!("p-{i}"), 128);
            assert!(kg.0 < 128);
            used.insert(kg);
        }
        assert_eq!(used.len(), 128);
    }
}
