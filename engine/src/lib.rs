//! The Sluice dataflow core: typed job graphs, worker threads, key-group exchanges, event
//! time and the runtime that drives them.
//!
//! A job is a function that builds an operator graph on a [`JobBuilder`]. [`Job::new`] builds
//! it once to validate it (unique operator names, no dangling streams, at least one source and
//! sink); [`Job::run`] builds it again on each of P worker threads and runs it. Operators
//! connected by ordinary edges run as direct calls on one thread; [`Stream::key_by`] is an
//! exchange that routes each record to the worker owning its key group over bounded
//! channels, so a slow operator pauses its producers instead of growing queues.
//!
//! Records carry event timestamps; watermarks, idleness, checkpoint barriers and end-of-input
//! travel in-band with them (see [`Push`]). Sources compute a watermark per partition
//! ([`WatermarkStrategy`]); operators with several inputs take the minimum.
//!
//! The operators most jobs need (map, filter, windows, aggregates, process functions, file and
//! generator sources, sinks) live in `sluice-operators` and build on [`Stream::transform`],
//! [`Operator`], [`Source`] and [`Sink`].

mod activity;
mod alignment;
mod bad_record;
mod build_state;
mod builder;
mod busy;
mod checkpoint;
mod clock;
mod config;
pub mod console;
mod console_config;
mod error;
mod exchange;
mod graph;
mod idleness;
mod ids;
mod job;
mod metrics;
mod observer;
mod operator;
mod participant;
mod prometheus;
mod push;
mod retry;
mod runtime;
mod sink;
mod snapshot;
mod source;
mod source_driver;
pub mod status;
mod stream;
mod time;
mod timers;
mod union;
mod watermark_strategy;
mod watermark_tracker;
mod worker;
mod worker_graph;

pub use bad_record::{NoDeadLetters, OnBadRecord};
pub use builder::JobBuilder;
pub use checkpoint::{
    CheckpointConfig, CheckpointStep, CheckpointSummary, RestoreFrom, StateBackendConfig, create_savepoint,
    list_checkpoints, show_manifest,
};
#[cfg(feature = "remote-checkpoints")]
pub use checkpoint::{RemoteCheckpoints, RemoteError, RemoteHead};
pub use clock::{Clock, STALL};
pub use config::{JobConfig, RestartStrategy};
pub use console::ConsoleConfig;
pub use error::{BoxError, EngineError, Message, Result};
pub use exchange::Keyed;
pub use graph::{JobGraph, OperatorInfo, OperatorKind};
pub use idleness::IdleVote;
pub use ids::{CheckpointId, PartitionId, WorkerId};
pub use job::{Job, JobHandle, JobReport};
pub use metrics::{Counter, Gauge, JobMetrics};
pub use observer::JobObserver;
pub use operator::{Operator, OperatorContext};
pub use prometheus::{MetricsServer, render_prometheus, serve_prometheus, serve_prometheus_with_token};
pub use push::{Barrier, Control, Data, Output, Push};
pub use retry::{ConnectorError, Retry};
pub use sink::{Sink, SinkFactory};
pub use snapshot::OperatorSnapshot;
pub use source::{
    DescribeLocation, PollStatus, RecordLocation, Source, SourceContext, SourceItem, SourceOutput,
    SourcePosition, SourceReader,
};
pub use stream::{KeyedStream, Stream};
pub use time::{MAX_EVENT_TIMESTAMP, Timestamp, Watermark, millis, now_millis};
pub use timers::TimerQueue;
pub use watermark_strategy::WatermarkStrategy;
pub use watermark_tracker::{Combined, WatermarkTracker};

/// Re-exported so operator crates use the same state types.
pub use sluice_state as state;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_handles_are_send_and_sync() {
        assert_send_sync::<crate::Job>();
        assert_send_sync::<crate::JobMetrics>();
        assert_send_sync::<crate::JobReport>();
        assert_send_sync::<crate::EngineError>();
        assert_send_sync::<crate::JobConfig>();
    }
}
