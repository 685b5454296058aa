//! IoT telemetry: sensor readings from Kafka → per-device 1-minute average, minimum and maximum
//! → Cassandra, and readings above a threshold → an alerts topic.
//!
//! ```text
//! cargo run --release --example iot
//! cargo run --release --example iot -- --events 2000000 --threshold 38
//! ```
//!
//! With no flags it starts an in-process Kafka broker and CQL store, produces 500,000
//! generated readings (1,000 devices, a daily temperature curve, rare spikes) and runs to the
//! end of that input.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraSink, TableSchema, read_rows};
use sluice::kafka::{JsonRecord, KafkaSink, KafkaSource};
use sluice::prelude::*;
use sluice_cli::datagen::{SensorGenerator, SensorReading};
use sluice_cli::embedded::Endpoints;
use sluice_cli::producer::{JsonProducer, LagLimit};
use sluice_cli::shop::{thousands, utc};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Sensor readings → per-device minute statistics in Cassandra, threshold alerts to Kafka")]
struct Args {
    /// Readings to generate and produce first (0: only consume).
    #[arg(long, default_value_t = 500_000)]
    events: u64,
    /// Readings above this temperature (°C) raise an alert.
    #[arg(long, default_value_t = 40.0)]
    threshold: f64,
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

/// `iot.device_stats_1m`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeviceStats {
    device_id: String,
    window_start: i64,
    readings: i64,
    avg_temperature: f64,
    min_temperature: f64,
    max_temperature: f64,
}

/// A message on the alerts topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Alert {
    device_id: String,
    temperature: f64,
    threshold: f64,
    ts: i64,
}

const READINGS: &str = "sensor_readings";
const ALERTS: &str = "sensor_alerts";

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let services = Endpoints::start(args.brokers.as_deref(), args.cassandra.as_deref(), "iot")?;
    println!("Sluice IoT job\n{}\n", services.describe());
    services.create_topic(READINGS, 4)?;
    services.create_topic(ALERTS, 1)?;

    let generator = SensorGenerator::default();

    let stats = CassandraSink::<DeviceStats>::new(services.cql.clone(), "device_stats_1m")
        .create_table_if_missing(
            TableSchema::partition_key(["device_id"])
                .clustering_key(["window_start"])
                .timestamp_columns(["window_start"]),
        );
    stats.connect()?;
    let alerts = KafkaSink::new(
        services.kafka.clone(),
        ALERTS,
        JsonRecord::keyed_by(|a: &Alert| Some(a.device_id.clone())),
    );
    let mut config = JobConfig::new("iot");
    if let Some(w) = args.workers {
        config = config.workers(w);
    }
    let (kafka, threshold, idle) = (
        services.kafka.clone(),
        args.threshold,
        Duration::from_secs(args.exit_when_idle),
    );
    let job = Job::new(config, move |b| {
        let readings = b.source(
            "readings",
            KafkaSource::<SensorReading>::json(kafka.clone(), "sluice-iot", &[READINGS]).exit_when_idle(idle),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|r: &SensorReading| r.ts),
        );
        readings
            .key_by("by_device", |r| r.device_id.clone())
            .window("device_stats_1m", Windows::tumbling(Duration::from_secs(60)))
            .aggregate((
                Count,
                Avg::of(|r: &SensorReading| r.temperature),
                Min::of(|r: &SensorReading| r.temperature),
                Max::of(|r: &SensorReading| r.temperature),
            ))
            .map("stats_row", |w| DeviceStats {
                device_id: w.key,
                window_start: w.window.start,
                readings: w.value.0 as i64,
                avg_temperature: w.value.1.unwrap_or(f64::NAN),
                min_temperature: w.value.2.unwrap_or(f64::NAN),
                max_temperature: w.value.3.unwrap_or(f64::NAN),
            })
            .sink("device_stats_table", stats.clone());
        readings
            .filter("over_threshold", move |r| r.temperature > threshold)
            .map("alert", move |r| Alert {
                device_id: r.device_id,
                temperature: r.temperature,
                threshold,
                ts: r.ts,
            })
            .sink("alerts_topic", alerts.clone());
        Ok(())
    })?;
    let started = Instant::now();
    let handle = job.start().context("the job did not start")?;
    if args.events > 0 {
        // Generated readings go in while the job reads them, at most a bounded lag ahead.
        let limit = LagLimit::new(&handle, &["readings"], services.max_lag());
        if services.kafka_is_embedded() {
            // Into topics the job just created: wait until its consumers hold all 4 partitions.
            limit.wait_for_assignment(4, Duration::from_secs(60));
        }
        let mut producer = JsonProducer::new(&services.kafka)?;
        for n in 0..args.events {
            let r = generator.nth(n);
            producer.send(READINGS, &r.device_id, &r, Some(r.ts))?;
            if n % 1024 == 0 {
                limit.wait(n);
            }
        }
        producer.flush(Duration::from_secs(60))?;
        println!(
            "Produced {} readings in {:.1} s",
            thousands(args.events),
            started.elapsed().as_secs_f64()
        );
    }
    let report = handle.join().context("the job failed")?;
    let read = report.metrics.total("readings", "records_out");
    println!(
        "Processed {} readings in {:.1} s: {} alerts to topic '{ALERTS}'\n",
        thousands(read),
        started.elapsed().as_secs_f64(),
        thousands(report.metrics.total("alerts_topic", "records_in")),
    );

    let rows = read_rows::<(String, CqlTimestamp, i64, f64, f64, f64)>(
        &services.cql,
        "SELECT device_id, window_start, readings, avg_temperature, min_temperature, max_temperature FROM iot.device_stats_1m",
    )?;
    // The first and last minutes are cut short by the input; report the busiest one.
    let mut per_minute: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &rows {
        *per_minute.entry(r.1.0).or_default() += r.2;
    }
    let Some(last) = per_minute.iter().max_by_key(|(m, n)| (**n, **m)).map(|(m, _)| *m) else {
        println!("No windows completed.");
        return Ok(());
    };
    let mut hottest: Vec<_> = rows.iter().filter(|r| r.1.0 == last).collect();
    hottest.sort_by(|a, b| b.5.total_cmp(&a.5).then(a.0.cmp(&b.0)));
    println!(
        "{} rows in iot.device_stats_1m; hottest devices in the minute from {}:",
        thousands(rows.len() as u64),
        utc(last)
    );
    println!(
        "  {:<8} {:>8} {:>8} {:>8} {:>8}",
        "device", "readings", "avg °C", "min °C", "max °C"
    );
    for (device, _, readings, avg, min, max) in hottest.iter().take(5) {
        println!("  {device:<8} {readings:>8} {avg:>8.2} {min:>8.2} {max:>8.2}");
    }
    Ok(())
}
