//! Partitioned input that a test writes while the job reads it.

use std::sync::{Arc, Mutex, MutexGuard};

use sluice_engine::{
    BoxError, Data, OnBadRecord, PartitionId, PollStatus, RecordLocation, Source, SourceContext,
    SourceOutput, SourcePosition, SourceReader, Timestamp,
};

/// One entry of a partition's log.
#[derive(Debug, Clone)]
enum Entry<T> {
    Record { value: T, timestamp: Option<Timestamp> },
    Bad { reason: String },
}

#[derive(Debug)]
struct Partition<T> {
    log: Vec<Entry<T>>,
    ended: bool,
}

/// A partitioned log the test appends to, like a Kafka topic: records keep their offsets, so
/// a job restored from a checkpoint reads again from the offsets the checkpoint holds.
///
/// Partition `p` is read by worker `p % workers`, the way the Kafka source spreads partitions.
/// A reader with nothing to read says so (its partitions are caught up); a partition the test
/// [`ended`](TestInput::end) ends the job's input for it once read. Readers can pause
/// partitions (watermark alignment).
///
/// ```
/// use sluice_testing::TestInput;
/// let input = TestInput::<u64>::new(2);
/// input.push(0, 7);
/// input.push_bad(1, "not a number");
/// input.end_all();
/// assert_eq!(input.len(0), 1);
/// ```
#[derive(Debug)]
pub struct TestInput<T> {
    partitions: Arc<Mutex<Vec<Partition<T>>>>,
}

impl<T> Clone for TestInput<T> {
    fn clone(&self) -> Self {
        TestInput {
            partitions: Arc::clone(&self.partitions),
        }
    }
}

impl<T: Data> TestInput<T> {
    /// An input of `partitions` empty partitions.
    pub fn new(partitions: usize) -> Self {
        let partitions = (0..partitions)
            .map(|_| Partition {
                log: Vec::new(),
                ended: false,
            })
            .collect();
        TestInput {
            partitions: Arc::new(Mutex::new(partitions)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Partition<T>>> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, partition: usize, entry: Entry<T>) {
        let mut partitions = self.lock();
        let p = partitions
            .get_mut(partition)
            .unwrap_or_else(|| panic!("the test input has no partition {partition}"));
        assert!(!p.ended, "partition {partition} has ended");
        p.log.push(entry);
    }

    /// Appends `value` to `partition`.
    ///
    /// # Panics
    /// When the partition does not exist or has ended (a mistake in the test).
    pub fn push(&self, partition: usize, value: T) {
        self.append(
            partition,
            Entry::Record {
                value,
                timestamp: None,
            },
        );
    }

    /// Appends `value` with a transport timestamp (what Kafka's record timestamp is).
    ///
    /// # Panics
    /// As [`TestInput::push`].
    pub fn push_with_timestamp(&self, partition: usize, value: T, timestamp: Timestamp) {
        self.append(
            partition,
            Entry::Record {
                value,
                timestamp: Some(timestamp),
            },
        );
    }

    /// Appends a record that cannot be decoded (`reason` says why), for bad-record policies.
    ///
    /// # Panics
    /// As [`TestInput::push`].
    pub fn push_bad(&self, partition: usize, reason: &str) {
        self.append(
            partition,
            Entry::Bad {
                reason: reason.to_string(),
            },
        );
    }

    /// Ends `partition`: once read to its end, it ends the job's input for it.
    pub fn end(&self, partition: usize) {
        if let Some(p) = self.lock().get_mut(partition) {
            p.ended = true;
        }
    }

    /// Ends every partition.
    pub fn end_all(&self) {
        for p in self.lock().iter_mut() {
            p.ended = true;
        }
    }

    /// Empties and reopens every partition, for a test that writes the same log again after
    /// a restart (to hand a restored job its input at the same pace as before).
    pub fn clear(&self) {
        for p in self.lock().iter_mut() {
            p.log.clear();
            p.ended = false;
        }
    }

    /// Number of entries in `partition`.
    pub fn len(&self, partition: usize) -> usize {
        self.lock().get(partition).map_or(0, |p| p.log.len())
    }

    /// Whether every partition is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().iter().all(|p| p.log.is_empty())
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.lock().len()
    }

    /// A source reading this input; bad entries are skipped and counted.
    pub fn source(&self) -> TestSource<T> {
        TestSource {
            input: self.clone(),
            policy: OnBadRecord::Skip,
        }
    }
}

/// The [`Source`] over a [`TestInput`]; bad entries are bad records located by partition and
/// offset.
#[derive(Debug)]
pub struct TestSource<T> {
    input: TestInput<T>,
    policy: OnBadRecord,
}

impl<T> Clone for TestSource<T> {
    fn clone(&self) -> Self {
        TestSource {
            input: self.input.clone(),
            policy: self.policy,
        }
    }
}

impl<T> TestSource<T> {
    /// What the job does with bad entries (default: skip them).
    pub fn on_bad_record(mut self, policy: OnBadRecord) -> Self {
        self.policy = policy;
        self
    }
}

impl<T: Data> Source for TestSource<T> {
    type Item = T;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, BoxError> {
        let owned = (0..self.input.partitions())
            .filter(|p| p % ctx.workers == ctx.worker.0)
            .map(|p| Owned {
                index: p,
                id: PartitionId(p as u32),
                next: 0,
                ended: false,
                paused: false,
                said_caught_up: false,
            })
            .collect();
        Ok(Box::new(TestReader {
            input: self.input.clone(),
            owned,
            turn: 0,
        }))
    }

