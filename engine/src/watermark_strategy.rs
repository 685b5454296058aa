use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::time::{Timestamp, millis};

type Assigner<T> = Arc<dyn Fn(&T) -> Timestamp + Send + Sync>;

/// Where a record's event time comes from.
pub(crate) enum TimestampSource<T> {
    /// A field of the record.
    Field(Assigner<T>),
    /// The transport's timestamp (e.g. Kafka's record timestamp); processing time if absent.
    Transport,
    /// The wall clock when the record is read.
    ProcessingTime,
}

impl<T> Clone for TimestampSource<T> {
    fn clone(&self) -> Self {
        match self {
            TimestampSource::Field(f) => TimestampSource::Field(Arc::clone(f)),
            TimestampSource::Transport => TimestampSource::Transport,
            TimestampSource::ProcessingTime => TimestampSource::ProcessingTime,
        }
    }
}

/// How a source assigns event time and derives watermarks.
///
/// Watermarks are bounded out-of-orderness per partition: a partition's watermark is the
/// largest timestamp seen in it minus the bound; the source's watermark is the minimum over
/// its active partitions. A partition that produced nothing for the idle timeout stops holding
/// the watermark back until it produces again.
///
/// ```
/// use std::time::Duration;
/// use sluice_engine::WatermarkStrategy;
///
/// struct Order { ts: i64 }
/// let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
///     .with_timestamps(|o: &Order| o.ts)
///     .with_idleness(Duration::from_secs(30));
/// assert_eq!(strategy.out_of_orderness_ms(), 5_000);
/// ```
pub struct WatermarkStrategy<T> {
    pub(crate) timestamps: TimestampSource<T>,
    pub(crate) out_of_orderness: i64,
    pub(crate) idle_timeout: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            timestamps: self.timestamps.clone(),
            out_of_orderness: self.out_of_orderness,
            idle_timeout: self.idle_timeout,
        }
    }
}

impl<T> WatermarkStrategy<T> {
    /// Records may arrive up to `bound` later than the largest timestamp seen in their
    /// partition. Timestamps come from the transport until [`Self::with_timestamps`] is called.
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        WatermarkStrategy {
            timestamps: TimestampSource::Transport,
            out_of_orderness: millis(bound),
            idle_timeout: None,
        }
    }

    /// Timestamps increase within each partition (a bound of zero).
    pub fn monotonous() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// Event time is the wall clock when the record is read.
    pub fn processing_time() -> Self {
        WatermarkStrategy {
            timestamps: TimestampSource::ProcessingTime,
            out_of_orderness: 0,
            idle_timeout: None,
        }
    }

    /// Takes each record's event time (epoch milliseconds) from `assigner`.
    pub fn with_timestamps(mut self, assigner: impl Fn(&T) -> Timestamp + Send + Sync + 'static) -> Self {
        self.timestamps = TimestampSource::Field(Arc::new(assigner));
        self
    }

    /// A partition with no record for `timeout` stops holding the watermark back.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The out-of-orderness bound in milliseconds.
    pub fn out_of_orderness_ms(&self) -> i64 {
        self.out_of_orderness
    }

    #[inline]
    pub(crate) fn timestamp_of(&self, value: &T, transport: Option<Timestamp>, clock: &Clock) -> Timestamp {
        match &self.timestamps {
            TimestampSource::Field(f) => f(value),
            TimestampSource::Transport => transport.unwrap_or_else(|| clock.now()),
            TimestampSource::ProcessingTime => clock.now(),
        }
    }
}
