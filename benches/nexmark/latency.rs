//! Latency: bids per auction in 100 ms tumbling windows, with the bids fed at a fixed rate.
//!
//! Bid *i* of the stream is due at `t0 + i / rate` (the *intended* ingestion time) and carries
//! that instant as its event time, so a window ending at `e` can close as soon as the first bid
//! due at or after `e - 1 ms` has been read (watermark bound 0). A result row's latency is the
//! moment the sink receives it minus that intended instant. Measuring from the schedule, not
//! from when the source actually got to a bid, counts any stall of the pipeline (the source
//! included) against every bid due during it: the correction for coordinated omission.
//! Windows of the first second are not counted (warm-up).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use sluice::engine::{
    BoxError, Data, PartitionId, PollStatus, Sink, SinkFactory, Source, SourceContext, SourceOutput,
    SourcePosition, SourceReader, Timestamp,
};
use sluice::prelude::*;

use super::events::{Bid, Event, PARTITIONS};

/// Window length of the latency query.
pub const LATENCY_WINDOW_MS: i64 = 100;
/// Results of windows starting before this are warm-up.
const WARM_UP_MS: i64 = 1_000;
/// Event-time pace of the unpaced run (bids per second), which only measures the maximum rate.
const UNPACED_EVENT_RATE: f64 = 1_000_000.0;

/// What a latency run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyStats {
    /// The rate asked for (bids/s; 0 = as fast as possible).
    pub target_rate: f64,
    /// Bids read per second over the run.
    pub achieved_rate: f64,
    /// Result rows measured.
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// When bid `i` is due, as milliseconds since the run's start (its event time).
fn due_ms(i: u64, rate: f64) -> i64 {
    (i as f64 * 1000.0 / rate) as i64
}

/// Feeds `total` bids (cycling through `bids`) in [`PARTITIONS`] partitions, bid `i` in
/// partition `i % PARTITIONS`, each no earlier than it is due.
#[derive(Clone)]
struct PacedSource {
    bids: Arc<Vec<Bid>>,
    total: u64,
    /// Bids per second; infinite: as fast as possible.
    rate: f64,
    start: Arc<OnceLock<Instant>>,
}

struct PacedReader {
    bids: Arc<Vec<Bid>>,
    total: u64,
    rate: f64,
    start: Arc<OnceLock<Instant>>,
    /// (partition, next bid index of the whole stream) of the partitions not ended yet
    owned: Vec<(usize, u64)>,
}

impl Source for PacedSource {
    type Item = Bid;

    fn open(&mut self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<Bid>>, BoxError> {
        let owned = (0..PARTITIONS)
            .filter(|p| p % ctx.workers == ctx.worker.0)
            .map(|p| (p, p as u64))
            .collect();
        Ok(Box::new(PacedReader {
            bids: Arc::clone(&self.bids),
            total: self.total,
            rate: self.rate,
            start: Arc::clone(&self.start),
            owned,
        }))
    }
}

impl SourceReader<Bid> for PacedReader {
    fn partitions(&self) -> Vec<PartitionId> {
        self.owned.iter().map(|(p, _)| PartitionId(*p as u32)).collect()
    }

    fn poll(&mut self, batch: &mut SourceOutput<'_, Bid>) -> Result<PollStatus, BoxError> {
        let start = *self.start.get_or_init(Instant::now);
        let due = if self.rate.is_finite() {
            ((start.elapsed().as_secs_f64() * self.rate) as u64).min(self.total)
        } else {
            self.total
        };
        let event_rate = if self.rate.is_finite() {
            self.rate
        } else {
            UNPACED_EVENT_RATE
        };
        let mut emitted = false;
        let (bids, total) = (&self.bids, self.total);
        self.owned.retain_mut(|(p, next)| {
            let id = PartitionId(*p as u32);
            while *next < due && !batch.is_full() {
                let mut bid = bids[(*next % bids.len() as u64) as usize];
                bid.date_time = due_ms(*next, event_rate);
                batch.record(id, bid, Some(bid.date_time));
                *next += PARTITIONS as u64;
                emitted = true;
            }
            // An ended partition is announced once and no longer owned.
            let ended = *next >= total;
            if ended {
                batch.partition_end(id);
            }
            !ended
        });
        Ok(match (self.owned.is_empty(), emitted) {
            (true, _) => PollStatus::Finished,
            (false, true) => PollStatus::Ready,
            (false, false) => PollStatus::Pending,
        })
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::default()
    }

