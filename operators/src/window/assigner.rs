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
