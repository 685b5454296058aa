use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Event time or processing time in milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The largest event timestamp a source accepts (9999-12-31T23:59:59.999Z).
pub const MAX_EVENT_TIMESTAMP: Timestamp = 253_402_300_799_999;

/// The event-time clock: a promise that no more records with a timestamp `<` this value are
/// expected. A window `[start, end)` is complete once the watermark reaches `end`; records
/// that arrive after their window was closed are *late*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Watermark(pub Timestamp);

impl Watermark {
    /// Before any event time: nothing is known yet.
    pub const MIN: Watermark = Watermark(Timestamp::MIN);
    /// End of input: every window can close.
    pub const MAX: Watermark = Watermark(Timestamp::MAX);

    /// The watermark as a timestamp.
    pub fn timestamp(self) -> Timestamp {
        self.0
    }
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Watermark::MIN => f.write_str("-inf"),
            Watermark::MAX => f.write_str("+inf"),
            Watermark(t) => write!(f, "{t}"),
        }
    }
}

/// Milliseconds of a duration, saturating at `i64::MAX`.
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The wall clock in milliseconds since the epoch.
pub fn now_millis() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}
