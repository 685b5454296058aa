//! End-to-end benchmark: orders pre-loaded into a topic (JSON, 4 partitions) of a real Apache
//! Kafka broker → a Sluice job (Kafka source → key_by product → 1-minute tumbling revenue,
//! orders and units → `CassandraSink`) → a real Apache Cassandra node, against the two halves done by hand in the same
//! run: a raw rdkafka loop consuming, parsing and aggregating the same topic on one thread, and
//! a raw scylla loop inserting the same rows. The target is the engine at ≥ 0.8× the slower
//! of the two.
//!
//! After the orders, a marker order ten minutes later goes into every partition, so every
//! partition's watermark closes every window of the orders; the marker itself is filtered
//! out. The engine's clock runs from its first record read to the last expected row written;
//! the raw Kafka loop's from its first record to its last; the raw CQL loop's over its
//! inserts. The table the engine wrote is compared with the batch computation before any
//! number is printed. Each measurement runs in its own process (CPU time, peak RSS) and writes a
//! keyspace of its own, dropped afterwards.
//!
//! Broker, node and job share the machine's cores, so wall-clock ratios say little; the figure
//! to compare is CPU seconds per million orders of the job against those of the two raw loops
//! together (printed last).
//!
//! ```text
//! cargo bench --bench end_to_end
//! cargo bench --bench end_to_end -- --events 1000000 --workers 1,2 --runs 3 --in-flight 64
//! ```
//!
//! The servers are those `SLUICE_KAFKA_BROKERS` and `SLUICE_CASSANDRA` name
//! (`scripts/bench.sh` starts both), else ones this program starts with `scripts/services.sh`
//! and stops at the end.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use common::cql::{
    RevenueRow, TABLE, cassandra_version, drop_keyspace, raw_insert_loop, revenue_rows, rows_checksum,
    schema, table_checksum,
};
use common::kafka::{CONSUMER_SETTINGS, RunTopic, preload, raw_consume_loop};
use common::services::{Service, kafka_version};
use common::{Checksum, Measurement, cpu_seconds, peak_rss_bytes};
use sluice::cassandra::{CassandraConfig, CassandraSink, Consistency};
use sluice::kafka::{KafkaConfig, KafkaSource};
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator};
use sluice_cli::shop::{ProductRevenue, product_revenue};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 4;
const MARKER: &str = "marker";

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    harness: common::Harness,
    /// CQL requests in flight, for the sink and the raw loop alike.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Internal: bootstrap servers of a child.
    #[arg(long, hide = true)]
    brokers: Option<String>,
    /// Internal: the topic of a child.
    #[arg(long, hide = true)]
    topic: Option<String>,
    /// Internal: the store's address.
    #[arg(long, hide = true)]
    store: Option<String>,
    /// Internal: which run this is (each writes its own keyspace).
    #[arg(long, hide = true, default_value_t = 0)]
    run: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.harness.child.as_deref() {
        Some(kind) => child(kind, &args),
        None => parent(&args),
    }
}

/// The orders' generator: 1,000 products, 200 orders per second of event time.
fn generator() -> OrderGenerator {
    OrderGenerator {
        products: 1_000,
        orders_per_second: 200,
        ..OrderGenerator::default()
    }
}

/// The first `events` generated orders.
fn orders(events: u64) -> impl Iterator<Item = Order> {
    let generator = generator();
    (0..events).map(move |n| generator.nth(n))
}

/// An order ten minutes after the last one, for every partition.
fn marker(events: u64) -> Order {
    let mut last = generator().nth(events.saturating_sub(1));
    last.ts += 600_000;
    last.product_id = MARKER.to_string();
    last.order_id = MARKER.to_string();
    last
}

