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
}

/// The listed functions over the record's pre-extracted numbers, in order.
#[derive(Debug, Clone)]
pub struct Aggregates(pub Arc<Vec<Function>>);

impl Aggregator<Decoded> for Aggregates {
    type Acc = Vec<Running>;
    type Out = Vec<Value>;

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
                Running::Avg(sum, n) => {
                    if let Running::Avg(s, c) = running {
                        *s += sum;
                        *c += n;
                    }
                }
            }
        }
    }

    fn finish(&self, acc: Vec<Running>) -> Vec<Value> {
        acc.into_iter()
            .map(|running| match running {
                Running::Count(n) => Value::from(n),
                Running::Sum(v) | Running::Min(v) | Running::Max(v) => v.map_or(Value::Null, Num::to_json),
                Running::Avg(_, 0) => Value::Null,
                Running::Avg(sum, n) => Value::from(sum / n as f64),
            })
            .collect()
    }
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
        (Running::Sum(s), Some(v)) => *s = Some(s.map_or(v, |s| s + v)),
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
                Value::from(3u64),
                Value::from(7i64),
                Value::from(-1i64),
                Value::from(5i64),
                Value::from(7.0 / 3.0)
            ]
        );
        assert_eq!(agg.finish(agg.init())[1], Value::Null);
    }
}
