use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alignment::{AlignmentBoard, too_far_ahead};
use crate::bad_record::OnBadRecord;
use crate::busy;
use crate::clock::{Clock, STALL};
use crate::error::{EngineError, Result};
use crate::idleness::IdleVote;
use crate::ids::CheckpointId;
use crate::ids::PartitionId;
use crate::metrics::{Counter, Gauge};
use crate::participant::{EventTime, SourceControl};
use crate::push::Barrier;
use crate::push::{BATCH_CAPACITY, Control, Data, Output};
use crate::runtime::{Drive, WorkerInput};
use crate::source::SourcePosition;
use crate::source::{PollStatus, RecordLocation, SourceItem, SourceOutput, SourceReader};
use crate::status::{PartitionBoard, PartitionStatus};
use crate::time::{MAX_EVENT_TIMESTAMP, Timestamp, Watermark, millis};
use crate::watermark_strategy::WatermarkStrategy;
use crate::watermark_tracker::{Combined, WatermarkTracker};

/// What the driver knows of one partition of its reader.
struct PartitionState {
    id: PartitionId,
    /// Largest event timestamp read (or restored from a checkpoint).
    max_ts: Timestamp,
    /// Whether a record of it was read since it was assigned, or a checkpoint said so.
    delivered: bool,
    /// The partition's watermark must be recomputed after this poll.
    dirty: bool,
    /// Taken away by a rebalance; it counts as idle until assigned again.
    revoked: bool,
    /// The reader has nothing more of it for now (until its next record).
    caught_up: bool,
    /// Processing time it has been caught up while the source was read, since its last record.
    quiet_ms: i64,
    /// Processing time the source was read since it was assigned, until its first record.
    unread_ms: i64,
    /// Paused by watermark alignment.
    paused: bool,
    records: u64,
}

impl PartitionState {
    fn new(id: PartitionId, restored: Option<Timestamp>) -> Self {
        PartitionState {
            id,
            max_ts: restored.unwrap_or(Timestamp::MIN),
            delivered: restored.is_some(),
            dirty: restored.is_some(),
            revoked: false,
            caught_up: false,
            quiet_ms: 0,
            unread_ms: 0,
            paused: false,
            records: 0,
        }
    }

    fn watermark(&self, bound: i64) -> Watermark {
        Watermark(self.max_ts.saturating_sub(bound))
    }
}

pub(crate) struct SourceCounters {
    pub records_out: Arc<Counter>,
    pub skipped: Arc<Counter>,
    pub idle_partitions: Arc<Counter>,
    /// Records older than their own partition's watermark: out of order by more than the
    /// bound. Whether they are late is decided downstream, by the combined watermark.
    pub beyond_bound: Arc<Counter>,
    pub paused_partitions: Arc<Gauge>,
    pub watermark: Arc<Gauge>,
    /// Nanoseconds spent reading, without what the operators downstream took.
    pub busy: Arc<Counter>,
    /// Where the driver publishes its partitions for the console.
    pub board: PartitionBoard,
    pub worker: usize,
}

/// How often a driver publishes where its partitions stand.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Watermark alignment of one reader: the board it shares with the source's other readers.
pub(crate) struct Alignment {
    pub board: Arc<AlignmentBoard>,
    pub worker: usize,
    pub max_drift: i64,
    /// The reader said it cannot pause partitions (warned once).
    pub unsupported: bool,
}

/// Reads one worker's share of a source: assigns timestamps, applies the bad-record policy,
/// keeps a watermark per partition and emits the minimum.
pub(crate) struct SourceDriver<T: Data> {
    reader: Box<dyn SourceReader<T>>,
    core: DriverCore<T>,
    batch_size: usize,
    finished: bool,
    /// Processing time of the first drive since the last tick: the part of a tick interval in
    /// which the reader was read.
    driven_at: Option<Timestamp>,
    /// Processing time of the last tick.
    last_tick: Option<Timestamp>,
    /// Real time of the last tick, and the gap after which the worker counts as stalled
    /// (`None` on a manual clock: a test moving it says the time passed under watch).
    ticked_at: Option<Instant>,
    stall_after: Option<Duration>,
    /// Where the reader's end counts towards the job's idleness.
    idle_vote: IdleVote,
    alignment: Option<Alignment>,
    /// When the partitions were last published.
    published_at: Option<Instant>,
}