    fn bad_record_policy(&self) -> OnBadRecord {
        self.policy
    }
}

struct Owned {
    index: usize,
    id: PartitionId,
    next: usize,
    ended: bool,
    /// Paused by watermark alignment.
    paused: bool,
    /// Told the engine it is caught up, and nothing came since.
    said_caught_up: bool,
}

struct TestReader<T> {
    input: TestInput<T>,
    owned: Vec<Owned>,
    turn: usize,
}

/// Records of one partition a poll takes before turning to the next partition.
const CHUNK: usize = 16;

impl<T: Data> SourceReader<T> for TestReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        self.owned.iter().map(|p| p.id).collect()
    }

    fn poll(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError> {
        // A reader without partitions (more workers than partitions) stays open, like a Kafka
        // reader, until the whole input has ended.
        let done = match self.owned.is_empty() {
            true => self.input.lock().iter().all(|p| p.ended),
            false => self.owned.iter().all(|p| p.ended),
        };
        if done {
            return Ok(PollStatus::Finished);
        }
        let n = self.owned.len();
        let mut emitted = false;
        for _ in 0..n {
            if batch.is_full() {
                break;
            }
            let i = self.turn % n;
            self.turn += 1;
            let p = &mut self.owned[i];
            if p.ended || p.paused {
                continue;
            }
            // Copy out under the lock, hand over without it (downstream may take long).
            let (entries, ended, caught_up) = {
                let partitions = self.input.lock();
                let log = &partitions[p.index];
                let upto = log.log.len().min(p.next + CHUNK);
                (
                    log.log[p.next.min(upto)..upto].to_vec(),
                    log.ended && upto == log.log.len(),
                    upto == log.log.len(),
                )
            };
            if !entries.is_empty() {
                p.said_caught_up = false;
            }
            for entry in entries {
                let location = RecordLocation::index(p.id, p.next as u64);
                p.next += 1;
                emitted = true;
                match entry {
                    Entry::Record { value, timestamp } => batch.record_at(p.id, value, timestamp, location),
                    Entry::Bad { reason } => batch.bad_record(p.id, location, reason),
                }
            }
            if ended {
                p.ended = true;
                emitted = true;
                batch.partition_end(p.id);
            } else if caught_up && !p.said_caught_up {
                p.said_caught_up = true;
                batch.caught_up(p.id);
            }
        }
        Ok(if emitted {
            PollStatus::Ready
        } else {
            PollStatus::Pending
        })
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::of_offsets(self.owned.iter().map(|p| (p.id, p.next as u64)))
    }

    fn end_offsets(&self) -> Vec<(PartitionId, u64)> {
        let partitions = self.input.lock();
        self.owned
            .iter()
            .map(|p| (p.id, partitions[p.index].log.len() as u64))
            .collect()
    }

    fn pause(&mut self, partitions: &[PartitionId], pause: bool) -> Result<bool, BoxError> {
        for p in &mut self.owned {
            if partitions.contains(&p.id) {
                p.paused = pause;
            }
        }
        Ok(true)
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        for p in &mut self.owned {
            if let Some(next) = position.offsets.get(&p.id) {
                p.next = usize::try_from(*next)?;
            }
        }
        Ok(())
    }
}
