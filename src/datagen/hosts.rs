//! Host metrics: request latencies with a long tail, a few slow hosts.

use serde::{Deserialize, Serialize};

use super::{event_time, mix, unit};

/// One request served by a host (key = `host`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostMetric {
    /// The host.
    pub host: String,
    /// Request latency in microseconds.
    pub latency_us: u64,
    /// Event time, epoch milliseconds.
    pub ts: i64,
}

/// Settings of the host-metric stream.
#[derive(Debug, Clone)]
pub struct HostMetricGenerator {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of hosts; every tenth is slow (latencies three times higher).
    pub hosts: u64,
    /// Event time of the first measurement (epoch ms).
    pub start_ts: i64,
    /// Measurements per second of event time.
    pub per_second: u64,
    /// Largest delay of a measurement behind its position in the stream (ms).
    pub max_disorder_ms: i64,
    /// Number of partitions the measurements are spread over.
    pub partitions: u32,
}

impl Default for HostMetricGenerator {
    fn default() -> Self {
        HostMetricGenerator {
            seed: 31,
            hosts: 50,
            start_ts: 1_764_115_200_000,
            per_second: 2_000,
            max_disorder_ms: 1_000,
            partitions: 4,
        }
    }
}

impl HostMetricGenerator {
    /// The `index`-th measurement of `partition`.
    pub fn metric(&self, partition: u32, index: u64) -> HostMetric {
        self.nth(index * u64::from(self.partitions.max(1)) + u64::from(partition))
    }

    /// The `n`-th measurement of the whole stream.
    pub fn nth(&self, n: u64) -> HostMetric {
        let r = mix(self.seed ^ mix(n));
        let host = mix(r ^ 0x5555) % self.hosts.max(1);
        let slow = if host % 10 == 9 { 3.0 } else { 1.0 };
        // Exponential body around 2 ms with a Pareto tail in one request of fifty.
        let u = unit(r ^ 0x77).max(1e-12);
        let body = -2_000.0 * u.ln();
        let tail = if r % 50 == 0 {
            20_000.0 / unit(r ^ 0x99).max(0.01)
        } else {
            0.0
        };
        HostMetric {
            host: format!("host-{host:02}"),
            latency_us: ((body + tail) * slow) as u64 + 100,
            ts: event_time(self.start_ts, n, self.per_second, self.max_disorder_ms, r),
        }
    }
}
