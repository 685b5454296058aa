use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use sluice_engine::{
    BadRecordPolicy, BoxError, Counter, Data, IdleVote, Message, PartitionId, PollStatus, RecordLocation,
    Source, SourceBatch, SourceContext, SourcePosition, SourceReader,
};

use super::config::KafkaConfig;
use super::dead_letter::{DeadLetterWriter, PoisonRecord};
use super::dead_lettered::{DeadLetterLog, already_dead_lettered};
use super::format::{Json, RecordDeserializer};
use super::gaps::OffsetGaps;
pub use super::start::StartFrom;
use super::start::{StartKind, StartOffsets, resolve};

/// Most records a busy reader polls ahead (one per keep-alive tick) to stay in its group.
const MAX_STASH: usize = 1_024;

/// What a Kafka source does with a record its format cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PoisonPolicy {
    /// Stop the job; the error names topic, partition and offset.
    #[default]
    Fail,
    /// Skip it, counted in the source's `bad_records_skipped` metric.
    Skip,
    /// Write it unchanged to this topic (created if missing), with the error and its topic,
    /// partition and offset as headers (`sluice.error`, `sluice.topic`, `sluice.partition`,
    /// `sluice.offset`); counted in `dead_lettered`.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
}

/// Reads Kafka topics with one consumer per worker. By default the source spreads the
/// partitions over its workers itself (partition *i* of the topics' partitions, in order, goes
/// to worker *i* mod workers), as a job's checkpoints hold every partition's offset anyway: no
/// group rebalance can stall the job or move a partition between workers mid-stream (which
/// could let the watermark pass records still to be read). With
/// [`KafkaSource::group_assignment`] the consumer group assigns them instead and rebalances
/// them when members come and go. The group id names the job to the brokers either way: offsets
/// of completed checkpoints are committed to it for lag monitoring, never automatically.
///
/// Each worker's consumer polls without blocking from the worker's loop, decodes each record
/// in place and hands it downstream. While downstream is too busy, the worker pauses its
/// partitions and keeps polling, so the group does not evict it; memory is bounded by
/// `queued.max.messages.kbytes` (set with [`KafkaSource::max_queued_kbytes`]).
///
/// Partition ids are `topic index << 20 | partition`, the topic index being the position
/// of the topic in [`KafkaSource::new`]'s list.
pub struct KafkaSource<T> {
    config: KafkaConfig,
    group: String,
    topics: Vec<String>,
    format: Arc<dyn RecordDeserializer<T>>,
    poison: PoisonPolicy,
    start: StartFrom,
    start_offsets: SourcePosition,
    exit_when_idle: Option<Duration>,
    max_queued_kbytes: u32,
    assignment: Assignment,
}

/// Who assigns partitions to the source's consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assignment {
    /// The source, round robin over its workers.
    Static,
    /// The consumer group.
    Group,
}

impl<T> Clone for KafkaSource<T> {
    fn clone(&self) -> Self {
        KafkaSource {
            config: self.config.clone(),
            group: self.group.clone(),
            topics: self.topics.clone(),
            format: Arc::clone(&self.format),
            poison: self.poison.clone(),
            start: self.start,
            start_offsets: self.start_offsets.clone(),
            exit_when_idle: self.exit_when_idle,
            max_queued_kbytes: self.max_queued_kbytes,
            assignment: self.assignment,
        }
    }
}

impl<T: Data> KafkaSource<T> {
    /// Reads `topics` in consumer group `group`, decoding records with `format`.
    pub fn new(
        config: KafkaConfig,
        group: impl Into<String>,
        topics: &[&str],
        format: impl RecordDeserializer<T>,
    ) -> Self {
        KafkaSource {
            config,
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            format: Arc::new(format),
            poison: PoisonPolicy::Fail,
            start: StartFrom::default(),
            start_offsets: SourcePosition::default(),
            exit_when_idle: None,
            max_queued_kbytes: 16 * 1024,
            assignment: Assignment::Static,
        }
    }

