//! Sends batches to the store with a bounded number in flight, retrying what can be retried.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use scylla::client::session::Session;
use scylla::errors::ExecutionError;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use tokio::runtime::Handle;

use super::batcher::WriteBatch;
use super::encode::EncodedRow;
use super::error::CassandraError;
use super::retry::{Backoff, Failure, classify};

/// Where batches go: the store through the driver, or in tests a wrapper below the sink
/// that injects faults the test store cannot produce.
pub(crate) trait WriteTarget: Send + Sync + 'static {
    /// Writes every row of `batch` with its timestamp.
    fn write<'a>(
        &'a self,
        batch: &'a WriteBatch,
    ) -> Pin<Box<dyn Future<Output = Result<(), ExecutionError>> + Send + 'a>>;
}

/// The driver: a single row as a prepared execute, several as one unlogged batch.
pub(crate) struct DriverTarget {
    pub session: Arc<Session>,
    pub insert: PreparedStatement,
}

impl WriteTarget for DriverTarget {
    fn write<'a>(
        &'a self,
        batch: &'a WriteBatch,
    ) -> Pin<Box<dyn Future<Output = Result<(), ExecutionError>> + Send + 'a>> {
        Box::pin(async move {
            if let [row] = batch.rows.as_slice() {
                let mut statement = self.insert.clone();
                statement.set_timestamp(Some(batch.timestamp));
                self.session.execute_unpaged(&statement, &row.values).await?;
            } else {
                let mut request = Batch::new(BatchType::Unlogged);
                for _ in &batch.rows {
                    request.append_statement(self.insert.clone());
                }
                request.set_timestamp(Some(batch.timestamp));
                request.set_is_idempotent(true);
                let values: Vec<&Vec<_>> = batch.rows.iter().map(|r| &r.values).collect();
                self.session.batch(&request, values).await?;
            }
            Ok(())
        })
    }
}

