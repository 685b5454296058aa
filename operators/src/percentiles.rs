//! Percentiles of a value per window, in an HdrHistogram.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::aggregators::Aggregator;

/// Percentiles of `f(record)` (non-negative integers, e.g. latencies in microseconds), kept
/// to three significant digits in an HdrHistogram: a few kilobytes per window whatever the
/// number of records. Values above `highest` (default one hour in microseconds) count as
/// `highest`.
///
/// ```
/// use sluice_operators::{Aggregator, Percentiles};
/// let p99 = Percentiles::of(|latency: &u64| *latency, &[0.5, 0.99]);
/// let mut acc = p99.init();
/// for v in 1..=1000 {
///     p99.add(&mut acc, &v);
/// }
/// let summary = p99.finish(acc);
/// assert_eq!(summary.count, 1000);
/// assert_eq!(summary.values, vec![500, 990]);
/// ```
#[derive(Debug, Clone)]
pub struct Percentiles<F> {
    value: F,
    quantiles: Vec<f64>,
    highest: u64,
}

impl<F> Percentiles<F> {
    /// The `quantiles` (each in `[0, 1]`) of `value(record)`.
    pub fn of(value: F, quantiles: &[f64]) -> Self {
        Percentiles {
            value,
            quantiles: quantiles.iter().map(|q| q.clamp(0.0, 1.0)).collect(),
            highest: 3_600_000_000,
        }
    }

    /// Values above `highest` count as `highest`.
    pub fn highest(mut self, highest: u64) -> Self {
        self.highest = highest.max(2);
        self
    }
}

/// What [`Percentiles`] gives per window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PercentileSummary {
    /// Values recorded.
    pub count: u64,
    /// One value per requested quantile, in order.
    pub values: Vec<u64>,
    /// The largest value.
    pub max: u64,
}

/// A histogram as window state: serialised in HdrHistogram's V2 format.
#[derive(Debug, Clone)]
pub struct HistogramState(Histogram<u64>);

impl Serialize for HistogramState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.0, &mut bytes)
            .map_err(|e| serde::ser::Error::custom(format!("histogram: {e:?}")))?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for HistogramState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde::de::Deserialize::deserialize(deserializer)?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map(HistogramState)
            .map_err(|e| serde::de::Error::custom(format!("histogram: {e:?}")))
    }
}

impl<T, F> Aggregator<T> for Percentiles<F>
where
    F: Fn(&T) -> u64 + 'static,
{
    type Acc = HistogramState;
    type Out = PercentileSummary;

    fn init(&self) -> HistogramState {
        HistogramState(
            Histogram::new_with_bounds(1, self.highest, 3)
                .expect("valid bounds: low 1, high at least 2, 3 significant digits"),
        )
    }

    fn add(&self, acc: &mut HistogramState, record: &T) {
        acc.0.saturating_record((self.value)(record).max(1));
    }

    fn merge(&self, acc: &mut HistogramState, other: HistogramState) {
        // Same bounds on both sides: adding cannot fail.
        let _ = acc.0.add(&other.0);
    }

    fn finish(&self, acc: HistogramState) -> PercentileSummary {
        PercentileSummary {
            count: acc.0.len(),
            values: self
                .quantiles
                .iter()
                .map(|q| acc.0.value_at_quantile(*q))
                .collect(),
            max: acc.0.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_serde() {
        let p = Percentiles::of(|v: &u64| *v, &[0.5, 0.999]);
        let mut acc = p.init();
        for v in [5, 50, 500, 5_000, 50_000] {
            p.add(&mut acc, &v);
        }
        let bytes = bincode::serde::encode_to_vec(&acc, bincode::config::standard()).expect("encode");
        let (back, _): (HistogramState, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decode");
        assert_eq!(p.finish(back), p.finish(acc.clone()));
        let mut merged = p.init();
        p.merge(&mut merged, acc);
        assert_eq!(p.finish(merged).count, 5);
    }
}
