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
    pub(crate) initial_idle_timeout: Option<Duration>,
    pub(crate) max_drift: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            timestamps: self.timestamps.clone(),
            out_of_orderness: self.out_of_orderness,
            idle_timeout: self.idle_timeout,
            initial_idle_timeout: self.initial_idle_timeout,
            max_drift: self.max_drift,
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
            initial_idle_timeout: None,
            max_drift: None,
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
            initial_idle_timeout: None,
            max_drift: None,
        }
    }

    /// Takes each record's event time (epoch milliseconds) from `assigner`.
    pub fn with_timestamps(mut self, assigner: impl Fn(&T) -> Timestamp + Send + Sync + 'static) -> Self {
        self.timestamps = TimestampSource::Field(Arc::new(assigner));
        self
    }

    /// A partition that has been caught up (polled, with nothing to give) for `timeout` of
    /// processing time stops holding the watermark back until its next record. Time in which
    /// the source is not read (backpressure, a checkpoint pause) does not count: a partition
    /// is never idle because nobody read it.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// A partition that has delivered no record `timeout` of processing time (of the source
    /// being read) after it was assigned stops holding the watermark back, even if it is not
    /// known to be caught up. Until a partition delivers, its watermark is the minimum, so a
    /// partition whose records the reader reaches late holds everything back and lets the
    /// others' records be on time however old they are; this bounds that wait. The price: its
    /// records, when they come, may be late (counted, never dropped silently).
    pub fn with_initial_idleness(mut self, timeout: Duration) -> Self {
        self.initial_idle_timeout = Some(timeout);
        self
    }

    /// Watermark alignment: a partition whose watermark is more than `max_drift` ahead of the
    /// source's watermark (the minimum over every active partition of every worker) is paused
    /// until the others catch up, so no partition races ahead of the rest and records of the
    /// laggards stay on time. Needs a reader that can pause partitions (Kafka, the test
    /// input); others ignore it. Combine it with [`Self::with_idleness`], or one quiet
    /// partition pauses the rest for good.
    pub fn with_alignment(mut self, max_drift: Duration) -> Self {
        self.max_drift = Some(max_drift);
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
