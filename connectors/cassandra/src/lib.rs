//! The Cassandra / ScyllaDB sink, on the scylla driver.
//!
//! [`CassandraSink`] maps a serde struct to a table's columns and writes it with prepared,
//! idempotent upserts carrying deterministic write timestamps, grouped into unlogged batches
//! per partition, with a bounded number of requests in flight, retries with backoff, and a
//! flush at every checkpoint. [`TableSchema`] creates a table from a row type for quick
//! starts. With the `embedded-cql` feature, [`EmbeddedCql`] serves an in-memory CQL store on
//! a loopback port for examples and tests.

mod batcher;
mod config;
#[cfg(feature = "embedded-cql")]
mod embedded;
mod encode;
mod error;
mod mapping;
mod prometheus;
mod read;
mod retry;
mod schema;
mod sink;
mod writer;

pub use config::{CassandraConfig, Consistency, TlsConfig};
#[cfg(feature = "embedded-cql")]
pub use embedded::EmbeddedCql;
pub use error::CassandraError;
pub use mapping::CqlType;
pub use prometheus::render_sink_stats;
pub use read::{TextTable, execute_cql, query_text, read_rows};
pub use schema::TableSchema;
pub use sink::{CassandraSink, WriteTimestampFn, event_time_micros};
pub use writer::SinkStats;

/// The driver, re-exported so rows read back with [`read_rows`] use the same version.
pub use scylla;

/// A tokio runtime with one thread named `name`, for the driver's (or the embedded server's) I/O.
fn driver_runtime(name: &str) -> Result<tokio::runtime::Runtime, CassandraError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| CassandraError::Connect(format!("cannot start a runtime for {name}: {e}")))
}