    /// Reads JSON payloads.
    pub fn json(config: KafkaConfig, group: impl Into<String>, topics: &[&str]) -> Self
    where
        T: serde::de::DeserializeOwned,
    {
        Self::new(config, group, topics, Json)
    }

    /// What to do with records that cannot be decoded (default: fail).
    pub fn on_poison(mut self, policy: PoisonPolicy) -> Self {
        self.poison = policy;
        self
    }

    /// Where partitions without an engine-given position start.
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Starts the partitions named in `position` at its offsets (e.g. from a checkpoint).
    pub fn start_at(mut self, position: SourcePosition) -> Self {
        self.start_offsets = position;
        self
    }

    /// Ends the input once every partition of the topics is assigned, no rebalance happened
    /// and no worker received a record for `idle`, as if the topics had ended: open windows
    /// are emitted. (Brokers' end offsets are not used: some report them low.) In a job with
    /// several sources, it waits until every other source is idle too (or has ended): a quiet
    /// side of a join does not end while the other side is still being read. A source without
    /// an idle limit never counts as idle.
    pub fn exit_when_idle(mut self, idle: Duration) -> Self {
        self.exit_when_idle = Some(idle);
        self
    }

    /// Lets the consumer group assign the partitions (subscription) instead of the source:
    /// partitions added to the topics while the job runs are then picked up, at the price of
    /// rebalances, during which reading stops and partitions may change workers.
    pub fn group_assignment(mut self) -> Self {
        self.assignment = Assignment::Group;
        self
    }

    /// Bytes librdkafka may prefetch per consumer, in KiB (default 16 MiB).
    pub fn max_queued_kbytes(mut self, kbytes: u32) -> Self {
        self.max_queued_kbytes = kbytes.max(1);
        self
    }

