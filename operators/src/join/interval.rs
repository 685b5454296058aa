use std::hash::Hash;
use std::sync::Arc;

use sluice_engine::state::{KeyGroup, KeyedTable, StateKey, StateValue};
use sluice_engine::{
    CheckpointId, Counter, Data, EngineError, Gauge, Keyed, Operator, OperatorContext, OperatorSnapshot,
    Output, Result, TimerQueue, Timestamp, Watermark,
};

use super::JoinInput;
use crate::snapshot;

/// Records of one side of one key whose timestamps fall in one time bucket.
type Bucket<T> = Vec<(Timestamp, T)>;

/// Which side a cleanup timer belongs to.
const LEFT: u8 = 0;
const RIGHT: u8 = 1;

/// Interval join: a left record at `t` joins every right record of the same key at
/// `t + lower ..= t + upper`, as soon as both have arrived.
///
/// Each side is kept in keyed state in time buckets (namespace = bucket index), so a record
/// looks up the one or two buckets of the other side its interval covers. A bucket is
/// dropped by an event-time timer once the watermark makes every further match impossible:
/// a left bucket after `bucket end + upper`, a right bucket after `bucket end − lower` (plus
/// the allowed lateness). Records older than `watermark − allowed lateness` are late.
pub(crate) struct IntervalJoin<K: StateKey, L, R, O, F> {
    name: String,
    lower: i64,
    upper: i64,
    lateness: i64,
    bucket: i64,
    join: F,
    left: Option<Box<dyn KeyedTable<K, i64, Bucket<L>>>>,
    right: Option<Box<dyn KeyedTable<K, i64, Bucket<R>>>>,
    timers: TimerQueue<K, (u8, i64)>,
    watermark: Watermark,
    late: Option<Output<JoinInput<L, R>>>,
    late_records: Arc<Counter>,
    state_entries: Arc<Gauge>,
    _out: std::marker::PhantomData<fn() -> O>,
}

impl<K: StateKey, L, R, O, F> IntervalJoin<K, L, R, O, F> {
    pub(crate) fn new(
        lower: i64,
        upper: i64,
        lateness: i64,
        join: F,
        late: Option<Output<JoinInput<L, R>>>,
    ) -> Self {
        IntervalJoin {
            name: String::new(),
            lower,
            upper,
            lateness,
            // Wide enough that an interval covers at most two buckets of the other side.
            bucket: (upper - lower).max(1_000),
            join,
            left: None,
            right: None,
            timers: TimerQueue::new(),
            watermark: Watermark::MIN,
            late,
            late_records: Arc::default(),
            state_entries: Arc::default(),
            _out: std::marker::PhantomData,
        }
    }

    fn bucket_of(&self, ts: Timestamp) -> i64 {
        ts.div_euclid(self.bucket)
    }
}

fn unopened(operator: &str) -> EngineError {
    EngineError::user(format!("join state of '{operator}' used before open"))
}

/// Calls `f` with every record of `table` under `key` whose time is in `from..=to`.
fn probe<K: StateKey, T: StateValue>(
    table: &mut dyn KeyedTable<K, i64, Bucket<T>>,
    key_group: KeyGroup,
    key: &K,
    (from, to): (Timestamp, Timestamp),
    bucket: i64,
    mut f: impl FnMut(Timestamp, &T) -> Result<()>,
) -> Result<()> {
    for b in from.div_euclid(bucket)..=to.div_euclid(bucket) {
        for (t, item) in table.get(key_group, key, &b)?.unwrap_or_default() {
            if (from..=to).contains(&t) {
                f(t, &item)?;
            }
        }
    }
    Ok(())
}

/// Adds `item` to bucket `b` of `table`; true when the bucket is new.
fn store<K: StateKey, T: StateValue>(
    table: &mut dyn KeyedTable<K, i64, Bucket<T>>,
    key_group: KeyGroup,
    key: &K,
    b: i64,
    item: (Timestamp, T),
) -> Result<bool> {
    let mut item = Some(item);
    Ok(table.upsert(key_group, key, &b, &mut Vec::new, &mut |bucket| {
        bucket.extend(item.take());
    })?)
}

