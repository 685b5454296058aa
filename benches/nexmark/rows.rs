//! The output rows of each query and the order-independent checksum both the engine's sink
//! (a [`ChecksumSink`](crate::common::ChecksumSink)) and the hand-written baselines fold
//! them into.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

use super::events::Bid;
use crate::common::{Checksum, ChecksumRow};

/// q2: (auction, price).
pub type AuctionPrice = (u64, u64);
/// q5 and q12: (window start, auction or bidder, bids).
pub type WindowCount = (i64, u64, u64);
/// q7: (window start, a highest bid of the window).
pub type WindowBid = (i64, Bid);
/// q8: (window start, person id, person name, auction id, reserve).
pub type NewSeller = (i64, u64, String, u64, u64);

/// A row a query emits: hashed whole into the checksum, with one numeric column summed.
pub trait OutputRow: Hash {
    /// The column whose total the checksum also keeps (a price, a count).
    fn value(&self) -> i64;
}

/// `v` as a summable column value.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl OutputRow for Bid {
    fn value(&self) -> i64 {
        signed(self.price)
    }
}

impl OutputRow for AuctionPrice {
    fn value(&self) -> i64 {
        signed(self.1)
    }
}

impl OutputRow for WindowCount {
    fn value(&self) -> i64 {
        signed(self.2)
    }
}

impl OutputRow for WindowBid {
    fn value(&self) -> i64 {
        signed(self.1.price)
    }
}

impl OutputRow for NewSeller {
    fn value(&self) -> i64 {
        signed(self.4)
    }
}

/// Folds `row` into `sum`: row count, value total, and a wrapping sum of row hashes (equal
/// for equal multisets of rows, whatever their order).
#[inline]
pub fn add_row<R: OutputRow>(sum: &mut Checksum, row: &R) {
    let mut h = FxHasher::default();
    row.hash(&mut h);
    sum.rows += 1;
    sum.revenue = sum.revenue.wrapping_add(row.value());
    sum.mix = sum.mix.wrapping_add(h.finish());
}

impl<R: OutputRow> ChecksumRow for R {
    fn add_to(&self, sum: &mut Checksum) {
        add_row(sum, self);
    }
}
