//! The e-commerce revenue job: orders → revenue per product per 1-minute tumbling event-time
//! window → a short report of the best sellers.
//!
//! By default it generates 1,000,000 deterministic orders (skewed product popularity, up to
//! 4 s out of order) in memory, so it needs nothing but this repository:
//!
//! ```text
//! cargo run --release --example ecommerce
//! cargo run --release --example ecommerce -- --events 5000000 --workers 2
//! cargo run --release --example ecommerce -- --input orders.jsonl --on-bad-record skip
//! ```
//!
//! With `--input` it reads JSON-lines orders (one object per line, as in
//! `{"order_id":"o-1","user_id":"u-42","product_id":"p-7","category":"books","price_cents":1999,"quantity":2,"ts":1764115200000}`)
//! from a file or directory instead, split across the workers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sluice::datagen::{Order, OrderGenerator};
use sluice::prelude::*;

// Records cross threads; glibc's allocator serialises those frees, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Revenue per product per minute over a stream of orders")]
struct Args {
    /// Orders to generate (ignored with --input).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Worker threads (default: available cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Read JSON-lines orders from this file or directory instead of generating them.
    #[arg(long)]
    input: Option<PathBuf>,
    /// What to do with input lines that are not valid orders: fail or skip.
    #[arg(long, default_value = "fail")]
    on_bad_record: BadRecordPolicy,
    /// Rows per table in the report.
    #[arg(long, default_value_t = 5)]
    top: usize,
}

/// Revenue (cents), orders and units of one product in one minute.
type Revenue = WindowResult<String, (i64, u64, i64)>;

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = JobConfig::new("ecommerce-revenue");
    if let Some(w) = args.workers {
        config = config.workers(w);
    }
    let workers = config.worker_count();
    let generator = OrderGenerator::default();
    let per_partition = args.events.div_ceil(u64::from(generator.partitions));
    let described = match &args.input {
        Some(path) => format!("orders from {}", path.display()),
        None => format!(
            "{} generated orders ({} partitions, up to {} s out of order, seed {})",
            group(per_partition * u64::from(generator.partitions)),
            generator.partitions,
            generator.max_disorder_ms / 1000,
            generator.seed
        ),
    };
    println!("Sluice e-commerce job: revenue per product per 1-minute event-time window");
    println!("  input:   {described}");
    println!("  workers: {workers}, watermark: max event time per partition - 5 s\n");

    let results = CollectSink::<Revenue>::new();
    let sink = results.clone();
    let (input, policy) = (args.input.clone(), args.on_bad_record);
    let job = Job::new(config, move |b| {
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
            .with_timestamps(|o: &Order| o.ts)
            .with_idleness(Duration::from_secs(10));
        let orders = match &input {
            Some(path) => b.source(
                "orders",
                JsonLinesSource::<Order>::new(path.clone()).on_bad_record(policy),
                strategy,
            ),
            None => {
                let generator = generator.clone();
                let source = GeneratorSource::new(generator.partitions, Some(per_partition), move |p, i| {
                    generator.order(p.0, i)
                });
                b.source("orders", source, strategy)
            }
        };
        orders
            .key_by("by_product", |o| o.product_id.clone())
            .window("product_revenue_1m", Windows::tumbling(Duration::from_secs(60)))
            .aggregate((
                Sum::of(|o: &Order| o.revenue_cents()),
                Count,
                Sum::of(|o: &Order| o.quantity),
            ))
            .sink("revenue", sink.clone());
        Ok(())
    })?;

    let started = Instant::now();
    let report = job.run().context("the job failed")?;
    let elapsed = started.elapsed();
    let rows = results.take();
    let orders = report.metrics.total("orders", "records_out");
    println!(
        "Processed {} orders in {:.2} s ({:.2} M orders/s): {} window results, {} late orders, {} bad records skipped\n",
        group(orders),
        elapsed.as_secs_f64(),
        orders as f64 / elapsed.as_secs_f64() / 1e6,
        group(rows.len() as u64),
        report.metrics.total("product_revenue_1m", "late_records"),
        report.metrics.total("orders", "bad_records_skipped"),
    );
    print_report(&rows, args.top);
    Ok(())
}

fn print_report(rows: &[Revenue], top: usize) {
    let Some(last_start) = rows.iter().map(|r| r.window.start).max() else {
        println!("No complete windows.");
        return;
    };
    // The last window is usually cut short by the end of input; report the one before.
    let complete = rows
        .iter()
        .map(|r| r.window.start)
        .filter(|s| *s < last_start)
        .max()
        .unwrap_or(last_start);
    let mut in_minute: Vec<&Revenue> = rows.iter().filter(|r| r.window.start == complete).collect();
    in_minute.sort_by(|a, b| b.value.0.cmp(&a.value.0).then(a.key.cmp(&b.key)));
    println!("Top products in the minute starting {}:", utc(complete));
    print_table(in_minute.iter().take(top).map(|r| (r.key.as_str(), r.value)));

    let mut totals: HashMap<&str, (i64, u64, i64)> = HashMap::new();
    for r in rows {
        let t = totals.entry(r.key.as_str()).or_default();
        t.0 += r.value.0;
        t.1 += r.value.1;
        t.2 += r.value.2;
    }
    let mut overall: Vec<(&str, (i64, u64, i64))> = totals.into_iter().collect();
    overall.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let first = rows.iter().map(|r| r.window.start).min().unwrap_or(complete);
    println!(
        "\nTop products from {} to {}:",
        utc(first),
        utc(last_start + 60_000)
    );
    print_table(overall.iter().take(top).copied());

    let mut per_minute: HashMap<i64, i64> = HashMap::new();
    for r in rows {
        *per_minute.entry(r.window.start).or_default() += r.value.0;
    }
    if let Some((start, revenue)) = per_minute.iter().max_by_key(|(s, r)| (**r, -**s)) {
        println!(
            "\nBusiest minute: {} with {} in revenue",
            utc(*start),
            dollars(*revenue)
        );
    }
}

fn print_table<'a>(rows: impl Iterator<Item = (&'a str, (i64, u64, i64))>) {
    println!(
        "  {:<10} {:>14} {:>8} {:>8}",
        "product", "revenue", "orders", "units"
    );
    for (product, (revenue, orders, units)) in rows {
        println!(
            "  {product:<10} {:>14} {:>8} {:>8}",
            dollars(revenue),
            group(orders),
            group(units as u64)
        );
    }
}

fn dollars(cents: i64) -> String {
    format!("${}.{:02}", group((cents / 100) as u64), cents % 100)
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` for epoch milliseconds (civil-from-days, proleptic Gregorian).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
