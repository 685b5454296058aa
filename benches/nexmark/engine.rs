//! The queries as Sluice jobs over the partitioned in-memory event stream.

use std::sync::Arc;
use std::time::Duration;

use sluice::engine::{JobBuilder, Stream};
use sluice::operators::KeyedJoinExt;
use sluice::prelude::*;

use super::events::{Auction, Bid, Event, Person};
use super::query::{BOUND_MS, Q7_SPREAD, Query, SLIDE_MS, WINDOW_MS};
use super::rows::{NewSeller, WindowBid, WindowCount};
use crate::common::ChecksumSink;

/// Name of the source operator (its `records_out` counts the events read).
pub const SOURCE: &str = "events";

/// Names of the window or join operators whose `late_records` the checksum reports.
pub fn windowed_operators(query: Query) -> &'static [&'static str] {
    match query {
        Query::Q0 | Query::Q1 | Query::Q2 => &[],
        Query::Q5 => &["bids_per_auction", "hottest"],
        Query::Q7 => &["partial_max", "max_per_window"],
        Query::Q8 => &["new_sellers"],
        Query::Q12 => &["bids_per_bidder"],
    }
}

/// Milliseconds as a `Duration` (negative: zero).
fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// The event source: partitions read by worker `p % workers`, watermark per partition.
fn events(b: &mut JobBuilder, data: &Arc<Vec<Vec<Event>>>) -> Stream<Event> {
    b.source(
        SOURCE,
        MemorySource::shared(Arc::clone(data)),
        WatermarkStrategy::bounded_out_of_orderness(ms(BOUND_MS)).with_timestamps(Event::date_time),
    )
}

/// The bids of the event stream.
fn bids(events: &Stream<Event>) -> Stream<Bid> {
    events.flat_map("bids", |e: Event| match e {
        Event::Bid(b) => Some(b),
        _ => None,
    })
}

/// Builds `query`'s graph on `b`, writing its rows to `sink`.
pub fn build(query: Query, b: &mut JobBuilder, data: &Arc<Vec<Vec<Event>>>, sink: &ChecksumSink) {
    let events = events(b, data);
    match query {
        Query::Q0 => bids(&events).sink("out", sink.clone()),
        Query::Q1 => bids(&events)
            .map("to_euros", |b: Bid| Bid {
                price: b.price * 908 / 1000,
                ..b
            })
            .sink("out", sink.clone()),
        Query::Q2 => bids(&events)
            .filter("auction_mod_123", |b: &Bid| b.auction % 123 == 0)
            .map("auction_price", |b: Bid| (b.auction, b.price))
            .sink("out", sink.clone()),
        Query::Q5 => bids(&events)
            .key_by("by_auction", |b: &Bid| b.auction)
            .window("bids_per_auction", Windows::sliding(ms(WINDOW_MS), ms(SLIDE_MS)))
            .aggregate(Count)
            .map("count_row", |r: WindowResult<u64, u64>| {
                (r.window.start, r.key, r.value)
            })
            .key_by("by_window", |r: &WindowCount| r.0)
            // A window's counts all carry its last millisecond: they meet in one 2 s window.
            .window("hottest", Windows::tumbling(ms(SLIDE_MS)))
            .aggregate(Hottest)
            .flat_map("hot_rows", |r: WindowResult<i64, Vec<WindowCount>>| r.value)
            .sink("out", sink.clone()),
        Query::Q7 => bids(&events)
            .key_by("by_spread", |b: &Bid| b.date_time.rem_euclid(Q7_SPREAD))
            .window("partial_max", Windows::tumbling(ms(WINDOW_MS)))
            .aggregate(MaxBids)
            .map("partial_row", |r: WindowResult<i64, MaxAcc>| {
                (r.window.start, r.value)
            })
            .key_by("by_window", |r: &(i64, MaxAcc)| r.0)
            .window("max_per_window", Windows::tumbling(ms(WINDOW_MS)))
            .aggregate(MergeMax)
            .flat_map("max_rows", |r: WindowResult<i64, MaxAcc>| {
                let start = r.window.start;
                r.value.1.into_iter().map(move |b| -> WindowBid { (start, b) })
            })
            .sink("out", sink.clone()),
        Query::Q8 => {
            let persons = events
                .flat_map("persons", |e: Event| match e {
                    Event::Person(p) => Some(p),
                    _ => None,
                })
                .key_by("persons_by_id", |p: &Person| p.id);
            let auctions = events
                .flat_map("auctions", |e: Event| match e {
                    Event::Auction(a) => Some(a),
                    _ => None,
                })
                .key_by("auctions_by_seller", |a: &Auction| a.seller);
            persons
                .window_join("new_sellers", &auctions, Windows::tumbling(ms(WINDOW_MS)))
                .inner(|_, w, p: &Person, a: &Auction| -> NewSeller {
                    (w.start, p.id, p.name.clone(), a.id, a.reserve)
                })
                .sink("out", sink.clone());
        }
        Query::Q12 => bids(&events)
            .key_by("by_bidder", |b: &Bid| b.bidder)
            .window("bids_per_bidder", Windows::tumbling(ms(WINDOW_MS)))
            .aggregate(Count)
            .map("count_row", |r: WindowResult<u64, u64>| -> WindowCount {
                (r.window.start, r.key, r.value)
            })
            .sink("out", sink.clone()),
    }
}

