//! The aggregates a pipeline file lists, computed together as one window aggregator.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_operators::Aggregator;

use super::record::{Decoded, Num};
use super::spec::Function;

/// The running state of one aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Running {
    /// Records so far.
    Count(u64),
    /// Sum so far (`None` before the first value).
    Sum(Option<Num>),
    /// Smallest so far.
    Min(Option<Num>),
    /// Largest so far.
    Max(Option<Num>),
    /// Sum and number of values.
    Avg(f64, u64),
    /// An integer sum outside the 64-bit range, kept exact in 128 bits: values arrive in no
    /// fixed order, and the sum may come back into range.
    WideSum(i128),
}

/// An integer sum outside the 64-bit range of the columns it can be written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SumOutOfRange(pub i128);

/// The listed functions over the record's pre-extracted numbers, in order.
///
/// A result is a JSON value per function, or [`SumOutOfRange`] for an integer sum that only
/// a float could hold (a float would round it, so the pipeline stops instead).
#[derive(Debug, Clone)]
pub struct Aggregates(pub Arc<Vec<Function>>);

impl Aggregator<Decoded> for Aggregates {
    type Acc = Vec<Running>;
    type Out = Vec<Result<Value, SumOutOfRange>>;

    fn init(&self) -> Vec<Running> {
        self.0
            .iter()
            .map(|f| match f {
                Function::Count => Running::Count(0),
                Function::Sum => Running::Sum(None),
                Function::Min => Running::Min(None),
                Function::Max => Running::Max(None),
                Function::Avg => Running::Avg(0.0, 0),
            })
            .collect()
    }

    fn add(&self, acc: &mut Vec<Running>, record: &Decoded) {
        for (running, value) in acc.iter_mut().zip(&record.numbers) {
            fold(running, *value, 1);
        }
    }

    fn merge(&self, acc: &mut Vec<Running>, other: Vec<Running>) {
        for (running, other) in acc.iter_mut().zip(other) {
            match other {
                Running::Count(n) => fold(running, None, n),
                Running::Sum(v) | Running::Min(v) | Running::Max(v) => fold(running, v, 1),
                Running::WideSum(sum) => add_to_sum(running, Addend::Int(sum)),
                Running::Avg(sum, n) => {
                    if let Running::Avg(s, c) = running {
                        *s += sum;
                        *c += n;
                    }
                }
            }
        }
    }

    fn finish(&self, acc: Vec<Running>) -> Vec<Result<Value, SumOutOfRange>> {
        acc.into_iter()
            .map(|running| match running {
                Running::Count(n) => Ok(Value::from(n)),
                Running::Sum(v) | Running::Min(v) | Running::Max(v) => {
                    Ok(v.map_or(Value::Null, Num::to_json))
                }
                Running::Avg(_, 0) => Ok(Value::Null),
                Running::Avg(sum, n) => Ok(Value::from(sum / n as f64)),
                Running::WideSum(sum) => Err(SumOutOfRange(sum)),
            })
            .collect()
    }
}

/// What is added to a sum: a record's number, or another partial sum.
#[derive(Debug, Clone, Copy)]
enum Addend {
    Int(i128),
    Float(f64),
}

impl Addend {
    fn as_f64(self) -> f64 {
        match self {
            Addend::Int(i) => i as f64,
            Addend::Float(f) => f,
        }
    }
}

impl From<Num> for Addend {
    fn from(n: Num) -> Addend {
        match n {
            Num::Int(i) => Addend::Int(i.into()),
            Num::Float(f) => Addend::Float(f),
        }
    }
}

/// Adds `v` to a running sum: integers exactly (beyond 64 bits as [`Running::WideSum`]),
/// as a float once a float is involved.
fn add_to_sum(sum: &mut Running, v: Addend) {
    let total = match (&*sum, v) {
        (Running::Sum(None), v) => v,
        (Running::Sum(Some(Num::Int(a))), Addend::Int(b)) => Addend::Int(i128::from(*a) + b),
        (Running::WideSum(a), Addend::Int(b)) => Addend::Int(a + b),
        (Running::Sum(Some(a)), v) => Addend::Float(a.as_f64() + v.as_f64()),
        (Running::WideSum(a), v) => Addend::Float(*a as f64 + v.as_f64()),
        _ => return,
    };
    *sum = match total {
        Addend::Int(t) => i64::try_from(t).map_or(Running::WideSum(t), |t| Running::Sum(Some(Num::Int(t)))),
        Addend::Float(f) => Running::Sum(Some(Num::Float(f))),
    };
}

