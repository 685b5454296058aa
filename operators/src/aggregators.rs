use std::ops::AddAssign;

use sluice_engine::Data;
use sluice_engine::state::StateValue;

/// An incremental aggregate: records are folded into an accumulator as they arrive, and
/// accumulators of merged windows are merged; raw records are never buffered.
///
/// Tuples of aggregators are aggregators, so several aggregates are computed in one pass:
/// `(Count, Sum::of(|o: &Order| o.quantity))`.
pub trait Aggregator<T>: 'static {
    /// The running state, stored in keyed state (serde-encodable).
    type Acc: StateValue;
    /// The final result.
    type Out: Data;

    /// A fresh accumulator.
    fn init(&self) -> Self::Acc;
    /// Folds `value` into `acc`.
    fn add(&self, acc: &mut Self::Acc, value: &T);
    /// Folds `other` into `acc`: session windows merging, and tumbling and sliding windows
    /// combining their slices (records folded into `other` after those of `acc`). Merging two
    /// accumulators must give what folding all their records into one would.
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result of `acc`.
    fn finish(&self, acc: Self::Acc) -> Self::Out;
}

/// Number of records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl<T> Aggregator<T> for Count {
    type Acc = u64;
    type Out = u64;

    fn init(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, acc: &mut u64, _: &T) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn finish(&self, acc: u64) -> u64 {
        acc
    }
}

/// Sum of a value taken from each record.
#[derive(Debug, Clone, Copy)]
pub struct Sum<F>(pub F);

impl<F> Sum<F> {
    /// Sums `f(record)`.
    pub fn of(f: F) -> Self {
        Sum(f)
    }
}

impl<T, V, F> Aggregator<T> for Sum<F>
where
    F: Fn(&T) -> V + 'static,
    V: AddAssign + Default + Copy + StateValue,
{
    type Acc = V;
    type Out = V;

    fn init(&self) -> V {
        V::default()
    }
    #[inline]
    fn add(&self, acc: &mut V, value: &T) {
        *acc += (self.0)(value);
    }
    fn merge(&self, acc: &mut V, other: V) {
        *acc += other;
    }
    fn finish(&self, acc: V) -> V {
        acc
    }
}

/// Keeps `candidate` in `acc` when there is nothing yet or `better(candidate, current)`.
#[inline]
fn keep_extreme<V: Copy>(acc: &mut Option<V>, candidate: V, better: impl Fn(&V, &V) -> bool) {
    if acc.as_ref().is_none_or(|current| better(&candidate, current)) {
        *acc = Some(candidate);
    }
}

/// Smallest value taken from each record (`None` for no record).
#[derive(Debug, Clone, Copy)]
pub struct Min<F>(pub F);

impl<F> Min<F> {
    /// Minimum of `f(record)`.
    pub fn of(f: F) -> Self {
        Min(f)
    }
}

impl<T, V, F> Aggregator<T> for Min<F>
where
    F: Fn(&T) -> V + 'static,
    V: PartialOrd + Copy + StateValue,
{
    type Acc = Option<V>;
    type Out = Option<V>;

    fn init(&self) -> Option<V> {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Option<V>, value: &T) {
        keep_extreme(acc, (self.0)(value), |a, b| a < b);
    }
    fn merge(&self, acc: &mut Option<V>, other: Option<V>) {
        if let Some(v) = other {
            keep_extreme(acc, v, |a, b| a < b);
        }
    }
    fn finish(&self, acc: Option<V>) -> Option<V> {
        acc
    }
}

/// Largest value taken from each record (`None` for no record).
#[derive(Debug, Clone, Copy)]
pub struct Max<F>(pub F);

impl<F> Max<F> {
    /// Maximum of `f(record)`.
    pub fn of(f: F) -> Self {
        Max(f)
    }
}