    fn consumer_config(&self) -> rdkafka::ClientConfig {
        let reset = match self.start {
            StartFrom::CommittedOrLatest | StartFrom::Latest => "latest",
            StartFrom::CommittedOrEarliest | StartFrom::Earliest => "earliest",
        };
        let queued = self.max_queued_kbytes.to_string();
        self.config.client_config(&[
            ("group.id", self.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", reset),
            ("fetch.wait.max.ms", "10"),
            ("fetch.queue.backoff.ms", "10"),
            ("queued.max.messages.kbytes", queued.as_str()),
            // End-of-partition events say a partition is caught up (for idleness).
            ("enable.partition.eof", "true"),
        ])
    }
}

/// Encodes a topic index and partition into one id.
fn partition_id(topic_index: usize, partition: i32) -> PartitionId {
    PartitionId(((topic_index as u32) << 20) | (partition as u32 & 0xF_FFFF))
}

/// The topic index and partition behind a [`partition_id`].
fn split_partition_id(id: PartitionId) -> (usize, i32) {
    ((id.0 >> 20) as usize, (id.0 & 0xF_FFFF) as i32)
}

/// A rebalance seen by the consumer, to be turned into partition starts and revocations.
enum Rebalanced {
    /// Partitions taken, with the offset each starts at.
    Assigned(Vec<(String, i32, i64)>),
    Revoked(Vec<(String, i32)>),
}

/// Applies start offsets on assignment, hands partitions over on revocation and reports
/// rebalances to the reader.
struct ReaderContext {
    start: StartFrom,
    /// Where this reader reports its assignment, as soon as the group changes it.
    progress: Arc<GroupProgress>,
    /// This reader's partitions, as the `assigned_partitions` gauge.
    assigned: Arc<sluice_engine::Gauge>,
    worker: usize,
    offsets: Arc<StartOffsets>,
    /// Why taking an assignment failed, for the next poll to report.
    failure: Mutex<Option<String>>,
    events: Mutex<Vec<Rebalanced>>,
    /// Whether `events` holds something (checked without the lock on every record).
    has_events: AtomicBool,
}

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::context::log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition is news (it is caught up), not an error.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ReaderContext {
    /// Takes `tpl` as this reader's partitions, each starting where the run says (a restored
    /// checkpoint or the previous owner), else per [`StartFrom`], looked up as a concrete
    /// offset. A failure is kept for the reader's next poll to report.
    fn take(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        if let Err(e) = self.try_take(consumer, tpl) {
            tracing::error!(error = %e, "cannot take the assigned partitions");
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    }

    fn try_take(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) -> Result<(), String> {
        let partitions = partitions_of(tpl);
        let unknown: Vec<(String, i32)> = partitions
            .iter()
            .filter(|(t, p)| self.offsets.get(t, *p).is_none())
            .cloned()
            .collect();
        let resolved = resolve(consumer, self.start, &unknown)?;
        let mut starts = Vec::with_capacity(partitions.len());
        for (topic, partition) in &partitions {
            let offset = match self.offsets.get(topic, *partition) {
                Some(o) => o,
                None => unknown
                    .iter()
                    .position(|(t, p)| t == topic && p == partition)
                    .and_then(|i| resolved.get(i).copied())
                    .ok_or_else(|| format!("no start offset for {topic}/{partition}"))?,
            };
            tpl.set_partition_offset(topic, *partition, Offset::Offset(offset))
                .map_err(|e| format!("cannot set the start of {topic}/{partition}: {e}"))?;
            starts.push((topic.clone(), *partition, offset));
        }
        consumer
            .assign(tpl)
            .map_err(|e| format!("cannot take partitions {partitions:?}: {e}"))?;
        self.progress.assigned[self.worker].store(tpl.count(), Ordering::SeqCst);
        self.assigned.set(tpl.count() as i64);
        self.progress.rebalanced();
        tracing::info!(partitions = ?starts, "partitions assigned");
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.push(Rebalanced::Assigned(starts));
        self.has_events.store(true, Ordering::Release);
        Ok(())
    }
}

impl ConsumerContext for ReaderContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.take(consumer, tpl);
            return;
        }
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            tracing::warn!(?err, "rebalance error; giving up the assignment");
        }
        let revoked = partitions_of(tpl);
        tracing::info!(partitions = ?revoked, "partitions revoked");
        hand_over(consumer, &revoked, &self.offsets);
        self.progress.assigned[self.worker].store(0, Ordering::SeqCst);
        self.assigned.set(0);
        self.progress.rebalanced();
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.push(Rebalanced::Revoked(revoked));
        self.has_events.store(true, Ordering::Release);
        drop(events);
        if let Err(e) = consumer.unassign() {
            tracing::error!(error = %e, "cannot give up the revoked partitions");
        }
    }
}

/// Records where the next owner of each revoked partition continues: after the last record
/// this reader polled. Records of it still in the stash are handed downstream by this reader
/// at its next poll. (Dropping them for the next owner to read again loses them when the
/// partition comes back to this same consumer: librdkafka then resumes at its own fetch
/// position, past them.) Nothing is committed to the group: only a completed checkpoint
/// covers what was read.
fn hand_over(consumer: &BaseConsumer<ReaderContext>, revoked: &[(String, i32)], offsets: &StartOffsets) {
    let positions = match consumer.position() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read positions of revoked partitions");
            return;
        }
    };
    for e in positions.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        if !revoked.iter().any(|(t, p)| t == topic && *p == partition) {
            continue;
        }
        let Offset::Offset(next) = e.offset() else {
            // Nothing was read since the assignment: the next owner starts where this one did.
            continue;
        };
        tracing::debug!(%topic, partition, next, "handing over a revoked partition");
        offsets.set(topic, partition, StartKind::HandedOver, next);
    }
}

