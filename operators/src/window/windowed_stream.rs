use std::hash::Hash;
use std::time::Duration;

use sluice_engine::state::StateKey;
use sluice_engine::{Data, EngineError, KeyedStream, OperatorKind, Output, Stream, millis};

use super::assigner::{WindowResult, Windows};
use super::fixed::FixedWindowAggregate;
use super::session::SessionAggregate;
use crate::aggregators::Aggregator;

/// A keyed stream grouped into windows, waiting for its aggregate.
///
/// Results are final: a window `[start, end)` emits once, when the watermark reaches
/// `end + allowed_lateness` (every record before `end` has then arrived, up to the lateness). Records for windows already emitted are late: they are counted in the
/// operator's `late_records` metric and, with [`WindowedStream::aggregate_with_late`],
/// delivered on a side stream.
pub struct WindowedStream<'a, K: Data, T: Data> {
    keyed: &'a KeyedStream<K, T>,
    name: String,
    windows: Windows,
    allowed_lateness: i64,
    early: Option<i64>,
}

impl<'a, K: Data + Hash + Eq, T: Data> WindowedStream<'a, K, T> {
    pub(crate) fn new(keyed: &'a KeyedStream<K, T>, name: &str, windows: Windows) -> Self {
        WindowedStream {
            keyed,
            name: name.to_string(),
            windows,
            allowed_lateness: 0,
            early: None,
        }
    }

    /// Keeps each window open for `lateness` after the watermark passes its end, so records
    /// up to that late still count.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = millis(lateness);
        self
    }

    /// Also emits the running aggregate of every window updated in the last `interval` of
    /// processing time (for dashboards), marked [`crate::Emit::Early`]; the final result follows
    /// when the window closes. Tumbling and sliding windows only. Use
    /// [`WindowResult::write_timestamp`] as the write timestamp in upserting sinks so an
    /// early result never overwrites the final one.
    pub fn early_results(mut self, interval: Duration) -> Self {
        self.early = Some(millis(interval));
        self
    }

    /// Aggregates each window incrementally with `agg`.
    pub fn aggregate<A: Aggregator<T>>(self, agg: A) -> Stream<WindowResult<K, A::Out>>
    where
        K: StateKey,
    {
        let records = self.keyed.records();
        self.check();
        let (name, l, e) = (self.name.as_str(), self.allowed_lateness, self.early);
        match self.windows {
            Windows::Tumbling { size } => records.transform(
                name,
                OperatorKind::Window,
                FixedWindowAggregate::new(size, size, l, e, agg, None),
            ),
            Windows::Sliding { size, slide } => records.transform(
                name,
                OperatorKind::Window,
                FixedWindowAggregate::new(size, slide, l, e, agg, None),
            ),
            Windows::Session { gap } => records.transform(
                name,
                OperatorKind::Window,
                SessionAggregate::new(gap, l, agg, None),
            ),
        }
    }

    /// Like [`Self::aggregate`], and also returns the stream of late records.
    pub fn aggregate_with_late<A: Aggregator<T>>(self, agg: A) -> (Stream<WindowResult<K, A::Out>>, Stream<T>)
    where
        K: StateKey,
    {
        let records = self.keyed.records();
        self.check();
        let (name, l, e) = (self.name.as_str(), self.allowed_lateness, self.early);
        match self.windows {
            Windows::Tumbling { size } => {
                records.transform_with_side_output(name, OperatorKind::Window, |late: Output<T>| {
                    FixedWindowAggregate::new(size, size, l, e, agg, Some(late))
                })
            }
            Windows::Sliding { size, slide } => {
                records.transform_with_side_output(name, OperatorKind::Window, |late: Output<T>| {
                    FixedWindowAggregate::new(size, slide, l, e, agg, Some(late))
                })
            }
            Windows::Session { gap } => {
                records.transform_with_side_output(name, OperatorKind::Window, |late: Output<T>| {
                    SessionAggregate::new(gap, l, agg, Some(late))
                })
            }
        }
    }

    fn check(&self) {
        let problem = self
            .windows
            .problem()
            .or_else(|| {
                (self.allowed_lateness < 0).then(|| "allowed lateness must not be negative".to_string())
            })
            .or_else(|| match (self.early, self.windows) {
                (Some(e), _) if e <= 0 => Some("early results need a positive interval".to_string()),
                (Some(_), Windows::Session { .. }) => {
                    Some("early results are for tumbling and sliding windows, not sessions".to_string())
                }
                _ => None,
            });
        if let Some(reason) = problem {
            self.keyed.records().report_error(EngineError::InvalidConfig {
                key: "windows",
                reason: format!("window operator '{}': {reason}", self.name),
            });
        }
    }
}
