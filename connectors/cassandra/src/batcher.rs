//! Groups rows into unlogged batches: one partition and one write timestamp per batch, capped
//! in bytes and rows.

use hashbrown::hash_map::EntryRef;
use hashbrown::{Equivalent, HashMap};

use super::encode::EncodedRow;

/// Rows for one partition, written with one timestamp in one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WriteBatch {
    /// Write timestamp of every statement, in microseconds.
    pub timestamp: i64,
    pub rows: Vec<EncodedRow>,
    pub bytes: usize,
}

/// Collects rows until a group is full or the sink flushes.
pub(crate) struct Batcher {
    max_bytes: usize,
    max_rows: usize,
    groups: HashMap<GroupKey, WriteBatch>,
    pending_rows: usize,
}

/// A group: partition key bytes and write timestamp.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    partition: Vec<u8>,
    timestamp: i64,
}

/// A group looked up without copying the partition key (hashes as [`GroupKey`] does).
#[derive(Hash)]
struct GroupRef<'a> {
    partition: &'a [u8],
    timestamp: i64,
}

impl Equivalent<GroupKey> for GroupRef<'_> {
    fn equivalent(&self, key: &GroupKey) -> bool {
        self.timestamp == key.timestamp && self.partition == key.partition.as_slice()
    }
}

impl From<&GroupRef<'_>> for GroupKey {
    fn from(r: &GroupRef<'_>) -> Self {
        GroupKey {
            partition: r.partition.to_vec(),
            timestamp: r.timestamp,
        }
    }
}

/// Bytes a statement adds to a batch besides its values (kind, statement id, value count).
const STATEMENT_OVERHEAD: usize = 24;

impl Batcher {
    pub(crate) fn new(max_bytes: usize, max_rows: usize) -> Self {
        Batcher {
            max_bytes,
            max_rows,
            groups: HashMap::new(),
            pending_rows: 0,
        }
    }

    /// Adds a row of partition `key` written at `timestamp`. Returns the group's batch when the
    /// row does not fit into it any more (the row then starts the next batch of the group).
    pub(crate) fn add(&mut self, key: &[u8], timestamp: i64, row: EncodedRow) -> Option<WriteBatch> {
        let size = row.bytes + STATEMENT_OVERHEAD;
        self.pending_rows += 1;
        let lookup = GroupRef {
            partition: key,
            timestamp,
        };
        let group = match self.groups.entry_ref(&lookup) {
            EntryRef::Vacant(slot) => {
                slot.insert(WriteBatch {
                    timestamp,
                    rows: vec![row],
                    bytes: size,
                });
                return None;
            }
            EntryRef::Occupied(slot) => slot.into_mut(),
        };
        if group.rows.len() < self.max_rows && group.bytes + size <= self.max_bytes {
            group.rows.push(row);
            group.bytes += size;
            return None;
        }
        let full = std::mem::replace(
            group,
            WriteBatch {
                timestamp,
                rows: vec![row],
                bytes: size,
            },
        );
        self.pending_rows -= full.rows.len();
        Some(full)
    }

    /// Rows waiting in groups.
    pub(crate) fn pending_rows(&self) -> usize {
        self.pending_rows
    }

    /// Every group, ready to send, lowest write timestamp first (so that on a store without
    /// write timestamps, or with one request in flight, a row's writes arrive in order).
    pub(crate) fn drain(&mut self) -> Vec<WriteBatch> {
        self.pending_rows = 0;
        let mut batches: Vec<WriteBatch> = self.groups.drain().map(|(_, batch)| batch).collect();
        batches.sort_by_key(|b| b.timestamp);
        batches
    }
}

#[cfg(test)]
mod tests {
    use scylla::value::CqlValue;

    use super::*;

    fn row(n: i64, bytes: usize) -> EncodedRow {
        EncodedRow {
            values: vec![Some(CqlValue::BigInt(n))],
            bytes,
        }
    }

    #[test]
    fn rows_group_by_partition_and_timestamp() {
        let mut b = Batcher::new(10_000, 100);
        assert!(b.add(b"a", 1, row(1, 10)).is_none());
        assert!(b.add(b"a", 1, row(2, 10)).is_none());
        assert!(b.add(b"a", 2, row(3, 10)).is_none());
        assert!(b.add(b"b", 1, row(4, 10)).is_none());
        assert_eq!(b.pending_rows(), 4);
        let batches: Vec<_> = b
            .drain()
            .into_iter()
            .map(|w| (w.timestamp, w.rows.len()))
            .collect();
        assert_eq!(batches[2], (2, 1), "lowest timestamp first");
        let mut first_two = batches[..2].to_vec();
        first_two.sort();
        assert_eq!(first_two, [(1, 1), (1, 2)]);
        assert_eq!(b.pending_rows(), 0);
    }

    #[test]
    fn a_batch_never_exceeds_the_byte_cap() {
        let cap = 1_000;
        let mut b = Batcher::new(cap, 1_000);
        let mut sent = Vec::new();
        for n in 0..100 {
            sent.extend(b.add(b"k", 7, row(n, 90)));
        }
        sent.extend(b.drain());
        assert!(sent.len() > 1);
        assert!(
            sent.iter().all(|w| w.bytes <= cap),
            "{:?}",
            sent.iter().map(|w| w.bytes).collect::<Vec<_>>()
        );
        let rows: usize = sent.iter().map(|w| w.rows.len()).sum();
        assert_eq!(rows, 100);
        // A row larger than the cap goes alone.
        let mut b = Batcher::new(cap, 1_000);
        assert!(b.add(b"k", 1, row(0, 5_000)).is_none());
        let full = b.add(b"k", 1, row(1, 10)).unwrap();
        assert_eq!(full.rows.len(), 1);
    }

    #[test]
    fn the_row_cap_splits_too() {
        let mut b = Batcher::new(usize::MAX, 3);
        let full: Vec<_> = (0..7).filter_map(|n| b.add(b"k", 1, row(n, 1))).collect();
        assert_eq!(full.len(), 2);
        assert!(full.iter().all(|w| w.rows.len() == 3));
        assert_eq!(b.pending_rows(), 1);
    }
}