/// Folds `value` (or, for counts, `n` records) into `running`.
fn fold(running: &mut Running, value: Option<Num>, n: u64) {
    let pick = |current: &mut Option<Num>, v: Num, better: fn(f64, f64) -> bool| {
        if current.is_none_or(|c| better(v.as_f64(), c.as_f64())) {
            *current = Some(v);
        }
    };
    match (running, value) {
        (Running::Count(c), _) => *c += n,
        (sum @ (Running::Sum(_) | Running::WideSum(_)), Some(v)) => add_to_sum(sum, v.into()),
        (Running::Min(m), Some(v)) => pick(m, v, |a, b| a < b),
        (Running::Max(m), Some(v)) => pick(m, v, |a, b| a > b),
        (Running::Avg(s, c), Some(v)) => {
            *s += v.as_f64();
            *c += 1;
        }
        (_, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(values: &[Option<Num>]) -> Decoded {
        Decoded {
            key: None,
            ts: 0,
            numbers: values.to_vec(),
            row: Default::default(),
        }
    }

    #[test]
    fn computes_and_merges_every_function() {
        let functions = vec![
            Function::Count,
            Function::Sum,
            Function::Min,
            Function::Max,
            Function::Avg,
        ];
        let agg = Aggregates(Arc::new(functions));
        let row = |v: i64| {
            record(&[
                None,
                Some(Num::Int(v)),
                Some(Num::Int(v)),
                Some(Num::Int(v)),
                Some(Num::Int(v)),
            ])
        };
        let mut a = agg.init();
        agg.add(&mut a, &row(3));
        agg.add(&mut a, &row(5));
        let mut b = agg.init();
        agg.add(&mut b, &row(-1));
        agg.merge(&mut a, b);
        assert_eq!(
            agg.finish(a),
            vec![
                Ok(Value::from(3u64)),
                Ok(Value::from(7i64)),
                Ok(Value::from(-1i64)),
                Ok(Value::from(5i64)),
                Ok(Value::from(7.0 / 3.0))
            ]
        );
        assert_eq!(agg.finish(agg.init())[1], Ok(Value::Null));
    }

    #[test]
    fn integer_sums_near_the_64_bit_limit_stay_exact_in_any_order() {
        let agg = Aggregates(Arc::new(vec![Function::Sum]));
        let sum = |values: &[i64]| {
            let mut acc = agg.init();
            for v in values {
                agg.add(&mut acc, &record(&[Some(Num::Int(*v))]));
            }
            acc
        };
        // The running sum leaves the 64-bit range on the way in some orders, not in others.
        for values in [[i64::MAX, 1, -5], [-5, i64::MAX, 1], [1, -5, i64::MAX]] {
            assert_eq!(
                agg.finish(sum(&values)),
                vec![Ok(Value::from(i64::MAX - 4))],
                "{values:?}"
            );
        }
        let mut merged = sum(&[i64::MAX]);
        agg.merge(&mut merged, sum(&[i64::MAX]));
        agg.merge(&mut merged, sum(&[-i64::MAX, -i64::MAX + 7]));
        assert_eq!(agg.finish(merged), vec![Ok(Value::from(7))]);
    }

    #[test]
    fn an_integer_sum_beyond_64_bits_is_out_of_range_never_a_float() {
        let agg = Aggregates(Arc::new(vec![Function::Sum]));
        let mut a = agg.init();
        agg.add(&mut a, &record(&[Some(Num::Int(i64::MAX))]));
        agg.add(&mut a, &record(&[Some(Num::Int(i64::MAX))]));
        let mut b = agg.init();
        agg.add(&mut b, &record(&[Some(Num::Int(i64::MIN))]));
        agg.add(&mut b, &record(&[Some(Num::Int(i64::MIN))]));
        let expected = |sum: i128| vec![Err(SumOutOfRange(sum))];
        assert_eq!(agg.finish(a.clone()), expected(2 * i128::from(i64::MAX)));
        assert_eq!(agg.finish(b.clone()), expected(2 * i128::from(i64::MIN)));
        // Merged partial sums stay exact too: here they cancel out to -2.
        agg.merge(&mut a, b);
        assert_eq!(agg.finish(a), vec![Ok(Value::from(-2))]);
        // With a float among the values the sum is a float, as for any float field.
        let mut c = agg.init();
        agg.add(&mut c, &record(&[Some(Num::Int(i64::MAX))]));
        agg.add(&mut c, &record(&[Some(Num::Int(i64::MAX))]));
        agg.add(&mut c, &record(&[Some(Num::Float(0.5))]));
        assert!(matches!(&agg.finish(c)[0], Ok(v) if v.is_f64()));
    }
}
