use std::hash::Hash;
use std::sync::Arc;

use sluice_engine::state::{KeyedTable, StateKey};
use sluice_engine::{
    CheckpointId, Counter, Data, EngineError, Keyed, Operator, OperatorContext, OperatorSnapshot, Output,
    Result, TimerQueue, Timestamp, Watermark,
};

use super::assigner::{Emit, Window, WindowResult};
use crate::aggregators::Aggregator;
use crate::snapshot;

/// Session window aggregation: per key, the open sessions with their accumulators. A record
/// opens `[ts, ts + gap)`, which absorbs every session it overlaps (their accumulators merge).
/// A session's result is emitted when the watermark reaches `end + allowed_lateness`.
pub(crate) struct SessionAggregate<K: StateKey, T, A: Aggregator<T>> {
    name: String,
    gap: i64,
    lateness: i64,
    agg: A,
    table: Option<Box<dyn KeyedTable<K, (), Vec<(Window, A::Acc)>>>>,
    timers: TimerQueue<K, ()>,
    watermark: Watermark,
    late: Option<Output<T>>,
    late_records: Arc<Counter>,
    merges: Arc<Counter>,
}

impl<K: StateKey, T, A: Aggregator<T>> SessionAggregate<K, T, A> {
    pub(crate) fn new(gap: i64, lateness: i64, agg: A, late: Option<Output<T>>) -> Self {
        SessionAggregate {
            name: String::new(),
            gap,
            lateness,
            agg,
            table: None,
            timers: TimerQueue::new(),
            watermark: Watermark::MIN,
            late,
            late_records: Arc::default(),
            merges: Arc::default(),
        }
    }

    fn table(&mut self) -> Result<&mut Box<dyn KeyedTable<K, (), Vec<(Window, A::Acc)>>>> {
        self.table
            .as_mut()
            .ok_or_else(|| EngineError::user("session state used before open"))
    }

    fn cleanup_time(&self, w: &Window) -> Timestamp {
        w.end.saturating_add(self.lateness)
    }
}

impl<K, T, A> Operator for SessionAggregate<K, T, A>
where
    K: StateKey + Data + Hash + Eq,
    T: Data,
    A: Aggregator<T>,
{
    type In = Keyed<K, T>;
    type Out = WindowResult<K, A::Out>;

    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        self.name = ctx.name().to_string();
        self.table = Some(ctx.state().open_table(ctx.name())?);
        self.late_records = ctx.counter("late_records");
        self.merges = ctx.counter("session_merges");
        Ok(())
    }

    fn process(&mut self, record: Keyed<K, T>, ts: Timestamp, _out: &mut Output<Self::Out>) -> Result<()> {
        let Keyed {
            key_group,
            key,
            value,
        } = record;
        let fresh = Window {
            start: ts,
            end: ts.saturating_add(self.gap),
        };
        if self.cleanup_time(&fresh) <= self.watermark.0 {
            self.late_records.inc();
            if let Some(late) = &mut self.late {
                late.push(value, ts)?;
            }
            return Ok(());
        }
        let Self {
            agg, table, merges, ..
        } = self;
        let table = table
            .as_mut()
            .ok_or_else(|| EngineError::user("session state used before open"))?;
        let mut merged = fresh;
        table.upsert(key_group, &key, &(), &mut Vec::new, &mut |sessions| {
            let mut acc = agg.init();
            agg.add(&mut acc, &value);
            let mut absorbed = 0;
            let mut i = 0;
            while i < sessions.len() {
                let w = sessions[i].0;
                if w.start < fresh.end && fresh.start < w.end {
                    let (w, other) = sessions.swap_remove(i);
                    merged.start = merged.start.min(w.start);
                    merged.end = merged.end.max(w.end);
                    agg.merge(&mut acc, other);
                    absorbed += 1;
                } else {
                    i += 1;
                }
            }
            if absorbed >= 2 {
                merges.inc();
            }
            sessions.push((merged, acc));
        })?;
        let due = self.cleanup_time(&merged);
        self.timers.register(due, key_group, key, ());
        Ok(())
    }

    fn restore_watermark(&mut self, wm: Watermark) {
        self.watermark = wm;
    }

    fn on_watermark(&mut self, wm: Watermark, out: &mut Output<Self::Out>) -> Result<()> {
        self.watermark = wm;
        let lateness = self.lateness;
        while let Some((_, due)) = self.timers.pop_due(wm.0) {
            for (key_group, key, ()) in due {
                let Some(sessions) = self.table()?.remove(key_group, &key, &())? else {
                    continue;
                };
                let (closed, open): (Vec<_>, Vec<_>) = sessions
                    .into_iter()
                    .partition(|(w, _)| w.end.saturating_add(lateness) <= wm.0);
                if !open.is_empty() {
                    self.table()?.put(key_group, key.clone(), (), open)?;
                }
                let mut closed = closed;
                closed.sort_by_key(|(w, _)| w.start);
                for (window, acc) in closed {
                    let value = self.agg.finish(acc);
                    out.push(
                        WindowResult {
                            key: key.clone(),
                            window,
                            value,
                            emit: Emit::Final,
                        },
                        window.max_timestamp(),
                    )?;
                }
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _id: CheckpointId) -> Result<OperatorSnapshot> {
        let table = self
            .table
            .as_deref_mut()
            .ok_or_else(|| EngineError::user("state used before open"))?;
        snapshot::table_and_timers(&self.name, table, &self.timers)
    }

    fn restore(&mut self, snap: &OperatorSnapshot) -> Result<()> {
        let table = self
            .table
            .as_deref_mut()
            .ok_or_else(|| EngineError::user("state used before open"))?;
        snapshot::restore_table_and_timers(&self.name, table, &mut self.timers, snap)
    }
}
