//! Processing time: the system clock, or a clock a test moves by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::time::{Timestamp, millis, now_millis};

/// Longest real time between two looks at a source in which its partitions count as watched.
/// A longer gap is a stall (the process was stopped or starved of CPU): nothing was seen of the
/// partitions meanwhile, and they may have filled, so the gap counts towards no partition's
/// idleness and no input's quiet time.
pub const STALL: Duration = Duration::from_secs(1);

/// Where a job reads processing time: processing-time timers, processing-time timestamps and
/// partition idleness all follow it.
///
/// ```
/// use std::time::Duration;
/// use sluice_engine::Clock;
///
/// let clock = Clock::manual(1_000);
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now(), 3_000);
/// ```
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The wall clock.
    #[default]
    System,
    /// A clock that moves only when told to (tests).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock standing at `start` (epoch milliseconds).
    pub fn manual(start: Timestamp) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start)))
    }

    /// Processing time now, epoch milliseconds.
    #[inline]
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => now_millis(),
            Clock::Manual(t) => t.load(Ordering::Acquire),
        }
    }

    /// Whether this clock only moves when told to.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// Moves a manual clock forward by `by`.
    ///
    /// # Panics
    /// On the system clock, which cannot be moved.
    pub fn advance(&self, by: Duration) {
        match self {
            Clock::System => panic!("the system clock cannot be advanced"),
            Clock::Manual(t) => {
                t.fetch_add(millis(by), Ordering::AcqRel);
            }
        }
    }
}
