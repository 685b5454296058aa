//! The operators, sources and sinks of Sluice jobs.
//!
//! Bring [`StreamExt`] and [`KeyedStreamExt`] into scope (or use `sluice::prelude::*`) and a
//! [`Stream`] gains `map`, `filter` and `flat_map`, and a
//! [`KeyedStream`] gains windows and keyed process functions.
//!
//! ```
//! use std::time::Duration;
//! use sluice_engine::{Job, JobConfig, WatermarkStrategy};
//! use sluice_operators::{CollectSink, Count, KeyedStreamExt, MemorySource, StreamExt, Windows};
//!
//! # fn main() -> Result<(), sluice_engine::EngineError> {
//! let clicks: Vec<(String, i64)> = [("u-1", 1_000), ("u-2", 2_000), ("u-1", 61_000), ("u-1", 62_000)]
//!     .into_iter()
//!     .map(|(user, ts)| (user.to_string(), ts))
//!     .collect();
//! let out = CollectSink::new();
//! let sink = out.clone();
//! let job = Job::new(JobConfig::new("clicks").workers(2), move |b| {
//!     b.source("clicks", MemorySource::new(clicks.clone()), WatermarkStrategy::monotonous().with_timestamps(|c: &(String, i64)| c.1))
//!         .key_by("by_user", |c| c.0.clone())
//!         .window("clicks_per_minute", Windows::tumbling(Duration::from_secs(60)))
//!         .aggregate(Count)
//!         .map("to_row", |r| (r.key, r.window.start, r.value))
//!         .sink("out", sink.clone());
//!     Ok(())
//! })?;
//! job.run()?;
//! let mut rows = out.take();
//! rows.sort();
//! assert_eq!(rows, vec![
//!     ("u-1".to_string(), 0, 1),
//!     ("u-1".to_string(), 60_000, 2),
//!     ("u-2".to_string(), 0, 1),
//! ]);
//! # Ok(())
//! # }
//! ```

mod aggregators;
mod filter;
mod flat_map;
pub mod join;
mod map;
mod percentiles;
mod process;
mod sinks;
mod snapshot;
mod sources;
mod window;

pub use aggregators::{Aggregator, Avg, Count, Max, Min, Sum};
pub use join::{JoinInput, JoinInterval, KeyedJoinExt, Lookup};
pub use percentiles::{HistogramState, PercentileSummary, Percentiles};
pub use process::{KeyedProcessFunction, ProcessContext, TimeDomain, Timer};
pub use sinks::collect::CollectSink;
pub use sinks::dead_letter::{DeadLetter, DeadLetterSink};
pub use sinks::stdout::StdoutSink;
pub use sources::generator::GeneratorSource;
pub use sources::json_lines::JsonLinesSource;
pub use sources::line_reader::LineReader;
pub use sources::memory::MemorySource;
pub use window::{Emit, Window, WindowResult, WindowedStream, Windows};

use std::hash::Hash;

use sluice_engine::{Data, KeyedStream, OperatorKind, Stream};

/// Record-at-a-time operators on any stream.
pub trait StreamExt<T: Data> {
    /// Applies `f` to every record.
    fn map<U: Data>(&self, name: &str, f: impl FnMut(T) -> U + 'static) -> Stream<U>;
    /// Keeps the records for which `predicate` is true.
    fn filter(&self, name: &str, predicate: impl FnMut(&T) -> bool + 'static) -> Stream<T>;
    /// Emits every item of `f(record)`.
    fn flat_map<U: Data, I: IntoIterator<Item = U> + 'static>(
        &self,
        name: &str,
        f: impl FnMut(T) -> I + 'static,
    ) -> Stream<U>;
}

impl<T: Data> StreamExt<T> for Stream<T> {
    fn map<U: Data>(&self, name: &str, f: impl FnMut(T) -> U + 'static) -> Stream<U> {
        self.transform(name, OperatorKind::Map, map::Map::new(f))
    }

    fn filter(&self, name: &str, predicate: impl FnMut(&T) -> bool + 'static) -> Stream<T> {
        self.transform(name, OperatorKind::Filter, filter::Filter::new(predicate))
    }

    fn flat_map<U: Data, I: IntoIterator<Item = U> + 'static>(
        &self,
        name: &str,
        f: impl FnMut(T) -> I + 'static,
    ) -> Stream<U> {
        self.transform(name, OperatorKind::FlatMap, flat_map::FlatMap::new(f))
    }
}

/// Windows and keyed process functions, only available on keyed streams.
///
/// A window on a stream that was not keyed does not compile:
///
/// ```compile_fail
/// use std::time::Duration;
/// use sluice_engine::{Job, JobConfig, WatermarkStrategy};
/// use sluice_operators::{Count, KeyedStreamExt, MemorySource, Windows};
/// let job = Job::new(JobConfig::new("x"), |b| {
///     b.source("n", MemorySource::new(vec![1u64]), WatermarkStrategy::monotonous())
///         .window("w", Windows::tumbling(Duration::from_secs(1)));
///     Ok(())
/// });
/// ```
pub trait KeyedStreamExt<K: Data + Hash + Eq, T: Data> {
    /// Groups the records of each key into `windows`; finish with an aggregate.
    fn window(&self, name: &str, windows: Windows) -> WindowedStream<'_, K, T>;

    /// Runs `function` per record with per-key state and timers.
    fn process<F: KeyedProcessFunction<K, T>>(&self, name: &str, function: F) -> Stream<F::Out>
    where
        K: sluice_engine::state::StateKey;

    /// Applies `f` to every value, keeping the key (and so the partitioning): e.g. turns a
    /// keyed stream of records into the changelog a stream-table enrichment takes.
    fn map_values<U: Data>(&self, name: &str, f: impl FnMut(T) -> U + 'static) -> KeyedStream<K, U>;
}

impl<K: Data + Hash + Eq, T: Data> KeyedStreamExt<K, T> for KeyedStream<K, T> {
    fn window(&self, name: &str, windows: Windows) -> WindowedStream<'_, K, T> {
        WindowedStream::new(self, name, windows)
    }

    fn process<F: KeyedProcessFunction<K, T>>(&self, name: &str, function: F) -> Stream<F::Out>
    where
        K: sluice_engine::state::StateKey,
    {
        self.records().transform(
            name,
            OperatorKind::Process,
            process::ProcessOperator::new(function),
        )
    }

    fn map_values<U: Data>(&self, name: &str, mut f: impl FnMut(T) -> U + 'static) -> KeyedStream<K, U> {
        let values = self
            .records()
            .map(name, move |k: sluice_engine::Keyed<K, T>| sluice_engine::Keyed {
                key_group: k.key_group,
                key: k.key,
                value: f(k.value),
            });
        KeyedStream::from_partitioned(values)
    }
}