impl<T, V, F> Aggregator<T> for Max<F>
where
    F: Fn(&T) -> V + 'static,
    V: PartialOrd + Copy + StateValue,
{
    type Acc = Option<V>;
    type Out = Option<V>;

    fn init(&self) -> Option<V> {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Option<V>, value: &T) {
        keep_extreme(acc, (self.0)(value), |a, b| a > b);
    }
    fn merge(&self, acc: &mut Option<V>, other: Option<V>) {
        if let Some(v) = other {
            keep_extreme(acc, v, |a, b| a > b);
        }
    }
    fn finish(&self, acc: Option<V>) -> Option<V> {
        acc
    }
}

/// Arithmetic mean of a value taken from each record (`None` for no record).
#[derive(Debug, Clone, Copy)]
pub struct Avg<F>(pub F);

impl<F> Avg<F> {
    /// Mean of `f(record)`.
    pub fn of(f: F) -> Self {
        Avg(f)
    }
}

impl<T, F> Aggregator<T> for Avg<F>
where
    F: Fn(&T) -> f64 + 'static,
{
    type Acc = (f64, u64);
    type Out = Option<f64>;

    fn init(&self) -> (f64, u64) {
        (0.0, 0)
    }
    #[inline]
    fn add(&self, acc: &mut (f64, u64), value: &T) {
        acc.0 += (self.0)(value);
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (f64, u64), other: (f64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn finish(&self, acc: (f64, u64)) -> Option<f64> {
        (acc.1 > 0).then(|| acc.0 / acc.1 as f64)
    }
}

macro_rules! tuple_aggregator {
    ($($a:ident $i:tt),+) => {
        impl<T, $($a: Aggregator<T>),+> Aggregator<T> for ($($a,)+) {
            type Acc = ($($a::Acc,)+);
            type Out = ($($a::Out,)+);

            fn init(&self) -> Self::Acc {
                ($(self.$i.init(),)+)
            }
            #[inline]
            fn add(&self, acc: &mut Self::Acc, value: &T) {
                $(self.$i.add(&mut acc.$i, value);)+
            }
            fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
                $(self.$i.merge(&mut acc.$i, other.$i);)+
            }
            fn finish(&self, acc: Self::Acc) -> Self::Out {
                ($(self.$i.finish(acc.$i),)+)
            }
        }
    };
}

tuple_aggregator!(A 0, B 1);
tuple_aggregator!(A 0, B 1, C 2);
tuple_aggregator!(A 0, B 1, C 2, D 3);

#[cfg(test)]
mod tests {
    use super::*;

    fn fold<A: Aggregator<i64>>(agg: &A, values: &[i64]) -> A::Out {
        let mut acc = agg.init();
        for v in values {
            agg.add(&mut acc, v);
        }
        agg.finish(acc)
    }

    #[test]
    fn builtins() {
        let v = [3, -1, 7];
        assert_eq!(fold(&Count, &v), 3);
        assert_eq!(fold(&Sum::of(|x: &i64| *x), &v), 9);
        assert_eq!(fold(&Min::of(|x: &i64| *x), &v), Some(-1));
        assert_eq!(fold(&Max::of(|x: &i64| *x), &v), Some(7));
        assert_eq!(fold(&Avg::of(|x: &i64| *x as f64), &v), Some(3.0));
        assert_eq!(fold(&Avg::of(|x: &i64| *x as f64), &[]), None);
        assert_eq!(fold(&(Count, Sum::of(|x: &i64| *x * 2)), &v), (3, 18));
    }

    #[test]
    fn merge_equals_fold_of_concatenation() {
        let agg = (
            Count,
            Sum::of(|x: &i64| *x),
            Min::of(|x: &i64| *x),
            Max::of(|x: &i64| *x),
        );
        let (a, b) = ([5, 1, 9], [4, -3]);
        let mut left = agg.init();
        a.iter().for_each(|v| agg.add(&mut left, v));
        let mut right = agg.init();
        b.iter().for_each(|v| agg.add(&mut right, v));
        agg.merge(&mut left, right);
        assert_eq!(agg.finish(left), fold(&agg, &[5, 1, 9, 4, -3]));
    }
}
