//! Joins of two keyed streams on keyed state: window joins, interval joins and stream-table
//! enrichment.
//!
//! Both sides are keyed by the same key type, so equal keys are on the same worker; the join
//! merges them into one stream of [`JoinInput`] and runs one keyed operator over it, so
//! watermarks (the minimum of both sides), checkpoint barriers and state work as for any
//! other keyed operator.

mod enrich;
mod interval;

use std::hash::Hash;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_engine::state::{StateKey, StateValue};
use sluice_engine::{Data, EngineError, Keyed, KeyedStream, OperatorKind, Output, Stream, millis};

use crate::aggregators::Aggregator;
use crate::window::{Window, WindowResult, Windows};
use crate::{KeyedStreamExt, StreamExt};

/// A record of either side of a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinInput<L, R> {
    /// From the left (first) stream.
    Left(L),
    /// From the right (second) stream.
    Right(R),
}

/// Which right records an interval join pairs with a left record at `t`:
/// those at `t + lower ..= t + upper` (milliseconds, either may be negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinInterval {
    /// Offset of the interval's start from the left record's time.
    pub lower: i64,
    /// Offset of the interval's end from the left record's time.
    pub upper: i64,
}

impl JoinInterval {
    /// Right records from `before` before to `after` after the left record (both inclusive).
    pub fn around(before: Duration, after: Duration) -> Self {
        JoinInterval {
            lower: -millis(before),
            upper: millis(after),
        }
    }

    /// Right records in the `window` before the left record, up to its time (inclusive):
    /// e.g. page views in the 30 minutes before an order.
    pub fn preceding(window: Duration) -> Self {
        Self::around(window, Duration::ZERO)
    }

    /// Any bounds in milliseconds.
    pub fn millis(lower: i64, upper: i64) -> Self {
        JoinInterval { lower, upper }
    }
}

/// Joins on a keyed stream (the left side) with another keyed by the same key type.
pub trait KeyedJoinExt<K: Data + Hash + Eq, L: Data> {
    /// Pairs the records of both sides that fall into the same window, when the window
    /// closes (see [`WindowJoin`]).
    fn window_join<R: Data>(
        &self,
        name: &str,
        right: &KeyedStream<K, R>,
        windows: Windows,
    ) -> WindowJoin<K, L, R>;

    /// Pairs each left record with the right records of the same key within `interval` of
    /// it, as soon as both are there (see [`IntervalJoin`]).
    fn interval_join<R: Data>(
        &self,
        name: &str,
        right: &KeyedStream<K, R>,
        interval: JoinInterval,
    ) -> IntervalJoin<K, L, R>;

    /// Enriches each record with the value of `table` (a changelog: `Some` sets the key's
    /// value, `None` deletes it) for its key (see [`Enrichment`]).
    fn enrich<V: Data>(
        &self,
        name: &str,
        table: &KeyedStream<K, Option<V>>,
        lookup: Lookup,
    ) -> Enrichment<K, L, V>;
}

impl<K: Data + Hash + Eq, L: Data> KeyedJoinExt<K, L> for KeyedStream<K, L> {
    fn window_join<R: Data>(
        &self,
        name: &str,
        right: &KeyedStream<K, R>,
        windows: Windows,
    ) -> WindowJoin<K, L, R> {
        WindowJoin {
            both: connect(name, self, right),
            name: name.to_string(),
            windows,
            lateness: Duration::ZERO,
        }
    }

    fn interval_join<R: Data>(
        &self,
        name: &str,
        right: &KeyedStream<K, R>,
        interval: JoinInterval,
    ) -> IntervalJoin<K, L, R> {
        IntervalJoin {
            both: connect(name, self, right),
            name: name.to_string(),
            interval,
            lateness: 0,
        }
    }

    fn enrich<V: Data>(
        &self,
        name: &str,
        table: &KeyedStream<K, Option<V>>,
        lookup: Lookup,
    ) -> Enrichment<K, L, V> {
        Enrichment {
            both: connect(name, self, table),
            name: name.to_string(),
            lookup,
            lateness: 0,
        }
    }
}

/// Both sides as one keyed stream of [`JoinInput`]: a value-wise map of each side and their
/// union (records stay on the worker owning their key group).
fn connect<K: Data + Hash + Eq, L: Data, R: Data>(
    name: &str,
    left: &KeyedStream<K, L>,
    right: &KeyedStream<K, R>,
) -> KeyedStream<K, JoinInput<L, R>> {
    let l = left
        .records()
        .map(&format!("{name}.left"), |k: Keyed<K, L>| Keyed {
            key_group: k.key_group,
            key: k.key,
            value: JoinInput::Left(k.value),
        });
    let r = right
        .records()
        .map(&format!("{name}.right"), |k: Keyed<K, R>| Keyed {
            key_group: k.key_group,
            key: k.key,
            value: JoinInput::Right(k.value),
        });
    KeyedStream::from_partitioned(l.union(&format!("{name}.inputs"), &[&r]))
}

