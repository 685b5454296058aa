//! Monitoring: request latencies per host from Kafka → per-host per-minute p50 / p99 / p99.9
//! (an HdrHistogram per window) → Cassandra.
//!
//! ```text
//! cargo run --release --example monitoring
//! ```
//!
//! With no flags it starts an in-process Kafka broker and CQL store, produces 500,000
//! generated measurements from 50 hosts (every tenth one slow, a long tail on all) and runs
//! to the end of that input.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraSink, TableSchema, read_rows};
use sluice::kafka::KafkaSource;
use sluice::operators::Percentiles;
use sluice::prelude::*;
use sluice_cli::datagen::{HostMetric, HostMetricGenerator};
use sluice_cli::embedded::Endpoints;
use sluice_cli::producer::{JsonProducer, LagLimit};
use sluice_cli::shop::{thousands, utc};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Host latencies → per-host per-minute percentiles in Cassandra")]
struct Args {
    /// Measurements to generate and produce first (0: only consume).
    #[arg(long, default_value_t = 500_000)]
    events: u64,
    /// Kafka bootstrap servers [default: an in-process broker].
    #[arg(long)]
    brokers: Option<String>,
    /// A Cassandra contact point [default: an in-process CQL store].
    #[arg(long)]
    cassandra: Option<String>,
    /// Worker threads [default: available cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Stop after this many seconds without input.
    #[arg(long, default_value_t = 2)]
    exit_when_idle: u64,
}

/// `monitoring.host_latency_1m`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HostLatency {
    host: String,
    window_start: i64,
    requests: i64,
    p50_us: i64,
    p99_us: i64,
    p999_us: i64,
    max_us: i64,
}

const TOPIC: &str = "host_metrics";

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let services = Endpoints::start(args.brokers.as_deref(), args.cassandra.as_deref(), "monitoring")?;
    println!("Sluice monitoring job\n{}\n", services.describe());
    services.create_topic(TOPIC, 4)?;

    let table = CassandraSink::<HostLatency>::new(services.cql.clone(), "host_latency_1m")
        .create_table_if_missing(
            TableSchema::partition_key(["host"])
                .clustering_key(["window_start"])
                .timestamp_columns(["window_start"]),
        );
    table.connect()?;
    let mut config = JobConfig::new("monitoring");
    if let Some(w) = args.workers {
        config = config.workers(w);
    }
    let (kafka, idle) = (services.kafka.clone(), Duration::from_secs(args.exit_when_idle));
    let generator = HostMetricGenerator::default();
    let job = Job::new(config, move |b| {
        b.source(
            "metrics",
            KafkaSource::<HostMetric>::json(kafka.clone(), "sluice-monitoring", &[TOPIC])
                .exit_when_idle(idle),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|m: &HostMetric| m.ts),
        )
        .key_by("by_host", |m| m.host.clone())
        .window("latency_1m", Windows::tumbling(Duration::from_secs(60)))
        .aggregate(Percentiles::of(
            |m: &HostMetric| m.latency_us,
            &[0.5, 0.99, 0.999],
        ))
        .map("latency_row", |w| HostLatency {
            host: w.key,
            window_start: w.window.start,
            requests: w.value.count as i64,
            p50_us: w.value.values[0] as i64,
            p99_us: w.value.values[1] as i64,
            p999_us: w.value.values[2] as i64,
            max_us: w.value.max as i64,
        })
        .sink("host_latency_table", table.clone());
        Ok(())
    })?;
    let started = Instant::now();
    let handle = job.start().context("the job did not start")?;
    if args.events > 0 {
        // Generated measurements go in while the job reads them, at most a bounded lag ahead.
        let limit = LagLimit::new(&handle, &["metrics"], services.max_lag());
        if services.kafka_is_embedded() {
            // Into topics the job just created: wait until its consumers hold all 4 partitions.
            limit.wait_for_assignment(4, Duration::from_secs(60));
        }
        let mut producer = JsonProducer::new(&services.kafka)?;
        for n in 0..args.events {
            let m = generator.nth(n);
            producer.send(TOPIC, &m.host, &m, Some(m.ts))?;
            if n % 1024 == 0 {
                limit.wait(n);
            }
        }
        producer.flush(Duration::from_secs(60))?;
        println!(
            "Produced {} measurements in {:.1} s",
            thousands(args.events),
            started.elapsed().as_secs_f64()
        );
    }
    let report = handle.join().context("the job failed")?;
    println!(
        "Processed {} measurements in {:.1} s\n",
        thousands(report.metrics.total("metrics", "records_out")),
        started.elapsed().as_secs_f64()
    );

    let rows = read_rows::<(String, CqlTimestamp, i64, i64, i64, i64)>(
        &services.cql,
        "SELECT host, window_start, requests, p50_us, p99_us, p999_us FROM monitoring.host_latency_1m",
    )?;
    // The first and last minutes are cut short by the input; report the busiest one.
    let mut per_minute: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &rows {
        *per_minute.entry(r.1.0).or_default() += r.2;
    }
    let Some(minute) = per_minute.iter().max_by_key(|(m, n)| (**n, **m)).map(|(m, _)| *m) else {
        println!("No windows completed.");
        return Ok(());
    };
    let mut slowest: Vec<_> = rows.iter().filter(|r| r.1.0 == minute).collect();
    slowest.sort_by(|a, b| b.4.cmp(&a.4).then(a.0.cmp(&b.0)));
    println!(
        "{} rows in monitoring.host_latency_1m; slowest hosts by p99 in the minute from {}:",
        thousands(rows.len() as u64),
        utc(minute)
    );
    println!(
        "  {:<8} {:>8} {:>9} {:>9} {:>9}",
        "host", "requests", "p50 ms", "p99 ms", "p99.9 ms"
    );
    for (host, _, requests, p50, p99, p999) in slowest.iter().take(5) {
        println!(
            "  {host:<8} {requests:>8} {:>9.2} {:>9.2} {:>9.2}",
            *p50 as f64 / 1000.0,
            *p99 as f64 / 1000.0,
            *p999 as f64 / 1000.0
        );
    }
    Ok(())
}
