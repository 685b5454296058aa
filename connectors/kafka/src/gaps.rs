//! Offsets a Kafka reader did not get in sequence: skipped, or read again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_engine::{Counter, SourceContext};

/// Shortest time between two warnings about skipped offsets of one reader.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Counts offsets a reader's partitions jumped over (`offsets_skipped`: compaction,
/// transaction markers, retention, an offset reset) or went back to (`offsets_rewound`: an
/// offset reset to an earlier offset, so records are read twice), and says so at warn.
pub(crate) struct OffsetGaps {
    skipped: Arc<Counter>,
    rewound: Arc<Counter>,
    last_warning: Option<Instant>,
}

impl OffsetGaps {
    pub(crate) fn new(ctx: &SourceContext) -> Self {
        OffsetGaps {
            skipped: ctx.counter("offsets_skipped"),
            rewound: ctx.counter("offsets_rewound"),
            last_warning: None,
        }
    }

    /// A record of `topic`/`partition` came at offset `got` where `expected` was next.
    pub(crate) fn note(&mut self, topic: &str, partition: i32, expected: u64, got: i64) {
        let got = got.max(0) as u64;
        if got < expected {
            self.rewound.add(expected - got);
            tracing::warn!(
                topic,
                partition,
                expected,
                got,
                "offsets read again: the partition went back (an offset reset?)"
            );
            return;
        }
        self.skipped.add(got - expected);
        // Transactional producers leave a gap per transaction: say it now and then, with the
        // total, not for every gap.
        if self.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.last_warning = Some(Instant::now());
            tracing::warn!(
                topic,
                partition,
                expected,
                got,
                skipped_total = self.skipped.get(),
                "offsets skipped (compaction, transaction markers, retention or an offset reset)"
            );
        }
    }
}
