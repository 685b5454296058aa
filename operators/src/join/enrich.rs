use std::hash::Hash;
use std::sync::Arc;

use sluice_engine::state::{KeyedTable, StateKey, StateValue};
use sluice_engine::{
    CheckpointId, Counter, Data, EngineError, Gauge, Keyed, Operator, OperatorContext, OperatorSnapshot,
    Output, Result, TimerQueue, Timestamp, Watermark,
};

use super::{JoinInput, Lookup};
use crate::snapshot;

/// A key's table values with the event time each became valid (`None`: deleted), oldest first.
type Versions<V> = Vec<(Timestamp, Option<V>)>;

/// Stream-table enrichment: the right side is a changelog (latest value per key, `None`
/// deletes); each left record gets the table's value for its key.
///
/// With [`Lookup::Latest`] a record is enriched on arrival with the newest value received.
/// With [`Lookup::AsOfEventTime`] records wait in keyed state until the watermark passes
/// their time (every change up to then has arrived) and get the value valid at their time;
/// the table keeps, per key, the newest version at or before the watermark and every later
/// one. Records older than `watermark − allowed lateness` are late.
pub(crate) struct Enrich<K: StateKey, L, V, O, F> {
    name: String,
    lookup: Lookup,
    lateness: i64,
    join: F,
    table: Option<Box<dyn KeyedTable<K, (), Versions<V>>>>,
    waiting: Option<Box<dyn KeyedTable<K, Timestamp, Vec<L>>>>,
    timers: TimerQueue<K, Timestamp>,
    watermark: Watermark,
    late: Option<Output<JoinInput<L, Option<V>>>>,
    late_records: Arc<Counter>,
    state_entries: Arc<Gauge>,
    _out: std::marker::PhantomData<fn() -> O>,
}

impl<K: StateKey, L, V, O, F> Enrich<K, L, V, O, F> {
    pub(crate) fn new(
        lookup: Lookup,
        lateness: i64,
        join: F,
        late: Option<Output<JoinInput<L, Option<V>>>>,
    ) -> Self {
        Enrich {
            name: String::new(),
            lookup,
            lateness,
            join,
            table: None,
            waiting: None,
            timers: TimerQueue::new(),
            watermark: Watermark::MIN,
            late,
            late_records: Arc::default(),
            state_entries: Arc::default(),
            _out: std::marker::PhantomData,
        }
    }
}

fn unopened(operator: &str) -> EngineError {
    EngineError::user(format!("enrichment state of '{operator}' used before open"))
}

/// The value valid at `ts`: the newest version not after it.
fn valid_at<V>(versions: &Versions<V>, ts: Timestamp) -> Option<&V> {
    versions
        .iter()
        .rev()
        .find(|(from, _)| *from <= ts)
        .and_then(|(_, v)| v.as_ref())
}

/// Drops versions no record can ask for any more: all but the newest at or before `wm`.
fn prune<V>(versions: &mut Versions<V>, wm: Timestamp) {
    let settled = versions.iter().filter(|(from, _)| *from <= wm).count();
    if settled > 1 {
        versions.drain(..settled - 1);
    }
}

