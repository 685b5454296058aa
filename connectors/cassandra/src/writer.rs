//! Sends batches to the store with a bounded number in flight, retrying what can be retried.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

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

/// A write on its way to the store.
pub(crate) type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ExecutionError>> + Send + 'a>>;

/// Where batches go: the store through the driver, or in tests a wrapper below the sink
/// that injects faults the test store cannot produce.
pub(crate) trait WriteTarget: Send + Sync + 'static {
    /// Writes every row of `batch` with its timestamp.
    fn write<'a>(&'a self, batch: &'a WriteBatch) -> WriteFuture<'a>;
}

/// The driver: a single row as a prepared execute, several as one unlogged batch.
pub(crate) struct DriverTarget {
    pub session: Arc<Session>,
    pub insert: PreparedStatement,
}

impl WriteTarget for DriverTarget {
    fn write<'a>(&'a self, batch: &'a WriteBatch) -> WriteFuture<'a> {
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
    in_flight: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for SinkStats {
    fn default() -> Self {
        SinkStats {
            rows_written: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            rejected_rows: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
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

    /// Requests sent and not answered yet, over all workers.
    pub fn requests_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
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
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
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

/// Why a batch was not written.
enum Outcome {
    /// The store refused the rows' values: they go to the rejected-rows policy.
    Rejected(String),
    /// The sink fails: the store refuses the table, or retries ran out.
    Failed(CassandraError),
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
                        Err(Outcome::Failed(e)) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
            Err(Outcome::Failed(e)) => failure = Some(e),
        }
        self.stats
            .rejected_rows
            .fetch_add(rejected.len() as u64, Ordering::Relaxed);
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut progress = self.shared.lock();
        progress.in_flight -= 1;
        progress.rejected.extend(rejected);
        if progress.failure.is_none() {
            progress.failure = failure;
        }
        drop(progress);
        self.shared.changed.notify_all();
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
                    Failure::RowRejected(reason) => return Err(Outcome::Rejected(reason)),
                    Failure::Systemic(reason) => {
                        return Err(Outcome::Failed(CassandraError::Refused {
                            table: self.table.to_string(),
                            reason,
                        }));
                    }
                    Failure::Retryable(reason) => {
                        if started.elapsed() >= self.backoff.give_up_after {
                            return Err(Outcome::Failed(CassandraError::GaveUp {
                                table: self.table.to_string(),
                                seconds: started.elapsed().as_secs(),
                                reason,
                            }));
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

/// The store cannot time out, refuse a batch as too large or stall on demand, so these tests
/// put a fault-injecting target below the sink in place of the driver.
impl sluice_engine::status::SinkReport for SinkStats {
    fn report(&self) -> sluice_engine::status::SinkStatus {
        let latency = self.write_latency();
        sluice_engine::status::SinkStatus {
            rows_written: self.rows_written(),
            requests: self.requests(),
            requests_in_flight: self.requests_in_flight(),
            retries: self.retries(),
            rejected_rows: self.rejected_rows(),
            latency: sluice_engine::status::LatencyPercentiles {
                p50_us: latency.value_at_quantile(0.5),
                p99_us: latency.value_at_quantile(0.99),
                p999_us: latency.value_at_quantile(0.999),
                max_us: latency.max(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use scylla::errors::{DbError, RequestAttemptError};
    use scylla::value::CqlValue;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::batcher::Batcher;

    fn row(n: i64) -> EncodedRow {
        EncodedRow {
            values: vec![Some(CqlValue::BigInt(n))],
            bytes: 12,
        }
    }

    fn db_error(e: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "injected".into()))
    }

    /// Fails the first `transient` attempts, answers `every_write` to every write, refuses
    /// batches holding `poison` or larger than `max_bytes` (as Cassandra's batch size limit
    /// does), optionally waits for a permit.
    #[derive(Default)]
    struct Faulty {
        transient: AtomicUsize,
        every_write: Option<(DbError, &'static str)>,
        poison: Option<i64>,
        max_bytes: Option<usize>,
        gate: Option<Arc<Semaphore>>,
        started: AtomicUsize,
        seen: Mutex<Vec<(i64, Vec<i64>, usize)>>,
    }

    impl WriteTarget for Faulty {
        fn write<'a>(&'a self, batch: &'a WriteBatch) -> WriteFuture<'a> {
            Box::pin(async move {
                self.started.fetch_add(1, Ordering::SeqCst);
                if let Some(gate) = &self.gate {
                    // Each write uses up one permit.
                    gate.acquire().await.unwrap().forget();
                }
                let values: Vec<i64> = batch
                    .rows
                    .iter()
                    .map(|r| match r.values[0] {
                        Some(CqlValue::BigInt(n)) => n,
                        _ => -1,
                    })
                    .collect();
                self.seen
                    .lock()
                    .unwrap()
                    .push((batch.timestamp, values.clone(), batch.bytes));
                let left = self.transient.load(Ordering::SeqCst);
                if left > 0 {
                    self.transient.store(left - 1, Ordering::SeqCst);
                    return Err(match left % 3 {
                        0 => db_error(DbError::Overloaded),
                        1 => ExecutionError::RequestTimeout(Duration::from_secs(1)),
                        _ => db_error(DbError::IsBootstrapping),
                    });
                }
                if let Some((error, message)) = &self.every_write {
                    return Err(ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                        error.clone(),
                        (*message).to_string(),
                    )));
                }
                if self.max_bytes.is_some_and(|max| batch.bytes > max) {
                    return Err(db_error(DbError::Invalid));
                }
                if self.poison.is_some_and(|p| values.contains(&p)) {
                    return Err(db_error(DbError::Invalid));
                }
                Ok(())
            })
        }
    }

    fn dispatcher(
        runtime: &tokio::runtime::Runtime,
        target: Arc<Faulty>,
        max_in_flight: usize,
        give_up: Duration,
    ) -> Dispatcher {
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
            give_up_after: give_up,
        };
        Dispatcher::new(
            runtime.handle().clone(),
            target,
            "shop.t".into(),
            backoff,
            max_in_flight,
            Arc::default(),
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn batch(timestamp: i64, rows: impl IntoIterator<Item = i64>) -> WriteBatch {
        let rows: Vec<_> = rows.into_iter().map(row).collect();
        WriteBatch {
            timestamp,
            bytes: rows.iter().map(|r| r.bytes).sum(),
            rows,
        }
    }

    #[test]
    fn transient_failures_are_retried_with_the_same_timestamp() {
        let rt = runtime();
        let target = Arc::new(Faulty {
            transient: AtomicUsize::new(3),
            ..Faulty::default()
        });
        let d = dispatcher(&rt, Arc::clone(&target), 4, Duration::from_secs(60));
        d.send(batch(42_000_001, [1, 2, 3])).unwrap();
        d.wait_idle().unwrap();
        let seen = target.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "three failures, then success");
        assert!(
            seen.iter()
                .all(|(ts, rows, _)| *ts == 42_000_001 && rows == &[1, 2, 3])
        );
        assert_eq!(d.stats.retries(), 3);
        assert_eq!(d.stats.rows_written(), 3);
        assert!(d.take_rejected().is_empty());
    }

    #[test]
    fn a_refused_batch_is_written_row_by_row_to_find_the_refused_row() {
        let rt = runtime();
        let target = Arc::new(Faulty {
            poison: Some(13),
            ..Faulty::default()
        });
        let d = dispatcher(&rt, target, 4, Duration::from_secs(60));
        d.send(batch(7, [11, 12, 13, 14])).unwrap();
        d.wait_idle().unwrap();
        let rejected = d.take_rejected();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, row(13));
        assert_eq!(d.stats.rows_written(), 3);
        assert_eq!(d.stats.rejected_rows(), 1);
    }

    #[test]
    fn batches_stay_under_the_stores_batch_limit() {
        let rt = runtime();
        let target = Arc::new(Faulty {
            max_bytes: Some(1_000),
            ..Faulty::default()
        });
        let d = dispatcher(&rt, Arc::clone(&target), 8, Duration::from_secs(60));
        let mut batcher = Batcher::new(900, 1_000);
        for n in 0..500 {
            if let Some(full) = batcher.add(b"one-partition", 5, row(n)) {
                d.send(full).unwrap();
            }
        }
        for rest in batcher.drain() {
            d.send(rest).unwrap();
        }
        d.wait_idle().unwrap();
        assert!(d.take_rejected().is_empty(), "no batch was refused as too large");
        assert_eq!(d.stats.rows_written(), 500);
        let seen = target.seen.lock().unwrap();
        assert!(seen.len() > 1 && seen.iter().all(|(_, _, bytes)| *bytes <= 900));
    }

    #[test]
    fn requests_in_flight_are_bounded_and_the_sender_waits() {
        let rt = runtime();
        let gate = Arc::new(Semaphore::new(0));
        let target = Arc::new(Faulty {
            gate: Some(Arc::clone(&gate)),
            ..Faulty::default()
        });
        let d = Arc::new(dispatcher(&rt, Arc::clone(&target), 3, Duration::from_secs(60)));
        let sender = {
            let d = Arc::clone(&d);
            std::thread::spawn(move || {
                for n in 0..5 {
                    d.send(batch(n, [n])).unwrap();
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while target.started.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            target.started.load(Ordering::SeqCst),
            3,
            "a fourth request started"
        );
        assert!(!sender.is_finished(), "the sender did not wait");
        gate.add_permits(3);
        sender.join().unwrap();
        // A checkpoint waits for every outstanding write.
        let flush = {
            let d = Arc::clone(&d);
            std::thread::spawn(move || d.wait_idle())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!flush.is_finished(), "the flush returned with writes outstanding");
        gate.add_permits(2);
        flush.join().unwrap().unwrap();
        assert_eq!(d.stats.rows_written(), 5);
    }

    #[test]
    fn a_write_failing_past_the_retry_limit_fails_the_sink() {
        let rt = runtime();
        let target = Arc::new(Faulty {
            transient: AtomicUsize::new(usize::MAX),
            ..Faulty::default()
        });
        let d = dispatcher(&rt, target, 2, Duration::from_millis(50));
        d.send(batch(1, [1])).unwrap();
        let err = d.wait_idle().unwrap_err().to_string();
        assert!(err.contains("shop.t") && err.contains("giving up"), "{err}");
    }

    #[test]
    fn a_store_refusing_every_write_fails_the_sink_without_rejecting_rows() {
        let refusals = [
            (
                DbError::Unauthorized,
                "User app has no MODIFY permission on <table shop.t> or any of its parents",
            ),
            (
                DbError::AuthenticationError,
                "Provided username app and/or password are incorrect",
            ),
            (DbError::Invalid, "unconfigured table t"),
            (DbError::Invalid, "Keyspace shop does not exist"),
        ];
        for (error, message) in refusals {
            let rt = runtime();
            let target = Arc::new(Faulty {
                every_write: Some((error.clone(), message)),
                ..Faulty::default()
            });
            // A retry loop would outlast the test: these failures must not be retried.
            let d = dispatcher(&rt, Arc::clone(&target), 4, Duration::from_secs(600));
            d.send(batch(1, [1, 2, 3])).unwrap();
            let err = d.wait_idle().expect_err("the sink fails").to_string();
            assert!(
                err.contains("shop.t") && err.contains(message),
                "{error:?}: {err}"
            );
            assert!(d.take_rejected().is_empty(), "{error:?}: rows were rejected");
            assert_eq!(d.stats.rejected_rows(), 0, "{error:?}");
            assert_eq!(
                target.seen.lock().unwrap().len(),
                1,
                "{error:?}: written again (retried or split into rows)"
            );
        }
    }
}
