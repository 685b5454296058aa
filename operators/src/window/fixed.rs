use std::hash::Hash;
use std::sync::Arc;

use sluice_engine::state::{KeyedTable, StateKey};
use sluice_engine::{
    CheckpointId, Counter, Data, EngineError, Keyed, Operator, OperatorContext, OperatorSnapshot, Output,
    Result, TimerQueue, Timestamp, Watermark,
};

use super::assigner::{Window, WindowResult, for_each_window};
use crate::aggregators::Aggregator;
use crate::snapshot;

/// Tumbling and sliding window aggregation: one accumulator per (key, window) in keyed
/// state, one event-time timer per (key, window) at `end + allowed_lateness`, when the
/// final result is emitted and the state dropped.
pub(crate) struct FixedWindowAggregate<K: StateKey, T, A: Aggregator<T>> {
    name: String,
    size: i64,
    slide: i64,
    lateness: i64,
    agg: A,
    table: Option<Box<dyn KeyedTable<K, Window, A::Acc>>>,
    timers: TimerQueue<K, Window>,
    watermark: Watermark,
    created: Vec<Window>,
    late: Option<Output<T>>,
    late_records: Arc<Counter>,
}

impl<K: StateKey, T, A: Aggregator<T>> FixedWindowAggregate<K, T, A> {
    pub(crate) fn new(size: i64, slide: i64, lateness: i64, agg: A, late: Option<Output<T>>) -> Self {
        FixedWindowAggregate {
            name: String::new(),
            size,
            slide,
            lateness,
            agg,
            table: None,
            timers: TimerQueue::new(),
            watermark: Watermark::MIN,
            created: Vec::new(),
            late,
            late_records: Arc::default(),
        }
    }

    fn table(&mut self) -> Result<&mut Box<dyn KeyedTable<K, Window, A::Acc>>> {
        self.table
            .as_mut()
            .ok_or_else(|| EngineError::user("window state used before open"))
    }
}

impl<K, T, A> Operator for FixedWindowAggregate<K, T, A>
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
        Ok(())
    }

    #[inline]
    fn process(&mut self, record: Keyed<K, T>, ts: Timestamp, _out: &mut Output<Self::Out>) -> Result<()> {
        let Keyed {
            key_group,
            key,
            value,
        } = record;
        let (wm, lateness) = (self.watermark.0, self.lateness);
        let Self {
            agg, table, created, ..
        } = self;
        let table = table
            .as_mut()
            .ok_or_else(|| EngineError::user("window state used before open"))?;
        let mut accepted = false;
        let mut result = Ok(());
        created.clear();
        for_each_window(ts, self.size, self.slide, |w| {
            if result.is_err() || w.end.saturating_add(lateness) <= wm {
                return;
            }
            accepted = true;
            match table.upsert(key_group, &key, &w, &mut || agg.init(), &mut |acc| {
                agg.add(acc, &value)
            }) {
                Ok(true) => created.push(w),
                Ok(false) => {}
                Err(e) => result = Err(e),
            }
        });
        result?;
        for w in &self.created {
            self.timers
                .register(w.end.saturating_add(lateness), key_group, key.clone(), *w);
        }
        if !accepted {
            self.late_records.inc();
            if let Some(late) = &mut self.late {
                late.push(value, ts)?;
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: Watermark, out: &mut Output<Self::Out>) -> Result<()> {
        self.watermark = wm;
        while let Some((_, due)) = self.timers.pop_due(wm.0) {
            for (key_group, key, window) in due {
                if let Some(acc) = self.table()?.remove(key_group, &key, &window)? {
                    let value = self.agg.finish(acc);
                    out.push(WindowResult { key, window, value }, window.max_timestamp())?;
                }
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _id: CheckpointId) -> Result<OperatorSnapshot> {
        let table = self.table()?;
        let tables = vec![table.snapshot(table.key_groups())?];
        Ok(OperatorSnapshot {
            tables,
            local: snapshot::encode(&self.name, &self.timers)?,
        })
    }

    fn restore(&mut self, snap: &OperatorSnapshot) -> Result<()> {
        let table = self.table()?;
        let owned = table.key_groups();
        for t in &snap.tables {
            table.restore(t)?;
        }
        let timers: TimerQueue<K, Window> = snapshot::decode(&self.name, &snap.local)?;
        let mut timers = timers;
        while let Some((time, due)) = timers.pop_due(Timestamp::MAX) {
            for (kg, key, w) in due.into_iter().filter(|(kg, ..)| owned.contains(*kg)) {
                self.timers.register(time, kg, key, w);
            }
        }
        Ok(())
    }
}