/// q5's second stage: of one window's (start, auction, count) rows, those with the top count.
struct Hottest;

impl Aggregator<WindowCount> for Hottest {
    type Acc = Vec<WindowCount>;
    type Out = Vec<WindowCount>;

    fn init(&self) -> Self::Acc {
        Vec::new()
    }

    fn add(&self, acc: &mut Self::Acc, row: &WindowCount) {
        match acc.first() {
            Some(top) if row.2 < top.2 => {}
            Some(top) if row.2 == top.2 => acc.push(*row),
            _ => {
                acc.clear();
                acc.push(*row);
            }
        }
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        for row in &other {
            self.add(acc, row);
        }
    }

    fn finish(&self, acc: Self::Acc) -> Self::Out {
        acc
    }
}

/// The highest price so far and every bid at that price.
type MaxAcc = (u64, Vec<Bid>);

/// q7's first stage: the highest bids of a spread key's window.
struct MaxBids;

impl Aggregator<Bid> for MaxBids {
    type Acc = MaxAcc;
    type Out = MaxAcc;

    fn init(&self) -> MaxAcc {
        (0, Vec::new())
    }

    fn add(&self, (price, bids): &mut MaxAcc, b: &Bid) {
        if b.price > *price || bids.is_empty() {
            *price = b.price;
            bids.clear();
            bids.push(*b);
        } else if b.price == *price {
            bids.push(*b);
        }
    }

    fn merge(&self, acc: &mut MaxAcc, other: MaxAcc) {
        MergeMax.add(acc, &(0, other));
    }

    fn finish(&self, acc: MaxAcc) -> MaxAcc {
        acc
    }
}

/// q7's second stage: merges the partial maxima of one window.
struct MergeMax;

impl Aggregator<(i64, MaxAcc)> for MergeMax {
    type Acc = MaxAcc;
    type Out = MaxAcc;

    fn init(&self) -> MaxAcc {
        (0, Vec::new())
    }

    fn add(&self, acc: &mut MaxAcc, (_, (price, bids)): &(i64, MaxAcc)) {
        if bids.is_empty() {
            return;
        }
        if *price > acc.0 || acc.1.is_empty() {
            *acc = (*price, bids.clone());
        } else if *price == acc.0 {
            acc.1.extend_from_slice(bids);
        }
    }

    fn merge(&self, acc: &mut MaxAcc, other: MaxAcc) {
        self.add(acc, &(0, other));
    }

    fn finish(&self, acc: MaxAcc) -> MaxAcc {
        acc
    }
}
