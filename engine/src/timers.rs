use std::collections::BTreeMap;
use std::hash::Hash;

use hashbrown::HashSet;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use sluice_state::KeyGroup;

use crate::time::Timestamp;

/// Timers of a keyed operator: `(key group, key, namespace)` due at a time, deduplicated.
///
/// Event-time timers fire when the watermark reaches (`>=`) their time; processing-time timers when
/// the wall clock does. Both kinds use this queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, N: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash, N: Deserialize<'de> + Eq + Hash"
))]
pub struct TimerQueue<K, N> {
    due: BTreeMap<Timestamp, HashSet<(KeyGroup, K, N), FxBuildHasher>>,
    len: usize,
}

impl<K, N> Default for TimerQueue<K, N> {
    fn default() -> Self {
        TimerQueue {
            due: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerQueue<K, N> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a timer at `time`; registering the same timer twice keeps one.
    pub fn register(&mut self, time: Timestamp, key_group: KeyGroup, key: K, ns: N) {
        if self.due.entry(time).or_default().insert((key_group, key, ns)) {
            self.len += 1;
        }
    }

    /// Removes a timer; returns whether it was registered.
    pub fn delete(&mut self, time: Timestamp, key_group: KeyGroup, key: &K, ns: &N) -> bool {
        let Some(set) = self.due.get_mut(&time) else {
            return false;
        };
        let removed = set.remove(&(key_group, key.clone(), ns.clone()));
        if set.is_empty() {
            self.due.remove(&time);
        }
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Removes and returns the earliest timers due at or before `time`, in time order.
    pub fn pop_due(&mut self, time: Timestamp) -> Option<(Timestamp, Vec<(KeyGroup, K, N)>)> {
        let first = *self.due.keys().next()?;
        if first > time {
            return None;
        }
        let set = self.due.remove(&first)?;
        self.len -= set.len();
        Some((first, set.into_iter().collect()))
    }

    /// Moves into this queue the timers of `other` whose key group passes `keep` (restoring
    /// a snapshot taken with another number of workers).
    pub fn absorb(&mut self, mut other: TimerQueue<K, N>, keep: impl Fn(KeyGroup) -> bool) {
        while let Some((time, due)) = other.pop_due(Timestamp::MAX) {
            for (kg, key, ns) in due.into_iter().filter(|(kg, ..)| keep(*kg)) {
                self.register(time, kg, key, ns);
            }
        }
    }

    /// Time of the earliest timer.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.due.keys().next().copied()
    }

    /// Number of timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_dedups() {
        let mut q = TimerQueue::<String, u8>::new();
        q.register(20, KeyGroup(1), "b".into(), 0);
        q.register(10, KeyGroup(0), "a".into(), 0);
        q.register(10, KeyGroup(0), "a".into(), 0);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_due(5), None);
        let (t, due) = q.pop_due(25).unwrap();
        assert_eq!((t, due.len()), (10, 1));
        assert!(q.delete(20, KeyGroup(1), &"b".into(), &0));
        assert!(q.is_empty());
    }
}
