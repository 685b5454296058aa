//! The reading side of a repartition topic: drops records read again, and gives each
//! partition the lowest watermark of the upstream partitions that write to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sluice_engine::{
    BoxError, Counter, Data, PartitionId, PollStatus, SourceItem, SourceOutput, SourcePosition, SourceReader,
    Watermark,
};

use super::envelope::{Envelope, RecordId};

/// What a reader knows of one partition of the repartition topic; its checkpointed state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PartitionMarks {
    /// Per upstream partition, the id of the last record handed on.
    pub(super) applied: BTreeMap<u32, RecordId>,
    /// Per upstream partition, its watermark and whether it is idle.
    pub(super) upstream: BTreeMap<u32, (i64, bool)>,
    /// The watermark last reported for the partition.
    #[serde(skip)]
    pub(super) reported: Option<i64>,
}

impl PartitionMarks {
    /// The partition's watermark: the lowest of its upstream partitions that are not idle,
    /// once every expected one has been heard from. `None` while it cannot be known, or when
    /// every upstream partition is idle.
    pub(super) fn watermark(&self, expected: &[u32]) -> Option<i64> {
        let mut lowest: Option<i64> = None;
        for p in expected {
            match self.upstream.get(p) {
                Some((_, true)) => {}
                Some((wm, false)) => lowest = Some(lowest.map_or(*wm, |l| l.min(*wm))),
                None => return None,
            }
        }
        lowest
    }

    /// Whether every expected upstream partition has ended (sent the largest watermark).
    pub(super) fn all_ended(&self, expected: &[u32]) -> bool {
        expected
            .iter()
            .all(|p| self.upstream.get(p).is_some_and(|(wm, _)| *wm == i64::MAX))
    }

    fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .ok()
            .map(|(m, _)| m)
    }
}

/// A repartition topic's reader around the Kafka reader of its envelopes.
pub(super) struct RepartitionReader<T> {
    pub(super) inner: Box<dyn SourceReader<Envelope<T>>>,
    /// The upstream partitions every partition hears from.
    pub(super) expected: Vec<u32>,
    pub(super) marks: HashMap<PartitionId, PartitionMarks>,
    pub(super) duplicates: std::sync::Arc<Counter>,
    /// Partitions this reader reads, and those every upstream partition has ended.
    owned: BTreeSet<PartitionId>,
    ended: BTreeSet<PartitionId>,
}

impl<T> RepartitionReader<T> {
    pub(super) fn new(
        inner: Box<dyn SourceReader<Envelope<T>>>,
        expected: Vec<u32>,
        duplicates: std::sync::Arc<Counter>,
    ) -> Self {
        RepartitionReader {
            inner,
            expected,
            marks: HashMap::new(),
            duplicates,
            owned: BTreeSet::new(),
            ended: BTreeSet::new(),
        }
    }
}

