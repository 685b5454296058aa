//! Partition ids of a multi-topic source, and where partitions start.

use super::*;

/// Encodes a topic index and partition into one id.
pub(super) fn partition_id(topic_index: usize, partition: i32) -> PartitionId {
    PartitionId(((topic_index as u32) << 20) | (partition as u32 & 0xF_FFFF))
}

/// The topic index and partition behind a [`partition_id`].
pub(super) fn split_partition_id(id: PartitionId) -> (usize, i32) {
    ((id.0 >> 20) as usize, (id.0 & 0xF_FFFF) as i32)
}

/// Records the starts of the partitions `position` names, of `kind`.
pub(super) fn add_starts(
    offsets: &StartOffsets,
    topics: &[String],
    position: &SourcePosition,
    kind: StartKind,
) {
    for (id, offset) in &position.offsets {
        let (ti, partition) = split_partition_id(*id);
        if let Some(topic) = topics.get(ti) {
            offsets.set(topic, partition, kind, *offset as i64);
        }
    }
}
