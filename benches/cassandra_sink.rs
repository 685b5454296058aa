//! Cassandra sink benchmark: the rows of the 1-minute revenue job (computed in advance from
//! generated orders) written by a Sluice job into a CQL table through `CassandraSink`, against
//! a raw scylla loop writing the same rows with the same prepared insert, write timestamps,
//! consistency and number of requests in flight, into the same store, in the same run.
//!
//! The store is a real Apache Cassandra node: the one `SLUICE_CASSANDRA` names
//! (`scripts/bench.sh` starts one), else one this program starts with `scripts/services.sh`
//! and stops at the end. Each measurement runs in a process of its own, so its CPU time and
//! peak RSS are the client's alone, and writes a keyspace of its own, dropped before and after.
//! The node shares the machine's cores with the client: CPU seconds per million rows are the
//! fairest comparison, and both are printed.
//!
//! ```text
//! cargo bench --bench cassandra_sink
//! cargo bench --bench cassandra_sink -- --events 600000 --runs 3 --in-flight 64
//! ```

mod common;

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use common::cql::{
    RevenueRow, TABLE, cassandra_version, drop_keyspace, raw_insert_loop, revenue_rows, schema,
    table_checksum,
};
use common::services::Service;
use common::{Measurement, cpu_seconds, peak_rss_bytes};
use serde::{Deserialize, Serialize};
use sluice::cassandra::{CassandraConfig, CassandraSink};
use sluice::prelude::*;
use sluice_cli::datagen::OrderGenerator;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
struct Args {
    /// Orders to generate; the rows written are their 1-minute revenue windows.
    #[arg(long, default_value_t = 600_000)]
    events: u64,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Requests in flight, for the sink and the raw loop alike.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Internal: run one measurement (`sink` or `raw`) against the store at `--store`.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: the store's address.
    #[arg(long, hide = true)]
    store: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What a child measured, with its write latencies.
#[derive(Debug, Serialize, Deserialize)]
struct Result {
    measurement: Measurement,
    rows: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(kind) = &args.child {
        let store = args.store.as_deref().context("--store is required")?;
        let result = run_child(kind, store, &args)?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    let store = Service::cassandra()?;
    compare(&args, &store.addr)
}

fn compare(args: &Args, addr: &str) -> anyhow::Result<()> {
    let version = cassandra_version(addr);
    println!(
        "settings: store = a node ({}) at {addr}; scylla driver, prepared INSERT, write timestamp = \
         window end, consistency ONE, {} requests in flight, 1 worker",
        version, args.in_flight
    );
    let mut sink = Vec::new();
    let mut raw = Vec::new();
    for run in 0..args.runs.max(1) {
        raw.push(measure("raw", run, addr, args)?);
        sink.push(measure("sink", run, addr, args)?);
    }
    let (sink, raw) = (median(sink), median(raw));
    if sink.measurement.checksum != raw.measurement.checksum {
        bail!(
            "the tables differ: sink {:?}, raw loop {:?}",
            sink.measurement.checksum,
            raw.measurement.checksum
        );
    }
    let rate = |r: &Result| r.rows as f64 / r.measurement.seconds;
    // CPU seconds per million rows is CPU microseconds per row.
    let cpu_per_row = |r: &Result| r.measurement.cpu_seconds * 1e6 / r.rows as f64;
    let ratio = rate(&sink) / rate(&raw);
    println!(
        "{:<12} {:>8} {:>12} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "measurement",
        "rows",
        "rows/s",
        "ratio",
        "CPU s/M",
        "CPU ratio",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "peak RSS"
    );
    let cpu_ratio = cpu_per_row(&sink) / cpu_per_row(&raw);
    for (name, r, ratio, cpu_ratio) in [
        ("raw scylla", &raw, 1.0, 1.0),
        ("sluice sink", &sink, ratio, cpu_ratio),
    ] {
        println!(
            "{:<12} {:>8} {:>12.0} {:>7.2}x {:>10.1} {:>9.2}x {:>9} {:>9} {:>9} {:>6.1} MiB",
            name,
            r.rows,
            rate(r),
            ratio,
            cpu_per_row(r),
            cpu_ratio,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.measurement.peak_rss_bytes as f64 / (1 << 20) as f64
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "cassandra_sink",
            "query": "product_revenue_1m",
            "workers": 1,
            "events": sink.rows,
            "engine_events_per_sec": rate(&sink).round(),
            "baseline_events_per_sec": rate(&raw).round(),
            "ratio": (ratio * 1000.0).round() / 1000.0,
            "engine_cpu_seconds": (sink.measurement.cpu_seconds * 1000.0).round() / 1000.0,
            "baseline_cpu_seconds": (raw.measurement.cpu_seconds * 1000.0).round() / 1000.0,
            "engine_cpu_seconds_per_million": (cpu_per_row(&sink) * 10.0).round() / 10.0,
            "baseline_cpu_seconds_per_million": (cpu_per_row(&raw) * 10.0).round() / 10.0,
            "cpu_ratio": (cpu_ratio * 1000.0).round() / 1000.0,
            "cassandra": version,
            "peak_rss_bytes": sink.measurement.peak_rss_bytes,
            "baseline_peak_rss_bytes": raw.measurement.peak_rss_bytes,
            "p50_us": sink.p50_us,
            "p99_us": sink.p99_us,
            "p999_us": sink.p999_us,
            "baseline_p50_us": raw.p50_us,
            "baseline_p99_us": raw.p99_us,
            "baseline_p999_us": raw.p999_us,
        })
    );
    Ok(())
}

fn median(mut all: Vec<Result>) -> Result {
    all.sort_by(|a, b| a.measurement.seconds.total_cmp(&b.measurement.seconds));
    all.swap_remove(all.len() / 2)
}

fn measure(kind: &str, run: usize, addr: &str, args: &Args) -> anyhow::Result<Result> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--child", kind, "--store", addr])
        .args(["--events", &args.events.to_string()])
        .args(["--in-flight", &args.in_flight.to_string()])
        .args(["--runs", &run.to_string()])
        .output()
        .context("cannot start the measurement process")?;
    if !output.status.success() {
        bail!("{kind} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout.lines().last().context("child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

/// The revenue job's output rows for the generated orders, with their event timestamps.
fn rows(events: u64) -> Vec<(RevenueRow, i64)> {
    let generator = OrderGenerator {
        products: 1_000,
        orders_per_second: 200,
        ..OrderGenerator::default()
    };
    revenue_rows((0..events).map(|i| generator.nth(i)))
}

fn run_child(kind: &str, store: &str, args: &Args) -> anyhow::Result<Result> {
    let keyspace = format!("bench_{kind}_{}_{}", args.runs, std::process::id());
    let config = CassandraConfig::new([store], &keyspace)
        .schema_metadata(false)
        .consistency(sluice::cassandra::Consistency::One)
        .max_in_flight(args.in_flight);
    drop_keyspace(&config)?;
    let rows = rows(args.events);
    let n = rows.len() as u64;
    let sink = CassandraSink::<RevenueRow>::new(config.clone(), TABLE).create_table_if_missing(schema());
    let (seconds, cpu, latency) = match kind {
        "sink" => {
            let stats = sink.stats();
            let job = Job::new(JobConfig::new("cassandra-sink-bench").workers(1), {
                let (rows, sink) = (rows.clone(), sink.clone());
                move |b| {
                    b.source(
                        "rows",
                        MemorySource::new(rows.clone()),
                        WatermarkStrategy::monotonous().with_timestamps(|r: &(RevenueRow, i64)| r.1),
                    )
                    .map("row", |r| r.0)
                    .sink(TABLE, sink.clone());
                    Ok(())
                }
            })?;
            // Session set-up and the table check happen before the clock starts, as for the loop.
            sink.connect()?;
            let (cpu0, t0) = (cpu_seconds(), Instant::now());
            job.run()?;
            let (seconds, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
            (seconds, cpu, stats.write_latency())
        }
        "raw" => {
            // The same table, created the same way, before the clock starts.
            sink.connect()?;
            raw_insert_loop(&config, rows, args.in_flight)?
        }
        other => bail!("unknown measurement {other}"),
    };
    let checksum = table_checksum(&config)?;
    drop_keyspace(&config)?;
    if checksum.rows != n {
        bail!("{kind}: the table holds {} rows, {n} were written", checksum.rows);
    }
    Ok(Result {
        measurement: Measurement {
            events: n,
            seconds,
            cpu_seconds: cpu,
            peak_rss_bytes: peak_rss_bytes(),
            checksum,
        },
        rows: n,
        p50_us: latency.value_at_quantile(0.5),
        p99_us: latency.value_at_quantile(0.99),
        p999_us: latency.value_at_quantile(0.999),
    })
}
