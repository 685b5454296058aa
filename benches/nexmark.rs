//! Nexmark benchmark: queries q0, q1, q2, q5, q7, q8 and q12 over the event stream of the
//! `nexmark` crate's generator, as Sluice jobs with 1 and 2 workers against hand-written
//! single-threaded loops computing the same rows in the same run.
//!
//! The events (2,000,000 by default: persons, auctions and bids, 10,000 events per second of
//! event time) are generated into memory before the clock starts, as compact records holding
//! the fields the queries read (ids, prices, times, person names; the generator's padding
//! strings are dropped), and dealt round-robin into 4 source partitions. Throughput is events
//! of the whole stream per second, as Nexmark counts it. Event time is the events'
//! `date_time`; the watermark is max event time - 1 s per partition (the generator emits in
//! order, so nothing is late). Every measurement runs in its own child process (CPU time,
//! peak RSS with the data included); the outputs of the engine and the baseline are
//! checksummed (row count, value total, sum of row hashes) and compared before any number is
//! printed, and a difference exits non-zero naming what differs.
//!
//! q12 counts bids per bidder in event-time tumbling windows: Nexmark's processing-time
//! windows would not give reproducible rows to compare. With `--checkpoint-interval`, q5 also
//! runs with RocksDB state and checkpoints to a temporary directory at each interval (`none`:
//! RocksDB without checkpoints) over `--checkpoint-events` events (10,000,000 by default, so
//! a run lasts several seconds), reporting checkpoint count, duration percentiles and bytes.
//!
//! Results also go to `target/nexmark/results.json` and `target/nexmark/throughput.svg`.
//!
//! ```text
//! cargo bench --bench nexmark
//! cargo bench --bench nexmark -- --query q5 --events 2000000 --workers 1,2
//! cargo bench --bench nexmark -- --query all --checkpoint-interval none,1s,10s
//! ```

#[path = "nexmark/baseline.rs"]
mod baseline;
#[path = "nexmark/checkpoints.rs"]
mod checkpoints;
mod common;
#[path = "nexmark/engine.rs"]
mod engine;
#[path = "nexmark/events.rs"]
mod events;
#[path = "nexmark/latency.rs"]
mod latency;
#[path = "nexmark/query.rs"]
mod query;
#[path = "nexmark/report.rs"]
mod report;
#[path = "nexmark/rows.rs"]
mod rows;
#[path = "nexmark/svg.rs"]
mod svg;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use common::{Checksum, Measurement, cpu_seconds, peak_rss_bytes};
use serde::{Deserialize, Serialize};
use sluice::engine::{CheckpointConfig, Job, JobConfig, StateBackendConfig};

use checkpoints::CheckpointStats;
use query::Query;

// Records cross threads; glibc's allocator serialises those frees, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per exchange batch by default (the engine's default).
pub const BATCH_SIZE: usize = 512;

/// Command line: the shared harness options plus the query selection.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    harness: common::Harness,
    /// Queries to run: `all` or a comma-separated list (q0, q1, q2, q5, q7, q8, q12).
    #[arg(long, default_value = "all")]
    query: String,
    /// Also measure q5 with RocksDB state and checkpoints at these intervals, comma separated
    /// (`none` = RocksDB without checkpoints), e.g. `none,1s,10s`.
    #[arg(long, value_delimiter = ',')]
    checkpoint_interval: Vec<String>,
    /// Events of the checkpoint-cost runs: enough for several checkpoints at the shortest
    /// interval.
    #[arg(long, default_value_t = 10_000_000)]
    checkpoint_events: u64,
    /// Records per exchange batch of the engine.
    #[arg(long, default_value_t = BATCH_SIZE)]
    batch_size: usize,
    /// Loads (fractions of the measured maximum rate) at which to measure latency.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.8")]
    latency: Vec<f64>,
    /// Seconds of input per latency run (0: no latency runs).
    #[arg(long, default_value_t = 5.0)]
    latency_seconds: f64,
}

/// What a child prints: its measurement, plus checkpoint costs when it took checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    /// Time, CPU, peak RSS and output checksum.
    #[serde(flatten)]
    measurement: Measurement,
    /// Checkpoint costs, for runs that took checkpoints.
    #[serde(default)]
    checkpoints: Option<CheckpointStats>,
}

/// Parent (measure and report) or child (one measurement), by `--child`.
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.harness.child.as_deref() {
        Some(kind) => child(kind, &args),
        None => report::parent(&args),
    }
}

/// The queries named by `--query`, each once, in report order.
fn queries(args: &Args) -> anyhow::Result<Vec<Query>> {
    let named = query::parse_list(&args.query).map_err(anyhow::Error::msg)?;
    Ok(Query::ALL.into_iter().filter(|q| named.contains(q)).collect())
}

