//! A job's web console and REST API: one page and JSON endpoints served by the job itself.
//!
//! The page (`/`) draws the job graph with each operator's rate and busy time, a rate chart,
//! the partitions' watermarks with the one holding the job back, the checkpoint timeline,
//! sink latencies and recent errors, polling the API every second. The API:
//!
//! | | |
//! |---|---|
//! | `GET /api/job` | name, state, uptime, restarts, workers, graph, recent errors |
//! | `GET /api/operators` | per operator and worker: records, rates, busy time, watermark, state, queues; the busiest operator; the workers' busy, backpressured and idle time |
//! | `GET /api/partitions` | per source partition: offset, lag, watermark, idle; the job's watermark and the partition holding it back |
//! | `GET /api/checkpoints` | recent checkpoints, the latest restore |
//! | `GET /api/sinks` | per sink: records, rate, and for store sinks rows, requests in flight, latency percentiles, retries, rejected rows |
//! | `GET /api/rates` | records out per second of each operator over the last minute |
//! | `POST /api/savepoint?name=…` | takes a savepoint |
//! | `POST /api/stop` | stops the job after a final checkpoint |

pub use crate::console_config::ConsoleConfig;

#[cfg(feature = "console")]
mod api;
#[cfg(feature = "console")]
mod assets;
#[cfg(feature = "console")]
mod rates;
#[cfg(feature = "console")]
mod server;
#[cfg(feature = "console")]
pub use server::Console;
