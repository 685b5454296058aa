//! # Sluice
//!
//! A stream-processing engine: typed Rust operator graphs over partitioned sources, keyed
//! event-time windows and aggregates on managed state, parallel worker threads with bounded
//! exchanges and backpressure.
//!
//! This crate is the facade: it re-exports the engine (`sluice-engine`), the operators
//! (`sluice-operators`), the state backends (`sluice-state`), the test harness
//! (`sluice-testing`) and, behind the features `kafka` and `cassandra` (on by default), the
//! connectors (`sluice-kafka` as [`kafka`], `sluice-cassandra` as [`cassandra`]), and brings
//! everything a job needs into scope with [`prelude`].
//!
//! ```
//! use std::time::Duration;
//! use sluice::prelude::*;
//! use sluice::datagen::{Order, OrderGenerator};
//!
//! # fn main() -> Result<(), EngineError> {
//! let orders = OrderGenerator::default();
//! let revenue = CollectSink::new();
//! let out = revenue.clone();
//! let job = Job::new(JobConfig::new("revenue").workers(2), move |b| {
//!     let generator = orders.clone();
//!     b.source("orders", GeneratorSource::new(4, Some(1_000), move |p, i| generator.order(p.0, i)),
//!              WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
//!                  .with_timestamps(|o: &Order| o.ts))
//!         .key_by("by_product", |o| o.product_id.clone())
//!         .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
//!         .aggregate(Sum::of(|o: &Order| o.price_cents * o.quantity))
//!         .sink("revenue", out.clone());
//!     Ok(())
//! })?;
//! job.run()?;
//! let total: i64 = revenue.take().iter().map(|r| r.value).sum();
//! assert!(total > 0);
//! # Ok(())
//! # }
//! ```

pub mod datagen;
#[cfg(all(feature = "kafka", feature = "embedded-cql"))]
pub mod embedded;
#[cfg(all(feature = "kafka", feature = "cassandra"))]
pub mod pipeline;
#[cfg(feature = "kafka")]
pub mod producer;
pub mod settings;
#[cfg(all(feature = "kafka", feature = "cassandra"))]
pub mod shop;

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