/// Counters and write latencies of one sink, over all its workers.
#[derive(Debug)]
pub struct SinkStats {
    rows_written: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    rejected_rows: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for SinkStats {
    fn default() -> Self {
        SinkStats {
            rows_written: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rejected_rows: AtomicU64::new(0),
            latency_us: Mutex::new(new_histogram()),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // One microsecond to one hour, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

impl SinkStats {
    /// Rows the store acknowledged.
    pub fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }

    /// Requests (single statements or batches) the store acknowledged.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Attempts that failed with a retryable error and were tried again.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Rows the store refused for good (failed the job or went to the dead-letter topic).
    pub fn rejected_rows(&self) -> u64 {
        self.rejected_rows.load(Ordering::Relaxed)
    }

    /// Latency of acknowledged requests in microseconds, from first attempt to acknowledgement.
    pub fn write_latency(&self) -> Histogram<u64> {
        self.latency_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the requests of one worker left behind.
#[derive(Default)]
struct Progress {
    in_flight: usize,
    failure: Option<CassandraError>,
    rejected: Vec<(EncodedRow, String)>,
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker's window onto the store: at most `max_in_flight` requests at a time; asking for
/// one more waits, which is how a slow or unreachable store slows the job down.
pub(crate) struct Dispatcher {
    runtime: Handle,
    target: Arc<dyn WriteTarget>,
    table: Arc<str>,
    backoff: Backoff,
    max_in_flight: usize,
    stats: Arc<SinkStats>,
    shared: Arc<Shared>,
}

impl Dispatcher {
    pub(crate) fn new(
        runtime: Handle,
        target: Arc<dyn WriteTarget>,
        table: Arc<str>,
        backoff: Backoff,
        max_in_flight: usize,
        stats: Arc<SinkStats>,
    ) -> Self {
        Dispatcher {
            runtime,
            target,
            table,
            backoff,
            max_in_flight,
            stats,
            shared: Arc::new(Shared {
                progress: Mutex::new(Progress::default()),
                changed: Condvar::new(),
            }),
        }
    }

    /// Starts writing `batch`, after waiting for a free request slot.
    pub(crate) fn send(&self, batch: WriteBatch) -> Result<(), CassandraError> {
        {
            let mut progress = self.wait_while(|p| p.in_flight >= self.max_in_flight);
            if let Some(e) = progress.failure.take() {
                return Err(e);
            }
            progress.in_flight += 1;
        }
        let request = Request {
            target: Arc::clone(&self.target),
            table: Arc::clone(&self.table),
            backoff: self.backoff,
            stats: Arc::clone(&self.stats),
            shared: Arc::clone(&self.shared),
        };
        self.runtime.spawn(request.run(batch));
        Ok(())
    }

    /// Waits until every request sent so far is acknowledged or given up.
    pub(crate) fn wait_idle(&self) -> Result<(), CassandraError> {
        let mut progress = self.wait_while(|p| p.in_flight > 0);
        match progress.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Rows the store refused for good since the last call, with the reason.
    pub(crate) fn take_rejected(&self) -> Vec<(EncodedRow, String)> {
        std::mem::take(&mut self.shared.lock().rejected)
    }

    fn wait_while(&self, busy: impl Fn(&Progress) -> bool) -> MutexGuard<'_, Progress> {
        let mut progress = self.shared.lock();
        while busy(&progress) && progress.failure.is_none() {
            progress = self
                .shared
                .changed
                .wait(progress)
                .unwrap_or_else(PoisonError::into_inner);
        }
        progress
    }
}

/// One batch on its way, owned by the runtime.
struct Request {
    target: Arc<dyn WriteTarget>,
    table: Arc<str>,
    backoff: Backoff,
    stats: Arc<SinkStats>,
    shared: Arc<Shared>,
}

enum Outcome {
    Rejected(String),
    GaveUp(Duration, String),
}

impl Request {
    async fn run(self, batch: WriteBatch) {
        let mut rejected = Vec::new();
        let mut failure = None;
        match self.write(&batch).await {
            Ok(()) => {}
            Err(Outcome::Rejected(reason)) if batch.rows.len() == 1 => {
                rejected.extend(batch.rows.into_iter().map(|row| (row, reason.clone())));
            }
            // A refused batch: find the refused rows by writing them one by one.
            Err(Outcome::Rejected(_)) => {
                for row in batch.rows {
                    let single = WriteBatch {
                        timestamp: batch.timestamp,
                        bytes: row.bytes,
                        rows: vec![row],
                    };
                    match self.write(&single).await {
                        Ok(()) => {}
                        Err(Outcome::Rejected(reason)) => {
                            rejected.extend(single.rows.into_iter().map(|row| (row, reason.clone())));
                        }
                        Err(Outcome::GaveUp(spent, reason)) => {
                            failure = Some(self.gave_up(spent, reason));
                            break;
                        }
                    }
                }
            }
            Err(Outcome::GaveUp(spent, reason)) => failure = Some(self.gave_up(spent, reason)),
        }
        self.stats
            .rejected_rows
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        let mut progress = self.shared.lock();
        progress.in_flight -= 1;
        progress.rejected.extend(rejected);
        if progress.failure.is_none() {
            progress.failure = failure;
        }
        drop(progress);
        self.shared.changed.notify_all();
    }

    fn gave_up(&self, spent: Duration, reason: String) -> CassandraError {
        CassandraError::GaveUp {
            table: self.table.to_string(),
            seconds: spent.as_secs(),
            reason,
        }
    }

    /// Writes `batch`, retrying retryable failures with backoff until the retry limit.
    async fn write(&self, batch: &WriteBatch) -> Result<(), Outcome> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match self.target.write(batch).await {
                Ok(()) => {
                    let micros = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                    self.stats
                        .rows_written
                        .fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
                    self.stats.requests.fetch_add(1, Ordering::Relaxed);
                    let _ = self
                        .stats
                        .latency_us
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(micros.max(1));
                    return Ok(());
                }
                Err(e) => match classify(&e) {
                    Failure::Rejected(reason) => return Err(Outcome::Rejected(reason)),
                    Failure::Retryable(reason) => {
                        if started.elapsed() >= self.backoff.give_up_after {
                            return Err(Outcome::GaveUp(started.elapsed(), reason));
                        }
                        if attempt == 0 {
                            tracing::warn!(table = %self.table, error = %reason, "write failed, retrying with backoff");
                        }
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(self.backoff.delay(attempt)).await;
                        attempt += 1;
                    }
                },
            }
        }
    }
}
