//! Checkpoint cost: runs a job with RocksDB state and periodic checkpoints while sampling
//! the coordinator's metrics, so each completed checkpoint's duration and size are known.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sluice::engine::{Job, JobReport};

/// Scope of the checkpoint coordinator's metrics (operator name in `JobMetrics`).
const SCOPE: &str = "checkpoints";

/// What the checkpoints of one run cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckpointStats {
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints abandoned (timed out or failed).
    pub abandoned: u64,
    /// Duration of each completed checkpoint seen, trigger to manifest, ms.
    pub durations_ms: Vec<i64>,
    /// Bytes written by each completed checkpoint seen.
    pub bytes: Vec<i64>,
}

impl CheckpointStats {
    /// The `q`-quantile (0..=1) of the durations, nearest rank.
    pub fn duration_quantile(&self, q: f64) -> Option<i64> {
        let mut d = self.durations_ms.clone();
        d.sort_unstable();
        let last = d.len().checked_sub(1)?;
        let rank = ((q * d.len() as f64).ceil() as usize).saturating_sub(1).min(last);
        d.get(rank).copied()
    }

    /// Mean bytes per checkpoint.
    pub fn mean_bytes(&self) -> Option<f64> {
        (!self.bytes.is_empty()).then(|| self.bytes.iter().sum::<i64>() as f64 / self.bytes.len() as f64)
    }
}

/// Runs `job` to its end, polling the checkpoint gauges every 2 ms (the engine keeps only
/// the last checkpoint's duration and size, so each is read while it is the last).
pub fn run_sampled(job: &Job) -> anyhow::Result<(JobReport, CheckpointStats)> {
    let handle = job.start().context("cannot start the job")?;
    let metrics = handle.metrics().clone();
    let last_id = metrics.gauge(SCOPE, "last_id", 0);
    let last_duration = metrics.gauge(SCOPE, "last_duration_ms", 0);
    let last_bytes = metrics.gauge(SCOPE, "last_bytes", 0);
    let mut stats = CheckpointStats::default();
    let mut seen = i64::MIN;
    loop {
        let finished = handle.is_finished();
        let id = last_id.get();
        if id != seen && id != i64::MIN {
            seen = id;
            // The id is set just before the duration and size: let those land.
            std::thread::sleep(Duration::from_millis(1));
            stats.durations_ms.push(last_duration.get());
            stats.bytes.push(last_bytes.get());
        }
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let report = handle.join()?;
    stats.completed = report.metrics.total(SCOPE, "completed");
    stats.abandoned = report.metrics.total(SCOPE, "abandoned");
    Ok((report, stats))
}
