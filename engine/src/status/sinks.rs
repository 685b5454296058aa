//! What a sink reports of its writes beyond the records it took: the store's side.

use serde::Serialize;

/// Request latencies in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencyPercentiles {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// A sink's writes to its store, over all workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStatus {
    /// Rows the store acknowledged.
    pub rows_written: u64,
    /// Requests the store acknowledged.
    pub requests: u64,
    /// Requests sent and not yet answered.
    pub requests_in_flight: u64,
    /// Attempts that failed with a retryable error and were tried again.
    pub retries: u64,
    /// Rows the store refused for good.
    pub rejected_rows: u64,
    /// Latency of acknowledged requests, from first attempt to acknowledgement.
    pub latency: LatencyPercentiles,
}

/// Implemented by sinks that write to a store ([`SinkFactory::report`](crate::SinkFactory::report)),
/// so the console can show their writes.
pub trait SinkReport: Send + Sync {
    /// The writes so far.
    fn report(&self) -> SinkStatus;
}

/// The [`SinkReport`] of every sink of a job that has one, by sink name.
#[derive(Clone, Default)]
pub struct SinkReports {
    reports: std::sync::Arc<dashmap::DashMap<String, std::sync::Arc<dyn SinkReport>>>,
}

impl SinkReports {
    /// Registers the report of sink `name` (once per job; later calls keep the first).
    pub(crate) fn register(&self, name: &str, report: std::sync::Arc<dyn SinkReport>) {
        self.reports.entry(name.to_string()).or_insert(report);
    }

    /// Every registered sink's writes, by name.
    pub fn all(&self) -> Vec<(String, SinkStatus)> {
        let mut all: Vec<(String, SinkStatus)> = self
            .reports
            .iter()
            .map(|e| (e.key().clone(), e.value().report()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

impl std::fmt::Debug for SinkReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.reports.iter().map(|e| e.key().clone()))
            .finish()
    }
}