/// What the readers of one source know together, to decide that the input is finished: every
/// partition of the topics is assigned to some reader (each reader publishes the size of its
/// current assignment), no rebalance happened for the idle time, and every reader has been
/// idle for it.
struct GroupProgress {
    idle: Vec<AtomicBool>,
    assigned: Vec<std::sync::atomic::AtomicUsize>,
    /// Partitions of the subscribed topics, from the metadata (read when first needed).
    total_partitions: std::sync::OnceLock<usize>,
    last_rebalance: Mutex<Instant>,
}

impl GroupProgress {
    fn rebalanced(&self) {
        *self.last_rebalance.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn settled_for(&self, limit: Duration) -> bool {
        let assigned: usize = self.assigned.iter().map(|a| a.load(Ordering::SeqCst)).sum();
        let covered = self
            .total_partitions
            .get()
            .is_some_and(|total| assigned >= *total);
        covered
            && self
                .last_rebalance
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= limit
    }
}

/// Number of partitions of each of `topics`, or `None` if the metadata cannot be read or a
/// topic does not exist (yet).
fn count_partitions(consumer: &BaseConsumer<ReaderContext>, topics: &[Arc<str>]) -> Option<Vec<i32>> {
    let mut counts = Vec::with_capacity(topics.len());
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == &**topic)?
            .partitions()
            .len();
        if partitions == 0 {
            return None;
        }
        counts.push(i32::try_from(partitions).ok()?);
    }
    Some(counts)
}

struct Counters {
    dead_lettered: Arc<Counter>,
    revoked: Arc<Counter>,
    max_poll_exceeded: Arc<Counter>,
}

impl<T: Data> Source for KafkaSource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let offsets = ctx.shared(StartOffsets::default);
        add_starts(&offsets, &self.topics, &self.start_offsets, StartKind::Configured);
        let workers = ctx.workers;
        let context_votes = ctx.shared(|| GroupProgress {
            idle: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            assigned: (0..workers)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
            total_partitions: std::sync::OnceLock::new(),
            last_rebalance: Mutex::new(Instant::now()),
        });
        let context = ReaderContext {
            start: self.start,
            progress: Arc::clone(&context_votes),
            assigned: ctx.gauge("assigned_partitions"),
            worker: ctx.worker.0,
            offsets,
            failure: Mutex::new(None),
            events: Mutex::new(Vec::new()),
            has_events: AtomicBool::new(false),
        };
        let consumer: BaseConsumer<ReaderContext> =
            self.consumer_config().create_with_context(context).map_err(|e| {
                Message(format!(
                    "cannot create a Kafka consumer for {}: {e}",
                    self.config.brokers()
                ))
            })?;
        if self.assignment == Assignment::Group {
            let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&topics)
                .map_err(|e| Message(format!("cannot subscribe to {topics:?}: {e}")))?;
        }
        let dead_letter = match &self.poison {
            PoisonPolicy::DeadLetter { topic } => {
                // What an earlier run of this job wrote is not written again.
                let written = ctx
                    .shared(DeadLetterLog::default)
                    .get_or_scan(|| already_dead_lettered(&self.config, topic, &self.group, &self.topics))?;
                Some(
                    DeadLetterWriter::open(&self.config, topic)?
                        .for_group(&self.group)
                        .skipping(written),
                )
            }
            _ => None,
        };
        let votes = Arc::clone(&context_votes);
        Ok(Box::new(KafkaReader {
            consumer,
            state: ReaderState {
                topics: self.topics.iter().map(|t| Arc::from(t.as_str())).collect(),
                format: Arc::clone(&self.format),
                poison: self.poison.clone(),
                dead_letter,
                positions: Vec::new(),
                assigned: Vec::new(),
                stash: VecDeque::new(),
                exit_when_idle: self.exit_when_idle,
                last_record: Instant::now(),
                votes,
                job_idle: ctx.idle_vote(),
                awaiting_partitions: self.assignment == Assignment::Static,
                assignment_known: false,
                gaps: OffsetGaps::new(ctx),
                next_assignment_try: Instant::now(),
                assignment_tries: 0,
                worker: ctx.worker.0,
                workers,
                finished: false,
                counters: Counters {
                    dead_lettered: ctx.counter("dead_lettered"),
                    revoked: ctx.counter("partitions_revoked"),
                    max_poll_exceeded: ctx.counter("max_poll_exceeded"),
                },
            },
        }))
    }

    fn bad_record_policy(&self) -> BadRecordPolicy {
        match self.poison {
            PoisonPolicy::Fail => BadRecordPolicy::Fail,
            // Dead-lettering happens in the reader; what reaches the engine (unusable
            // timestamps) is skipped and counted.
            PoisonPolicy::Skip | PoisonPolicy::DeadLetter { .. } => BadRecordPolicy::Skip,
        }
    }
}

