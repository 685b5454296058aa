//! Conversion attribution and catalogue enrichment: two joins on the e-commerce streams.
//!
//! - **Conversions:** every order joined with the page views of the same user in the 30 minutes
//!   before it (an interval join), summed per order (views before the order, first view).
//! - **Catalogue:** every order enriched with the product catalogue valid at the order's time,
//!   from a changelog of product updates and deletions (a stream-table enrichment).
//!
//! Orders, page views and catalogue changes are generated in memory (deterministic), so it
//! needs nothing but this repository:
//!
//! ```text
//! cargo run --release --example conversions
//! cargo run --release --example conversions -- --events 2000000 --workers 2
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::{Deserialize, Serialize};
use sluice::operators::{JoinInterval, KeyedJoinExt, Lookup};
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator, PageView, PageViewGenerator};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Orders joined with earlier page views and with the product catalogue")]
struct Args {
    /// Orders to generate (page views: five per order).
    #[arg(long, default_value_t = 500_000)]
    events: u64,
    /// Worker threads (default: available cores).
    #[arg(long)]
    workers: Option<usize>,
}

/// A row of the `conversions` table: an order and the views that led to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Conversion {
    order_id: String,
    user_id: String,
    product_id: String,
    order_ts: i64,
    views_before: u64,
    first_view_ts: i64,
}

/// A catalogue entry as the changelog carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    name: String,
    list_price_cents: i64,
}

/// Order id, user, product and time: what a conversion row needs of its order.
type OrderKey = (String, String, String, i64);

const PARTITIONS: u32 = 4;
const PRODUCTS: u64 = 2_000;

