use std::sync::Arc;

use crate::checkpoint::participant::SourceControl;
use crate::clock::Clock;
use crate::error::{EngineError, Result};
use crate::idleness::IdleVote;
use crate::ids::CheckpointId;
use crate::ids::PartitionId;
use crate::metrics::{Counter, Gauge};
use crate::push::Barrier;
use crate::push::{Control, Data, Output};
use crate::source::SourcePosition;
use crate::source::{BadRecordPolicy, PollStatus, RecordLocation, SourceBatch, SourceItem, SourceReader};
use crate::time::{MAX_EVENT_TIMESTAMP, Timestamp, Watermark};
use crate::watermark_strategy::WatermarkStrategy;
use crate::watermark_tracker::{Combined, WatermarkTracker};
use crate::worker::{Drive, WorkerInput};

struct PartitionState {
    id: PartitionId,
    max_ts: Timestamp,
    /// Processing time of the last idleness check that saw records of this partition (`None`
    /// until the first check).
    last_active: Option<Timestamp>,
    /// Records arrived since the last idleness check.
    active: bool,
    /// The partition's watermark must be recomputed after this poll.
    dirty: bool,
    /// Taken away by a rebalance; it counts as idle until assigned again.
    revoked: bool,
    records: u64,
}

impl PartitionState {
    fn new(id: PartitionId) -> Self {
        PartitionState {
            id,
            max_ts: Timestamp::MIN,
            last_active: None,
            active: false,
            dirty: false,
            revoked: false,
            records: 0,
        }
    }
}

pub(crate) struct SourceCounters {
    pub records_out: Arc<Counter>,
    pub skipped: Arc<Counter>,
    pub idle_partitions: Arc<Counter>,
    pub watermark: Arc<Gauge>,
}

/// Reads one worker's share of a source: assigns timestamps, applies the bad-record policy,
/// keeps a watermark per partition and emits the minimum.
pub(crate) struct SourceDriver<T: Data> {
    reader: Box<dyn SourceReader<T>>,
    core: DriverCore<T>,
    batch_size: usize,
    finished: bool,
    /// Whether `drive` ran since the last tick.
    driven: bool,
    /// Where the reader's end counts towards the job's idleness.
    idle_vote: IdleVote,
}

/// Everything but the reader, so the reader can hand items to it during a poll.
struct DriverCore<T: Data> {
    name: String,
    clock: Clock,
    strategy: WatermarkStrategy<T>,
    policy: BadRecordPolicy,
    out: Output<T>,
    partitions: Vec<PartitionState>,
    tracker: WatermarkTracker,
    last_hit: usize,
    ended: Vec<usize>,
    counters: SourceCounters,
}

impl<T: Data> SourceDriver<T> {
    // One argument per part of the driver, all crate-internal.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        reader: Box<dyn SourceReader<T>>,
        strategy: WatermarkStrategy<T>,
        policy: BadRecordPolicy,
        out: Output<T>,
        counters: SourceCounters,
        batch_size: usize,
        idle_vote: IdleVote,
        clock: Clock,
    ) -> Self {
        let partitions: Vec<PartitionState> = reader
            .partitions()
            .into_iter()
            .map(PartitionState::new)
            .collect();
        SourceDriver {
            reader,
            core: DriverCore {
                name,
                clock,
                strategy,
                policy,
                out,
                tracker: WatermarkTracker::new(partitions.len()),
                partitions,
                last_hit: 0,
                ended: Vec::new(),
                counters,
            },
            batch_size,
            finished: false,
            driven: false,
            idle_vote,
        }
    }
}

impl<T: Data> DriverCore<T> {
    #[inline]
    fn slot(&mut self, partition: PartitionId) -> usize {
        if self
            .partitions
            .get(self.last_hit)
            .is_some_and(|p| p.id == partition)
        {
            return self.last_hit;
        }
        let i = match self.partitions.iter().position(|p| p.id == partition) {
            Some(i) => i,
            None => {
                // A reader may pick up partitions later (the next split, a rebalance).
                self.partitions.push(PartitionState::new(partition));
                self.tracker.add_input()
            }
        };
        self.last_hit = i;
        i
    }

    fn emit_combined(&mut self, c: Combined) -> Result<()> {
        match c {
            Combined::Unchanged => Ok(()),
            Combined::Advanced(wm) => {
                self.counters.watermark.set(wm.0);
                self.out.watermark(wm)
            }
            Combined::Idle => self.out.idle(),
        }
    }

    fn bad_record(&mut self, location: &RecordLocation, reason: String) -> Result<()> {
        match self.policy {
            BadRecordPolicy::Fail => Err(EngineError::BadRecord {
                source_name: self.name.clone(),
                location: location.to_string(),
                reason,
            }),
            BadRecordPolicy::Skip => {
                self.counters.skipped.inc();
                tracing::debug!(source = %self.name, %location, %reason, "skipping bad record");
                Ok(())
            }
        }
    }

