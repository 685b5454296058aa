use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bad_record::OnBadRecord;
use crate::error::{BoxError, EngineError};
use crate::idleness::IdleVote;
use crate::ids::{PartitionId, WorkerId};
use crate::metrics::{Counter, Gauge, JobMetrics};
use crate::push::Data;
use crate::time::{Timestamp, Watermark};

/// How a connector words a [`RecordLocation`], e.g. "topic orders partition 3 offset 17".
pub type DescribeLocation = fn(&RecordLocation, &mut fmt::Formatter<'_>) -> fmt::Result;

/// Where a record came from, for error messages and dead letters: what the source reads (a
/// topic, a file), the partition of it, the record's position there (an offset, a line, an
/// index), and how the connector words that. The engine knows no connector: it only shows a
/// location.
#[derive(Clone)]
pub struct RecordLocation {
    /// What the source reads, as its connector names it: a topic, a file's path; empty for a
    /// source without a name for it.
    pub source: Arc<str>,
    /// The partition, numbered as the connector numbers it (a Kafka partition, a file split).
    pub partition: u32,
    /// The record's position in the partition: an offset, a 1-based line, a 0-based index.
    pub position: u64,
    describe: DescribeLocation,
}

impl RecordLocation {
    /// A location a connector describes with `describe`.
    pub fn new(source: Arc<str>, partition: u32, position: u64, describe: DescribeLocation) -> Self {
        RecordLocation {
            source,
            partition,
            position,
            describe,
        }
    }

    /// The `index`-th record (from 0) of a source partition, for sources that have no
    /// position of their own: "partition 2 record 17".
    pub fn index(partition: PartitionId, index: u64) -> Self {
        RecordLocation::new(Arc::from(""), partition.0, index, |l, f| {
            write!(f, "partition {} record {}", l.partition, l.position)
        })
    }
}

impl fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.describe)(self, f)
    }
}

impl fmt::Debug for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordLocation({self})")
    }
}

impl PartialEq for RecordLocation {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.partition == other.partition
            && self.position == other.position
            && self.to_string() == other.to_string()
    }
}

impl Eq for RecordLocation {}

/// How far a source reader has read: the next offset of every partition it owns, and what
/// the reader must know again to continue there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Next offset to read per partition.
    pub offsets: BTreeMap<PartitionId, u64>,
    /// The reader's own state of a partition at that offset (e.g. which records it has
    /// already seen, to drop them when they come again), opaque to the engine. It is stored
    /// with the offset in checkpoints and handed back by `seek`; a partition's state goes with
    /// its offset, so it is only kept for partitions that have one here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub state: BTreeMap<PartitionId, Vec<u8>>,
}

impl SourcePosition {
    /// A position of `offsets`, without reader state.
    pub fn of_offsets(offsets: impl IntoIterator<Item = (PartitionId, u64)>) -> Self {
        SourcePosition {
            offsets: offsets.into_iter().collect(),
            state: BTreeMap::new(),
        }
    }
}

/// One item produced by a reader poll.
#[derive(Debug)]
pub enum SourceItem<T> {
    /// A decoded record.
    Record {
        /// Partition it came from.
        partition: PartitionId,
        /// The value.
        value: T,
        /// Timestamp carried by the transport (e.g. the Kafka record timestamp), if any.
        timestamp: Option<Timestamp>,
        /// Where it came from, used if its timestamp turns out to be unusable.
        location: Option<RecordLocation>,
    },
    /// A record that could not be decoded.
    BadRecord {
        /// Partition it came from.
        partition: PartitionId,
        /// Where it came from.
        location: RecordLocation,
        /// What is wrong with it.
        reason: String,
    },
    /// The reader starts reading a partition it did not report before (e.g. the next file
    /// split, a newly assigned Kafka partition). Until its first record it holds the
    /// watermark where it is.
    PartitionStart(PartitionId),
    /// The partition was taken away (a consumer-group rebalance). It no longer holds the
    /// watermark back, and may start again later.
    PartitionRevoked(PartitionId),
    /// The partition has no more records.
    PartitionEnd(PartitionId),
    /// The partition's watermark, from a reader that knows it from its input (a
    /// repartition topic carrying its writers' watermarks), for readers whose
    /// [`SourceReader::provides_watermarks`] is true. The partition's records then do not
    /// move its watermark.
    Watermark(PartitionId, Watermark),
    /// The reader has read everything the partition holds for now (a Kafka partition at its
    /// end offset). Until its next record, the time the source keeps being read counts
    /// towards the partition's idleness.
    PartitionCaughtUp(PartitionId),
    /// The reader knows, from its input, that the partition has nothing to give for now
    /// (every writer of a repartition topic's partition said it is idle): it stops holding
    /// event time back at once, whatever the idleness timeout, until its next record or
    /// reported watermark.
    PartitionIdle(PartitionId),
}