impl<K, L, V, O, F> Operator for Enrich<K, L, V, O, F>
where
    K: StateKey + Data + Hash + Eq,
    L: StateValue + Data,
    V: StateValue + Data,
    O: Data,
    F: FnMut(&K, &L, Option<&V>) -> O + 'static,
{
    type In = Keyed<K, JoinInput<L, Option<V>>>;
    type Out = O;

    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        self.name = ctx.name().to_string();
        self.table = Some(ctx.state().open_table(&format!("{}/table", ctx.name()))?);
        self.waiting = Some(ctx.state().open_table(&format!("{}/waiting", ctx.name()))?);
        self.late_records = ctx.counter("late_records");
        self.state_entries = ctx.gauge("state_entries");
        Ok(())
    }

    fn process(&mut self, record: Self::In, ts: Timestamp, out: &mut Output<O>) -> Result<()> {
        let Keyed {
            key_group,
            key,
            value,
        } = record;
        let wm = self.watermark.0;
        let table = self.table.as_mut().ok_or_else(|| unopened(&self.name))?;
        match value {
            JoinInput::Right(change) => match self.lookup {
                Lookup::Latest => match change {
                    Some(v) => table.put(key_group, key, (), vec![(ts, Some(v))])?,
                    None => {
                        table.remove(key_group, &key, &())?;
                    }
                },
                Lookup::AsOfEventTime => {
                    let mut change = Some((ts, change));
                    table.upsert(key_group, &key, &(), &mut Vec::new, &mut |versions| {
                        if let Some(c) = change.take() {
                            let at = versions.partition_point(|(from, _)| *from <= c.0);
                            versions.insert(at, c);
                        }
                        prune(versions, wm);
                    })?;
                }
            },
            JoinInput::Left(l) => {
                if ts < wm.saturating_sub(self.lateness) {
                    self.late_records.inc();
                    if let Some(late) = &mut self.late {
                        late.push(JoinInput::Left(l), ts)?;
                    }
                    return Ok(());
                }
                match self.lookup {
                    Lookup::Latest => {
                        let versions = table.get(key_group, &key, &())?.unwrap_or_default();
                        let value = versions.last().and_then(|(_, v)| v.as_ref());
                        out.push((self.join)(&key, &l, value), ts)?;
                    }
                    Lookup::AsOfEventTime => {
                        let waiting = self.waiting.as_mut().ok_or_else(|| unopened(&self.name))?;
                        let mut l = Some(l);
                        let created = waiting.upsert(key_group, &key, &ts, &mut Vec::new, &mut |ls| {
                            ls.extend(l.take());
                        })?;
                        if created {
                            // Due once the watermark is past `ts`: changes at `ts` may still come until then.
                            self.timers.register(ts.saturating_add(1), key_group, key, ts);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn restore_watermark(&mut self, wm: Watermark) {
        self.watermark = wm;
    }

    fn on_watermark(&mut self, wm: Watermark, out: &mut Output<O>) -> Result<()> {
        self.watermark = wm;
        while let Some((_, due)) = self.timers.pop_due(wm.0) {
            for (key_group, key, ts) in due {
                let waiting = self.waiting.as_mut().ok_or_else(|| unopened(&self.name))?;
                let Some(records) = waiting.remove(key_group, &key, &ts)? else {
                    continue;
                };
                let table = self.table.as_mut().ok_or_else(|| unopened(&self.name))?;
                let versions = table.get(key_group, &key, &())?.unwrap_or_default();
                for l in &records {
                    out.push((self.join)(&key, l, valid_at(&versions, ts)), ts)?;
                }
            }
        }
        let entries =
            self.table.as_ref().map_or(0, |t| t.len()) + self.waiting.as_ref().map_or(0, |t| t.len());
        self.state_entries.set(entries as i64);
        Ok(())
    }

    fn snapshot(&mut self, _id: CheckpointId) -> Result<OperatorSnapshot> {
        let table = self.table.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        let waiting = self.waiting.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        snapshot::two_tables_and_timers(&self.name, table, waiting, &self.timers)
    }

    fn restore(&mut self, snap: &OperatorSnapshot) -> Result<()> {
        let table = self.table.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        let waiting = self.waiting.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        snapshot::restore_two_tables_and_timers(&self.name, table, waiting, &mut self.timers, snap)
    }
}

#[cfg(test)]
mod tests {
    use sluice_engine::state::KeyGroup;
    use sluice_testing::OperatorHarness;

    use super::*;

    type Input = Keyed<String, JoinInput<i64, Option<String>>>;

    fn input(value: JoinInput<i64, Option<String>>) -> Input {
        Keyed {
            key_group: KeyGroup::of(&"k".to_string(), 128),
            key: "k".to_string(),
            value,
        }
    }

    #[test]
    fn latest_lookup_answers_on_arrival_with_the_newest_value() {
        let join = |_: &String, e: &i64, v: Option<&String>| (*e, v.cloned());
        let op = Enrich::new(Lookup::Latest, 0, join, None);
        let mut h = OperatorHarness::with_context(op, OperatorContext::standalone("enrich", 0, 1, 128))
            .expect("the operator opens");
        // Event times do not matter to this mode: only arrival order does.
        let steps = [
            (JoinInput::Left(1), 50),
            (JoinInput::Right(Some("v1".to_string())), 40),
            (JoinInput::Left(2), 10),
            (JoinInput::Right(None), 60),
            (JoinInput::Left(3), 70),
            (JoinInput::Right(Some("v2".to_string())), 5),
            (JoinInput::Left(4), 80),
        ];
        for (value, ts) in steps {
            h.process(input(value), ts).unwrap();
        }
        let rows: Vec<_> = h.take_output().into_iter().map(|(row, _)| row).collect();
        let v = |s: &str| Some(s.to_string());
        assert_eq!(rows, vec![(1, None), (2, v("v1")), (3, None), (4, v("v2"))]);
    }

    #[test]
    fn versions_answer_as_of_a_time_and_prune_to_the_watermark() {
        let mut v: Versions<&str> = vec![(10, Some("a")), (20, None), (30, Some("c"))];
        assert_eq!(valid_at(&v, 5), None);
        assert_eq!(valid_at(&v, 15), Some(&"a"));
        assert_eq!(valid_at(&v, 25), None, "deleted at 20");
        assert_eq!(valid_at(&v, 30), Some(&"c"));
        prune(&mut v, 25);
        assert_eq!(v, vec![(20, None), (30, Some("c"))]);
        prune(&mut v, 100);
        assert_eq!(v, vec![(30, Some("c"))]);
    }
}
