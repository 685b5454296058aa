//! Sensor readings: a daily temperature curve per device, noise, and rare spikes.

use serde::{Deserialize, Serialize};

use super::{event_time, mix, unit};

/// One reading of one device (key = `device_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorReading {
    /// The device.
    pub device_id: String,
    /// Temperature in °C.
    pub temperature: f64,
    /// Event time, epoch milliseconds.
    pub ts: i64,
}

/// Settings of the reading stream.
#[derive(Debug, Clone)]
pub struct SensorGenerator {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of devices.
    pub devices: u64,
    /// Event time of the first reading (epoch ms).
    pub start_ts: i64,
    /// Readings per second of event time, over all devices.
    pub readings_per_second: u64,
    /// Largest delay of a reading behind its position in the stream (ms).
    pub max_disorder_ms: i64,
    /// One reading in this many is a spike 25–35 °C above the curve.
    pub spike_every: u64,
    /// Number of partitions the readings are spread over.
    pub partitions: u32,
}

impl Default for SensorGenerator {
    fn default() -> Self {
        SensorGenerator {
            seed: 11,
            devices: 1_000,
            start_ts: 1_764_115_200_000,
            readings_per_second: 1_000,
            max_disorder_ms: 2_000,
            spike_every: 2_000,
            partitions: 4,
        }
    }
}

impl SensorGenerator {
    /// The `index`-th reading of `partition`.
    pub fn reading(&self, partition: u32, index: u64) -> SensorReading {
        self.nth(index * u64::from(self.partitions.max(1)) + u64::from(partition))
    }

    /// The `n`-th reading of the whole stream.
    pub fn nth(&self, n: u64) -> SensorReading {
        let r = mix(self.seed ^ mix(n));
        let device = n % self.devices.max(1);
        let ts = event_time(
            self.start_ts,
            n,
            self.readings_per_second,
            self.max_disorder_ms,
            r,
        );
        let day = (ts.rem_euclid(86_400_000)) as f64 / 86_400_000.0;
        let phase = unit(mix(self.seed ^ device)) * 0.1;
        let curve = 21.0 + 4.0 * (std::f64::consts::TAU * (day + phase)).sin();
        let noise = unit(r ^ 0x77) - 0.5;
        let spike = if r % self.spike_every.max(1) == 0 {
            25.0 + 10.0 * unit(r ^ 0x99)
        } else {
            0.0
        };
        SensorReading {
            device_id: format!("d-{device}"),
            temperature: ((curve + noise + spike) * 100.0).round() / 100.0,
            ts,
        }
    }
}
