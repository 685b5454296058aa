//! Kafka consume benchmark: a topic pre-loaded with orders (JSON, 4 partitions) on a real
//! Apache Kafka broker, read by a Sluice job (Kafka source → key_by product → 1-minute
//! tumbling revenue, output discarded) and, in the same run, by a raw rdkafka consumer loop
//! that deserializes and aggregates the same way on one thread, with the same librdkafka
//! settings (printed). Each measurement runs in its own process; time runs from the first
//! record received to the last, so connecting (and the raw loop's group join) is not counted.
//!
//! ```text
//! cargo bench --bench kafka_consume
//! cargo bench --bench kafka_consume -- --events 2000000 --workers 1,2 --runs 3
//! ```
//!
//! The broker is the one `SLUICE_KAFKA_BROKERS` names (`scripts/bench.sh` starts one), else one
//! this program starts with `scripts/services.sh` and stops at the end. It shares the cores
//! with the consumer, so CPU seconds per million records (the consumer process's) are printed
//! beside the rates.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use common::kafka::{CONSUMER_SETTINGS, RunTopic, WINDOW_MS, preload, raw_consume_loop};
use common::services::{Service, kafka_version};
use common::{
    Checksum, Measurement, cpu_seconds, json_line, median, peak_rss_bytes, print_header, print_row, rate,
};
use sluice::kafka::{KafkaConfig, KafkaSource};
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 4;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    harness: common::Harness,
    /// Internal: bootstrap servers of a child.
    #[arg(long, hide = true)]
    brokers: Option<String>,
    /// Internal: the topic a child reads.
    #[arg(long, hide = true)]
    topic: Option<String>,
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os("SLUICE_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_writer(std::io::stderr)
            .init();
    }
    let args = Args::parse();
    match args.harness.child.as_deref() {
        Some(kind) => child(kind, &args),
        None => parent(&args),
    }
}

fn parent(args: &Args) -> anyhow::Result<()> {
    let broker = Service::kafka()?;
    let brokers = broker.addr.clone();
    let run_topic = RunTopic::new(&brokers, "bench-orders");
    let topic = run_topic.name.clone();
    let generator = OrderGenerator::default();
    preload(
        &brokers,
        &topic,
        PARTITIONS,
        (0..args.harness.events).map(|n| generator.nth(n)),
        None,
    )?;
    println!(
        "kafka_consume: {} orders on a broker ({}) at {brokers}, topic of {PARTITIONS} partitions",
        args.harness.events,
        kafka_version(&broker)
    );
    println!("  librdkafka:  {CONSUMER_SETTINGS:?}");
    println!("  parsing:     serde_json::from_slice::<Order> of the payload");
    println!("  work:        1-minute tumbling revenue per product (FxHash maps), output discarded");
    println!(
        "  timing:      first record to the last, median of {} runs\n",
        args.harness.runs
    );
    let events = args.harness.events.to_string();
    let extra = [
        "--brokers",
        brokers.as_str(),
        "--topic",
        topic.as_str(),
        "--events",
        &events,
    ];
    let raw = median("raw", 1, &extra, args.harness.runs)?;
    print_header();
    print_row("raw rdkafka loop", 1, &raw, 1.0);
    let mut lines = Vec::new();
    for &workers in &args.harness.workers {
        let engine = median("engine", workers, &extra, args.harness.runs)?;
        if engine.checksum.orders != raw.checksum.orders {
            bail!(
                "the engine read {} orders, the raw loop {}",
                engine.checksum.orders,
                raw.checksum.orders
            );
        }
        let ratio = rate(&engine) / rate(&raw);
        print_row("sluice", workers, &engine, ratio);
        lines.push(json_line(
            "kafka_consume",
            "revenue_1m",
            workers,
            &engine,
            &raw,
            ratio,
        ));
    }
    common::print_target_and_lines(&lines, "the raw loop", 0.9);
    Ok(())
}

fn child(kind: &str, args: &Args) -> anyhow::Result<()> {
    let brokers = args.brokers.clone().context("--brokers is required")?;
    let topic = args.topic.clone().context("--topic is required")?;
    let workers = args.harness.workers.first().copied().unwrap_or(1);
    let group = format!(
        "bench-{kind}-{}-{}",
        std::process::id(),
        sluice::engine::now_millis()
    );
    let (read, events, seconds) = match kind {
        "raw" => {
            let (read, seconds) = raw_consume_loop(&brokers, &topic, &group, args.harness.events)?;
            (read, read, seconds)
        }
        "engine" => engine(&brokers, &topic, &group, args.harness.events, workers)?,
        other => bail!("unknown measurement {other}"),
    };
    let m = Measurement {
        events,
        seconds,
        cpu_seconds: cpu_seconds(),
        peak_rss_bytes: peak_rss_bytes(),
        checksum: Checksum {
            orders: read,
            ..Checksum::default()
        },
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Returns (records read, records timed, seconds).
fn engine(
    brokers: &str,
    topic: &str,
    group: &str,
    expected: u64,
    workers: usize,
) -> anyhow::Result<(u64, u64, f64)> {
    let mut config = KafkaConfig::new(brokers);
    for (k, v) in CONSUMER_SETTINGS {
        config = config.set(k, v);
    }
    let (group, topic) = (group.to_string(), topic.to_string());
    let job = Job::new(JobConfig::new("kafka_consume").workers(workers), move |b| {
        b.source(
            "orders",
            KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()]),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        )
        .key_by("by_product", |o| o.product_id.clone())
        .window(
            "revenue_1m",
            Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)),
        )
        .aggregate((Sum::of(|o: &Order| o.revenue_cents()), Count))
        .filter("discard", |_| false)
        .sink("out", CollectSink::new());
        Ok(())
    })?;
    let handle = job.start()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    // The clock starts at the first record after the consumer group settled (the last
    // revocation), and counts only the records after it.
    let (mut first, mut base, mut revoked, mut seen) = (None::<Instant>, 0, 0, 0);
    while seen < expected && Instant::now() < deadline && !handle.is_finished() {
        seen = handle.metrics().total("revenue_1m", "records_in");
        let r = handle.metrics().total("orders", "partitions_revoked");
        if r != revoked {
            (revoked, first, base) = (r, None, seen);
        }
        if seen > base && first.is_none() {
            first = Some(Instant::now());
            base = seen;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    if seen < expected {
        eprintln!(
            "engine stalled at {seen} of {expected}: source read {}, revoked {}",
            handle.metrics().total("orders", "records_out"),
            revoked
        );
    }
    handle.stop();
    handle.join()?;
    Ok((seen, seen - base, seconds))
}
