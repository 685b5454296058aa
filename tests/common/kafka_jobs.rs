//! The windowed Kafka job the Kafka tests run, and the batch computation it must match.
#![allow(dead_code)]

use std::time::Duration;

use sluice::datagen::Order;
use sluice::engine::{JobReport, Result};
use sluice::operators::kafka::{KafkaConfig, KafkaSource, PoisonPolicy};
use sluice::prelude::*;

use super::{Event, batch_fixed};

/// `(product, window start, revenue)` rows.
pub type RevenueRow = (String, i64, i64);

/// Revenue per product per minute read from `topic`, until the topic is idle for 2 s.
pub fn revenue_from_kafka(
    config: KafkaConfig,
    topic: &str,
    group: &str,
    poison: PoisonPolicy,
    workers: usize,
) -> Result<(Vec<RevenueRow>, JobReport)> {
    let out = CollectSink::new();
    let sink = out.clone();
    let (topic, group) = (topic.to_string(), group.to_string());
    let job = Job::new(JobConfig::new("kafka-revenue").workers(workers), move |b| {
        let source = KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()])
            .on_poison(poison.clone())
            .exit_when_idle(Duration::from_secs(2));
        b.source(
            "orders",
            source,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        )
        .key_by("by_product", |o| o.product_id.clone())
        .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
        .aggregate(Sum::of(|o: &Order| o.revenue_cents()))
        .map("row", |w| (w.key, w.window.start, w.value))
        .sink("out", sink.clone());
        Ok(())
    })?;
    let report = job.run()?;
    let mut rows = out.take();
    rows.sort();
    Ok((rows, report))
}

/// The same windows computed over all orders at once.
pub fn expected_revenue(orders: &[Order]) -> Vec<RevenueRow> {
    let events: Vec<Event> = orders
        .iter()
        .map(|o| Event::new(&o.product_id, o.ts, o.revenue_cents()))
        .collect();
    batch_fixed(&events, 60_000, 60_000)
        .into_iter()
        .map(|((k, start, _), (_, sum))| (k, start, sum))
        .collect()
}
