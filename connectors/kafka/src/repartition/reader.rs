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
    /// Whether the partition was last reported idle.
    #[serde(skip)]
    pub(super) idle_reported: bool,
}

/// Where a partition of the topic stands in event time, by its upstream partitions' marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PartitionTime {
    /// An upstream partition has not been heard from yet: it holds the partition back.
    Unknown,
    /// The lowest watermark of the upstream partitions that are neither idle nor ended
    /// (`i64::MAX` once all have ended).
    At(i64),
    /// Every upstream partition that has not ended is idle.
    Idle,
}

impl PartitionMarks {
    /// Where the partition stands, once every expected upstream partition has been heard
    /// from: an ended one (at the largest watermark) holds nothing back, and neither does an
    /// idle one, unless all that have not ended are idle.
    pub(super) fn time(&self, expected: &[u32]) -> PartitionTime {
        let (mut lowest, mut idle) = (None::<i64>, false);
        for p in expected {
            match self.upstream.get(p) {
                None => return PartitionTime::Unknown,
                Some((wm, _)) if *wm == i64::MAX => {}
                Some((_, true)) => idle = true,
                Some((wm, false)) => lowest = Some(lowest.map_or(*wm, |l| l.min(*wm))),
            }
        }
        match lowest {
            Some(wm) => PartitionTime::At(wm),
            None if idle => PartitionTime::Idle,
            None => PartitionTime::At(i64::MAX),
        }
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
                                if std::mem::take(&mut u.1) {
                                    changed.push(partition);
                                }
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
                SourceItem::PartitionIdle(p) => batch.partition_idle(p),
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
            match m.time(expected) {
                PartitionTime::Unknown => {}
                PartitionTime::Idle => {
                    if !std::mem::replace(&mut m.idle_reported, true) {
                        batch.partition_idle(p);
                    }
                }
                PartitionTime::At(wm) => {
                    // Back from idle, the partition holds event time back again, where it is.
                    let back = std::mem::take(&mut m.idle_reported);
                    if back || m.reported.is_none_or(|r| wm > r) {
                        let wm = m.reported.map_or(wm, |r| r.max(wm));
                        m.reported = Some(wm);
                        batch.watermark(p, Watermark(wm));
                    }
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
    use std::sync::Arc;
    use std::time::Duration;

    use sluice_engine::{JobConfig, Source, SourceContext, WatermarkStrategy};
    use sluice_operators::{Count, KeyedStreamExt, WindowResult, Windows};
    use sluice_testing::{CaptureSink, JobHarness, TestInput};

    use super::*;
    use crate::KafkaConfig;
    use crate::repartition::Repartition;

    #[test]
    fn a_partition_waits_for_every_upstream_partition_and_skips_idle_and_ended_ones() {
        let mut m = PartitionMarks::default();
        let expected = [0, 1, 2];
        m.upstream.insert(0, (100, false));
        m.upstream.insert(1, (50, false));
        assert_eq!(
            m.time(&expected),
            PartitionTime::Unknown,
            "partition 2 not heard from yet"
        );
        m.upstream.insert(2, (10, true));
        assert_eq!(
            m.time(&expected),
            PartitionTime::At(50),
            "an idle one holds nothing back"
        );
        m.upstream.insert(1, (i64::MAX, false));
        assert_eq!(
            m.time(&expected),
            PartitionTime::At(100),
            "an ended one holds nothing back"
        );
        m.upstream.insert(0, (100, true));
        assert_eq!(
            m.time(&expected),
            PartitionTime::Idle,
            "all idle but the ended one: idle, not ended"
        );
        m.upstream.insert(0, (i64::MAX, false));
        m.upstream.insert(2, (i64::MAX, false));
        assert_eq!(m.time(&expected), PartitionTime::At(i64::MAX), "all ended");
        assert!(m.all_ended(&expected));
    }

    /// The envelopes of one repartition partition, as the Kafka reader of the topic would
    /// hand them on (a test input standing in for Kafka).
    type Topic = TestInput<Envelope<i64>>;

    /// A repartition topic's reading side over a [`Topic`], upstream partition 0 only.
    #[derive(Clone)]
    struct RepartitionTestSource(Topic);

    impl Source for RepartitionTestSource {
        type Item = i64;

        fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<i64>>, BoxError> {
            Ok(Box::new(RepartitionReader::new(
                self.0.source().open(ctx)?,
                vec![0],
                Arc::new(Counter::default()),
            )))
        }
    }

    fn record(offset: u64, ts: i64) -> Envelope<i64> {
        Envelope::Record {
            upstream: 0,
            offset,
            index: 0,
            ts,
            value: ts,
        }
    }

    fn watermark(watermark: i64) -> Envelope<i64> {
        Envelope::Watermark {
            upstream: 0,
            watermark,
        }
    }

    /// Writes `envelopes` to the topic's partition.
    fn write(topic: &Topic, envelopes: impl IntoIterator<Item = Envelope<i64>>) {
        envelopes.into_iter().for_each(|e| topic.push(0, e));
    }

    /// A job counting per second what it reads from the repartition partition `topic` and
    /// from `other` (whose watermark follows its values), started.
    fn counting_job(
        topic: &Topic,
        other: &TestInput<i64>,
        out: &CaptureSink<WindowResult<u8, u64>>,
    ) -> JobHarness {
        let (source, other_source, sink) =
            (RepartitionTestSource(topic.clone()), other.source(), out.clone());
        let strategy = Repartition::new(KafkaConfig::new("unused:9092"), "t", 1, &["up"]).watermarks();
        let mut h = JobHarness::new(JobConfig::new("quiet-repartition").workers(1), move |b| {
            let re_keyed = b.source("re_keyed_read", source.clone(), strategy.clone());
            let other = b.source(
                "other",
                other_source.clone(),
                WatermarkStrategy::monotonous().with_timestamps(|ts: &i64| *ts),
            );
            re_keyed
                .union("both", &[&other])
                .key_by("one_key", |_| 0u8)
                .window("counts", Windows::tumbling(Duration::from_secs(1)))
                .aggregate(Count)
                .sink("out", sink.clone());
            Ok(())
        })
        .expect("job");
        h.start().expect("start");
        h
    }

    fn counts(out: &CaptureSink<WindowResult<u8, u64>>) -> Vec<(i64, u64)> {
        let mut counts: Vec<(i64, u64)> = out.values().iter().map(|w| (w.window.start, w.value)).collect();
        counts.sort_unstable();
        counts
    }

    /// The topic's partition gets watermark 0 and a record at 500, then `after`; the other
    /// input a record at 500 and one at 100,000; the job settles.
    fn both_at_500_and_the_other_at_100_000(
        h: &mut JobHarness,
        topic: &Topic,
        other: &TestInput<i64>,
        after: &[Envelope<i64>],
    ) {
        write(topic, [watermark(0), record(0, 500)]);
        write(topic, after.iter().cloned());
        other.push(0, 500);
        other.push(0, 100_000);
        h.settle().expect("settle");
    }

    #[test]
    fn a_quiet_repartition_partition_holds_event_time_back_until_its_writers_say_idle() {
        let (topic, other, out) = (Topic::new(1), TestInput::<i64>::new(1), CaptureSink::new());
        let mut h = counting_job(&topic, &other, &out);
        both_at_500_and_the_other_at_100_000(&mut h, &topic, &other, &[]);
        // The upstream task is between owners for longer than any idleness timeout: the
        // topic is quiet, but its writers have not said that nothing comes.
        for _ in 0..6 {
            h.advance(Duration::from_secs(10)).expect("advance");
        }
        assert_eq!(counts(&out), vec![], "event time is held back");
        write(&topic, [record(1, 1_500), watermark(i64::MAX)]);
        h.settle().expect("settle");
        topic.end_all();
        other.end_all();
        h.finish().expect("finish");
        assert_eq!(
            counts(&out),
            vec![(0, 2), (1_000, 1), (100_000, 1)],
            "the record written after the quiet spell is counted, not dropped as late"
        );
    }

    #[test]
    fn a_repartition_partition_whose_writers_say_idle_holds_nothing_back_until_they_write_again() {
        let (topic, other, out) = (Topic::new(1), TestInput::<i64>::new(1), CaptureSink::new());
        let mut h = counting_job(&topic, &other, &out);
        both_at_500_and_the_other_at_100_000(&mut h, &topic, &other, &[Envelope::Idle { upstream: 0 }]);
        assert_eq!(counts(&out), vec![(0, 2)], "the other input's event time leads");
        // Back from idle: it holds event time back again, at its own watermark.
        write(&topic, [record(1, 150_000)]);
        other.push(0, 200_000);
        h.settle().expect("settle");
        assert_eq!(counts(&out), vec![(0, 2)], "held back by the partition again");
        write(&topic, [watermark(160_000)]);
        h.settle().expect("settle");
        assert_eq!(counts(&out), vec![(0, 2), (100_000, 1), (150_000, 1)]);
        write(&topic, [watermark(i64::MAX)]);
        topic.end_all();
        other.end_all();
        h.finish().expect("finish");
        assert_eq!(
            counts(&out),
            vec![(0, 2), (100_000, 1), (150_000, 1), (200_000, 1)]
        );
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
