//! The hand-written single-threaded baselines: one loop over the events in generation
//! (event-time) order, window state in FxHash maps per open window, windows closed when the
//! watermark (max event time - [`BOUND_MS`]) passes their end, exactly as the engine's
//! windows fire. Each output row goes into the same checksum as the engine's sink.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::events::{Auction, Bid, Event, Person};
use super::query::{BOUND_MS, Query, SLIDE_MS, WINDOW_MS};
use super::rows::{NewSeller, add_row};
use crate::common::Checksum;

/// Open fixed windows (tumbling or sliding): per window start, per key, an accumulator.
struct OpenWindows<K, A> {
    size: i64,
    slide: i64,
    open: BTreeMap<i64, FxHashMap<K, A>>,
    late: u64,
}

impl<K: Hash + Eq + Clone, A> OpenWindows<K, A> {
    fn new(size: i64, slide: i64) -> Self {
        OpenWindows {
            size,
            slide,
            open: BTreeMap::new(),
            late: 0,
        }
    }

    /// Folds a record at `ts` into every window containing it that is still open at `wm`.
    #[inline]
    fn add(&mut self, ts: i64, wm: i64, key: &K, init: impl Fn() -> A, mut fold: impl FnMut(&mut A)) {
        let mut start = ts - ts.rem_euclid(self.slide);
        let mut accepted = false;
        while start > ts - self.size {
            if start + self.size > wm {
                accepted = true;
                let keys = self.open.entry(start).or_default();
                match keys.get_mut(key) {
                    Some(acc) => fold(acc),
                    None => {
                        let mut acc = init();
                        fold(&mut acc);
                        keys.insert(key.clone(), acc);
                    }
                }
            }
            start -= self.slide;
        }
        if !accepted {
            self.late += 1;
        }
    }

    /// Hands every window ending at or before `wm` to `emit`, oldest first.
    fn close(&mut self, wm: i64, mut emit: impl FnMut(i64, FxHashMap<K, A>)) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() + self.size > wm {
                break;
            }
            let (start, keys) = entry.remove_entry();
            emit(start, keys);
        }
    }
}

/// Tracks the watermark of the in-order stream.
struct Clock {
    max_ts: i64,
}

impl Clock {
    fn new() -> Self {
        Clock { max_ts: i64::MIN }
    }

    /// The watermark after seeing `ts`, and whether it advanced.
    #[inline]
    fn see(&mut self, ts: i64) -> (i64, bool) {
        let advanced = ts > self.max_ts;
        if advanced {
            self.max_ts = ts;
        }
        (self.max_ts.saturating_sub(BOUND_MS), advanced)
    }
}

/// Runs `query` over `events` and returns the checksum of its output.
pub fn run(query: Query, events: &[Event]) -> Checksum {
    match query {
        Query::Q0 => stateless(events, |b, sum| add_row(sum, b)),
        Query::Q1 => stateless(events, |b, sum| {
            let euros = Bid {
                price: b.price * 908 / 1000,
                ..*b
            };
            add_row(sum, &euros);
        }),
        Query::Q2 => stateless(events, |b, sum| {
            if b.auction % 123 == 0 {
                add_row(sum, &(b.auction, b.price));
            }
        }),
        Query::Q5 => q5(events),
        Query::Q7 => q7(events),
        Query::Q8 => q8(events),
        Query::Q12 => q12(events),
    }
}

/// q0-q2: a function of each bid.
fn stateless(events: &[Event], mut f: impl FnMut(&Bid, &mut Checksum)) -> Checksum {
    let mut sum = Checksum::default();
    for e in events {
        if let Event::Bid(b) = e {
            f(b, &mut sum);
        }
    }
    sum
}