/// The catalogue's changelog: every product listed at the start, re-priced now and then, some
/// withdrawn (`None`) for a while.
fn catalogue_change(partition: u32, index: u64, start_ts: i64) -> (String, Option<Product>, i64) {
    let n = index * u64::from(PARTITIONS) + u64::from(partition);
    let product = n % PRODUCTS;
    let round = n / PRODUCTS;
    let ts = start_ts + (round as i64) * 60_000 + (product as i64 % 60) * 1_000 - 60_000;
    let change = if round % 7 == 3 && product % 10 == 0 {
        None
    } else {
        Some(Product {
            name: format!("Product {product}"),
            list_price_cents: 199 + ((product * 37 + round * 11) % 20_000) as i64,
        })
    };
    (format!("p-{product}"), change, ts)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let orders = OrderGenerator {
        products: PRODUCTS,
        partitions: PARTITIONS,
        ..OrderGenerator::default()
    };
    let views = PageViewGenerator {
        products: PRODUCTS,
        partitions: PARTITIONS,
        ..PageViewGenerator::default()
    };
    let per_partition = args.events.div_ceil(u64::from(PARTITIONS));
    let span_minutes = args.events / orders.orders_per_second / 60 + 2;
    let conversions = CollectSink::<Conversion>::new();
    let enriched = CollectSink::<(String, Option<i64>, i64)>::new();
    let (conv_out, enrich_out) = (conversions.clone(), enriched.clone());
    let mut config = JobConfig::new("conversions");
    if let Some(w) = args.workers {
        config = config.workers(w);
    }
    let start = Instant::now();
    let job = Job::new(config, move |b| {
        let bound = Duration::from_secs(5);
        let (o, v, start_ts) = (orders.clone(), views.clone(), orders.start_ts);
        let order_stream = b
            .source(
                "orders",
                GeneratorSource::new(PARTITIONS, Some(per_partition), move |p, i| o.order(p.0, i)),
                WatermarkStrategy::bounded_out_of_orderness(bound).with_timestamps(|o: &Order| o.ts),
            )
            .key_by("orders_by_user", |o| o.user_id.clone());
        let view_stream = b
            .source(
                "page_views",
                GeneratorSource::new(PARTITIONS, Some(per_partition * 5), move |p, i| v.view(p.0, i)),
                WatermarkStrategy::bounded_out_of_orderness(bound).with_timestamps(|v: &PageView| v.ts),
            )
            .key_by("views_by_user", |v| v.user_id.clone());

        // Conversions: pairs (order, view), then one row per order once its pairs are all in
        // (a 1 ms window at the order's time closes when the watermark passes the order).
        order_stream
            .interval_join(
                "order_views",
                &view_stream,
                JoinInterval::preceding(Duration::from_secs(30 * 60)),
            )
            .apply(|_, o: &Order, v: &PageView| {
                (
                    (o.order_id.clone(), o.user_id.clone(), o.product_id.clone(), o.ts),
                    v.ts,
                )
            })
            .key_by("by_order", |(order, _)| order.clone())
            .window("per_order", Windows::tumbling(Duration::from_millis(1)))
            .aggregate((Count, Min::of(|(_, ts): &(OrderKey, i64)| *ts)))
            .map("conversion", |w| {
                let (order_id, user_id, product_id, order_ts) = w.key;
                Conversion {
                    order_id,
                    user_id,
                    product_id,
                    order_ts,
                    views_before: w.value.0,
                    first_view_ts: w.value.1.unwrap_or(order_ts),
                }
            })
            .sink("conversions", conv_out.clone());

        // Catalogue: each order with the product's list price valid at the order's time.
        let changes = b
            .source(
                "catalogue",
                GeneratorSource::new(
                    PARTITIONS,
                    Some(PRODUCTS * span_minutes / u64::from(PARTITIONS)),
                    move |p, i| catalogue_change(p.0, i, start_ts),
                ),
                WatermarkStrategy::bounded_out_of_orderness(bound)
                    .with_timestamps(|c: &(String, Option<Product>, i64)| c.2),
            )
            .key_by("catalogue_by_product", |c| c.0.clone())
            .map_values("change", |c| c.1);
        b.source(
            "orders_for_catalogue",
            GeneratorSource::new(PARTITIONS, Some(per_partition), {
                let o = orders.clone();
                move |p, i| o.order(p.0, i)
            }),
            WatermarkStrategy::bounded_out_of_orderness(bound).with_timestamps(|o: &Order| o.ts),
        )
        .key_by("orders_by_product", |o| o.product_id.clone())
        .enrich("with_catalogue", &changes, Lookup::AsOfEventTime)
        .apply(|_, o: &Order, p: Option<&Product>| {
            (o.product_id.clone(), p.map(|p| p.list_price_cents), o.price_cents)
        })
        .sink("enriched_orders", enrich_out.clone());
        Ok(())
    })?;
    let report = job.run()?;
    let elapsed = start.elapsed();

    let conversions = conversions.take();
    let enriched = enriched.take();
    let attributed = conversions.len();
    let views_total: u64 = conversions.iter().map(|c| c.views_before).sum();
    let mut by_product: HashMap<&str, u64> = HashMap::new();
    for c in &conversions {
        *by_product.entry(&c.product_id).or_default() += 1;
    }
    let mut top: Vec<_> = by_product.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let withdrawn = enriched.iter().filter(|(_, p, _)| p.is_none()).count();
    let listed: Vec<i64> = enriched.iter().filter_map(|(_, p, _)| *p).collect();
    let avg_list = listed.iter().sum::<i64>() as f64 / listed.len().max(1) as f64 / 100.0;

    println!(
        "{} orders, {} page views in {:.1} s",
        args.events,
        args.events * 5,
        elapsed.as_secs_f64()
    );
    println!(
        "conversions: {attributed} orders had page views of their buyer in the 30 minutes before ({:.1}%), {:.1} views each",
        100.0 * attributed as f64 / args.events.max(1) as f64,
        views_total as f64 / attributed.max(1) as f64
    );
    println!("most attributed products:");
    for (product, n) in top.iter().take(5) {
        println!("  {product:<8} {n:>7} orders");
    }
    println!(
        "catalogue: {} orders enriched, {withdrawn} for products withdrawn at the time, average list price {avg_list:.2}",
        enriched.len()
    );
    println!(
        "late records: {} in the join, {} in the enrichment",
        report.metrics.total("order_views", "late_records"),
        report.metrics.total("with_catalogue", "late_records")
    );
    Ok(())
}
