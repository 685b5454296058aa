use std::hash::Hash;
use std::sync::Arc;

use hashbrown::HashSet;

use sluice_engine::state::{KeyGroup, KeyedTable, StateKey};
use sluice_engine::{
    CheckpointId, Counter, Data, EngineError, Gauge, Keyed, Operator, OperatorContext, OperatorSnapshot,
    Output, Result, TimerQueue, Timestamp, Watermark,
};

use super::assigner::{Emit, Window, WindowResult, for_each_window};
use crate::aggregators::Aggregator;
use crate::snapshot;

/// Tumbling and sliding window aggregation: one accumulator (and the number of records
/// folded into it) per (key, window) in keyed state, one event-time timer per (key, window)
/// at `end + allowed_lateness`, when the final result is emitted and the state dropped.
/// With early results, every `early` milliseconds of processing time the windows updated
/// since the last early firing emit their running aggregate.
pub(crate) struct FixedWindowAggregate<K: StateKey, T, A: Aggregator<T>> {
    name: String,
    size: i64,
    slide: i64,
    lateness: i64,
    agg: A,
    table: Option<Box<dyn KeyedTable<K, Window, (A::Acc, u64)>>>,
    timers: TimerQueue<K, Window>,
    watermark: Watermark,
    created: Vec<Window>,
    late: Option<Output<T>>,
    late_records: Arc<Counter>,
    /// Entries in state (open windows), updated as the watermark advances.
    state_entries: Arc<Gauge>,
    /// Interval of early results in milliseconds of processing time.
    early: Option<i64>,
    next_early: Option<Timestamp>,
    /// Windows updated since the last early firing (at most the open windows).
    updated: HashSet<(KeyGroup, K, Window)>,
}

impl<K: StateKey, T, A: Aggregator<T>> FixedWindowAggregate<K, T, A> {
    pub(crate) fn new(
        size: i64,
        slide: i64,
        lateness: i64,
        early: Option<i64>,
        agg: A,
        late: Option<Output<T>>,
    ) -> Self {
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
            state_entries: Arc::default(),
            early,
            next_early: None,
            updated: HashSet::new(),
        }
    }

    fn table(&mut self) -> Result<&mut Box<dyn KeyedTable<K, Window, (A::Acc, u64)>>> {
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
        self.state_entries = ctx.gauge("state_entries");
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
        let early = self.early.is_some();
        let Self {
            agg,
            table,
            created,
            updated,
            ..
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
            if early {
                updated.insert((key_group, key.clone(), w));
            }
            match table.upsert(key_group, &key, &w, &mut || (agg.init(), 0), &mut |acc| {
                agg.add(&mut acc.0, &value);
                acc.1 += 1;
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

    fn restore_watermark(&mut self, wm: Watermark) {
        self.watermark = wm;
    }

    fn on_watermark(&mut self, wm: Watermark, out: &mut Output<Self::Out>) -> Result<()> {
        self.watermark = wm;
        while let Some((_, due)) = self.timers.pop_due(wm.0) {
            for (key_group, key, window) in due {
                if let Some((acc, _)) = self.table()?.remove(key_group, &key, &window)? {
                    let value = self.agg.finish(acc);
                    let result = WindowResult {
                        key,
                        window,
                        value,
                        emit: Emit::Final,
                    };
                    out.push(result, window.max_timestamp())?;
                }
            }
        }
        let entries = self.table()?.len();
        self.state_entries.set(entries as i64);
        Ok(())
    }

    fn on_processing_time(&mut self, now: Timestamp, out: &mut Output<Self::Out>) -> Result<()> {
        let Some(interval) = self.early else {
            return Ok(());
        };
        match self.next_early {
            Some(due) if now >= due => {}
            Some(_) => return Ok(()),
            None => {
                self.next_early = Some(now + interval);
                return Ok(());
            }
        }
        self.next_early = Some(now + interval);
        let updated = std::mem::take(&mut self.updated);
        for (key_group, key, window) in updated {
            // Windows that fired (or were cleaned up) meanwhile are gone from state.
            if let Some((acc, records)) = self.table()?.get(key_group, &key, &window)? {
                let value = self.agg.finish(acc);
                let result = WindowResult {
                    key,
                    window,
                    value,
                    emit: Emit::Early { records },
                };
                // One millisecond before the final result's timestamp.
                out.push(result, (window.end - 2).max(window.start))?;
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

#[cfg(test)]
mod tests {
    use sluice_engine::OperatorContext;
    use sluice_engine::state::{KeyGroup, KeyGroupRange};
    use sluice_testing::OperatorHarness;

    use super::*;
    use crate::aggregators::{Count, Sum};

    type Row = (String, i64, (u64, i64));
    type Sums = FixedWindowAggregate<String, i64, (Count, Sum<fn(&i64) -> i64>)>;

    /// Tumbling one-second windows counting and summing, as worker `worker` of `workers`.
    fn operator(worker: usize, workers: usize) -> OperatorHarness<Sums> {
        let value: fn(&i64) -> i64 = |v| *v;
        let op = FixedWindowAggregate::new(1_000, 1_000, 0, None, (Count, Sum::of(value)), None);
        OperatorHarness::with_context(op, OperatorContext::standalone("sums", worker, workers, 128))
            .expect("the operator opens")
    }

    fn rows(h: &mut OperatorHarness<Sums>) -> Vec<Row> {
        h.take_output()
            .into_iter()
            .map(|(r, _)| (r.key, r.window.start, r.value))
            .collect()
    }

    fn record(key: &str, value: i64) -> Keyed<String, i64> {
        Keyed {
            key_group: KeyGroup::of(&key.to_string(), 128),
            key: key.to_string(),
            value,
        }
    }

    #[test]
    fn snapshot_restores_into_more_workers() {
        let input: Vec<(&str, i64, i64)> = (0..200)
            .map(|i| {
                (
                    ["a", "b", "c", "d", "e"][i % 5],
                    (i as i64) * 37 % 3_000,
                    i as i64,
                )
            })
            .collect();
        // One instance runs the whole input uninterrupted.
        let mut whole = operator(0, 1);
        for (k, ts, v) in &input {
            whole.process(record(k, *v), *ts).unwrap();
        }
        whole.end().unwrap();
        let mut expected = rows(&mut whole);

        // Another stops halfway, and its snapshot is restored into two workers.
        let mut first = operator(0, 1);
        for (k, ts, v) in &input[..100] {
            first.process(record(k, *v), *ts).unwrap();
        }
        let snap = first.snapshot(1).unwrap();
        assert!(first.take_output().is_empty());
        let mut restored = Vec::new();
        for worker in 0..2 {
            let mut h = operator(worker, 2);
            h.restore(std::slice::from_ref(&snap)).unwrap();
            let owned = KeyGroupRange::for_worker(worker, 2, 128);
            for (k, ts, v) in &input[100..] {
                let r = record(k, *v);
                if owned.contains(r.key_group) {
                    h.process(r, *ts).unwrap();
                }
            }
            h.end().unwrap();
            restored.extend(rows(&mut h));
        }
        expected.sort();
        restored.sort();
        assert_eq!(restored, expected);
        assert!(!restored.is_empty());
    }
}
