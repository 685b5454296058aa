//! Deterministic generated data for the examples, tests and benchmarks: e-commerce orders and
//! page views, sensor readings, payments and host metrics.
//!
//! Record `i` of partition `p` depends only on the generator's settings, `p` and `i`, so any
//! worker can produce any part of a data set and every run sees the same records.

mod hosts;
mod payments;
mod sensors;
mod shop;

pub use hosts::{HostMetric, HostMetricGenerator};
pub use payments::{Payment, PaymentGenerator};
pub use sensors::{SensorGenerator, SensorReading};
pub use shop::{Order, OrderGenerator, PageView, PageViewGenerator};

/// splitmix64: a tiny, well-mixed hash for reproducible choices.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in `[0, 1)` from a hash.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The event time of the `n`-th record of a stream starting at `start_ts` with `per_second`
/// records per second, delayed by up to `max_disorder_ms` (chosen by `r`).
fn event_time(start_ts: i64, n: u64, per_second: u64, max_disorder_ms: i64, r: u64) -> i64 {
    let base = start_ts + (n * 1000 / per_second.max(1)) as i64;
    let delay = if max_disorder_ms > 0 {
        (mix(r ^ 0x1234) % (max_disorder_ms as u64 + 1)) as i64
    } else {
        0
    };
    base - delay
}