struct KafkaReader<T> {
    consumer: BaseConsumer<ReaderContext>,
    state: ReaderState<T>,
}

/// Everything but the consumer, so records borrowed from the consumer can be handled.
struct ReaderState<T> {
    topics: Vec<Arc<str>>,
    format: Arc<dyn RecordDeserializer<T>>,
    poison: PoisonPolicy,
    dead_letter: Option<DeadLetterWriter>,
    /// Next offset per partition, for the engine.
    positions: Vec<(PartitionId, u64)>,
    assigned: Vec<(String, i32)>,
    /// Records polled by `keep_alive` while downstream was busy, at most [`MAX_STASH`].
    stash: VecDeque<OwnedMessage>,
    exit_when_idle: Option<Duration>,
    last_record: Instant,
    votes: Arc<GroupProgress>,
    /// Whether every source of the job is idle too.
    job_idle: IdleVote,
    /// Whether this reader still has to take its share of the partitions (static assignment).
    awaiting_partitions: bool,
    /// Whether the reader has been given its partitions (possibly none).
    assignment_known: bool,
    /// Offsets skipped or read twice.
    gaps: OffsetGaps,
    next_assignment_try: Instant,
    assignment_tries: u32,
    worker: usize,
    workers: usize,
    finished: bool,
    counters: Counters,
}