/// A window join being configured.
///
/// Records of both sides are kept in the window's state until the watermark reaches
/// `end + allowed_lateness`; then every left record is paired with every right record of
/// its key and window (inner), or also alone when the window has no right record (left
/// outer). Tumbling, sliding and session windows (a session spans the records of both
/// sides). The results carry the window's last millisecond as their timestamp.
pub struct WindowJoin<K: Data, L: Data, R: Data> {
    both: KeyedStream<K, JoinInput<L, R>>,
    name: String,
    windows: Windows,
    lateness: Duration,
}

impl<K, L, R> WindowJoin<K, L, R>
where
    K: StateKey + Data + Hash + Eq,
    L: StateValue + Data,
    R: StateValue + Data,
{
    /// Keeps windows open for `lateness` after the watermark passes their end.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness;
        self
    }

    /// Inner join: `f(key, window, left, right)` for every pair.
    pub fn inner<O: Data>(self, f: impl Fn(&K, &Window, &L, &R) -> O + 'static) -> Stream<O> {
        self.sides()
            .flat_map(&format!("{}.pairs", self.name), inner_pairs(f))
    }

    /// Like [`Self::inner`], and also returns the late records of both sides.
    pub fn inner_with_late<O: Data>(
        self,
        f: impl Fn(&K, &Window, &L, &R) -> O + 'static,
    ) -> (Stream<O>, Stream<JoinInput<L, R>>) {
        let (sides, late) = self
            .both
            .window(&self.name, self.windows)
            .allowed_lateness(self.lateness)
            .aggregate_with_late(BothSides::default());
        (
            sides.flat_map(&format!("{}.pairs", self.name), inner_pairs(f)),
            late,
        )
    }

    /// Left outer join: `f(key, window, left, Some(right))` for every pair, and
    /// `f(key, window, left, None)` for left records of windows without right records.
    pub fn left_outer<O: Data>(self, f: impl Fn(&K, &Window, &L, Option<&R>) -> O + 'static) -> Stream<O> {
        self.sides()
            .flat_map(&format!("{}.pairs", self.name), outer_pairs(f))
    }

    /// Like [`Self::left_outer`], and also returns the late records of both sides.
    pub fn left_outer_with_late<O: Data>(
        self,
        f: impl Fn(&K, &Window, &L, Option<&R>) -> O + 'static,
    ) -> (Stream<O>, Stream<JoinInput<L, R>>) {
        let (sides, late) = self.sides_with_late();
        (
            sides.flat_map(&format!("{}.pairs", self.name), outer_pairs(f)),
            late,
        )
    }

    /// Each window's records of both sides.
    fn sides(&self) -> Stream<WindowResult<K, (Vec<L>, Vec<R>)>> {
        self.both
            .window(&self.name, self.windows)
            .allowed_lateness(self.lateness)
            .aggregate(BothSides::default())
    }

    /// Each window's records of both sides, and the late records.
    fn sides_with_late(&self) -> (Stream<WindowResult<K, (Vec<L>, Vec<R>)>>, Stream<JoinInput<L, R>>) {
        self.both
            .window(&self.name, self.windows)
            .allowed_lateness(self.lateness)
            .aggregate_with_late(BothSides::default())
    }
}

/// Every left record of a window with each right record, or alone when there is none.
fn outer_pairs<K, L, R, O>(
    f: impl Fn(&K, &Window, &L, Option<&R>) -> O,
) -> impl FnMut(WindowResult<K, (Vec<L>, Vec<R>)>) -> Vec<O> {
    move |w| {
        let (lefts, rights) = &w.value;
        let mut out = Vec::with_capacity(lefts.len() * rights.len().max(1));
        for l in lefts {
            if rights.is_empty() {
                out.push(f(&w.key, &w.window, l, None));
            }
            for r in rights {
                out.push(f(&w.key, &w.window, l, Some(r)));
            }
        }
        out
    }
}

/// Every pair of a window's left and right records.
fn inner_pairs<K, L, R, O>(
    f: impl Fn(&K, &Window, &L, &R) -> O,
) -> impl FnMut(WindowResult<K, (Vec<L>, Vec<R>)>) -> Vec<O> {
    move |w| {
        let (lefts, rights) = &w.value;
        let mut out = Vec::with_capacity(lefts.len() * rights.len());
        for l in lefts {
            for r in rights {
                out.push(f(&w.key, &w.window, l, r));
            }
        }
        out
    }
}

/// The records of both sides of a window.
struct BothSides<L, R>(std::marker::PhantomData<fn() -> (L, R)>);

impl<L, R> Default for BothSides<L, R> {
    fn default() -> Self {
        BothSides(std::marker::PhantomData)
    }
}

impl<L: StateValue + Data, R: StateValue + Data> Aggregator<JoinInput<L, R>> for BothSides<L, R> {
    type Acc = (Vec<L>, Vec<R>);
    type Out = (Vec<L>, Vec<R>);

    fn init(&self) -> Self::Acc {
        (Vec::new(), Vec::new())
    }

