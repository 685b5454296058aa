//! The windowed Kafka job the Kafka tests run, and the batch computation it must match.
#![allow(dead_code)]

use std::time::Duration;

use sluice::engine::{BoxError, JobReport, Result};
use sluice::kafka::{KafkaConfig, KafkaSource};
use sluice::prelude::*;
use sluice_cli::datagen::Order;

use super::{Event, batch_fixed};

/// `(product, window start, revenue)` rows.
pub type RevenueRow = (String, i64, i64);

/// Revenue per product per minute read from `topic`, until the topic is idle for 2 s.
pub fn revenue_from_kafka(
    config: KafkaConfig,
    topic: &str,
    group: &str,
    on_bad_record: OnBadRecord<String>,
    workers: usize,
) -> Result<(Vec<RevenueRow>, JobReport)> {
    let out = CollectSink::new();
    let sink = out.clone();
    let (topic, group) = (topic.to_string(), group.to_string());
    let job = Job::new(JobConfig::new("kafka-revenue").workers(workers), move |b| {
        let source = KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()])
            .on_bad_record(on_bad_record.clone())
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

/// A sink that takes `delay` per record on worker 1 and no time elsewhere, so worker 0's
/// source spends long stretches blocked on the exchange to worker 1.
struct SlowOnWorker1(Duration);

impl Sink<Order> for SlowOnWorker1 {
    fn write(&mut self, _: Order, _: Timestamp) -> std::result::Result<(), BoxError> {
        std::thread::sleep(self.0);
        Ok(())
    }
}

impl SinkFactory<Order> for SlowOnWorker1 {
    fn create(&self, worker: usize, _: usize) -> std::result::Result<Box<dyn Sink<Order>>, BoxError> {
        let delay = if worker == 1 { self.0 } else { Duration::ZERO };
        Ok(Box::new(SlowOnWorker1(delay)))
    }
}

/// Reads `expected` orders from `topic` with 2 workers in a consumer group (group
/// assignment), a 6 s `max.poll.interval.ms` and a sink that makes worker 0 wait on worker 1
/// for longer than that; checks that no consumer was evicted and every order arrived exactly
/// once.
pub fn assert_not_evicted_under_backpressure(brokers: &str, topic: &str, expected: u64) {
    let config = KafkaConfig::new(brokers)
        .set("max.poll.interval.ms", "6000")
        .set("session.timeout.ms", "6000");
    let (topic, group) = (topic.to_string(), super::kafka::unique("slow-group"));
    let job = Job::new(
        JobConfig::new("slow")
            .workers(2)
            .channel_capacity(4)
            .batch_size(64),
        move |b| {
            b.source(
                "orders",
                KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()])
                    .group_assignment()
                    .exit_when_idle(Duration::from_secs(3)),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                    .with_timestamps(|o: &Order| o.ts),
            )
            .key_by("by_product", |o| o.product_id.clone())
            .records()
            .map("order", |r| r.value)
            .sink("slow", SlowOnWorker1(Duration::from_millis(50)));
            Ok(())
        },
    )
    .expect("valid job");
    let report = job.run().expect("runs");
    assert_eq!(
        report.metrics.total("slow", "records_in"),
        expected,
        "every order exactly once"
    );
    assert_eq!(
        report.metrics.total("orders", "max_poll_exceeded"),
        0,
        "a consumer was evicted"
    );
}