impl<T: Data> ReaderState<T> {
    fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| &**t == topic)
    }

    /// Topic and partition of `id`, if this reader is assigned it now.
    fn owned(&self, id: PartitionId) -> Option<(&str, i32)> {
        let (ti, partition) = split_partition_id(id);
        let topic = self.topics.get(ti)?;
        self.assigned
            .iter()
            .any(|(t, p)| **t == **topic && *p == partition)
            .then_some((&**topic, partition))
    }

    fn apply_rebalances(&mut self, context: &ReaderContext, batch: &mut SourceBatch<'_, T>) {
        if !context.has_events.swap(false, Ordering::Acquire) {
            return;
        }
        let events = std::mem::take(&mut *context.events.lock().unwrap_or_else(|p| p.into_inner()));
        for event in events {
            match event {
                Rebalanced::Assigned(partitions) => {
                    self.votes.rebalanced();
                    self.assignment_known = true;
                    for (topic, partition, start) in partitions {
                        if let Some(ti) = self.topic_index(&topic) {
                            let id = partition_id(ti, partition);
                            batch.partition_start(id);
                            // Every assigned partition has a position from the start, so a
                            // checkpoint records where it stands before it delivers anything.
                            let start = start.max(0) as u64;
                            match self.positions.iter_mut().find(|(p, _)| *p == id) {
                                Some(entry) => entry.1 = start,
                                None => self.positions.push((id, start)),
                            }
                        }
                        if !self.assigned.contains(&(topic.clone(), partition)) {
                            self.assigned.push((topic, partition));
                        }
                    }
                    self.last_record = Instant::now();
                }
                Rebalanced::Revoked(partitions) => {
                    self.votes.rebalanced();
                    self.assignment_known = true;
                    for (topic, partition) in partitions {
                        if let Some(ti) = self.topic_index(&topic) {
                            batch.partition_revoked(partition_id(ti, partition));
                            self.counters.revoked.inc();
                        }
                        self.assigned.retain(|p| p.0 != topic || p.1 != partition);
                    }
                }
            }
        }
    }

    fn handle<M: rdkafka::message::Message>(
        &mut self,
        m: &M,
        batch: &mut SourceBatch<'_, T>,
    ) -> Result<(), BoxError> {
        // With one topic there is nothing to look up (and reading the name costs a UTF-8 check).
        let ti = if self.topics.len() == 1 {
            0
        } else {
            match self.topic_index(m.topic()) {
                Some(ti) => ti,
                None => return Ok(()),
            }
        };
        let id = partition_id(ti, m.partition());
        let next = (m.offset() + 1).max(0) as u64;
        match self.positions.iter_mut().find(|(p, _)| *p == id) {
            Some(entry) => {
                let expected = entry.1;
                entry.1 = next;
                if expected != m.offset() as u64 {
                    self.gaps
                        .note(&self.topics[ti], m.partition(), expected, m.offset());
                }
            }
            None => self.positions.push((id, next)),
        }
        let location = || {
            RecordLocation::new(
                Arc::clone(&self.topics[ti]),
                m.partition().max(0) as u32,
                m.offset().max(0) as u64,
                |l, f| {
                    write!(
                        f,
                        "topic {} partition {} offset {}",
                        l.source, l.partition, l.position
                    )
                },
            )
        };
        match self.format.deserialize(m.key(), m.payload()) {
            Ok(value) => {
                batch.record_at(id, value, m.timestamp().to_millis(), location());
                Ok(())
            }
            Err(reason) => match (&self.poison, &self.dead_letter) {
                (PoisonPolicy::DeadLetter { .. }, Some(dlq)) => {
                    let written = dlq.write(&PoisonRecord {
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key(),
                        payload: m.payload(),
                        error: &reason,
                    })?;
                    if written {
                        self.counters.dead_lettered.inc();
                    }
                    Ok(())
                }
                _ => {
                    batch.bad_record(id, location(), reason);
                    Ok(())
                }
            },
        }
    }

    /// Takes this worker's share of the topics' partitions once their metadata is known:
    /// partition *i* of all the topics' partitions, in order, if *i* mod workers is this
    /// worker. Whether it did.
    fn assign_static(&mut self, consumer: &BaseConsumer<ReaderContext>) -> bool {
        if Instant::now() < self.next_assignment_try {
            return false;
        }
        let Some(counts) = count_partitions(consumer, &self.topics) else {
            self.assignment_tries += 1;
            if self.assignment_tries == 5 && self.worker == 0 {
                tracing::warn!(topics = ?self.topics, "waiting for the topics' metadata (do they exist?)");
            }
            self.next_assignment_try = Instant::now() + Duration::from_secs(1);
            return false;
        };
        let _ = self
            .votes
            .total_partitions
            .set(counts.iter().sum::<i32>() as usize);
        let mut mine = TopicPartitionList::new();
        let all = self
            .topics
            .iter()
            .zip(&counts)
            .flat_map(|(topic, n)| (0..*n).map(move |partition| (topic, partition)));
        for (i, (topic, partition)) in all.enumerate() {
            if i % self.workers == self.worker {
                mine.add_partition(topic, partition);
            }
        }
        consumer.context().take(consumer, &mut mine);
        self.awaiting_partitions = false;
        true
    }

    /// Marks as caught up the partitions numbered `partition` that this reader has read to
    /// their end (librdkafka says which partition number reached its end, not of which topic).
    fn reached_end(
        &self,
        consumer: &BaseConsumer<ReaderContext>,
        partition: i32,
        batch: &mut SourceBatch<'_, T>,
    ) {
        let owned: Vec<&(String, i32)> = self.assigned.iter().filter(|(_, p)| *p == partition).collect();
        for (topic, p) in &owned {
            let Some(ti) = self.topic_index(topic) else {
                continue;
            };
            let id = partition_id(ti, *p);
            let at_end = owned.len() == 1
                || consumer
                    .fetch_watermarks(topic, *p, Duration::from_secs(1))
                    .is_ok_and(|(_, high)| {
                        self.positions
                            .iter()
                            .any(|(q, next)| *q == id && *next as i64 >= high)
                    });
            if at_end {
                batch.caught_up(id);
            }
        }
    }

    /// Ends the input once every reader of the source has been idle long enough.
    fn idle_exit(
        &mut self,
        consumer: &BaseConsumer<ReaderContext>,
        batch: &mut SourceBatch<'_, T>,
    ) -> Result<bool, BoxError> {
        let Some(limit) = self.exit_when_idle else {
            return Ok(false);
        };
        if self.votes.total_partitions.get().is_none() {
            // Without the partition count nothing proves every partition is being read.
            match count_partitions(consumer, &self.topics) {
                Some(counts) => {
                    let _ = self
                        .votes
                        .total_partitions
                        .set(counts.iter().sum::<i32>() as usize);
                }
                None => return Ok(false),
            }
        }
        let idle = self.last_record.elapsed() >= limit;
        self.votes.idle[self.worker].store(idle, Ordering::SeqCst);
        let source_idle =
            idle && self.votes.settled_for(limit) && self.votes.idle.iter().all(|v| v.load(Ordering::SeqCst));
        // One quiet source of a join must not end while the other is still being read.
        if !self.job_idle.vote(source_idle) || !source_idle {
            return Ok(false);
        }
        if let Some(dlq) = &self.dead_letter {
            dlq.flush()?;
        }
        for (topic, partition) in std::mem::take(&mut self.assigned) {
            if let Some(ti) = self.topic_index(&topic) {
                batch.partition_end(partition_id(ti, partition));
            }
        }
        self.finished = true;
        Ok(true)
    }
}

