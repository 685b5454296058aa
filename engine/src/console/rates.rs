//! Counter samples of the last minute, from which the console computes rates.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::metrics::JobMetrics;

/// Samples kept: one a second for a minute, plus the one the minute starts from.
const KEPT: usize = 61;

type Key = (String, &'static str, usize);

struct Sample {
    at: Instant,
    wall_ms: i64,
    counters: HashMap<Key, u64>,
}

/// The job's counters, sampled once a second over the last minute.
#[derive(Default)]
pub(crate) struct RateHistory {
    samples: VecDeque<Sample>,
}

impl RateHistory {
    /// Takes a sample of every counter now.
    pub(crate) fn sample(&mut self, metrics: &JobMetrics) {
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at: Instant::now(),
            wall_ms: crate::time::now_millis(),
            counters: metrics
                .counters()
                .into_iter()
                .map(|(op, name, worker, v)| ((op, name, worker), v))
                .collect(),
        });
    }

    /// Growth per second of counter `name` of `operator` on `worker` over the samples kept.
    pub(crate) fn per_second(&self, operator: &str, name: &'static str, worker: usize) -> f64 {
        self.growth(operator, name, worker)
            .map_or(0.0, |(delta, secs)| delta as f64 / secs)
    }

    /// Share of the time over the samples kept that nanosecond counter `name` of `operator`
    /// on `worker` grew by: 1.0 when it counted all of it.
    pub(crate) fn share(&self, operator: &str, name: &'static str, worker: usize) -> f64 {
        self.growth(operator, name, worker)
            .map_or(0.0, |(delta, secs)| (delta as f64 / 1e9 / secs).min(1.0))
    }

    fn growth(&self, operator: &str, name: &'static str, worker: usize) -> Option<(u64, f64)> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let secs = last.at.duration_since(first.at).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let key = (operator.to_string(), name, worker);
        let value = |s: &Sample| s.counters.get(&key).copied().unwrap_or(0);
        Some((value(last).saturating_sub(value(first)), secs))
    }

    /// Per second between consecutive samples, counter `name` of `operator` summed over its
    /// workers: `(milliseconds since the epoch, rate)`, oldest first.
    pub(crate) fn series(&self, operator: &str, name: &'static str) -> Vec<(i64, f64)> {
        let total = |s: &Sample| -> u64 {
            s.counters
                .iter()
                .filter(|((op, n, _), _)| op == operator && *n == name)
                .map(|(_, v)| *v)
                .sum()
        };
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| {
                let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
                (b.wall_ms, total(b).saturating_sub(total(a)) as f64 / secs)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_growth_over_the_time_between_the_oldest_and_newest_sample() {
        let metrics = JobMetrics::default();
        let counter = metrics.counter("parse", "records_out", 0);
        let mut history = RateHistory::default();
        history.sample(&metrics);
        counter.add(500);
        std::thread::sleep(std::time::Duration::from_millis(50));
        history.sample(&metrics);
        let secs = history.samples[1]
            .at
            .duration_since(history.samples[0].at)
            .as_secs_f64();
        let rate = history.per_second("parse", "records_out", 0);
        assert!((rate - 500.0 / secs).abs() < 1e-6, "{rate}");
        assert_eq!(history.per_second("parse", "records_out", 1), 0.0);
        let series = history.series("parse", "records_out");
        assert_eq!(series.len(), 1);
        assert!((series[0].1 - rate).abs() < 1e-6);
    }

    #[test]
    fn keeps_a_minute_of_samples() {
        let metrics = JobMetrics::default();
        let mut history = RateHistory::default();
        for _ in 0..100 {
            history.sample(&metrics);
        }
        assert_eq!(history.samples.len(), KEPT);
    }
}
