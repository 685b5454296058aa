//! Partition ids of a multi-topic source, and where partitions start.

use super::*;

/// Encodes a topic index and partition into one id.
pub(crate) fn partition_id(topic_index: usize, partition: i32) -> PartitionId {
    PartitionId(((topic_index as u32) << 20) | (partition as u32 & 0xF_FFFF))
}

/// The topic index and partition behind a [`partition_id`].
pub(super) fn split_partition_id(id: PartitionId) -> (usize, i32) {
    ((id.0 >> 20) as usize, (id.0 & 0xF_FFFF) as i32)
}

/// The partitions worker `worker` of `workers` reads when the source assigns them itself:
/// partition *i* of all the topics' partitions (`counts[t]` of topic `t`; only the numbers in
/// `only`, if given), in order, if *i* mod `workers` is `worker`.
pub(crate) fn static_share<'a>(
    topics: &'a [Arc<str>],
    counts: &[i32],
    only: Option<&[i32]>,
    worker: usize,
    workers: usize,
) -> Vec<(&'a str, i32)> {
    topics
        .iter()
        .zip(counts)
        .flat_map(|(topic, n)| (0..*n).map(move |partition| (&**topic, partition)))
        .filter(|(_, partition)| only.is_none_or(|only| only.contains(partition)))
        .enumerate()
        .filter(|(i, _)| i % workers.max(1) == worker)
        .map(|(_, owned)| owned)
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_id_names_its_topic_and_partition_and_no_other() {
        let mut seen = std::collections::HashSet::new();
        for topic in [0, 1, 7] {
            for partition in [0, 1, 99, 0xF_FFFF] {
                let id = partition_id(topic, partition);
                assert_eq!(split_partition_id(id), (topic, partition));
                assert!(seen.insert(id), "{topic}/{partition} shares id {id:?}");
            }
        }
    }

    #[test]
    fn the_static_share_gives_every_partition_to_exactly_one_worker_round_robin() {
        let topics: Vec<Arc<str>> = vec![Arc::from("orders"), Arc::from("page_views")];
        let counts = [3, 2];
        let shares: Vec<_> = (0..2)
            .map(|w| static_share(&topics, &counts, None, w, 2))
            .collect();
        assert_eq!(shares[0], [("orders", 0), ("orders", 2), ("page_views", 1)]);
        assert_eq!(shares[1], [("orders", 1), ("page_views", 0)]);
        let idle = static_share(&topics, &counts, None, 5, 6);
        assert!(idle.is_empty(), "six workers, five partitions: {idle:?}");
        let task = static_share(&topics, &counts, Some(&[1]), 0, 1);
        assert_eq!(
            task,
            [("orders", 1), ("page_views", 1)],
            "partition 1 of each topic"
        );
    }

    #[test]
    fn restored_positions_become_starts_of_known_topics_only() {
        let offsets = StartOffsets::default();
        let topics = vec!["orders".to_string()];
        let position = SourcePosition::of_offsets([(partition_id(0, 2), 40), (partition_id(3, 1), 7)]);
        add_starts(&offsets, &topics, &position, StartKind::Restored);
        assert_eq!(offsets.get("orders", 2), Some(40));
        assert_eq!(offsets.get("orders", 1), None);
    }
}