impl<T: Data> SourceReader<T> for RepartitionReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        self.inner.partitions()
    }

    fn poll(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError> {
        let RepartitionReader {
            inner,
            expected,
            marks,
            duplicates,
            owned,
            ended,
        } = self;
        if !owned.is_empty() && owned.is_subset(ended) {
            return Ok(PollStatus::Finished);
        }
        let capacity = batch.capacity();
        let mut changed: Vec<PartitionId> = Vec::new();
        let mut emit = |item: SourceItem<Envelope<T>>| {
            match item {
                SourceItem::Record {
                    partition,
                    value,
                    location,
                    ..
                } => {
                    let m = marks.entry(partition).or_default();
                    match value {
                        Envelope::Record {
                            upstream,
                            offset,
                            index,
                            ts,
                            value,
                        } => {
                            let id = (offset, index);
                            if m.applied.get(&upstream).is_some_and(|last| id <= *last) {
                                duplicates.inc();
                                return Ok(());
                            }
                            m.applied.insert(upstream, id);
                            if let Some(u) = m.upstream.get_mut(&upstream) {
                                u.1 = false;
                            }
                            match location {
                                Some(location) => batch.record_at(partition, value, Some(ts), location),
                                None => batch.record(partition, value, Some(ts)),
                            }
                        }
                        Envelope::Watermark { upstream, watermark } => {
                            let u = m.upstream.entry(upstream).or_insert((watermark, false));
                            u.0 = u.0.max(watermark);
                            u.1 = false;
                            changed.push(partition);
                        }
                        Envelope::Idle { upstream } => {
                            m.upstream.entry(upstream).or_insert((i64::MIN, true)).1 = true;
                            changed.push(partition);
                        }
                    }
                }
                SourceItem::BadRecord {
                    partition,
                    location,
                    reason,
                } => batch.bad_record(partition, location, reason),
                SourceItem::PartitionStart(p) => {
                    owned.insert(p);
                    changed.push(p);
                    batch.partition_start(p);
                }
                SourceItem::PartitionRevoked(p) => {
                    owned.remove(&p);
                    batch.partition_revoked(p);
                }
                SourceItem::PartitionEnd(p) => batch.partition_end(p),
                SourceItem::PartitionCaughtUp(p) => batch.caught_up(p),
                SourceItem::Watermark(p, wm) => batch.watermark(p, wm),
            }
            Ok(())
        };
        let mut envelopes = SourceOutput::new(&mut emit, capacity);
        let status = inner.poll(&mut envelopes)?;
        changed.sort_unstable();
        changed.dedup();
        for p in changed {
            let Some(m) = marks.get_mut(&p) else { continue };
            if let Some(wm) = m.watermark(expected) {
                if m.reported.is_none_or(|r| wm > r) {
                    m.reported = Some(wm);
                    batch.watermark(p, Watermark(wm));
                }
            }
            // Every upstream partition has ended: nothing more comes to this partition.
            if m.all_ended(expected) && owned.contains(&p) && ended.insert(p) {
                batch.partition_end(p);
            }
        }
        if !owned.is_empty() && owned.is_subset(ended) {
            return Ok(PollStatus::Finished);
        }
        Ok(status)
    }

    fn position(&self) -> SourcePosition {
        let mut position = self.inner.position();
        position.state = position
            .offsets
            .keys()
            .filter_map(|p| self.marks.get(p).map(|m| (*p, m.encode())))
            .collect();
        position
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        for (p, bytes) in &position.state {
            let marks = PartitionMarks::decode(bytes).ok_or_else(|| {
                format!("partition {p}: the checkpoint's deduplication state cannot be read")
            })?;
            self.marks.insert(*p, marks);
        }
        self.inner.seek(position)
    }

    fn provides_watermarks(&self) -> bool {
        true
    }

    fn assignment_known(&self) -> bool {
        self.inner.assignment_known()
    }

    fn pause(&mut self, partitions: &[PartitionId], pause: bool) -> Result<bool, BoxError> {
        self.inner.pause(partitions, pause)
    }

    fn flush(&mut self) -> Result<(), BoxError> {
        self.inner.flush()
    }

    fn keep_alive(&mut self) -> Result<(), BoxError> {
        self.inner.keep_alive()
    }

    fn checkpoint_complete(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        self.inner.checkpoint_complete(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_waits_for_every_upstream_partition_and_skips_idle_ones() {
        let mut m = PartitionMarks::default();
        let expected = [0, 1, 2];
        m.upstream.insert(0, (100, false));
        m.upstream.insert(1, (50, false));
        assert_eq!(m.watermark(&expected), None, "partition 2 not heard from yet");
        m.upstream.insert(2, (10, true));
        assert_eq!(m.watermark(&expected), Some(50), "an idle one holds nothing back");
        m.upstream.insert(1, (50, true));
        m.upstream.insert(0, (100, true));
        assert_eq!(m.watermark(&expected), None, "all idle");
    }

    #[test]
    fn marks_survive_a_checkpoint() {
        let mut m = PartitionMarks::default();
        m.applied.insert(3, (17, 2));
        m.upstream.insert(3, (1_000, false));
        m.reported = Some(1_000);
        let back = PartitionMarks::decode(&m.encode()).unwrap();
        assert_eq!(back.applied, m.applied);
        assert_eq!(back.upstream, m.upstream);
        assert_eq!(back.reported, None);
    }
}
