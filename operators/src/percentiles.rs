//! Percentiles of a value per window, in an HdrHistogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::aggregators::Aggregator;

/// Percentiles of `f(record)` (non-negative integers, e.g. latencies in microseconds), kept
/// to three significant digits in an HdrHistogram: a few kilobytes per window whatever the
/// number of records. Values above `highest` (default one hour in microseconds) count as
/// `highest`; [`PercentileSummary::clamped`] says how many did, and the first one is
/// logged at `warn`.
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
/// assert_eq!(summary.clamped, 0);
/// ```
#[derive(Debug, Clone)]
pub struct Percentiles<F> {
    value: F,
    quantiles: Vec<f64>,
    highest: u64,
    /// Set once a clamped value has been logged (shared by the clones on every worker).
    warned: Arc<AtomicBool>,
}

impl<F> Percentiles<F> {
    /// The `quantiles` (each in `[0, 1]`) of `value(record)`.
    pub fn of(value: F, quantiles: &[f64]) -> Self {
        Percentiles {
            value,
            quantiles: quantiles.iter().map(|q| q.clamp(0.0, 1.0)).collect(),
            highest: 3_600_000_000,
            warned: Arc::default(),
        }
    }

    /// Values above `highest` count as `highest` (and in [`PercentileSummary::clamped`]).
    pub fn highest(mut self, highest: u64) -> Self {
        self.highest = highest.max(2);
        self
    }

    /// Records `count` times `value`, clamping it to the histogram's range if it is above.
    fn record(&self, acc: &mut HistogramState, value: u64, count: u64) {
        if acc.histogram.record_n(value, count).is_err() {
            acc.histogram.saturating_record_n(value, count);
            acc.clamped += count;
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    value,
                    highest = acc.histogram.high(),
                    "a value above the percentiles' highest trackable value counts as that value; \
                     PercentileSummary::clamped counts them"
                );
            }
        }
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
    /// Values above the highest trackable value, recorded as that value: when not 0, `max`
    /// and the upper quantiles may be below the true ones.
    #[serde(default)]
    pub clamped: u64,
}

/// A histogram as window state, with the number of values clamped into its range.
///
/// Serialised as HdrHistogram's V2 format followed by the clamped count (8 bytes, little
/// endian); state without the count reads as 0 clamped.
#[derive(Debug, Clone)]
pub struct HistogramState {
    histogram: Histogram<u64>,
    clamped: u64,
}

impl Serialize for HistogramState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.histogram, &mut bytes)
            .map_err(|e| serde::ser::Error::custom(format!("histogram: {e:?}")))?;
        bytes.extend_from_slice(&self.clamped.to_le_bytes());
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for HistogramState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde::de::Deserialize::deserialize(deserializer)?;
        let mut rest = bytes.as_slice();
        let histogram = Deserializer::new()
            .deserialize(&mut rest)
            .map_err(|e| serde::de::Error::custom(format!("histogram: {e:?}")))?;
        let clamped = match rest {
            [] => 0,
            _ => rest
                .try_into()
                .map(u64::from_le_bytes)
                .map_err(|_| serde::de::Error::custom("histogram: trailing bytes are not a count"))?,
        };
        Ok(HistogramState { histogram, clamped })
    }
}

impl<T, F> Aggregator<T> for Percentiles<F>
where
    F: Fn(&T) -> u64 + 'static,
{
    type Acc = HistogramState;
    type Out = PercentileSummary;

    fn init(&self) -> HistogramState {
        HistogramState {
            histogram: Histogram::new_with_bounds(1, self.highest, 3)
                .expect("valid bounds: low 1, high at least 2, 3 significant digits"),
            clamped: 0,
        }
    }

    fn add(&self, acc: &mut HistogramState, record: &T) {
        self.record(acc, (self.value)(record).max(1), 1);
    }

    /// Adds `other`'s values. The one error a histogram addition can raise is a value out of
    /// this histogram's range, when `other` tracked a wider one (state written by a job with
    /// a larger `highest`); `merge` has no error path, so `other`'s values are then added one
    /// by one, clamped and counted as in [`Aggregator::add`], and no value is lost.
    fn merge(&self, acc: &mut HistogramState, other: HistogramState) {
        acc.clamped += other.clamped;
        if acc.histogram.add(&other.histogram).is_err() {
            for v in other.histogram.iter_recorded() {
                self.record(acc, v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    fn finish(&self, acc: HistogramState) -> PercentileSummary {
        let histogram = &acc.histogram;
        PercentileSummary {
            count: histogram.len(),
            values: self
                .quantiles
                .iter()
                .map(|q| histogram.value_at_quantile(*q))
                .collect(),
            max: histogram.max(),
            clamped: acc.clamped,
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

    #[test]
    fn merging_state_of_a_wider_range_keeps_every_value() {
        // State restored from a job that tracked up to one hour, merged into a narrower one.
        let wide = Percentiles::of(|v: &u64| *v, &[0.5]);
        let narrow = Percentiles::of(|v: &u64| *v, &[0.5]).highest(1_000);
        let mut old = wide.init();
        for v in [10, 500_000] {
            wide.add(&mut old, &v);
        }
        let mut acc = narrow.init();
        narrow.add(&mut acc, &20);
        narrow.merge(&mut acc, old);
        let summary = narrow.finish(acc);
        assert_eq!(summary.count, 3, "{summary:?}");
        assert_eq!(summary.clamped, 1, "{summary:?}");
    }

    #[test]
    fn values_above_the_range_are_counted_as_clamped() {
        let p = Percentiles::of(|v: &u64| *v, &[0.5, 1.0]).highest(1_000);
        let mut acc = p.init();
        for v in [10, 20, 30, 5_000, 1_000_000] {
            p.add(&mut acc, &v);
        }
        let summary = p.finish(acc.clone());
        assert_eq!(summary.count, 5);
        assert_eq!(summary.clamped, 2);
        assert!(summary.max < 5_000, "{summary:?}");

        // The count survives a checkpoint and adds up in a merge.
        let bytes = bincode::serde::encode_to_vec(&acc, bincode::config::standard()).expect("encode");
        let (restored, _): (HistogramState, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decode");
        p.merge(&mut acc, restored);
        assert_eq!(p.finish(acc).clamped, 4);
    }

    #[test]
    fn state_without_a_clamped_count_still_reads() {
        let p = Percentiles::of(|v: &u64| *v, &[0.5]);
        let mut acc = p.init();
        p.add(&mut acc, &42);
        let mut v2 = Vec::new();
        V2Serializer::new()
            .serialize(&acc.histogram, &mut v2)
            .expect("serialize");
        // Bytes and a `Vec<u8>` encode alike: as the state was written before the count.
        let old = bincode::serde::encode_to_vec(&v2, bincode::config::standard()).expect("encode");
        let (restored, _): (HistogramState, _) =
            bincode::serde::decode_from_slice(&old, bincode::config::standard()).expect("decode");
        assert_eq!(p.finish(restored), p.finish(acc));
    }
}