impl<K, L, R, O, F> Operator for IntervalJoin<K, L, R, O, F>
where
    K: StateKey + Data + Hash + Eq,
    L: StateValue + Data,
    R: StateValue + Data,
    O: Data,
    F: FnMut(&K, &L, &R) -> O + 'static,
{
    type In = Keyed<K, JoinInput<L, R>>;
    type Out = O;

    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        self.name = ctx.name().to_string();
        self.left = Some(ctx.state().open_table(&format!("{}/left", ctx.name()))?);
        self.right = Some(ctx.state().open_table(&format!("{}/right", ctx.name()))?);
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
        if ts < self.watermark.0.saturating_sub(self.lateness) {
            self.late_records.inc();
            if let Some(late) = &mut self.late {
                late.push(value, ts)?;
            }
            return Ok(());
        }
        let (lower, upper, lateness, size) = (self.lower, self.upper, self.lateness, self.bucket);
        let b = self.bucket_of(ts);
        // A bucket's cleanup timer: once no record of the other side can match it any more.
        let bucket_end = (b + 1).saturating_mul(size);
        let join = &mut self.join;
        match value {
            JoinInput::Left(l) => {
                let right = self.right.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
                let range = (ts.saturating_add(lower), ts.saturating_add(upper));
                probe(right, key_group, &key, range, size, |tr, r| {
                    out.push(join(&key, &l, r), ts.max(tr))
                })?;
                let left = self.left.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
                if store(left, key_group, &key, b, (ts, l))? {
                    let due = bucket_end.saturating_add(upper).saturating_add(lateness);
                    self.timers.register(due, key_group, key, (LEFT, b));
                }
            }
            JoinInput::Right(r) => {
                let left = self.left.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
                let range = (ts.saturating_sub(upper), ts.saturating_sub(lower));
                probe(left, key_group, &key, range, size, |tl, l| {
                    out.push(join(&key, l, &r), ts.max(tl))
                })?;
                let right = self.right.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
                if store(right, key_group, &key, b, (ts, r))? {
                    let due = bucket_end.saturating_sub(lower).saturating_add(lateness);
                    self.timers.register(due, key_group, key, (RIGHT, b));
                }
            }
        }
        Ok(())
    }

    fn restore_watermark(&mut self, wm: Watermark) {
        self.watermark = wm;
    }

    fn on_watermark(&mut self, wm: Watermark, _out: &mut Output<O>) -> Result<()> {
        self.watermark = wm;
        while let Some((_, due)) = self.timers.pop_due(wm.0) {
            for (key_group, key, (side, b)) in due {
                if side == LEFT {
                    let left = self.left.as_mut().ok_or_else(|| unopened(&self.name))?;
                    left.remove(key_group, &key, &b)?;
                } else {
                    let right = self.right.as_mut().ok_or_else(|| unopened(&self.name))?;
                    right.remove(key_group, &key, &b)?;
                }
            }
        }
        let entries = self.left.as_ref().map_or(0, |t| t.len()) + self.right.as_ref().map_or(0, |t| t.len());
        self.state_entries.set(entries as i64);
        Ok(())
    }

    fn snapshot(&mut self, _id: CheckpointId) -> Result<OperatorSnapshot> {
        let left = self.left.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        let right = self.right.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        snapshot::two_tables_and_timers(&self.name, left, right, &self.timers)
    }

    fn restore(&mut self, snap: &OperatorSnapshot) -> Result<()> {
        let left = self.left.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        let right = self.right.as_deref_mut().ok_or_else(|| unopened(&self.name))?;
        snapshot::restore_two_tables_and_timers(&self.name, left, right, &mut self.timers, snap)
    }
}