    #[inline]
    fn handle(&mut self, item: SourceItem<T>) -> Result<()> {
        match item {
            SourceItem::Record {
                partition,
                value,
                timestamp,
                location,
            } => {
                let slot = self.slot(partition);
                let ts = self.strategy.timestamp_of(&value, timestamp, &self.clock);
                let p = &mut self.partitions[slot];
                let index = p.records;
                p.records += 1;
                if !(0..=MAX_EVENT_TIMESTAMP).contains(&ts) {
                    let location = location.unwrap_or(RecordLocation::Index { partition, index });
                    return self.bad_record(&location, format!("event timestamp {ts} is out of range"));
                }
                p.active = true;
                if ts > p.max_ts {
                    p.max_ts = ts;
                    p.dirty = true;
                } else if !p.dirty && self.tracker.is_idle(slot) {
                    p.dirty = true;
                }
                self.counters.records_out.inc();
                self.out.push(value, ts)
            }
            SourceItem::BadRecord {
                partition,
                location,
                reason,
            } => {
                let slot = self.slot(partition);
                self.partitions[slot].records += 1;
                self.bad_record(&location, reason)
            }
            SourceItem::PartitionStart(partition) => {
                let slot = self.slot(partition);
                let p = &mut self.partitions[slot];
                if p.revoked {
                    p.revoked = false;
                    p.max_ts = Timestamp::MIN;
                }
                self.tracker.reopen(slot);
                Ok(())
            }
            SourceItem::PartitionRevoked(partition) => {
                let slot = self.slot(partition);
                self.partitions[slot].revoked = true;
                let c = self.tracker.set_idle(slot);
                self.emit_combined(c)
            }
            SourceItem::PartitionEnd(partition) => {
                let slot = self.slot(partition);
                self.ended.push(slot);
                Ok(())
            }
        }
    }

    /// Applies the watermark changes of a poll. Records go out before the watermark they
    /// raise, so no record is late with respect to its own partition.
    fn advance_watermarks(&mut self) -> Result<()> {
        let bound = self.strategy.out_of_orderness;
        let mut combined = Combined::Unchanged;
        for slot in 0..self.partitions.len() {
            let p = &mut self.partitions[slot];
            if p.dirty {
                p.dirty = false;
                let wm = Watermark(p.max_ts.saturating_sub(bound));
                match self.tracker.update(slot, wm) {
                    Combined::Unchanged => {}
                    c => combined = c,
                }
            }
        }
        for slot in std::mem::take(&mut self.ended) {
            match self.tracker.end(slot) {
                Combined::Unchanged => {}
                c => combined = c,
            }
        }
        self.emit_combined(combined)
    }

    fn finish(&mut self) -> Result<()> {
        if self.tracker.current() < Watermark::MAX {
            self.counters.watermark.set(Watermark::MAX.0);
            self.out.watermark(Watermark::MAX)?;
        }
        self.out.end()
    }
}

impl<T: Data> SourceDriver<T> {
    fn failed(&self, source: crate::error::BoxError) -> EngineError {
        EngineError::SourceFailed {
            source_name: self.core.name.clone(),
            source,
        }
    }
}

impl<T: Data> SourceControl for SourceDriver<T> {
    fn name(&self) -> &str {
        &self.core.name
    }

    fn is_finished(&self) -> bool {
        self.finished
    }

    fn inject_barrier(&mut self, id: CheckpointId) -> Result<SourcePosition> {
        if !self.finished {
            self.core.out.barrier(Barrier { id })?;
        }
        Ok(self.reader.position())
    }

    fn watermark(&self) -> Watermark {
        self.core.tracker.current()
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<()> {
        self.reader.seek(position).map_err(|e| self.failed(e))
    }

    fn keep_alive(&mut self) -> Result<()> {
        self.reader.keep_alive().map_err(|e| self.failed(e))
    }

    fn checkpoint_complete(&mut self, position: &SourcePosition) -> Result<()> {
        self.reader
            .checkpoint_complete(position)
            .map_err(|e| self.failed(e))
    }
}

impl<T: Data> WorkerInput for SourceDriver<T> {
    fn source(&mut self) -> Option<&mut dyn SourceControl> {
        Some(self)
    }

    fn drive(&mut self) -> Result<Drive> {
        if self.finished {
            return Ok(Drive::Finished);
        }
        self.driven = true;
        let Self {
            reader,
            core,
            batch_size,
            ..
        } = self;
        let mut emit = |item| core.handle(item);
        let mut batch = SourceBatch::new(&mut emit, *batch_size);
        let polled = reader.poll(&mut batch);
        let (failed, worked) = (batch.take_error(), !batch.is_empty());
        if let Some(e) = failed {
            return Err(e);
        }
        let status = polled.map_err(|source| EngineError::SourceFailed {
            source_name: self.core.name.clone(),
            source,
        })?;
        self.core.advance_watermarks()?;
        match status {
            PollStatus::Finished => {
                self.finished = true;
                self.idle_vote.ended();
                self.core.finish()?;
                Ok(Drive::Finished)
            }
            PollStatus::Ready => Ok(Drive::Worked),
            PollStatus::Pending if worked => Ok(Drive::Worked),
            PollStatus::Pending => Ok(Drive::Waiting),
        }
    }

    fn tick(&mut self, now: Timestamp) -> Result<()> {
        if !std::mem::take(&mut self.driven) && !self.finished {
            self.reader
                .keep_alive()
                .map_err(|source| EngineError::SourceFailed {
                    source_name: self.core.name.clone(),
                    source,
                })?;
        }
        let core = &mut self.core;
        let Some(timeout) = core.strategy.idle_timeout else {
            return Ok(());
        };
        let timeout = crate::time::millis(timeout);
        for slot in 0..core.partitions.len() {
            let p = &mut core.partitions[slot];
            let last_active = *p.last_active.get_or_insert(now);
            if std::mem::take(&mut p.active) {
                p.last_active = Some(now);
                continue;
            }
            if !p.revoked && !core.tracker.is_idle(slot) && now.saturating_sub(last_active) >= timeout {
                let id = p.id;
                let c = core.tracker.set_idle(slot);
                if core.tracker.is_idle(slot) {
                    core.counters.idle_partitions.inc();
                    tracing::debug!(source = %core.name, partition = %id, "partition idle");
                }
                core.emit_combined(c)?;
            }
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

