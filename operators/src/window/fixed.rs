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

/// Tumbling and sliding window aggregation by slices: event time is cut into slices of
/// `gcd(size, slide)` (a tumbling window is one slice), and keyed state holds one accumulator
/// (and the number of records folded into it) per (key, slice), so a record updates one
/// accumulator however many windows hold it. Each (key, window) holding a slice has an
/// event-time timer at `end + allowed_lateness`; when it fires, the window's result is its
/// slices merged ([`Aggregator::merge`]), and the slices no later window holds are dropped.
/// With early results, every `early` milliseconds of processing time the windows updated
/// since the last early firing emit their running aggregate.
pub(crate) struct FixedWindowAggregate<K: StateKey, T, A: Aggregator<T>> {
    name: String,
    size: i64,
    slide: i64,
    /// Width of a slice: the greatest common divisor of size and slide.
    pane: i64,
    lateness: i64,
    agg: A,
    table: Option<Box<dyn KeyedTable<K, Window, (A::Acc, u64)>>>,
    timers: TimerQueue<K, Window>,
    watermark: Watermark,
    late: Option<Output<T>>,
    late_records: Arc<Counter>,
    /// Entries in state (the slices of open windows, per key), updated as the watermark
    /// advances.
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
            pane: gcd(size, slide),
            lateness,
            agg,
            table: None,
            timers: TimerQueue::new(),
            watermark: Watermark::MIN,
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

    /// The accumulator of `window` for `key`: its slices merged, `None` if none holds a
    /// record. The slices no window after this one holds (the first `slide` of it) are
    /// removed with `last`.
    fn window_acc(
        &mut self,
        key_group: KeyGroup,
        key: &K,
        window: Window,
        last: bool,
    ) -> Result<Option<(A::Acc, u64)>> {
        let (pane, slide) = (self.pane, self.slide);
        let table = self
            .table
            .as_mut()
            .ok_or_else(|| EngineError::user("window state used before open"))?;
        let mut merged: Option<(A::Acc, u64)> = None;
        let mut start = window.start;
        while start < window.end {
            let slice = Window {
                start,
                end: start + pane,
            };
            let part = if last && start < window.start + slide {
                table.remove(key_group, key, &slice)?
            } else {
                table.get(key_group, key, &slice)?
            };
            match (&mut merged, part) {
                (_, None) => {}
                (None, Some(part)) => merged = Some(part),
                (Some((acc, records)), Some((part, n))) => {
                    self.agg.merge(acc, part);
                    *records += n;
                }
            }
            start += pane;
        }
        Ok(merged)
    }
}

/// Greatest common divisor of two positive widths.
fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
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
        let (size, slide, pane) = (self.size, self.slide, self.pane);
        // The last window holding `ts` closes last: a record too late for it is late for all.
        let last_end = (ts - ts.rem_euclid(slide)).saturating_add(size);
        if last_end.saturating_add(lateness) <= wm {
            self.late_records.inc();
            if let Some(late) = &mut self.late {
                late.push(value, ts)?;
            }
            return Ok(());
        }
        let start = ts - ts.rem_euclid(pane);
        let slice = Window {
            start,
            end: start + pane,
        };
        let Self {
            agg,
            table,
            timers,
            updated,
            early,
            ..
        } = self;
        let table = table
            .as_mut()
            .ok_or_else(|| EngineError::user("window state used before open"))?;
        let created = table.upsert(key_group, &key, &slice, &mut || (agg.init(), 0), &mut |acc| {
            agg.add(&mut acc.0, &value);
            acc.1 += 1;
        })?;
        if created || early.is_some() {
            // Every window holding the slice that has not fired gets a timer (once) and, with
            // early results, is marked updated.
            for_each_window(ts, size, slide, |w| {
                if w.end.saturating_add(lateness) <= wm {
                    return;
                }
                if created {
                    timers.register(w.end.saturating_add(lateness), key_group, key.clone(), w);
                }
                if early.is_some() {
                    updated.insert((key_group, key.clone(), w));
                }
            });
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
                if let Some((acc, _)) = self.window_acc(key_group, &key, window, true)? {
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
        let closed = self.watermark.0;
        for (key_group, key, window) in updated {
            // A window that fired meanwhile has its final result out; its slices may still be
            // held by later windows.
            if window.end.saturating_add(self.lateness) <= closed {
                continue;
            }
            if let Some((acc, records)) = self.window_acc(key_group, &key, window, false)? {
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

    #[test]
    fn sliding_windows_merge_their_slices_and_early_results_skip_fired_windows() {
        // Windows of 1 s every 400 ms: slices of 200 ms, five to a window.
        let value: fn(&i64) -> i64 = |v| *v;
        let op = FixedWindowAggregate::new(1_000, 400, 0, Some(10), (Count, Sum::of(value)), None);
        let mut h: OperatorHarness<Sums> =
            OperatorHarness::with_context(op, OperatorContext::standalone("sums", 0, 1, 128)).unwrap();
        let input = [(50, 1), (390, 10), (410, 100), (999, 1_000), (1_200, 10_000)];
        for (ts, v) in input {
            h.process(record("a", v), ts).unwrap();
        }
        // Each window by brute force over the input.
        let expected = |start: i64| {
            let inside = input.iter().filter(|(ts, _)| (start..start + 1_000).contains(ts));
            inside.fold((0u64, 0i64), |(n, sum), (_, v)| (n + 1, sum + v))
        };
        h.watermark(Watermark(1_000)).unwrap();
        let fired = rows(&mut h);
        assert_eq!(
            fired,
            vec![
                ("a".to_string(), -800, expected(-800)),
                ("a".to_string(), -400, expected(-400)),
                ("a".to_string(), 0, expected(0)),
            ]
        );
        // Early results: only the windows still open, their slices merged so far.
        h.processing_time(1).unwrap();
        h.processing_time(100).unwrap();
        let mut early: Vec<(i64, (u64, i64))> = h
            .take_output()
            .into_iter()
            .map(|(r, _)| {
                assert!(matches!(r.emit, Emit::Early { .. }));
                (r.window.start, r.value)
            })
            .collect();
        early.sort();
        assert_eq!(
            early,
            vec![
                (400, expected(400)),
                (800, expected(800)),
                (1_200, expected(1_200))
            ]
        );
        // A record for a fired window only counts in the open windows holding it.
        h.process(record("a", 100_000), 999).unwrap();
        h.end().unwrap();
        let rest = rows(&mut h);
        assert_eq!(
            rest,
            vec![
                (
                    "a".to_string(),
                    400,
                    (expected(400).0 + 1, expected(400).1 + 100_000)
                ),
                (
                    "a".to_string(),
                    800,
                    (expected(800).0 + 1, expected(800).1 + 100_000)
                ),
                ("a".to_string(), 1_200, expected(1_200)),
            ]
        );
        assert_eq!(h.operator().table().unwrap().len(), 0, "every slice dropped");
    }
}