    fn seek(&mut self, _position: &SourcePosition) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Records each result row's latency; the workers' histograms are merged at the end.
#[derive(Clone)]
struct LatencySink {
    start: Arc<OnceLock<Instant>>,
    merged: Arc<Mutex<Histogram<u64>>>,
}

struct LatencyWriter {
    sink: LatencySink,
    local: Histogram<u64>,
}

fn histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

impl<T: Data> SinkFactory<(i64, T)> for LatencySink {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<(i64, T)>>, BoxError> {
        Ok(Box::new(LatencyWriter {
            sink: self.clone(),
            local: histogram()?,
        }))
    }
}

impl<T: Data> Sink<(i64, T)> for LatencyWriter {
    fn write(&mut self, (window_start, _): (i64, T), _ts: Timestamp) -> Result<(), BoxError> {
        if window_start < WARM_UP_MS {
            return Ok(());
        }
        let Some(start) = self.sink.start.get() else {
            return Ok(());
        };
        let closing = *start + Duration::from_millis((window_start + LATENCY_WINDOW_MS - 1) as u64);
        let latency = Instant::now().saturating_duration_since(closing).as_micros() as u64;
        self.local.saturating_record(latency.max(1));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        let mut merged = self.sink.merged.lock().map_err(|_| "latency lock poisoned")?;
        merged.add(&self.local)?;
        self.local.reset();
        Ok(())
    }
}

/// Runs the latency query over `seconds` of bids at `rate` (0: as fast as possible, over
/// `unpaced` bids) with `workers` workers, cycling through the bids of `events`.
pub fn run(
    events: &[Event],
    rate: f64,
    seconds: f64,
    unpaced: u64,
    workers: usize,
) -> anyhow::Result<LatencyStats> {
    let bids: Vec<Bid> = events
        .iter()
        .filter_map(|e| match e {
            Event::Bid(b) => Some(*b),
            _ => None,
        })
        .collect();
    anyhow::ensure!(!bids.is_empty(), "no bids to feed");
    let (paced_rate, total) = if rate > 0.0 {
        (rate, (rate * seconds) as u64)
    } else {
        (f64::INFINITY, unpaced)
    };
    let start = Arc::new(OnceLock::new());
    let source = PacedSource {
        bids: Arc::new(bids),
        total,
        rate: paced_rate,
        start: Arc::clone(&start),
    };
    let sink = LatencySink {
        start: Arc::clone(&start),
        merged: Arc::new(Mutex::new(histogram().map_err(|e| anyhow::anyhow!("{e}"))?)),
    };
    let merged = Arc::clone(&sink.merged);
    let job = Job::new(JobConfig::new("nexmark-latency").workers(workers), move |b| {
        b.source(
            "bids",
            source.clone(),
            WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO),
        )
        .key_by("by_auction", |b: &Bid| b.auction)
        .window(
            "bids_per_auction",
            Windows::tumbling(Duration::from_millis(LATENCY_WINDOW_MS as u64)),
        )
        .aggregate(Count)
        .map("row", |r: WindowResult<u64, u64>| {
            (r.window.start, (r.key, r.value))
        })
        .sink("latency", sink.clone());
        Ok(())
    })?;
    let report = job.run()?;
    let read = report.metrics.total("bids", "records_out");
    anyhow::ensure!(read == total, "the job read {read} of {total} bids");
    let elapsed = start.get().map_or(0.0, |s| s.elapsed().as_secs_f64());
    let h = merged
        .lock()
        .map_err(|_| anyhow::anyhow!("latency lock poisoned"))?;
    Ok(LatencyStats {
        target_rate: rate,
        achieved_rate: total as f64 / elapsed.max(1e-9),
        samples: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    })
}

/// Bids of the unpaced run that finds the maximum rate.
pub const UNPACED_BIDS: u64 = 10_000_000;
/// Bids cycled through (the first bids of this many generated events).
const POOL_EVENTS: u64 = 1_000_000;

/// The child `latency:<rate>` (rate 0: unpaced).
pub fn child(rate: f64, seconds: f64, workers: usize) -> anyhow::Result<LatencyStats> {
    let events = super::events::generate(POOL_EVENTS);
    run(&events, rate, seconds, UNPACED_BIDS, workers)
}

/// For each worker count: the maximum rate of the latency query, then the latency at each of
/// `fractions` of it. Prints a table; writes `latency.svg` into `dir`; returns one JSON line
/// per paced run.
pub fn report(
    fractions: &[f64],
    seconds: f64,
    workers: &[usize],
    dir: &std::path::Path,
) -> anyhow::Result<Vec<serde_json::Value>> {
    println!(
        "\nlatency: bids per auction in {LATENCY_WINDOW_MS} ms tumbling windows, bids fed at a fixed rate for \
         {seconds} s each, event time = intended ingestion time, latency = result at the sink - intended \
         time of the bid that closes the window (coordinated omission corrected); first {WARM_UP_MS} ms not counted"
    );
    println!(
        "{:<8} {:>8} {:>14} {:>14} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "workers", "load", "target ev/s", "achieved ev/s", "rows", "p50 us", "p99 us", "p99.9 us", "max us"
    );
    let secs = seconds.to_string();
    let mut lines = Vec::new();
    let mut groups = Vec::new();
    for &w in workers {
        let max: LatencyStats = crate::common::measure("latency:0", w, &["--latency-seconds", &secs])?;
        println!("{:<8} {:>8} {:>14} {:>14.0}", w, "max", "-", max.achieved_rate);
        for &fraction in fractions {
            let rate = (max.achieved_rate * fraction).round();
            let kind = format!("latency:{rate}");
            let s: LatencyStats = crate::common::measure(&kind, w, &["--latency-seconds", &secs])?;
            let load = format!("{:.0}%", fraction * 100.0);
            println!(
                "{:<8} {:>8} {:>14.0} {:>14.0} {:>9} {:>10} {:>10} {:>10} {:>10}",
                w, load, rate, s.achieved_rate, s.samples, s.p50_us, s.p99_us, s.p999_us, s.max_us
            );
            lines.push(serde_json::json!({
                "bench": "nexmark_latency",
                "query": format!("bids_per_auction_{LATENCY_WINDOW_MS}ms"),
                "workers": w,
                "events": (rate * seconds) as u64,
                "load": fraction,
                "max_events_per_sec": max.achieved_rate.round(),
                "engine_events_per_sec": s.achieved_rate.round(),
                "p50_us": s.p50_us,
                "p99_us": s.p99_us,
                "p999_us": s.p999_us,
                "max_us": s.max_us,
                "result_rows": s.samples,
            }));
            groups.push(super::svg::Group {
                label: format!("{w}w {load}"),
                values: vec![
                    Some(s.p50_us as f64),
                    Some(s.p99_us as f64),
                    Some(s.p999_us as f64),
                ],
            });
        }
    }
    let series = ["p50", "p99", "p99.9"].map(String::from);
    let svg = super::svg::grouped_bars(
        "Latency, window closed to result emitted (log scale)",
        "microseconds",
        &series,
        &groups,
    );
    let path = dir.join("latency.svg");
    std::fs::write(&path, svg).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(lines)
}
