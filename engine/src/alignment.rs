//! Watermark alignment: the readers of one source publish their watermarks, and each pauses
//! the partitions that ran too far ahead of the slowest.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::time::{Timestamp, Watermark};

/// The watermark of every reader of one source, shared by its readers in one run.
#[derive(Debug)]
pub(crate) struct AlignmentBoard {
    /// Per worker: the reader's watermark; `MAX` for a reader that holds nothing back (idle,
    /// without partitions, finished).
    readers: Vec<AtomicI64>,
}

impl AlignmentBoard {
    /// A board for `workers` readers, each at the minimum until it says otherwise.
    pub(crate) fn new(workers: usize) -> Self {
        AlignmentBoard {
            readers: (0..workers).map(|_| AtomicI64::new(Timestamp::MIN)).collect(),
        }
    }

    /// Reader `worker` stands at `wm`.
    pub(crate) fn publish(&self, worker: usize, wm: Watermark) {
        if let Some(r) = self.readers.get(worker) {
            r.store(wm.0, Ordering::Release);
        }
    }

    /// The source's watermark: the lowest of its readers'.
    pub(crate) fn source_watermark(&self) -> Watermark {
        Watermark(
            self.readers
                .iter()
                .map(|r| r.load(Ordering::Acquire))
                .min()
                .unwrap_or(Timestamp::MAX),
        )
    }
}

/// Whether a partition at `wm` must wait for a source at `source_wm`, allowing `max_drift`.
pub(crate) fn too_far_ahead(wm: Watermark, source_wm: Watermark, max_drift: i64) -> bool {
    wm.0 > source_wm.0.saturating_add(max_drift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_reader_sets_the_pace() {
        let board = AlignmentBoard::new(2);
        board.publish(0, Watermark(5_000));
        assert_eq!(
            board.source_watermark(),
            Watermark::MIN,
            "reader 1 has not spoken"
        );
        board.publish(1, Watermark(1_000));
        assert_eq!(board.source_watermark(), Watermark(1_000));
        assert!(too_far_ahead(Watermark(5_000), Watermark(1_000), 2_000));
        assert!(!too_far_ahead(Watermark(3_000), Watermark(1_000), 2_000));
        assert!(too_far_ahead(Watermark(0), Watermark::MIN, 2_000));
    }
}
