//! The Nexmark queries this benchmark runs, with their shared constants.

use std::fmt;
use std::str::FromStr;

/// Watermark: max event time seen per partition minus this (the generator emits in order).
pub const BOUND_MS: i64 = 1_000;
/// q5 window size and slide, q7 / q8 / q12 window size.
pub const WINDOW_MS: i64 = 10_000;
/// q5 window slide.
pub const SLIDE_MS: i64 = 2_000;
/// q7's first stage spreads bids over this many keys (partial maxima), see [`Query::Q7`].
pub const Q7_SPREAD: i64 = 256;

/// One Nexmark query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Pass-through: every bid to the sink.
    Q0,
    /// Currency conversion: every bid with its price in euros (`price * 908 / 1000`).
    Q1,
    /// Selection: (auction, price) of bids with `auction % 123 == 0`.
    Q2,
    /// Hot items: per sliding window (10 s every 2 s), the auction(s) with the most bids.
    Q5,
    /// Highest bid: per 10 s tumbling window, the bid(s) with the highest price. Partial
    /// maxima over bids spread by event-time millisecond, then the maximum per window.
    Q7,
    /// Monitor new users: persons who opened an auction in the 10 s tumbling window in which
    /// they registered, one row per (person, auction) pair.
    Q8,
    /// Bids per bidder per 10 s window. Nexmark's q12 uses processing-time windows, which
    /// are not reproducible (Sluice's windows are event-time only), so this q12 counts in
    /// event-time tumbling windows.
    Q12,
}

impl Query {
    /// Every query, in report order.
    pub const ALL: [Query; 7] = [
        Query::Q0,
        Query::Q1,
        Query::Q2,
        Query::Q5,
        Query::Q7,
        Query::Q8,
        Query::Q12,
    ];

    /// Short name (`q5`).
    pub fn name(self) -> &'static str {
        match self {
            Query::Q0 => "q0",
            Query::Q1 => "q1",
            Query::Q2 => "q2",
            Query::Q5 => "q5",
            Query::Q7 => "q7",
            Query::Q8 => "q8",
            Query::Q12 => "q12",
        }
    }

    /// One line on what the query computes.
    pub fn summary(self) -> &'static str {
        match self {
            Query::Q0 => "pass-through: bids -> sink",
            Query::Q1 => "bid price in euros (price * 908 / 1000)",
            Query::Q2 => "bids with auction % 123 == 0 -> (auction, price)",
            Query::Q5 => "hot items: bids per auction, sliding 10 s / 2 s, max per window",
            Query::Q7 => "highest bid per 10 s tumbling window (256-way partial max, then global)",
            Query::Q8 => "persons x auctions they sell, same 10 s tumbling window (window join)",
            Query::Q12 => "bids per bidder, 10 s tumbling EVENT-time windows (not processing time)",
        }
    }

    /// Whether the query keeps windowed or join state (its target is 0.5x, not 0.7x).
    pub fn stateful(self) -> bool {
        matches!(self, Query::Q5 | Query::Q7 | Query::Q8 | Query::Q12)
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Query {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Query::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown query '{s}' (q0, q1, q2, q5, q7, q8, q12 or all)"))
    }
}

/// Parses `all` or a comma-separated list of queries.
pub fn parse_list(s: &str) -> Result<Vec<Query>, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Query::ALL.to_vec());
    }
    s.split(',').map(str::parse).collect()
}
