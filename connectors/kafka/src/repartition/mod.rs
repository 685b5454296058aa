//! Repartition topics: re-keying a stream through Kafka, so that every record of a key meets
//! the others in one partition whichever process wrote it.
//!
//! The writer (`writer`, a sink after the stream to re-key) sends each record to the
//! partition of its key's group with an id, `(upstream partition, offset, index)`, taken from
//! the input record that caused it ([`Located`]): reading that input again produces the same
//! ids. It also sends, to every partition, the watermark of each upstream partition it writes
//! for, and says when one is idle. The reader (`reader`, a source) drops a record whose id is
//! not above the last one applied from its upstream partition (those marks are kept in the
//! job's checkpoints with the offsets), and reports each partition's watermark as the lowest
//! over the upstream partitions, so event time crosses the topic in band.

mod envelope;
mod located;
mod reader;
mod writer;

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_engine::{
    BoxError, Data, JobBuilder, OnBadRecord, SinkFactory, Source, SourceContext, SourceReader, Stream,
    WatermarkStrategy,
};

use crate::admin::partition_count;
use crate::config::KafkaConfig;
use crate::error::{KafkaConnectorError, with_retry_hint};
use crate::format::Bincode;
use crate::source::{KafkaSource, partition_id, static_share};
use crate::start::StartFrom;
use envelope::Envelope;
pub use located::Located;
pub(crate) use located::LocatedFormat;
use reader::RepartitionReader;
use writer::RepartitionSink;

/// An internal topic that re-keys a stream.
///
/// [`Repartition::through`] writes a stream of [`Located`] records (read with
/// [`KafkaSource::located`], through stateless operators only) to the topic, partitioned by a
/// new key, and reads it back as a source of the same job. The upstream source must assign
/// its partitions itself (not [`KafkaSource::group_assignment`]) over `upstream_topics` in
/// the same order: each writer speaks for the partitions its worker reads, and refuses a
/// record of any other. Records are written
/// at-least-once (a restored job writes again what it wrote after its checkpoint) and read
/// exactly once: each carries the id of the input record it came from, and the reader drops
/// ids it has already applied. Watermarks cross the topic in band: the reader's watermark of
/// each partition is the lowest over every upstream partition, idle ones excepted. A
/// partition ends once every upstream partition has ended (its writer saw the end of its
/// input), and the reader ends with its last partition.
#[derive(Debug, Clone)]
pub struct Repartition {
    config: KafkaConfig,
    topic: String,
    partitions: u32,
    upstream_topics: Vec<String>,
    out_of_orderness: Duration,
    exit_when_idle: Option<Duration>,
    only_partitions: Option<Vec<u32>>,
    upstream_only: Option<Vec<u32>>,
}

impl Repartition {
    /// A repartition topic `topic` with `partitions` partitions (created if missing; an
    /// existing topic must have that many), written from a stream read from `upstream_topics`
    /// (whose partitions the reader waits to hear from).
    pub fn new(
        config: KafkaConfig,
        topic: impl Into<String>,
        partitions: u32,
        upstream_topics: &[&str],
    ) -> Self {
        Repartition {
            config,
            topic: topic.into(),
            partitions: partitions.clamp(1, u32::from(u16::MAX)),
            upstream_topics: upstream_topics.iter().map(|t| t.to_string()).collect(),
            out_of_orderness: Duration::ZERO,
            exit_when_idle: None,
            only_partitions: None,
            upstream_only: None,
        }
    }

    /// The name a job's repartition topic gets: `<job>-<operator>-repartition`.
    pub fn topic_name(job: &str, operator: &str) -> String {
        format!("{job}-{operator}-repartition")
    }

    /// The out-of-orderness bound of the upstream source's watermark strategy: an upstream
    /// partition's watermark is its largest event time written minus this (default zero).
    pub fn out_of_orderness(mut self, bound: Duration) -> Self {
        self.out_of_orderness = bound;
        self
    }

    /// Ends the reading side when the job's whole input has been idle for `idle` (see
    /// [`KafkaSource::exit_when_idle`]).
    pub fn exit_when_idle(mut self, idle: Duration) -> Self {
        self.exit_when_idle = Some(idle);
        self
    }

    /// The reading side reads only partitions numbered `partitions` (a task of a job spread
    /// over processes), see [`KafkaSource::only_partitions`].
    pub fn only_partitions(mut self, partitions: &[u32]) -> Self {
        self.only_partitions = Some(partitions.to_vec());
        self
    }

