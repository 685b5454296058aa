//! # Sluice
//!
//! A stream-processing engine: typed Rust operator graphs over partitioned sources, keyed
//! event-time windows and aggregates on managed state, parallel worker threads with bounded
//! exchanges and backpressure.
//!
//! This crate is the library users build jobs with. It re-exports the engine
//! (`sluice-engine`), the operators (`sluice-operators`), the state backends (`sluice-state`),
//! the test harness (`sluice-testing`) and, behind the features `kafka` and `cassandra` (on by
//! default), the connectors (`sluice-kafka` as [`kafka`], `sluice-cassandra` as
//! [`cassandra`]), and brings everything a job needs into scope with [`prelude`]. Without
//! those features it builds without librdkafka, the scylla driver or OpenSSL.
//!
//! ```
//! use std::time::Duration;
//! use sluice::prelude::*;
//!
//! #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
//! struct Order {
//!     product: String,
//!     cents: i64,
//!     ts: i64,
//! }
//!
//! /// Order `i` of partition `p`: one of three products, one a second apart.
//! fn order(p: u32, i: u64) -> Order {
//!     let n = u64::from(p) * 1_000 + i;
//!     Order { product: format!("p-{}", n % 3), cents: 100 + (n % 7) as i64, ts: n as i64 * 1_000 }
//! }
//!
//! # fn main() -> Result<(), EngineError> {
//! let revenue = CollectSink::new();
//! let out = revenue.clone();
//! let job = Job::new(JobConfig::new("revenue").workers(2), move |b| {
//!     b.source("orders", GeneratorSource::new(4, Some(1_000), |p, i| order(p.0, i)),
//!              WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
//!                  .with_timestamps(|o: &Order| o.ts))
//!         .key_by("by_product", |o| o.product.clone())
//!         .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
//!         .aggregate(Sum::of(|o: &Order| o.cents))
//!         .sink("revenue", out.clone());
//!     Ok(())
//! })?;
//! job.run()?;
//! let expected: i64 = (0..4).flat_map(|p| (0..1_000).map(move |i| order(p, i).cents)).sum();
//! let total: i64 = revenue.take().iter().map(|r| r.value).sum();
//! assert_eq!(total, expected);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "cassandra")]
pub use sluice_cassandra as cassandra;
pub use sluice_engine as engine;
#[cfg(feature = "kafka")]
pub use sluice_kafka as kafka;
pub use sluice_operators as operators;
pub use sluice_state as state;
pub use sluice_testing as testing;

/// Everything a job definition usually needs.
pub mod prelude {
    pub use sluice_engine::{
        EngineError, Job, JobBuilder, JobConfig, JobReport, Keyed, KeyedStream, OnBadRecord, Operator,
        OperatorContext, Output, RestartStrategy, Sink, SinkFactory, Source, Stream, Timestamp, Watermark,
        WatermarkStrategy,
    };
    pub use sluice_operators::{
        Aggregator, Avg, CollectSink, Count, DeadLetter, DeadLetterSink, GeneratorSource, JsonLinesSource,
        KeyedProcessFunction, KeyedStreamExt, Max, MemorySource, Min, ProcessContext, StdoutSink, StreamExt,
        Sum, Timer, Window, WindowResult, Windows,
    };
}
