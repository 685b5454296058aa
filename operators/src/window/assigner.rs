use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_engine::{Timestamp, millis};

/// A half-open event-time interval `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// First millisecond in the window.
    pub start: Timestamp,
    /// First millisecond after the window.
    pub end: Timestamp,
}

impl Window {
    /// The last timestamp inside the window: the timestamp of its result.
    pub fn max_timestamp(&self) -> Timestamp {
        self.end - 1
    }
}

/// The result of a window for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowResult<K, R> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
    /// The aggregate.
    pub value: R,
    /// Whether this is the final result or an early, updating one.
    pub emit: Emit,
}

/// Which result of a window a [`WindowResult`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Emit {
    /// The window closed: this result is complete and will not change.
    Final,
    /// The running aggregate of an open window (see `WindowedStream::early_results`).
    Early {
        /// Records folded into the window so far.
        records: u64,
    },
}

impl<K, R> WindowResult<K, R> {
    /// A write timestamp in microseconds derived from the data, never from the clock, for
    /// sinks that keep the newest write of a row (Cassandra): the final result gets
    /// `end × 1000 − 1`; an early result gets `start × 1000 + records folded`, always below
    /// the final one, and growing as records are folded in. A replay rewrites the same values
    /// with the same timestamps, and an early result can never overwrite the final one.
    pub fn write_timestamp(&self) -> i64 {
        let final_ts = self.window.end.saturating_mul(1000) - 1;
        match self.emit {
            Emit::Final => final_ts,
            Emit::Early { records } => {
                let start = self.window.start.saturating_mul(1000);
                let step = i64::try_from(records).unwrap_or(i64::MAX);
                start.saturating_add(step).min(final_ts - 1)
            }
        }
    }
}

/// How records are grouped into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// Fixed, non-overlapping windows of `size`, aligned to the epoch.
    Tumbling {
        /// Window length in milliseconds.
        size: i64,
    },
    /// Windows of `size` starting every `slide` (a record belongs to `size / slide` windows).
    Sliding {
        /// Window length in milliseconds.
        size: i64,
        /// Distance between window starts in milliseconds.
        slide: i64,
    },
    /// Per-key windows that close after `gap` without records; overlapping sessions merge.
    Session {
        /// Inactivity gap in milliseconds.
        gap: i64,
    },
}

impl Windows {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: Duration) -> Self {
        Windows::Tumbling { size: millis(size) }
    }

    /// Sliding (hopping) windows of `size` every `slide`.
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Windows::Sliding {
            size: millis(size),
            slide: millis(slide),
        }
    }

    /// Session windows closed by `gap` of inactivity.
    pub fn session(gap: Duration) -> Self {
        Windows::Session { gap: millis(gap) }
    }

    /// Why these settings are unusable, if they are.
    pub(crate) fn problem(&self) -> Option<String> {
        match *self {
            Windows::Tumbling { size } if size <= 0 => Some("window size must be positive".into()),
            Windows::Sliding { size, slide } if size <= 0 || slide <= 0 => {
                Some("window size and slide must be positive".into())
            }
            Windows::Sliding { size, slide } if slide > size => Some(format!(
                "slide {slide} ms is larger than size {size} ms: records would fall between windows"
            )),
            Windows::Session { gap } if gap <= 0 => Some("session gap must be positive".into()),
            _ => None,
        }
    }
}

/// Calls `f` for every fixed window of `size` every `slide` that contains `ts`, latest first.
#[inline]
pub(crate) fn for_each_window(ts: Timestamp, size: i64, slide: i64, mut f: impl FnMut(Window)) {
    let last_start = ts - ts.rem_euclid(slide);
    let mut start = last_start;
    while start > ts - size {
        f(Window {
            start,
            end: start + size,
        });
        start -= slide;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(ts: i64, size: i64, slide: i64) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        for_each_window(ts, size, slide, |w| v.push((w.start, w.end)));
        v
    }

    #[test]
    fn tumbling_and_sliding_assignment() {
        assert_eq!(windows(61_000, 60_000, 60_000), vec![(60_000, 120_000)]);
        assert_eq!(windows(0, 60_000, 60_000), vec![(0, 60_000)]);
        assert_eq!(windows(-1, 10, 10), vec![(-10, 0)]);
        assert_eq!(windows(125, 300, 100), vec![(100, 400), (0, 300), (-100, 200)]);
    }

    #[test]
    fn early_write_timestamps_grow_and_stay_below_the_final_one() {
        let result = |emit| WindowResult {
            key: "p-1",
            window: Window {
                start: 60_000,
                end: 120_000,
            },
            value: 0,
            emit,
        };
        let final_ts = result(Emit::Final).write_timestamp();
        assert_eq!(final_ts, 120_000 * 1000 - 1);
        let mut previous = i64::MIN;
        for records in [0, 1, 2, 1_000, 59_999_997, 59_999_998, 70_000_000, u64::MAX] {
            let early = result(Emit::Early { records }).write_timestamp();
            assert!(early < final_ts, "{records} records: {early} >= {final_ts}");
            assert!(early >= previous, "timestamps never go back");
            assert!(early >= 60_000 * 1000);
            previous = early;
        }
    }

    #[test]
    fn invalid_settings_are_explained() {
        assert!(Windows::Tumbling { size: 0 }.problem().is_some());
        assert!(Windows::Sliding { size: 10, slide: 20 }.problem().is_some());
        assert!(
            Windows::sliding(Duration::from_secs(300), Duration::from_secs(60))
                .problem()
                .is_none()
        );
    }
}