fn parent(args: &Args) -> anyhow::Result<()> {
    let events = args.harness.events;
    let (kafka, cassandra) = (Service::kafka()?, Service::cassandra()?);
    let (store, brokers) = (cassandra.addr.as_str(), kafka.addr.as_str());
    let run_topic = RunTopic::new(brokers, "e2e-orders");
    let topic = run_topic.name.clone();
    let records = preload(brokers, &topic, PARTITIONS, orders(events), Some(&marker(events)))?;
    let rows = revenue_rows(orders(events));
    println!(
        "end_to_end: {events} orders ({} revenue rows) on a broker ({}) at {brokers}, topic of \
         {PARTITIONS} partitions → a node ({}) at {store}",
        rows.len(),
        kafka_version(&kafka),
        cassandra_version(store)
    );
    println!("  librdkafka:  {CONSUMER_SETTINGS:?}");
    println!("  parsing:     serde_json::from_slice::<Order> of the payload");
    println!(
        "  work:        1-minute tumbling revenue, orders, units per product (FxHash maps in the raw loop)"
    );
    println!(
        "  CQL:         scylla driver, prepared INSERT, consistency ONE, write timestamp = window end, {} in flight",
        args.in_flight
    );
    println!(
        "  timing:      median of {} runs; orders/s over the {events} orders\n",
        args.harness.runs
    );
    let expected = rows_checksum(rows.iter().map(|(r, _)| r));
    let mut kafka = Vec::new();
    let mut cql = Vec::new();
    let mut engine: Vec<(usize, Vec<Measurement>)> =
        args.harness.workers.iter().map(|w| (*w, Vec::new())).collect();
    for run in 0..args.harness.runs.max(1) {
        let extra = Extra {
            brokers,
            topic: &topic,
            store,
            events,
            run,
            in_flight: args.in_flight,
        };
        kafka.push(measure("kafka", 1, &extra)?);
        cql.push(measure("cql", 1, &extra)?);
        for (workers, all) in &mut engine {
            let m = measure("engine", *workers, &extra)?;
            if m.checksum != expected {
                bail!(
                    "the engine's table ({workers} workers) differs from the batch computation: {:?} vs {expected:?}",
                    m.checksum
                );
            }
            all.push(m);
        }
    }
    let (kafka, cql) = (median(kafka), median(cql));
    if cql.checksum != expected {
        bail!(
            "the raw CQL loop's table differs: {:?} vs {expected:?}",
            cql.checksum
        );
    }
    if kafka.checksum.orders < records {
        bail!(
            "the raw Kafka loop read {} of {records} records",
            kafka.checksum.orders
        );
    }
    // Both raw loops as orders/s over the same orders: the slower one is the baseline.
    let per_order = |m: &Measurement| Measurement { events, ..m.clone() };
    let (kafka, cql) = (per_order(&kafka), per_order(&cql));
    let baseline = if kafka.seconds >= cql.seconds {
        &kafka
    } else {
        &cql
    };
    common::print_header();
    common::print_row(
        "raw rdkafka loop",
        1,
        &kafka,
        common::rate(&kafka) / common::rate(baseline),
    );
    common::print_row(
        "raw scylla loop",
        1,
        &cql,
        common::rate(&cql) / common::rate(baseline),
    );
    // The job does both loops' work: its CPU per order against theirs together.
    let raw_cpu = common::cpu_per_million(&kafka) + common::cpu_per_million(&cql);
    let mut lines = Vec::new();
    let mut cpu_lines = Vec::new();
    for (workers, all) in engine {
        let m = per_order(&median(all));
        let ratio = common::rate(&m) / common::rate(baseline);
        common::print_row("sluice end to end", workers, &m, ratio);
        let cpu_ratio = common::cpu_per_million(&m) / raw_cpu;
        cpu_lines.push(format!(
            "CPU s per million orders, {workers} worker(s): sluice {:.2}, the raw loops together {raw_cpu:.2}: {cpu_ratio:.2}x",
            common::cpu_per_million(&m)
        ));
        let mut line = common::json_line("end_to_end", "revenue_1m_to_cql", workers, &m, baseline, ratio);
        line["raw_loops_cpu_seconds_per_million"] = serde_json::json!((raw_cpu * 100.0).round() / 100.0);
        line["cpu_ratio"] = serde_json::json!((cpu_ratio * 1000.0).round() / 1000.0);
        lines.push(line);
    }
    println!();
    for line in cpu_lines {
        println!("{line}");
    }
    common::print_target_and_lines(&lines, "the slower raw loop", 0.8);
    Ok(())
}

/// What every measurement process is told.
struct Extra<'a> {
    brokers: &'a str,
    topic: &'a str,
    store: &'a str,
    events: u64,
    run: usize,
    in_flight: usize,
}