    fn add(&self, acc: &mut Self::Acc, value: &JoinInput<L, R>) {
        match value {
            JoinInput::Left(l) => acc.0.push(l.clone()),
            JoinInput::Right(r) => acc.1.push(r.clone()),
        }
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.0.extend(other.0);
        acc.1.extend(other.1);
    }

    fn finish(&self, acc: Self::Acc) -> Self::Out {
        acc
    }
}

/// An interval join being configured.
///
/// A left record at `t` is paired with every right record of its key at
/// `t + lower ..= t + upper`, and the pair is emitted as soon as the second of the two
/// arrives (timestamp: the later of the two). Both sides are kept in keyed state only as long
/// as the watermark allows a match; records older than `watermark − allowed lateness` are
/// late (counted in `late_records`, and with [`Self::apply_with_late`] delivered on a side
/// stream).
pub struct IntervalJoin<K: Data, L: Data, R: Data> {
    both: KeyedStream<K, JoinInput<L, R>>,
    name: String,
    interval: JoinInterval,
    lateness: i64,
}

impl<K, L, R> IntervalJoin<K, L, R>
where
    K: StateKey + Data + Hash + Eq,
    L: StateValue + Data,
    R: StateValue + Data,
{
    /// Accepts records up to `lateness` behind the watermark.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = millis(lateness);
        self
    }

    /// `f(key, left, right)` for every pair.
    pub fn apply<O: Data>(self, f: impl FnMut(&K, &L, &R) -> O + 'static) -> Stream<O> {
        self.check();
        let (interval, lateness) = (self.interval, self.lateness);
        self.both.records().transform(
            &self.name,
            OperatorKind::IntervalJoin,
            interval::IntervalJoin::new(interval.lower, interval.upper, lateness, f, None),
        )
    }

    /// Like [`Self::apply`], and also returns the late records of both sides.
    pub fn apply_with_late<O: Data>(
        self,
        f: impl FnMut(&K, &L, &R) -> O + 'static,
    ) -> (Stream<O>, Stream<JoinInput<L, R>>) {
        self.check();
        let (interval, lateness) = (self.interval, self.lateness);
        self.both.records().transform_with_side_output(
            &self.name,
            OperatorKind::IntervalJoin,
            |late: Output<JoinInput<L, R>>| {
                interval::IntervalJoin::new(interval.lower, interval.upper, lateness, f, Some(late))
            },
        )
    }

    fn check(&self) {
        if self.interval.lower > self.interval.upper {
            self.both.records().report_error(EngineError::InvalidConfig {
                key: "interval",
                reason: format!(
                    "interval join '{}': lower bound {} ms is above upper bound {} ms",
                    self.name, self.interval.lower, self.interval.upper
                ),
            });
        }
    }
}

/// Which value of the table an enriched record gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lookup {
    /// The value valid at the record's event time: records wait until the watermark passes
    /// their time, so the result does not depend on arrival order (default).
    #[default]
    AsOfEventTime,
    /// The newest value received when the record arrives: no waiting, but the result depends
    /// on how the two streams interleave.
    Latest,
}

/// A stream-table enrichment being configured.
///
/// The table side lives in keyed state (checkpointed like all state): per key the latest
/// value, or with [`Lookup::AsOfEventTime`] the versions a waiting record may still ask for.
/// `f(key, record, value)` gets `None` when the key has no value (never set, or deleted).
/// Records older than `watermark − allowed lateness` are late (counted in `late_records`, and
/// with [`Self::apply_with_late`] delivered on a side stream); table changes are never late.
pub struct Enrichment<K: Data, L: Data, V: Data> {
    both: KeyedStream<K, JoinInput<L, Option<V>>>,
    name: String,
    lookup: Lookup,
    lateness: i64,
}

impl<K, L, V> Enrichment<K, L, V>
where
    K: StateKey + Data + Hash + Eq,
    L: StateValue + Data,
    V: StateValue + Data,
{
    /// Accepts records up to `lateness` behind the watermark.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = millis(lateness);
        self
    }

    /// `f(key, record, value)` for every record.
    pub fn apply<O: Data>(self, f: impl FnMut(&K, &L, Option<&V>) -> O + 'static) -> Stream<O> {
        let (lookup, lateness) = (self.lookup, self.lateness);
        self.both.records().transform(
            &self.name,
            OperatorKind::Enrich,
            enrich::Enrich::new(lookup, lateness, f, None),
        )
    }

    /// Like [`Self::apply`], and also returns the late records.
    pub fn apply_with_late<O: Data>(
        self,
        f: impl FnMut(&K, &L, Option<&V>) -> O + 'static,
    ) -> (Stream<O>, Stream<JoinInput<L, Option<V>>>) {
        let (lookup, lateness) = (self.lookup, self.lateness);
        self.both.records().transform_with_side_output(
            &self.name,
            OperatorKind::Enrich,
            |late: Output<JoinInput<L, Option<V>>>| enrich::Enrich::new(lookup, lateness, f, Some(late)),
        )
    }
}