/// Everything but the reader, so the reader can hand items to it during a poll.
struct DriverCore<T: Data> {
    name: String,
    clock: Clock,
    strategy: WatermarkStrategy<T>,
    policy: OnBadRecord,
    out: Output<T>,
    partitions: Vec<PartitionState>,
    tracker: WatermarkTracker,
    last_hit: usize,
    ended: Vec<usize>,
    /// Event time per partition from the restored checkpoint, for partitions assigned later.
    restored: HashMap<PartitionId, Timestamp>,
    /// Idleness was announced because the reader knows it owns no partition.
    idle_without_partitions: bool,
    /// The reader reports watermarks ([`SourceItem::Watermark`]); records do not move them.
    reported_watermarks: bool,
    counters: SourceCounters,
    /// Records handed on in the current poll, added to `counters.records_out` after it.
    records_out: u64,
}

impl<T: Data> SourceDriver<T> {
    // One argument per part of the driver, all crate-internal.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        reader: Box<dyn SourceReader<T>>,
        strategy: WatermarkStrategy<T>,
        policy: OnBadRecord,
        out: Output<T>,
        counters: SourceCounters,
        batch_size: usize,
        idle_vote: IdleVote,
        clock: Clock,
        alignment: Option<Alignment>,
    ) -> Self {
        let partitions: Vec<PartitionState> = reader
            .partitions()
            .into_iter()
            .map(|id| PartitionState::new(id, None))
            .collect();
        let reported_watermarks = reader.provides_watermarks();
        let stall_after = (!clock.is_manual()).then_some(STALL);
        SourceDriver {
            reader,
            core: DriverCore {
                reported_watermarks,
                name,
                clock,
                strategy,
                policy,
                out: out.batching(BATCH_CAPACITY),
                tracker: WatermarkTracker::new(partitions.len()),
                partitions,
                last_hit: 0,
                ended: Vec::new(),
                restored: HashMap::new(),
                idle_without_partitions: false,
                counters,
                records_out: 0,
            },
            batch_size,
            finished: false,
            driven_at: None,
            last_tick: None,
            ticked_at: None,
            stall_after,
            idle_vote,
            alignment,
            published_at: None,
        }
    }
}

impl<T: Data> DriverCore<T> {
    /// The slot of `partition`: the one of the previous record, almost always.
    #[inline(always)]
    fn slot(&mut self, partition: PartitionId) -> usize {
        if self
            .partitions
            .get(self.last_hit)
            .is_some_and(|p| p.id == partition)
        {
            return self.last_hit;
        }
        self.find_slot(partition)
    }