/// Runs this binary as a child measuring `kind`, `runs` times, and keeps the median by time.
fn median(kind: &str, workers: usize, args: &Args, events: u64) -> anyhow::Result<ChildReport> {
    let (events, batch) = (events.to_string(), args.batch_size.to_string());
    let extra = ["--events", events.as_str(), "--batch-size", batch.as_str()];
    let runs = args.harness.runs;
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        all.push(common::measure::<ChildReport>(kind, workers, &extra)?);
    }
    all.sort_by(|a, b| a.measurement.seconds.total_cmp(&b.measurement.seconds));
    Ok(all.swap_remove(all.len() / 2))
}

/// How the engine keeps state in a child.
#[derive(Debug, Clone, Copy)]
enum StateSetup {
    /// The in-memory backend, no checkpoints.
    Memory,
    /// RocksDB, with checkpoints at this interval if any.
    RocksDb { checkpoint_every: Option<Duration> },
}

/// Parses an interval of `--checkpoint-interval`: `none` or a humantime duration.
fn parse_interval(s: &str) -> anyhow::Result<Option<Duration>> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    humantime::parse_duration(s)
        .map(Some)
        .with_context(|| format!("bad checkpoint interval '{s}' (use none, 1s, 10s...)"))
}

/// A child: `baseline:q5`, `engine:q5`, `rocksdb:q5:1s` or `latency:<rate>`.
fn child(kind: &str, args: &Args) -> anyhow::Result<()> {
    let workers = args.harness.workers.first().copied().unwrap_or(1);
    if let Some(rate) = kind.strip_prefix("latency:") {
        let rate: f64 = rate.parse().with_context(|| format!("bad rate in {kind}"))?;
        let stats = latency::child(rate, args.latency_seconds, workers)?;
        println!("{}", serde_json::to_string(&stats)?);
        return Ok(());
    }
    let parts: Vec<&str> = kind.split(':').collect();
    let (mode, query) = match parts.as_slice() {
        [mode, q] | [mode, q, _] => (*mode, q.parse::<Query>().map_err(anyhow::Error::msg)?),
        _ => bail!("unknown measurement {kind}"),
    };
    let events = events::generate(args.harness.events);
    let n = events.len() as u64;
    let report = match mode {
        "baseline" => {
            let (cpu0, t0) = (cpu_seconds(), Instant::now());
            let checksum = baseline::run(query, &events);
            finish(n, t0, cpu0, checksum, None)
        }
        "engine" => run_engine(query, events, workers, args.batch_size, StateSetup::Memory)?,
        "rocksdb" => {
            let every = parse_interval(parts.get(2).copied().unwrap_or("none"))?;
            let setup = StateSetup::RocksDb {
                checkpoint_every: every,
            };
            run_engine(query, events, workers, args.batch_size, setup)?
        }
        other => bail!("unknown measurement mode {other}"),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The child's measurement from its start time and CPU time.
fn finish(
    events: u64,
    t0: Instant,
    cpu0: f64,
    checksum: Checksum,
    checkpoints: Option<CheckpointStats>,
) -> ChildReport {
    ChildReport {
        measurement: Measurement {
            events,
            seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu0,
            peak_rss_bytes: peak_rss_bytes(),
            checksum,
        },
        checkpoints,
    }
}

/// Runs `query` as a Sluice job over `events` and checks it read every event.
fn run_engine(
    query: Query,
    events: Vec<events::Event>,
    workers: usize,
    batch_size: usize,
    setup: StateSetup,
) -> anyhow::Result<ChildReport> {
    let n = events.len() as u64;
    let data = events::partition(events);
    let dir = tempfile::tempdir().context("cannot create a state directory")?;
    let mut config = JobConfig::new(format!("nexmark-{query}"))
        .workers(workers)
        .batch_size(batch_size);
    if let StateSetup::RocksDb { checkpoint_every } = setup {
        config = config.state_backend(StateBackendConfig::rocksdb(dir.path().join("rocksdb")));
        if let Some(every) = checkpoint_every {
            config =
                config.checkpoints(CheckpointConfig::new(dir.path().join("checkpoints")).interval(every));
        }
    }
    let checkpointing = matches!(
        setup,
        StateSetup::RocksDb {
            checkpoint_every: Some(_)
        }
    );
    let sink = common::ChecksumSink::default();
    let out = sink.clone();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let job = Job::new(config, move |b| {
        engine::build(query, b, &data, &sink);
        Ok(())
    })?;
    let (report, stats) = if checkpointing {
        let (report, stats) = checkpoints::run_sampled(&job)?;
        (report, Some(stats))
    } else {
        (job.run()?, None)
    };
    let mut checksum = out.checksum()?;
    checksum.late = engine::windowed_operators(query)
        .iter()
        .map(|op| report.metrics.total(op, "late_records"))
        .sum();
    let result = finish(n, t0, cpu0, checksum, stats);
    let read = report.metrics.total(engine::SOURCE, "records_out");
    if read != n {
        bail!("the engine read {read} of {n} events");
    }
    drop(dir);
    Ok(result)
}
