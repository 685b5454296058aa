use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;

use crate::status::{PartitionBoard, SinkReports};

/// A monotonically increasing count written by one worker thread.
///
/// Each (operator, name, worker) has its own counter, so increments are plain relaxed
/// load/store pairs, not locked read-modify-writes.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a load and a store cannot lose an increment.
        self.0
            .store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (watermarks, queue lengths), written by one worker thread.
#[derive(Debug)]
pub struct Gauge(AtomicI64);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(AtomicI64::new(i64::MIN))
    }
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value (`i64::MIN` when never set).
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

type MetricKey = (Arc<str>, &'static str, usize);

/// The metrics of a running job: counters and gauges per operator, name and worker.
///
/// Well-known counter names: `records_in`, `records_out`, `late_records`,
/// `bad_records_skipped`, `idle_partitions`, `session_merges`.
#[derive(Debug, Clone, Default)]
pub struct JobMetrics {
    counters: Arc<DashMap<MetricKey, Arc<Counter>>>,
    gauges: Arc<DashMap<MetricKey, Arc<Gauge>>>,
    partitions: PartitionBoard,
    sinks: SinkReports,
}

impl JobMetrics {
    /// Where each source partition stands, as its reader last published.
    pub fn partitions(&self) -> &PartitionBoard {
        &self.partitions
    }

    /// The writes of the sinks that report them.
    pub fn sinks(&self) -> &SinkReports {
        &self.sinks
    }

    /// The counter `name` of `operator` on `worker`, created on first use.
    pub fn counter(&self, operator: &str, name: &'static str, worker: usize) -> Arc<Counter> {
        let key = (Arc::from(operator), name, worker);
        Arc::clone(self.counters.entry(key).or_default().value())
    }

    /// The gauge `name` of `operator` on `worker`, created on first use.
    pub fn gauge(&self, operator: &str, name: &'static str, worker: usize) -> Arc<Gauge> {
        let key = (Arc::from(operator), name, worker);
        Arc::clone(self.gauges.entry(key).or_default().value())
    }

    /// The sum of counter `name` of `operator` over all workers.
    pub fn total(&self, operator: &str, name: &str) -> u64 {
        self.counters
            .iter()
            .filter(|e| &*e.key().0 == operator && e.key().1 == name)
            .map(|e| e.value().get())
            .sum()
    }

    /// The sum of counter `name` over all operators and workers.
    pub fn total_all(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .filter(|e| e.key().1 == name)
            .map(|e| e.value().get())
            .sum()
    }

    /// The minimum of gauge `name` of `operator` over the workers that set it.
    pub fn gauge_min(&self, operator: &str, name: &str) -> Option<i64> {
        self.gauges
            .iter()
            .filter(|e| &*e.key().0 == operator && e.key().1 == name)
            .map(|e| e.value().get())
            .filter(|v| *v != i64::MIN)
            .min()
    }

    /// The sum of gauge `name` of `operator` over the workers that set it.
    pub fn gauge_sum(&self, operator: &str, name: &str) -> i64 {
        self.gauges
            .iter()
            .filter(|e| &*e.key().0 == operator && e.key().1 == name)
            .map(|e| e.value().get())
            .filter(|v| *v != i64::MIN)
            .sum()
    }

    /// Every counter as `(operator, name, worker, value)`, sorted by name, operator, worker.
    pub fn counters(&self) -> Vec<(String, &'static str, usize, u64)> {
        let mut rows: Vec<_> = self
            .counters
            .iter()
            .map(|e| (e.key().0.to_string(), e.key().1, e.key().2, e.value().get()))
            .collect();
        rows.sort_by(|a, b| (a.1, &a.0, a.2).cmp(&(b.1, &b.0, b.2)));
        rows
    }

    /// Every gauge that was set, as `(operator, name, worker, value)`, sorted by name,
    /// operator, worker.
    pub fn gauges(&self) -> Vec<(String, &'static str, usize, i64)> {
        let mut rows: Vec<_> = self
            .gauges
            .iter()
            .filter(|e| e.value().get() != i64::MIN)
            .map(|e| (e.key().0.to_string(), e.key().1, e.key().2, e.value().get()))
            .collect();
        rows.sort_by(|a, b| (a.1, &a.0, a.2).cmp(&(b.1, &b.0, b.2)));
        rows
    }

    /// Every counter as `(operator, name, total over workers)`, sorted.
    pub fn snapshot(&self) -> Vec<(String, String, u64)> {
        let mut totals = std::collections::BTreeMap::<(String, String), u64>::new();
        for e in self.counters.iter() {
            *totals
                .entry((e.key().0.to_string(), e.key().1.to_string()))
                .or_default() += e.value().get();
        }
        totals.into_iter().map(|((o, n), v)| (o, n, v)).collect()
    }
}