/// Folds every bid into `windows` under `key`, handing each window to `emit` as the watermark
/// passes its end (the rest at the end of the input); returns the late bids.
fn windowed_bids<K: Hash + Eq + Clone, A>(
    events: &[Event],
    mut windows: OpenWindows<K, A>,
    key: impl Fn(&Bid) -> K,
    init: impl Fn() -> A,
    mut fold: impl FnMut(&mut A, &Bid),
    mut emit: impl FnMut(i64, FxHashMap<K, A>),
) -> u64 {
    let mut clock = Clock::new();
    for e in events {
        let Event::Bid(b) = e else { continue };
        let (wm, advanced) = clock.see(b.date_time);
        windows.add(b.date_time, wm, &key(b), &init, |acc| fold(acc, b));
        if advanced {
            windows.close(wm, &mut emit);
        }
    }
    windows.close(i64::MAX, &mut emit);
    windows.late
}

/// Bids per auction per sliding window; the top auction(s) of each window.
fn q5(events: &[Event]) -> Checksum {
    let mut sum = Checksum::default();
    let windows = OpenWindows::new(WINDOW_MS, SLIDE_MS);
    sum.late = windowed_bids(
        events,
        windows,
        |b| b.auction,
        || 0u64,
        |n, _| *n += 1,
        |start, counts| {
            let max = counts.values().copied().max().unwrap_or(0);
            for (auction, count) in counts {
                if count == max {
                    add_row(&mut sum, &(start, auction, count));
                }
            }
        },
    );
    sum
}

/// The highest bid(s) of each tumbling window.
fn q7(events: &[Event]) -> Checksum {
    let mut sum = Checksum::default();
    let windows = OpenWindows::new(WINDOW_MS, WINDOW_MS);
    sum.late = windowed_bids(
        events,
        windows,
        |_| (),
        || (0u64, Vec::<Bid>::new()),
        |(price, bids), b| {
            if b.price > *price || bids.is_empty() {
                *price = b.price;
                bids.clear();
                bids.push(*b);
            } else if b.price == *price {
                bids.push(*b);
            }
        },
        |start, max| {
            for (_, bids) in max.into_values() {
                for b in bids {
                    add_row(&mut sum, &(start, b));
                }
            }
        },
    );
    sum
}

/// Persons and the auctions they sell, of one person id and window.
type Sides = (Vec<Person>, Vec<Auction>);

/// Every (person, auction sold by them) pair of the same tumbling window.
fn q8(events: &[Event]) -> Checksum {
    let mut sum = Checksum::default();
    let mut windows = OpenWindows::<u64, Sides>::new(WINDOW_MS, WINDOW_MS);
    let mut clock = Clock::new();
    let mut emit = |start: i64, people: FxHashMap<u64, Sides>| {
        for (_, (persons, auctions)) in people {
            for p in &persons {
                for a in &auctions {
                    let row: NewSeller = (start, p.id, p.name.clone(), a.id, a.reserve);
                    add_row(&mut sum, &row);
                }
            }
        }
    };
    for e in events {
        let (wm, advanced) = clock.see(e.date_time());
        match e {
            Event::Person(p) => {
                windows.add(p.date_time, wm, &p.id, Sides::default, |s| s.0.push(p.clone()));
            }
            Event::Auction(a) => {
                windows.add(a.date_time, wm, &a.seller, Sides::default, |s| s.1.push(*a));
            }
            Event::Bid(_) => {}
        }
        if advanced {
            windows.close(wm, &mut emit);
        }
    }
    windows.close(i64::MAX, &mut emit);
    sum.late = windows.late;
    sum
}

/// Bids per bidder per tumbling window.
fn q12(events: &[Event]) -> Checksum {
    let mut sum = Checksum::default();
    let windows = OpenWindows::new(WINDOW_MS, WINDOW_MS);
    sum.late = windowed_bids(
        events,
        windows,
        |b| b.bidder,
        || 0u64,
        |n, _| *n += 1,
        |start, counts| {
            for (bidder, count) in counts {
                add_row(&mut sum, &(start, bidder, count));
            }
        },
    );
    sum
}
