use std::sync::Arc;
use std::time::Instant;

use crate::error::{EngineError, Result};
use crate::ids::PartitionId;
use crate::metrics::{Counter, Gauge};
use crate::push::{Control, Data, Output};
use crate::source::{BadRecordPolicy, PollStatus, RecordLocation, SourceBatch, SourceItem, SourceReader};
use crate::time::{MAX_EVENT_TIMESTAMP, Timestamp, Watermark};
use crate::watermark_strategy::WatermarkStrategy;
use crate::watermark_tracker::{Combined, WatermarkTracker};
use crate::worker::{Drive, WorkerInput};

struct PartitionState {
    id: PartitionId,
    max_ts: Timestamp,
    last_record: Instant,
    records: u64,
}

/// Reads one worker's share of a source: assigns timestamps, applies the bad-record policy,
/// keeps a watermark per partition and emits the minimum.
pub(crate) struct SourceDriver<T: Data> {
    name: String,
    reader: Box<dyn SourceReader<T>>,
    strategy: WatermarkStrategy<T>,
    policy: BadRecordPolicy,
    out: Output<T>,
    batch: SourceBatch<T>,
    partitions: Vec<PartitionState>,
    tracker: WatermarkTracker,
    last_hit: usize,
    finished: bool,
    records_out: Arc<Counter>,
    skipped: Arc<Counter>,
    idle_partitions: Arc<Counter>,
    watermark_gauge: Arc<Gauge>,
}

pub(crate) struct SourceCounters {
    pub records_out: Arc<Counter>,
    pub skipped: Arc<Counter>,
    pub idle_partitions: Arc<Counter>,
    pub watermark: Arc<Gauge>,
}

impl<T: Data> SourceDriver<T> {
    pub(crate) fn new(
        name: String,
        reader: Box<dyn SourceReader<T>>,
        strategy: WatermarkStrategy<T>,
        policy: BadRecordPolicy,
        out: Output<T>,
        counters: SourceCounters,
    ) -> Self {
        let now = Instant::now();
        let partitions: Vec<PartitionState> = reader
            .partitions()
            .into_iter()
            .map(|id| PartitionState {
                id,
                max_ts: Timestamp::MIN,
                last_record: now,
                records: 0,
            })
            .collect();
        SourceDriver {
            name,
            reader,
            strategy,
            policy,
            out,
            batch: SourceBatch::default(),
            tracker: WatermarkTracker::new(partitions.len()),
            partitions,
            last_hit: 0,
            finished: false,
            records_out: counters.records_out,
            skipped: counters.skipped,
            idle_partitions: counters.idle_partitions,
            watermark_gauge: counters.watermark,
        }
    }

    #[inline]
    fn slot(&mut self, partition: PartitionId) -> Result<usize> {
        if self.partitions.get(self.last_hit).is_some_and(|p| p.id == partition) {
            return Ok(self.last_hit);
        }
        match self.partitions.iter().position(|p| p.id == partition) {
            Some(i) => {
                self.last_hit = i;
                Ok(i)
            }
            None => {
                // A reader may pick up partitions later (e.g. on a rebalance).
                self.partitions.push(PartitionState {
                    id: partition,
                    max_ts: Timestamp::MIN,
                    last_record: Instant::now(),
                    records: 0,
                });
                let i = self.tracker.add_input();
                self.last_hit = i;
                Ok(i)
            }
        }
    }

    fn emit_combined(&mut self, c: Combined) -> Result<()> {
        match c {
            Combined::Unchanged => Ok(()),
            Combined::Advanced(wm) => {
                self.watermark_gauge.set(wm.0);
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
                self.skipped.inc();
                tracing::debug!(source = %self.name, %location, %reason, "skipping bad record");
                Ok(())
            }
        }
    }

    fn handle(&mut self, item: SourceItem<T>) -> Result<()> {
        match item {
            SourceItem::Record {
                partition,
                value,
                timestamp,
                location,
            } => {
                let slot = self.slot(partition)?;
                let ts = self.strategy.timestamp_of(&value, timestamp);
                let p = &mut self.partitions[slot];
                let index = p.records;
                p.records += 1;
                if !(0..=MAX_EVENT_TIMESTAMP).contains(&ts) {
                    let location = location.unwrap_or(RecordLocation::Index { partition, index });
                    return self.bad_record(&location, format!("event timestamp {ts} is out of range"));
                }
                p.last_record = Instant::now();
                let was_idle = self.tracker.is_idle(slot);
                if ts > p.max_ts || was_idle {
                    p.max_ts = p.max_ts.max(ts);
                    let wm = Watermark(p.max_ts.saturating_sub(self.strategy.out_of_orderness));
                    // The record goes out before the watermark it raised, so it is never late
                    // with respect to its own partition.
                    self.records_out.inc();
                    self.out.push(value, ts)?;
                    let c = self.tracker.update(slot, wm);
                    return self.emit_combined(c);
                }
                self.records_out.inc();
                self.out.push(value, ts)
            }
            SourceItem::BadRecord {
                partition,
                location,
                reason,
            } => {
                let slot = self.slot(partition)?;
                self.partitions[slot].records += 1;
                self.bad_record(&location, reason)
            }
            SourceItem::PartitionStart(partition) => self.slot(partition).map(drop),
            SourceItem::PartitionEnd(partition) => {
                let slot = self.slot(partition)?;
                let c = self.tracker.end(slot);
                self.emit_combined(c)
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.finished = true;
        for i in 0..self.tracker.len() {
            let c = self.tracker.end(i);
            self.emit_combined(c)?;
        }
        if self.tracker.current() < Watermark::MAX {
            self.watermark_gauge.set(Watermark::MAX.0);
            self.out.watermark(Watermark::MAX)?;
        }
        self.out.end()
    }
}

impl<T: Data> WorkerInput for SourceDriver<T> {
    fn drive(&mut self) -> Result<Drive> {
        if self.finished {
            return Ok(Drive::Finished);
        }
        let status = self
            .reader
            .poll(&mut self.batch)
            .map_err(|source| EngineError::SourceFailed {
                source_name: self.name.clone(),
                source,
            })?;
        let mut batch = std::mem::take(&mut self.batch);
        let worked = !batch.is_empty();
        let mut result = Ok(());
        for item in batch.drain() {
            result = self.handle(item);
            if result.is_err() {
                break;
            }
        }
        self.batch = batch;
        result?;
        match status {
            PollStatus::Finished => {
                self.finish()?;
                Ok(Drive::Finished)
            }
            PollStatus::Ready => Ok(Drive::Worked),
            PollStatus::Pending if worked => Ok(Drive::Worked),
            PollStatus::Pending => Ok(Drive::Waiting),
        }
    }

    fn tick(&mut self, _now: Timestamp) -> Result<()> {
        let Some(timeout) = self.strategy.idle_timeout else {
            return Ok(());
        };
        let now = Instant::now();
        for slot in 0..self.partitions.len() {
            let p = &self.partitions[slot];
            if !self.tracker.is_idle(slot) && now.duration_since(p.last_record) >= timeout {
                let c = self.tracker.set_idle(slot);
                if self.tracker.is_idle(slot) {
                    self.idle_partitions.inc();
                    tracing::debug!(source = %self.name, partition = %p.id, "partition idle");
                }
                self.emit_combined(c)?;
            }
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}
