//! Test harnesses for Sluice jobs and operators.
//!
//! - [`TestInput`]: partitioned input the test writes while the job reads it, with offsets (so
//!   restores replay exactly), bad records, and partitions that end when the test says.
//! - [`CaptureSink`]: records every output with its timestamp and worker; can hold writes back
//!   until checkpoints (a batching store) and block writes or barriers (a stalled store).
//! - [`JobHarness`]: runs a whole job on its real workers with a manual clock, checkpoints
//!   when asked, crashes anywhere (also at a chosen step of a checkpoint) and restores with the
//!   same or another number of workers; [`JobHarness::settle`] waits until everything given to
//!   the job has gone as far as it can, so tests need no sleeps.
//! - [`OperatorHarness`]: drives a single operator by hand.
//!
//! ```
//! use std::time::Duration;
//! use sluice_engine::{JobConfig, WatermarkStrategy};
//! use sluice_testing::{CaptureSink, JobHarness, TestInput};
//!
//! # fn main() -> Result<(), sluice_engine::EngineError> {
//! let input = TestInput::<i64>::new(2);
//! let output = CaptureSink::new();
//! let (source, sink) = (input.source(), output.clone());
//! let mut h = JobHarness::new(JobConfig::new("pass-through").workers(2), move |b| {
//!     b.source("numbers", source.clone(), WatermarkStrategy::monotonous().with_timestamps(|n: &i64| *n))
//!         .sink("out", sink.clone());
//!     Ok(())
//! })?;
//! h.start()?;
//! input.push(0, 1);
//! input.push(1, 2);
//! h.settle()?;
//! assert_eq!(output.len(), 2);
//! input.end_all();
//! h.finish()?;
//! # Ok(())
//! # }
//! ```

mod capture;
mod harness;
mod input;
mod operator;

pub use capture::{CaptureSink, Captured};
pub use harness::{DEFAULT_START, JobHarness};
pub use input::{TestInput, TestSource};
pub use operator::OperatorHarness;