fn measure(kind: &str, workers: usize, extra: &Extra<'_>) -> anyhow::Result<Measurement> {
    let (events, run, in_flight) = (
        extra.events.to_string(),
        extra.run.to_string(),
        extra.in_flight.to_string(),
    );
    common::measure(
        kind,
        workers,
        &[
            "--brokers",
            extra.brokers,
            "--topic",
            extra.topic,
            "--store",
            extra.store,
            "--events",
            &events,
            "--run",
            &run,
            "--in-flight",
            &in_flight,
        ],
    )
}

fn median(mut all: Vec<Measurement>) -> Measurement {
    all.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    all.swap_remove(all.len() / 2)
}

fn child(kind: &str, args: &Args) -> anyhow::Result<()> {
    let brokers = args.brokers.as_deref().context("--brokers is required")?;
    let topic = args.topic.as_deref().context("--topic is required")?;
    let store = args.store.as_deref().context("--store is required")?;
    let workers = args.harness.workers.first().copied().unwrap_or(1);
    let events = args.harness.events;
    let keyspace = format!("e2e_{kind}_{workers}_{}_{}", args.run, std::process::id());
    let config = CassandraConfig::new([store], &keyspace)
        .schema_metadata(false)
        .consistency(Consistency::One)
        .max_in_flight(args.in_flight);
    drop_keyspace(&config)?;
    let group = format!(
        "bench-{kind}-{}-{}",
        std::process::id(),
        sluice::engine::now_millis()
    );
    let (seconds, cpu, checksum) = match kind {
        "kafka" => {
            let expected = events + PARTITIONS as u64;
            let cpu0 = cpu_seconds();
            let (read, seconds) = raw_consume_loop(brokers, topic, &group, expected)?;
            let checksum = Checksum {
                orders: read,
                ..Checksum::default()
            };
            (seconds, cpu_seconds() - cpu0, checksum)
        }
        "cql" => {
            let rows = revenue_rows(orders(events));
            // The table is created as the sink creates it, before the clock starts.
            CassandraSink::<RevenueRow>::new(config.clone(), TABLE)
                .create_table_if_missing(schema())
                .connect()?;
            let (seconds, cpu, _) = raw_insert_loop(&config, rows, args.in_flight)?;
            (seconds, cpu, table_checksum(&config)?)
        }
        "engine" => {
            let rows = revenue_rows(orders(events)).len() as u64;
            let (seconds, cpu) = engine(brokers, topic, &group, config.clone(), workers, rows)?;
            (seconds, cpu, table_checksum(&config)?)
        }
        other => bail!("unknown measurement {other}"),
    };
    drop_keyspace(&config)?;
    let m = Measurement {
        events,
        seconds,
        cpu_seconds: cpu,
        peak_rss_bytes: peak_rss_bytes(),
        checksum,
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Runs the job until the sink wrote `rows` rows; returns seconds from the first record read
/// and the CPU seconds of the process over the run.
fn engine(
    brokers: &str,
    topic: &str,
    group: &str,
    cql: CassandraConfig,
    workers: usize,
    rows: u64,
) -> anyhow::Result<(f64, f64)> {
    let mut kafka = KafkaConfig::new(brokers);
    for (k, v) in CONSUMER_SETTINGS {
        kafka = kafka.set(k, v);
    }
    let sink = CassandraSink::<ProductRevenue>::new(cql, TABLE).create_table_if_missing(schema());
    // The session and the table check happen before the clock starts, as for the raw loop.
    sink.connect()?;
    let stats = sink.stats();
    let (group, topic) = (group.to_string(), topic.to_string());
    let job = Job::new(JobConfig::new("end_to_end").workers(workers), move |b| {
        let orders = b
            .source(
                "orders",
                KafkaSource::<Order>::json(kafka.clone(), group.clone(), &[topic.as_str()]),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                    .with_timestamps(|o: &Order| o.ts),
            )
            .filter("no_marker", |o| o.product_id != MARKER);
        // The e-commerce job's own branch for this table.
        product_revenue(&orders).sink("product_revenue_1m_table", sink.clone());
        Ok(())
    })?;
    let cpu0 = cpu_seconds();
    let handle = job.start()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first = None::<Instant>;
    while stats.rows_written() < rows && Instant::now() < deadline && !handle.is_finished() {
        if first.is_none() && handle.metrics().total("orders", "records_out") > 0 {
            first = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let written = stats.rows_written();
    handle.stop();
    handle.join()?;
    let cpu = cpu_seconds() - cpu0;
    if written < rows {
        bail!("the engine wrote {written} of {rows} rows");
    }
    Ok((seconds, cpu))
}