/// Where a reader's poll puts its items. Not a buffer: each item is handed downstream as soon
/// as it is added, so a record is decoded, processed and dropped before the next one is
/// decoded. `capacity` only says how many items a poll should add.
///
/// When the job fails downstream, further items are ignored and the poll's result is that
/// failure; readers need not check.
pub struct SourceOutput<'a, T> {
    emit: &'a mut dyn FnMut(SourceItem<T>) -> Result<(), EngineError>,
    len: usize,
    capacity: usize,
    deadline: Instant,
    error: Option<EngineError>,
}

/// Longest time a poll should take, so slow downstream work cannot keep a reader (and its
/// connections and group memberships) unattended for long.
const MAX_POLL_TIME: Duration = Duration::from_millis(100);

impl<'a, T> SourceOutput<'a, T> {
    /// An output handing items to `emit`, meant to take up to `capacity` items per poll.
    pub fn new(emit: &'a mut dyn FnMut(SourceItem<T>) -> Result<(), EngineError>, capacity: usize) -> Self {
        SourceOutput {
            emit,
            len: 0,
            capacity: capacity.max(1),
            deadline: Instant::now() + MAX_POLL_TIME,
            error: None,
        }
    }

    #[inline]
    fn add(&mut self, item: SourceItem<T>) {
        if self.error.is_none() {
            self.len += 1;
            if let Err(e) = (self.emit)(item) {
                self.error = Some(e);
            }
        }
    }

    /// Adds a decoded record.
    #[inline]
    pub fn record(&mut self, partition: PartitionId, value: T, timestamp: Option<Timestamp>) {
        self.add(SourceItem::Record {
            partition,
            value,
            timestamp,
            location: None,
        });
    }

    /// Adds a decoded record with its location.
    #[inline]
    pub fn record_at(
        &mut self,
        partition: PartitionId,
        value: T,
        timestamp: Option<Timestamp>,
        location: RecordLocation,
    ) {
        self.add(SourceItem::Record {
            partition,
            value,
            timestamp,
            location: Some(location),
        });
    }

    /// Adds a record that could not be decoded.
    pub fn bad_record(&mut self, partition: PartitionId, location: RecordLocation, reason: String) {
        self.add(SourceItem::BadRecord {
            partition,
            location,
            reason,
        });
    }

    /// Announces `partition` before its first record. Announce the next partition before
    /// ending the last active one, or the watermark jumps to the end of input.
    pub fn partition_start(&mut self, partition: PartitionId) {
        self.add(SourceItem::PartitionStart(partition));
    }

    /// Marks `partition` as taken away from this reader for now.
    pub fn partition_revoked(&mut self, partition: PartitionId) {
        self.add(SourceItem::PartitionRevoked(partition));
    }

    /// Marks `partition` as finished.
    pub fn partition_end(&mut self, partition: PartitionId) {
        self.add(SourceItem::PartitionEnd(partition));
    }

    /// Reports the watermark of `partition` (see [`SourceItem::Watermark`]).
    pub fn watermark(&mut self, partition: PartitionId, watermark: Watermark) {
        self.add(SourceItem::Watermark(partition, watermark));
    }

    /// Says that `partition` is idle, as its input told the reader (see
    /// [`SourceItem::PartitionIdle`]).
    pub fn partition_idle(&mut self, partition: PartitionId) {
        self.add(SourceItem::PartitionIdle(partition));
    }

    /// Says that `partition` has nothing more to give for now (see
    /// [`SourceItem::PartitionCaughtUp`]). A poll that adds nothing at all says so for every
    /// partition; readers that can tell per partition say it here.
    pub fn caught_up(&mut self, partition: PartitionId) {
        self.add(SourceItem::PartitionCaughtUp(partition));
    }

    /// Number of items added in this poll.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the poll has added as many items as it should (or taken long enough).
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
            || self.error.is_some()
            || (self.len % 16 == 0 && self.len > 0 && Instant::now() >= self.deadline)
    }

    /// The number of items a poll should add at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The downstream failure that stopped this batch, if any.
    pub fn take_error(&mut self) -> Option<EngineError> {
        self.error.take()
    }
}

/// What a reader's poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStatus {
    /// Items were added to the batch (or may be soon): poll again.
    Ready,
    /// Nothing is available right now.
    Pending,
    /// Every partition of this reader has ended.
    Finished,
}

/// Where a reader runs.
#[derive(Clone)]
pub struct SourceContext {
    /// The source's operator name.
    pub name: String,
    /// This worker.
    pub worker: WorkerId,
    /// Number of workers.
    pub workers: usize,
    /// Suggested largest number of items per poll.
    pub batch_size: usize,
    /// The job's metrics.
    pub metrics: JobMetrics,
    pub(crate) shared: Arc<SharedResources>,
    pub(crate) idleness: Arc<crate::idleness::InputIdleness>,
}

impl SourceContext {
    /// The counter `name` of this source on this worker.
    pub fn counter(&self, name: &'static str) -> Arc<Counter> {
        self.metrics.counter(&self.name, name, self.worker.0)
    }