    /// The slot of a partition other than the previous record's, added if new.
    #[cold]
    #[inline(never)]
    fn find_slot(&mut self, partition: PartitionId) -> usize {
        let i = match self.partitions.iter().position(|p| p.id == partition) {
            Some(i) => i,
            None => {
                // A reader may pick up partitions later (the next split, a rebalance).
                let restored = self.restored.get(&partition).copied();
                self.partitions.push(PartitionState::new(partition, restored));
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
            Combined::Resumed(wm) => self.out.watermark(wm),
            Combined::Idle => self.out.idle(),
            Combined::IdleAt(wm) => {
                self.counters.watermark.set(wm.0);
                self.out.watermark(wm)?;
                self.out.idle()
            }
        }
    }

    fn bad_record(&mut self, location: &RecordLocation, reason: String) -> Result<()> {
        match self.policy {
            OnBadRecord::Fail => Err(EngineError::BadRecord {
                source_name: self.name.clone(),
                location: location.to_string(),
                reason,
            }),
            OnBadRecord::Skip => {
                self.counters.skipped.inc();
                tracing::debug!(source = %self.name, %location, %reason, "skipping bad record");
                Ok(())
            }
            OnBadRecord::DeadLetter(none) => match none {},
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
                let bound = self.strategy.out_of_orderness;
                let p = &mut self.partitions[slot];
                let index = p.records;
                p.records += 1;
                if !(0..=MAX_EVENT_TIMESTAMP).contains(&ts) {
                    let location = location.unwrap_or_else(|| RecordLocation::index(partition, index));
                    return self.bad_record(&location, format!("event timestamp {ts} is out of range"));
                }
                // Records of a partition given up are handed on without moving its watermark:
                // it belongs to another reader now.
                if !p.revoked {
                    p.caught_up = false;
                    p.quiet_ms = 0;
                    p.delivered = true;
                    if self.reported_watermarks {
                        if !p.dirty && self.tracker.is_idle(slot) {
                            p.dirty = true;
                        }
                    } else if ts > p.max_ts {
                        p.max_ts = ts;
                        p.dirty = true;
                    } else {
                        if ts < p.watermark(bound).0 {
                            self.counters.beyond_bound.inc();
                        }
                        if !p.dirty && self.tracker.is_idle(slot) {
                            p.dirty = true;
                        }
                    }
                }
                self.records_out += 1;
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
                    // Assigned again: it holds the watermark where it is until it delivers.
                    p.revoked = false;
                    p.caught_up = false;
                    p.quiet_ms = 0;
                    p.unread_ms = 0;
                }
                let c = self.tracker.reopen(slot);
                self.emit_combined(c)?;
                if std::mem::take(&mut self.idle_without_partitions) {
                    // Downstream was told this reader holds nothing back: it does again.
                    self.out.watermark(self.tracker.current())?;
                }
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
            SourceItem::Watermark(partition, wm) => {
                let slot = self.slot(partition);
                let bound = self.strategy.out_of_orderness;
                let p = &mut self.partitions[slot];
                // The partition's watermark is `max_ts - bound`: keep it that way, so
                // checkpoints and restores treat it as any other partition's.
                let max_ts = wm.0.saturating_add(bound);
                let idle = self.tracker.is_idle(slot);
                if self.reported_watermarks && !p.revoked && (max_ts > p.max_ts || idle) {
                    // Event time moving on is news from the partition, as a record is; so is a
                    // watermark of a partition that was idle: it holds event time back again.
                    p.max_ts = p.max_ts.max(max_ts);
                    p.delivered = true;
                    p.dirty = true;
                    p.caught_up = false;
                    p.quiet_ms = 0;
                }
                Ok(())
            }
            SourceItem::PartitionCaughtUp(partition) => {
                let slot = self.slot(partition);
                self.partitions[slot].caught_up = true;
                Ok(())
            }
            SourceItem::PartitionIdle(partition) => {
                let slot = self.slot(partition);
                if self.partitions[slot].revoked || self.tracker.is_idle(slot) {
                    return Ok(());
                }
                let c = self.tracker.set_idle(slot);
                self.counters.idle_partitions.inc();
                tracing::debug!(source = %self.name, %partition, "partition idle, as its input says");
                self.emit_combined(c)
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
                let wm = p.watermark(bound);
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

    /// Partitions the reader owns now and will read again.
    fn live_partitions(&self) -> usize {
        (0..self.partitions.len())
            .filter(|i| !self.partitions[*i].revoked && self.tracker.input(*i).is_some())
            .count()
    }

    /// The watermark this reader holds the source at, for alignment: `MAX` when it holds
    /// nothing back.
    fn held_at(&self) -> Watermark {
        if self.tracker.is_all_idle() || self.live_partitions() == 0 {
            Watermark::MAX
        } else {
            self.tracker.current()
        }
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

    /// A reader that knows it owns no partition holds nothing back.
    fn announce_if_empty(&mut self) -> Result<()> {
        let core = &mut self.core;
        if !core.idle_without_partitions && core.tracker.is_empty() && self.reader.assignment_known() {
            core.idle_without_partitions = true;
            core.out.idle()?;
        }
        Ok(())
    }

    /// Pauses the partitions too far ahead of the source's watermark and resumes the others.
    fn align(&mut self) -> Result<()> {
        let Some(a) = self.alignment.as_mut() else {
            return Ok(());
        };
        let core = &mut self.core;
        // A reader that does not know its partitions yet holds the source back.
        let held = if core.tracker.is_empty() && !self.reader.assignment_known() {
            Watermark::MIN
        } else {
            core.held_at()
        };
        a.board.publish(a.worker, held);
        if a.unsupported {
            return Ok(());
        }
        let source_wm = a.board.source_watermark();
        let bound = core.strategy.out_of_orderness;
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        for (i, p) in core.partitions.iter_mut().enumerate() {
            let live = !p.revoked && core.tracker.input(i).is_some() && !core.tracker.is_idle(i);
            let ahead = live && p.delivered && too_far_ahead(p.watermark(bound), source_wm, a.max_drift);
            if ahead != p.paused {
                p.paused = ahead;
                if ahead { &mut pause } else { &mut resume }.push(p.id);
            }
        }
        for (partitions, paused) in [(resume, false), (pause, true)] {
            if partitions.is_empty() {
                continue;
            }
            let supported =
                self.reader
                    .pause(&partitions, paused)
                    .map_err(|e| EngineError::SourceFailed {
                        source_name: core.name.clone(),
                        source: e,
                    })?;
            if !supported {
                a.unsupported = true;
                tracing::warn!(source = %core.name, "this source cannot pause partitions: watermark alignment is off");
                return Ok(());
            }
        }
        let paused = core.partitions.iter().filter(|p| p.paused).count();
        core.counters.paused_partitions.set(paused as i64);
        Ok(())
    }

    /// Counts the processing time since the last tick in which the reader was read towards
    /// the idleness of its caught-up (and its silent new) partitions.
    fn check_idleness(&mut self, now: Timestamp) -> Result<()> {
        let since = self.last_tick.replace(now).unwrap_or(now);
        let read_from = self.driven_at.take();
        if self.stalled() {
            // What was seen before the stall is out of date: a partition is idle only after a
            // whole idle timeout watched from now on.
            tracing::debug!(source = %self.core.name, "worker stalled: partition idleness starts again");
            for p in &mut self.core.partitions {
                p.caught_up = false;
                p.quiet_ms = 0;
            }
            return Ok(());
        }
        let core = &mut self.core;
        let (idle, initial) = (core.strategy.idle_timeout, core.strategy.initial_idle_timeout);
        if idle.is_none() && initial.is_none() {
            return Ok(());
        }
        // Only the part of the interval in which the reader was read counts: a partition that
        // was not read was not seen to be caught up.
        let read_ms = read_from.map_or(0, |from| now.saturating_sub(from.max(since)).max(0));
        if read_ms == 0 {
            return Ok(());
        }
        for slot in 0..core.partitions.len() {
            let p = &mut core.partitions[slot];
            if p.revoked || p.paused || core.tracker.input(slot).is_none() || core.tracker.is_idle(slot) {
                continue;
            }
            if p.caught_up {
                p.quiet_ms = p.quiet_ms.saturating_add(read_ms);
            }
            if !p.delivered {
                p.unread_ms = p.unread_ms.saturating_add(read_ms);
            }
            let quiet = idle.is_some_and(|t| p.caught_up && p.quiet_ms >= millis(t));
            let silent = initial.is_some_and(|t| !p.delivered && p.unread_ms >= millis(t));
            if quiet || silent {
                let id = p.id;
                let c = core.tracker.set_idle(slot);
                core.counters.idle_partitions.inc();
                tracing::debug!(source = %core.name, partition = %id, silent, "partition idle");
                core.emit_combined(c)?;
            }
        }
        Ok(())
    }
}

impl<T: Data> SourceDriver<T> {
    /// Notes this tick's real time; whether the gap since the last one is a stall.
    fn stalled(&mut self) -> bool {
        let now = Instant::now();
        let last = self.ticked_at.replace(now);
        matches!((self.stall_after, last), (Some(limit), Some(last)) if now.duration_since(last) > limit)
    }
}

impl<T: Data> SourceControl for SourceDriver<T> {
    fn name(&self) -> &str {
        &self.core.name
    }

    fn is_finished(&self) -> bool {
        self.finished
    }

    fn inject_barrier(&mut self, id: CheckpointId) -> Result<(SourcePosition, EventTime)> {
        if !self.finished {
            self.reader.flush().map_err(|e| self.failed(e))?;
            self.core.out.barrier(Barrier { id })?;
        }
        let event_time = self
            .core
            .partitions
            .iter()
            .filter(|p| p.max_ts > Timestamp::MIN)
            .map(|p| (p.id, p.max_ts))
            .collect();
        Ok((self.reader.position(), event_time))
    }

    fn restore_event_time(&mut self, event_time: &EventTime) {
        let core = &mut self.core;
        for p in &mut core.partitions {
            if let Some(t) = event_time.get(&p.id) {
                p.max_ts = p.max_ts.max(*t);
                p.delivered = true;
                p.dirty = true;
            }
        }
        core.restored = event_time.iter().map(|(p, t)| (*p, *t)).collect();
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
        let busy = Arc::clone(&self.core.counters.busy);
        busy::timed(&busy, || self.read())
    }

    fn tick_paused(&mut self, now: Timestamp) {
        // A checkpoint pause is time in which nothing was read.
        self.last_tick = Some(now);
        self.ticked_at = Some(Instant::now());
        self.driven_at = None;
        self.publish();
    }

    fn tick(&mut self, now: Timestamp) -> Result<()> {
        if self.driven_at.is_none() && !self.finished {
            self.reader
                .keep_alive()
                .map_err(|source| EngineError::SourceFailed {
                    source_name: self.core.name.clone(),
                    source,
                })?;
        }
        self.check_idleness(now)?;
        self.align()?;
        self.publish();
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

impl<T: Data> SourceDriver<T> {
    /// One poll of the reader: hands its records on, moves the watermarks.
    fn read(&mut self) -> Result<Drive> {
        if self.finished {
            return Ok(Drive::Finished);
        }
        if self.driven_at.is_none() {
            let now = self.core.clock.now();
            self.driven_at = Some(now);
            // Reading starts the first interval that counts towards idleness.
            self.last_tick.get_or_insert(now);
        }
        let Self {
            reader,
            core,
            batch_size,
            ..
        } = self;
        let mut emit = |item| core.handle(item);
        let mut batch = SourceOutput::new(&mut emit, *batch_size);
        let polled = reader.poll(&mut batch);
        let (failed, worked) = (batch.take_error(), !batch.is_empty());
        let records = std::mem::take(&mut self.core.records_out);
        self.core.counters.records_out.add(records);
        if let Some(e) = failed {
            return Err(e);
        }
        self.core.out.flush()?;
        let status = polled.map_err(|source| EngineError::SourceFailed {
            source_name: self.core.name.clone(),
            source,
        })?;
        if status == PollStatus::Pending && !worked {
            // Nothing at all to give: every partition is caught up.
            for p in &mut self.core.partitions {
                p.caught_up = true;
            }
        }
        self.core.advance_watermarks()?;
        self.announce_if_empty()?;
        self.align()?;
        match status {
            PollStatus::Finished => {
                self.finished = true;
                self.idle_vote.ended();
                if let Some(a) = &self.alignment {
                    a.board.publish(a.worker, Watermark::MAX);
                }
                self.core.finish()?;
                Ok(Drive::Finished)
            }
            PollStatus::Ready => Ok(Drive::Worked),
            PollStatus::Pending if worked => Ok(Drive::Worked),
            PollStatus::Pending => Ok(Drive::Waiting),
        }
    }

    /// Publishes where each partition stands, at most every [`PUBLISH_EVERY`].
    fn publish(&mut self) {
        let now = Instant::now();
        if self
            .published_at
            .is_some_and(|at| now.duration_since(at) < PUBLISH_EVERY)
        {
            return;
        }
        self.published_at = Some(now);
        let position = self.reader.position();
        let ends: HashMap<PartitionId, u64> = self.reader.end_offsets().into_iter().collect();
        let core = &self.core;
        let (board, worker) = (&core.counters.board, core.counters.worker);
        for (slot, p) in core.partitions.iter().enumerate() {
            if p.revoked {
                board.withdraw(&core.name, p.id.0, worker);
                continue;
            }
            let next_offset = position.offsets.get(&p.id).copied();
            let end_offset = ends.get(&p.id).copied();
            board.publish(PartitionStatus {
                source: core.name.clone(),
                partition: p.id.0,
                worker,
                next_offset,
                end_offset,
                lag: next_offset
                    .zip(end_offset)
                    .map(|(next, end)| end.saturating_sub(next)),
                watermark: core
                    .tracker
                    .input(slot)
                    .filter(|w| *w > Watermark::MIN)
                    .map(|w| w.0),
                idle: core.tracker.is_idle(slot),
                paused: p.paused,
                records: p.records,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    use super::*;
    use crate::error::BoxError;
    use crate::idleness::InputIdleness;
    use crate::push::Push;

    /// Hands out scripted items, one poll at a time; reports watermarks itself if `.1`.
    struct Script(VecDeque<Vec<SourceItem<u64>>>, bool);

    impl SourceReader<u64> for Script {
        fn partitions(&self) -> Vec<PartitionId> {
            Vec::new()
        }
        fn poll(&mut self, batch: &mut SourceOutput<'_, u64>) -> std::result::Result<PollStatus, BoxError> {
            let Some(items) = self.0.pop_front() else {
                return Ok(PollStatus::Pending);
            };
            for item in items {
                match item {
                    SourceItem::Record { partition, value, .. } => batch.record(partition, value, None),
                    SourceItem::PartitionStart(p) => batch.partition_start(p),
                    SourceItem::PartitionRevoked(p) => batch.partition_revoked(p),
                    SourceItem::PartitionEnd(p) => batch.partition_end(p),
                    SourceItem::PartitionCaughtUp(p) => batch.caught_up(p),
                    SourceItem::PartitionIdle(p) => batch.partition_idle(p),
                    SourceItem::Watermark(p, wm) => batch.watermark(p, wm),
                    SourceItem::BadRecord { .. } => {}
                }
            }
            Ok(PollStatus::Ready)
        }
        fn position(&self) -> SourcePosition {
            SourcePosition::default()
        }
        fn seek(&mut self, _: &SourcePosition) -> std::result::Result<(), BoxError> {
            Ok(())
        }
        fn provides_watermarks(&self) -> bool {
            self.1
        }
    }

    struct Watermarks(Rc<RefCell<Vec<Watermark>>>);

    impl Push<u64> for Watermarks {
        fn push(&mut self, _: u64, _: Timestamp) -> Result<()> {
            Ok(())
        }
        fn watermark(&mut self, wm: Watermark) -> Result<()> {
            self.0.borrow_mut().push(wm);
            Ok(())
        }
        fn idle(&mut self) -> Result<()> {
            Ok(())
        }
        fn barrier(&mut self, _: Barrier) -> Result<()> {
            Ok(())
        }
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn record(partition: u32, ts: u64) -> SourceItem<u64> {
        SourceItem::Record {
            partition: PartitionId(partition),
            value: ts,
            timestamp: None,
            location: None,
        }
    }

    fn driver(polls: Vec<Vec<SourceItem<u64>>>) -> (SourceDriver<u64>, Rc<RefCell<Vec<Watermark>>>) {
        driver_of(Script(polls.into(), false))
    }

    fn driver_of(script: Script) -> (SourceDriver<u64>, Rc<RefCell<Vec<Watermark>>>) {
        driver_with(script, |s| s)
    }

    fn driver_with(
        script: Script,
        strategy: impl FnOnce(WatermarkStrategy<u64>) -> WatermarkStrategy<u64>,
    ) -> (SourceDriver<u64>, Rc<RefCell<Vec<Watermark>>>) {
        let watermarks = Rc::new(RefCell::new(Vec::new()));
        let out = Output::new();
        out.attach(Box::new(Watermarks(Rc::clone(&watermarks))));
        let counters = SourceCounters {
            records_out: Arc::default(),
            skipped: Arc::default(),
            idle_partitions: Arc::default(),
            beyond_bound: Arc::default(),
            paused_partitions: Arc::default(),
            watermark: Arc::default(),
            busy: Arc::default(),
            board: PartitionBoard::default(),
            worker: 0,
        };
        let vote = IdleVote::new(Arc::new(InputIdleness::new(1, 1)), "s", 0);
        let strategy = strategy(WatermarkStrategy::monotonous().with_timestamps(|v: &u64| *v as i64));
        let driver = SourceDriver::new(
            "s".into(),
            Box::new(script),
            strategy,
            OnBadRecord::Fail,
            out,
            counters,
            64,
            vote,
            Clock::manual(0),
            None,
        );
        (driver, watermarks)
    }

    #[test]
    fn records_of_a_revoked_partition_do_not_make_it_hold_the_watermark_again() {
        let (mut d, watermarks) = driver(vec![
            vec![
                SourceItem::PartitionStart(PartitionId(0)),
                SourceItem::PartitionStart(PartitionId(1)),
                record(0, 100),
                record(1, 50),
            ],
            // Partition 1 moves to another reader; records this reader still held for it
            // are handed on after the revocation.
            vec![SourceItem::PartitionRevoked(PartitionId(1)), record(1, 60)],
            vec![record(0, 1_000)],
        ]);
        for _ in 0..3 {
            d.drive().unwrap();
        }
        assert_eq!(
            watermarks.borrow().last(),
            Some(&Watermark(1_000)),
            "partition 1 belongs to another reader now: {:?}",
            watermarks.borrow()
        );
    }

    #[test]
    fn a_reader_that_reports_watermarks_sets_them_and_its_records_do_not() {
        let wm = |p: u32, t: i64| SourceItem::Watermark(PartitionId(p), Watermark(t));
        let polls = vec![
            vec![
                SourceItem::PartitionStart(PartitionId(0)),
                SourceItem::PartitionStart(PartitionId(1)),
                record(0, 900),
                record(1, 800),
            ],
            vec![wm(0, 300), wm(1, 200)],
            // A lower report than the partition's watermark is ignored.
            vec![wm(1, 100), wm(0, 500), record(1, 5_000)],
        ];
        let (mut d, watermarks) = driver_of(Script(polls.into(), true));
        d.drive().unwrap();
        assert!(
            watermarks.borrow().is_empty(),
            "records of a reporting reader set no watermark: {:?}",
            watermarks.borrow()
        );
        d.drive().unwrap();
        assert_eq!(watermarks.borrow().last(), Some(&Watermark(200)));
        d.drive().unwrap();
        assert_eq!(watermarks.borrow().last(), Some(&Watermark(200)));
        let (_, event_time) = d.inject_barrier(CheckpointId(1)).unwrap();
        assert_eq!(event_time.get(&PartitionId(0)), Some(&500));
        assert_eq!(
            event_time.get(&PartitionId(1)),
            Some(&200),
            "the lower report changed nothing"
        );
    }

    #[test]
    fn a_stalled_worker_does_not_take_its_partitions_for_idle() {
        let polls = vec![vec![SourceItem::PartitionStart(PartitionId(0)), record(0, 100)]];
        let (mut d, _) = driver_with(Script(polls.into(), false), |s| {
            s.with_idleness(Duration::from_secs(1))
        });
        d.stall_after = Some(Duration::from_millis(100));
        let clock = d.core.clock.clone();
        let idle = |d: &SourceDriver<u64>| d.core.counters.idle_partitions.get() > 0;
        d.tick(clock.now()).unwrap();
        d.drive().unwrap();
        d.drive().unwrap();
        assert!(d.core.partitions[0].caught_up, "nothing more to read");
        // The process is stopped (SIGSTOP, a VM pause) for longer than the idle timeout: its
        // partition may have filled meanwhile, and nobody watched it.
        std::thread::sleep(Duration::from_millis(150));
        clock.advance(Duration::from_secs(15));
        d.tick(clock.now()).unwrap();
        assert!(!idle(&d), "a stall is not quiet seen");
        // Watched quiet makes it idle, after a whole idle timeout.
        let mut watched = 0;
        while !idle(&d) && watched < 10_000 {
            d.drive().unwrap();
            clock.advance(Duration::from_millis(200));
            watched += 200;
            d.tick(clock.now()).unwrap();
        }
        assert!(idle(&d), "never idle");
        assert!(watched >= 1_000, "idle after {watched} ms watched");
    }
}