    /// The writing side's input reads only partitions numbered `partitions` of the upstream
    /// topics ([`KafkaSource::only_partitions`]). Each writer speaks for the upstream
    /// partitions its worker reads (the upstream source's static share), so that an empty
    /// one does not hold event time back downstream for ever.
    pub fn upstream_partitions(mut self, partitions: &[u32]) -> Self {
        self.upstream_only = Some(partitions.to_vec());
        self
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes `input` to the topic, partitioned by `key`, as sink `<name>_write`, and returns
    /// the stream read back from it by source `<name>_read`: every record once, in event time
    /// carried across.
    pub fn through<T, K>(
        &self,
        b: &mut JobBuilder,
        name: &str,
        input: &Stream<Located<T>>,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Stream<T>
    where
        T: Data + Serialize + DeserializeOwned,
        K: Hash + 'static,
    {
        input.sink(&format!("{name}_write"), self.writer(key));
        b.source(&format!("{name}_read"), self.reader::<T>(), self.watermarks())
    }

    /// The writing side alone, for a job that ends at the topic (a stage of its own): a sink
    /// sending each record to the partition of `key`'s group.
    pub fn writer<T, K>(&self, key: impl Fn(&T) -> K + Send + Sync + 'static) -> impl SinkFactory<Located<T>>
    where
        T: Data + Serialize,
        K: Hash + 'static,
    {
        RepartitionSink {
            repartition: self.clone(),
            key: Arc::new(key),
        }
    }

    /// The reading side alone, for a job that starts at the topic; use it with
    /// [`Repartition::watermarks`].
    pub fn reader<T: Data + DeserializeOwned>(&self) -> impl Source<Item = T> {
        RepartitionSource::<T> {
            repartition: self.clone(),
            inner: self.envelope_source(),
        }
    }

    /// The watermark strategy of the reading side: the watermarks, and when a partition is
    /// idle, come from the topic's marks. There is no idleness timeout: a quiet partition
    /// holds event time back until its writers say they are idle, since an upstream task
    /// between owners writes nothing for a while and then the rest.
    pub fn watermarks<T>(&self) -> WatermarkStrategy<T> {
        WatermarkStrategy::monotonous()
    }

    fn envelope_source<T: Data + DeserializeOwned>(&self) -> KafkaSource<Envelope<T>> {
        // The reader's dedup marks live in the job's checkpoints with its offsets: without a
        // checkpoint to restore, the topic is read from its start, whatever was committed.
        let mut source = KafkaSource::new(
            self.config.clone(),
            self.topic.clone(),
            &[self.topic.as_str()],
            Bincode,
        )
        .start_from(StartFrom::Earliest);
        if let Some(idle) = self.exit_when_idle {
            source = source.exit_when_idle(idle);
        }
        if let Some(partitions) = &self.only_partitions {
            source = source.only_partitions(partitions);
        }
        source
    }

    /// Fails unless the topic has the configured number of partitions: records of one key
    /// would otherwise go to different partitions from writers that disagree.
    fn check_partitions(&self) -> Result<(), BoxError> {
        let found = partition_count(&self.config, &self.topic)?.unwrap_or(0);
        if found != self.partitions as usize {
            return Err(KafkaConnectorError::Partitions {
                topic: self.topic.clone(),
                brokers: self.config.brokers().to_string(),
                found,
                expected: format!("the job repartitions into {}", self.partitions),
            }
            .into());
        }
        Ok(())
    }

    /// The ids of the upstream topics' partitions, as the upstream source numbers them: all
    /// of them, or (with `worker` of `workers`) those the upstream source's reader on that
    /// worker reads.
    fn upstream_partitions_of(&self, worker: Option<(usize, usize)>) -> Result<Vec<u32>, BoxError> {
        let mut counts = Vec::new();
        for topic in &self.upstream_topics {
            let count = partition_count(&self.config, topic)?.unwrap_or(0);
            if count == 0 {
                return Err(KafkaConnectorError::Partitions {
                    topic: topic.clone(),
                    brokers: self.config.brokers().to_string(),
                    found: 0,
                    expected: format!("repartition topic '{}' is written from it", self.topic),
                }
                .into());
            }
            counts.push(count as i32);
        }
        let topics: Vec<Arc<str>> = self
            .upstream_topics
            .iter()
            .map(|t| Arc::from(t.as_str()))
            .collect();
        let only: Option<Vec<i32>> = match worker {
            Some(_) => self
                .upstream_only
                .as_ref()
                .map(|o| o.iter().map(|p| *p as i32).collect()),
            None => None,
        };
        let (worker, workers) = worker.unwrap_or((0, 1));
        Ok(static_share(&topics, &counts, only.as_deref(), worker, workers)
            .into_iter()
            .map(|(topic, partition)| {
                let index = topics.iter().position(|t| &**t == topic).unwrap_or(0);
                partition_id(index, partition).0
            })
            .collect())
    }
}

/// The reading side: the Kafka source of the topic's envelopes, unwrapped.
struct RepartitionSource<T> {
    repartition: Repartition,
    inner: KafkaSource<Envelope<T>>,
}

impl<T: Data + DeserializeOwned> Source for RepartitionSource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let expected = self
            .repartition
            .upstream_partitions_of(None)
            .map_err(with_retry_hint)?;
        let inner = self.inner.open(ctx)?;
        Ok(Box::new(RepartitionReader::new(
            inner,
            expected,
            ctx.counter("duplicates_dropped"),
        )))
    }

    fn bad_record_policy(&self) -> OnBadRecord {
        OnBadRecord::Fail
    }
}