    /// The gauge `name` of this source on this worker.
    pub fn gauge(&self, name: &'static str) -> Arc<Gauge> {
        self.metrics.gauge(&self.name, name, self.worker.0)
    }

    /// An object shared by the readers of this source on every worker of the current run,
    /// created by the first reader that asks.
    pub fn shared<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        self.shared.get_or_insert(&self.name, init)
    }

    /// This reader's voice in whether the job's whole input is idle: a reader that ends its
    /// input after a quiet spell asks every source of the job first.
    pub fn idle_vote(&self) -> IdleVote {
        IdleVote::new(Arc::clone(&self.idleness), &self.name, self.worker.0)
    }
}

/// Objects shared between the workers of one run, by name.
#[derive(Default)]
pub(crate) struct SharedResources {
    objects: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl SharedResources {
    pub(crate) fn get_or_insert<T: Any + Send + Sync>(&self, name: &str, init: impl FnOnce() -> T) -> Arc<T> {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{name}\u{0}{}", std::any::type_name::<T>());
        if let Some(shared) = objects.get(&key).and_then(|o| Arc::clone(o).downcast::<T>().ok()) {
            return shared;
        }
        let created = Arc::new(init());
        objects.insert(key, Arc::clone(&created) as Arc<dyn Any + Send + Sync>);
        created
    }
}

/// A source definition: describes where data comes from and opens one reader per worker.
///
/// Construction must be cheap and do no I/O: the job graph is built once for validation and
/// once per worker. I/O starts in [`Source::open`].
pub trait Source: 'static {
    /// Record type.
    type Item: Data;

    /// Opens the reader for `ctx.worker`, owning that worker's share of the partitions.
    ///
    /// # Errors
    /// When the underlying data cannot be reached (missing file, unreachable broker).
    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<Self::Item>>, BoxError>;

    /// What to do with records that cannot be decoded or carry an unusable timestamp.
    fn bad_record_policy(&self) -> OnBadRecord {
        OnBadRecord::Fail
    }
}

/// Reads the partitions a worker owns.
pub trait SourceReader<T> {
    /// The partitions this reader owns.
    fn partitions(&self) -> Vec<PartitionId>;

    /// Adds up to `batch.capacity()` items to `batch`.
    ///
    /// # Errors
    /// When reading fails (I/O, lost connection); the job stops with the source's name.
    fn poll(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError>;

    /// The next offset of every owned partition.
    fn position(&self) -> SourcePosition;

    /// For each partition it knows the end of without asking a server: the offset one past
    /// its newest record, so the console can show how far behind the reader is. Empty (the
    /// default) when it knows none.
    fn end_offsets(&self) -> Vec<(PartitionId, u64)> {
        Vec::new()
    }

    /// Continues from `position` (for the partitions it names).
    ///
    /// # Errors
    /// When the position cannot be reached.
    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError>;

    /// Whether the reader reports its partitions' watermarks itself
    /// ([`SourceOutput::watermark`]) instead of the engine deriving them from record
    /// timestamps. The source's out-of-orderness bound is then added to nothing: a reported
    /// watermark is the partition's watermark.
    fn provides_watermarks(&self) -> bool {
        false
    }

    /// Whether the reader knows which partitions it owns. A reader that knows it owns none
    /// does not hold event time back; one that does not know yet (a Kafka reader before its
    /// first assignment) does, so that records of partitions it gets are not late.
    fn assignment_known(&self) -> bool {
        true
    }

    /// Stops (`pause`) or resumes delivering records of `partitions`, for watermark alignment
    /// ([`WatermarkStrategy::with_alignment`](crate::WatermarkStrategy::with_alignment)). Returns
    /// whether the reader can; the default cannot.
    ///
    /// # Errors
    /// When the reader cannot change what it reads.
    fn pause(&mut self, _partitions: &[PartitionId], _pause: bool) -> Result<bool, BoxError> {
        Ok(false)
    }

    /// A checkpoint barrier follows everything read so far: make what the reader itself did
    /// with those records durable before returning (e.g. wait for its dead-letter writes to
    /// be acknowledged), so the checkpoint never covers a record whose side effect can still
    /// be lost.
    ///
    /// # Errors
    /// When that cannot be done; the checkpoint then fails with the source's name.
    fn flush(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called on every tick while downstream is too busy for this reader to be polled: keep
    /// connections and group memberships alive without taking in more data.
    ///
    /// # Errors
    /// When the connection is lost for good.
    fn keep_alive(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// A checkpoint that recorded `position` (this reader's position at its barrier) is
    /// complete: its state is safe, so the reader may tell the outside world (e.g. commit the
    /// offsets to the Kafka consumer group for lag monitoring). Restores never rely on it.
    ///
    /// # Errors
    /// When the commit fails for good; the job stops with the source's name.
    fn checkpoint_complete(&mut self, _position: &SourcePosition) -> Result<(), BoxError> {
        Ok(())
    }
}
