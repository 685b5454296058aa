//! The RocksDB backend: one database per worker, a column family per stateful operator.

pub(crate) mod codec;
mod config;
mod db;
mod table;

pub use config::{DEFAULT_MEMORY_BUDGET, RocksDbConfig};
pub(crate) use db::list_files;
pub use db::{DbCheckpoint, WorkerDb};
pub use table::RocksTable;