/// Records the starts of the partitions `position` names, of `kind`.
fn add_starts(offsets: &StartOffsets, topics: &[String], position: &SourcePosition, kind: StartKind) {
    for (id, offset) in &position.offsets {
        let (ti, partition) = split_partition_id(*id);
        if let Some(topic) = topics.get(ti) {
            offsets.set(topic, partition, kind, *offset as i64);
        }
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumptionFatal(_) | KafkaError::Subscription(_) | KafkaError::ClientCreation(_)
    )
}

impl<T: Data> SourceReader<T> for KafkaReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        // Partitions are announced as the reader takes them (first poll, or the group's
        // assignment).
        Vec::new()
    }

    fn poll(&mut self, batch: &mut SourceBatch<'_, T>) -> Result<PollStatus, BoxError> {
        let Self { consumer, state } = self;
        if state.finished {
            return Ok(PollStatus::Finished);
        }
        if state.awaiting_partitions && !state.assign_static(consumer) {
            return Ok(PollStatus::Pending);
        }
        if let Some(e) = consumer
            .context()
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(Message(e).into());
        }
        // Records polled while downstream was busy go first: they were read before any
        // rebalance seen since.
        let mut got = 0;
        for m in std::mem::take(&mut state.stash) {
            state.handle(&m, batch)?;
            got += 1;
        }
        state.apply_rebalances(consumer.context(), batch);
        while !batch.is_full() {
            let polled = consumer.poll(Duration::ZERO);
            // Rebalance callbacks run inside poll: announce partitions before their records.
            state.apply_rebalances(consumer.context(), batch);
            match polled {
                None => break,
                Some(Ok(m)) => {
                    state.handle(&m, batch)?;
                    got += 1;
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    state.reached_end(consumer, partition, batch)
                }
                Some(Err(e)) if is_fatal(&e) => {
                    return Err(Message(format!("Kafka consumer failed: {e}")).into());
                }
                Some(Err(e)) => {
                    if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PollExceeded) {
                        state.counters.max_poll_exceeded.inc();
                    }
                    tracing::warn!(error = %e, "Kafka consumer error; retrying");
                    break;
                }
            }
        }
        if let Some(dlq) = &state.dead_letter {
            dlq.check()?;
        }
        if got > 0 {
            state.last_record = Instant::now();
        }
        if got == 0 && state.idle_exit(consumer, batch)? {
            return Ok(PollStatus::Finished);
        }
        Ok(if got > 0 {
            PollStatus::Ready
        } else {
            PollStatus::Pending
        })
    }

    fn position(&self) -> SourcePosition {
        SourcePosition {
            offsets: self.state.positions.iter().copied().collect(),
        }
    }

    fn assignment_known(&self) -> bool {
        self.state.assignment_known
    }

    fn flush(&mut self) -> Result<(), BoxError> {
        match &self.state.dead_letter {
            Some(dlq) => dlq.flush(),
            None => Ok(()),
        }
    }

    fn pause(&mut self, partitions: &[PartitionId], pause: bool) -> Result<bool, BoxError> {
        let mut tpl = TopicPartitionList::new();
        for id in partitions {
            if let Some((topic, partition)) = self.state.owned(*id) {
                tpl.add_partition(topic, partition);
            }
        }
        if tpl.count() > 0 {
            // librdkafka drops what it prefetched of a paused partition and fetches again from
            // the next offset not yet consumed when it is resumed.
            match pause {
                true => self.consumer.pause(&tpl),
                false => self.consumer.resume(&tpl),
            }
            .map_err(|e| Message(format!("cannot pause or resume partitions {partitions:?}: {e}")))?;
        }
        Ok(true)
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let topics: Vec<String> = self.state.topics.iter().map(|t| t.to_string()).collect();
        add_starts(
            &self.consumer.context().offsets,
            &topics,
            position,
            StartKind::Restored,
        );

        for (id, offset) in &position.offsets {
            if let Some((topic, partition)) = self.state.owned(*id) {
                self.consumer
                    .seek(
                        topic,
                        partition,
                        Offset::Offset(*offset as i64),
                        Duration::from_secs(10),
                    )
                    .map_err(|e| Message(format!("cannot seek {topic}/{partition} to {offset}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Commits the checkpoint's offsets of the partitions this reader still owns to the
    /// consumer group, so lag monitoring sees them; restores use the checkpoint, not these.
    fn checkpoint_complete(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let mut commit = TopicPartitionList::new();
        for (id, offset) in &position.offsets {
            if let Some((topic, partition)) = self.state.owned(*id) {
                commit.add_partition_offset(topic, partition, Offset::Offset(*offset as i64))?;
            }
        }
        if commit.count() > 0 {
            if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
                tracing::warn!(error = %e, "cannot commit checkpointed offsets");
            }
        }
        Ok(())
    }

    fn keep_alive(&mut self) -> Result<(), BoxError> {
        let Self { consumer, state } = self;
        if state.finished {
            return Ok(());
        }
        // Polling keeps the group membership; what arrives waits in the stash, which is
        // capped. (Pausing partitions instead loses the records librdkafka had prefetched
        // when a rebalance comes between pause and resume.) Rebalances seen here are
        // announced at the next poll.
        if state.stash.len() >= MAX_STASH {
            state.last_record = Instant::now();
            return Ok(());
        }
        match consumer.poll(Duration::ZERO) {
            Some(Ok(m)) => {
                state.stash.push_back(m.detach());
                // A record is waiting: the input is not idle.
                state.last_record = Instant::now();
            }
            Some(Err(e)) if is_fatal(&e) => return Err(Message(format!("Kafka consumer failed: {e}")).into()),
            _ => {}
        }
        Ok(())
    }
}
