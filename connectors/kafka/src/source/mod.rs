//! The Kafka source: its options and policies here; partition ids and start offsets in
//! `partition`, assignment and rebalance callbacks in `rebalance`, group progress and the idle
//! exit in `group`, the reader in `reader`.

mod group;
mod partition;
mod reader;
mod rebalance;

pub(crate) use partition::{partition_id, static_share};

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
    BoxError, Counter, Data, IdleVote, OnBadRecord, PartitionId, PollStatus, RecordLocation, Source,
    SourceContext, SourceOutput, SourcePosition, SourceReader,
};

use super::config::KafkaConfig;
use super::context::{self, Refusals};
use super::dead_letter::{BadRecord, DeadLetterWriter};
use super::dead_lettered::{DeadLetterLog, already_dead_lettered};
use super::error::{Context, KafkaConnectorError, with_retry_hint};
use super::format::{Json, RecordDeserializer};
use super::gaps::OffsetGaps;
use super::repartition::{Located, LocatedFormat};
pub use super::start::StartFrom;
use super::start::{StartKind, StartOffsets, resolve};

use group::{GroupProgress, count_partitions};
use partition::{add_starts, split_partition_id};
use reader::{Counters, KafkaReader, ReaderState};
use rebalance::{ReaderContext, Rebalanced};

/// Most records a busy reader polls ahead (one per keep-alive tick) to stay in its group.
pub(super) const MAX_STASH: usize = 1_024;

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
    on_bad_record: OnBadRecord<String>,
    start: StartFrom,
    start_offsets: SourcePosition,
    exit_when_idle: Option<Duration>,
    max_queued_kbytes: u32,
    assignment: Assignment,
    /// With static assignment, the partition numbers read (all when `None`).
    only_partitions: Option<Arc<[i32]>>,
}

/// Who assigns partitions to the source's consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Assignment {
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
            on_bad_record: self.on_bad_record.clone(),
            start: self.start,
            start_offsets: self.start_offsets.clone(),
            exit_when_idle: self.exit_when_idle,
            max_queued_kbytes: self.max_queued_kbytes,
            assignment: self.assignment,
            only_partitions: self.only_partitions.clone(),
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
            on_bad_record: OnBadRecord::Fail,
            start: StartFrom::default(),
            start_offsets: SourcePosition::default(),
            exit_when_idle: None,
            max_queued_kbytes: 16 * 1024,
            assignment: Assignment::Static,
            only_partitions: None,
        }
    }

    /// Reads JSON payloads.
    pub fn json(config: KafkaConfig, group: impl Into<String>, topics: &[&str]) -> Self
    where
        T: serde::de::DeserializeOwned,
    {
        Self::new(config, group, topics, Json)
    }

    /// What to do with records the format cannot decode (default: fail, naming topic,
    /// partition and offset). `Skip` counts them in the source's `bad_records_skipped` metric;
    /// `DeadLetter(topic)` writes each unchanged to `topic` (created if missing) with the error
    /// and its topic, partition and offset as headers (`sluice.error`, `sluice.topic`,
    /// `sluice.partition`, `sluice.offset`), counted in `dead_lettered`.
    pub fn on_bad_record(mut self, choice: OnBadRecord<String>) -> Self {
        self.on_bad_record = choice;
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

    /// Ends the input once every partition of the topics is assigned, no rebalance happened,
    /// no worker received a record for `idle` and every worker has read each of its
    /// partitions to its end (the consumer's end-of-partition event, with no record since),
    /// as if the topics had ended: open windows are emitted. A broker that stalls or is down
    /// sends no end-of-partition event, so it never ends the input. In a job with
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

    /// Reads only partitions numbered `partitions` of each topic (a task of a job spread over
    /// processes reads partition *q* of co-partitioned topics), spread over the workers as
    /// usual. Without effect with [`KafkaSource::group_assignment`].
    pub fn only_partitions(mut self, partitions: &[u32]) -> Self {
        self.only_partitions = Some(partitions.iter().map(|p| *p as i32).collect());
        self
    }

    /// Hands on each record with its partition and offset ([`Located`]), what a
    /// [`Repartition`](crate::Repartition) topic needs to give re-keyed records ids that stay
    /// the same when the input is read again.
    pub fn located(self) -> KafkaSource<Located<T>> {
        KafkaSource {
            config: self.config,
            group: self.group,
            topics: self.topics,
            format: Arc::new(LocatedFormat(self.format)),
            on_bad_record: self.on_bad_record,
            start: self.start,
            start_offsets: self.start_offsets,
            exit_when_idle: self.exit_when_idle,
            max_queued_kbytes: self.max_queued_kbytes,
            assignment: self.assignment,
            only_partitions: self.only_partitions.clone(),
        }
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
            // The partitions' high watermarks, for the lag the console shows.
            ("statistics.interval.ms", "1000"),
        ])
    }
}

impl<T: Data> Source for KafkaSource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        self.reader(ctx).map_err(with_retry_hint)
    }

    fn bad_record_policy(&self) -> OnBadRecord {
        // Dead-lettering happens in the reader; what reaches the engine (unusable
        // timestamps) is skipped and counted.
        self.on_bad_record.after_dead_letters()
    }
}

impl<T: Data> KafkaSource<T> {
    /// This worker's reader: its consumer, subscription or static share, and dead-letter
    /// writer.
    fn reader(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let offsets = ctx.shared(StartOffsets::default);
        add_starts(&offsets, &self.topics, &self.start_offsets, StartKind::Configured);
        let workers = ctx.workers;
        let context_votes = ctx.shared(|| GroupProgress::new(workers));
        let context = ReaderContext {
            start: self.start,
            progress: Arc::clone(&context_votes),
            assigned: ctx.gauge("assigned_partitions"),
            worker: ctx.worker.0,
            offsets,
            failure: Mutex::new(None),
            events: Mutex::new(Vec::new()),
            has_events: AtomicBool::new(false),
            refusals: Refusals::default(),
            ends: Mutex::default(),
            brokers: self.config.brokers().to_string(),
        };
        let consumer: BaseConsumer<ReaderContext> = self
            .consumer_config()
            .create_with_context(context)
            .context(|| format!("cannot create a Kafka consumer for {}", self.config.brokers()))?;
        if self.assignment == Assignment::Group {
            let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&topics)
                .context(|| format!("cannot subscribe to {topics:?}"))?;
        }
        let dead_letter = match &self.on_bad_record {
            OnBadRecord::DeadLetter(topic) => {
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
                dead_letter,
                positions: Vec::new(),
                assigned: Vec::new(),
                stash: VecDeque::new(),
                stashed_ends: Vec::new(),
                exit_when_idle: self.exit_when_idle,
                last_record: Instant::now(),
                last_read: Instant::now(),
                at_end: Vec::new(),
                votes,
                job_idle: ctx.idle_vote(),
                awaiting_partitions: self.assignment == Assignment::Static,
                only_partitions: self.only_partitions.clone(),
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
}
