//! Generates the job's input into Kafka: orders, twice as many page views, and a few
//! malformed orders, interleaved in event-time order as a shop would emit them.

use std::time::{Duration, Instant};

use sluice_kafka::KafkaConfig;

use super::error::ShopError;
use super::settings::ShopSettings;
use crate::datagen::{OrderGenerator, PageViewGenerator};
use crate::producer::JsonProducer;

/// Page views per order.
pub const VIEWS_PER_ORDER: u64 = 2;

/// Malformed orders produced per run (spread evenly over the orders).
pub const MALFORMED_ORDERS: u64 = 10;

/// The generated data set: 100 orders per second of event time (1,000,000 orders span about
/// 2 h 47 min, so the 100,000 users come back in several sessions) and twice as many views.
#[derive(Debug, Clone)]
pub struct ShopData {
    /// The orders.
    pub orders: OrderGenerator,
    /// The page views.
    pub views: PageViewGenerator,
}

impl Default for ShopData {
    fn default() -> Self {
        let orders = OrderGenerator {
            orders_per_second: 100,
            ..OrderGenerator::default()
        };
        let views = PageViewGenerator {
            views_per_second: VIEWS_PER_ORDER * orders.orders_per_second,
            ..PageViewGenerator::default()
        };
        ShopData { orders, views }
    }
}

impl ShopData {
    /// Whether order slot `i` of `events` is followed by a malformed record, and which one.
    pub fn malformed_after(&self, i: u64, events: u64) -> Option<&'static [u8]> {
        let every = (events / MALFORMED_ORDERS).max(1);
        if events < MALFORMED_ORDERS || i % every != every / 2 || i / every >= MALFORMED_ORDERS {
            return None;
        }
        const BAD: [&[u8]; 3] = [
            b"not json at all",
            b"{\"order_id\":\"o-bad\",\"ts\":\"yesterday\"}",
            b"{\"order_id\":\"o-cut\",\"user_id\":\"u-1\",\"product_id\":",
        ];
        Some(BAD[(i / every) as usize % BAD.len()])
    }
}

/// What [`produce`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Produced {
    /// Orders.
    pub orders: u64,
    /// Page views.
    pub views: u64,
    /// Malformed order records.
    pub malformed: u64,
}

impl Produced {
    /// All records.
    pub fn total(&self) -> u64 {
        self.orders + self.views + self.malformed
    }
}

/// What to produce where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceSpec {
    /// Topic of the orders.
    pub orders_topic: String,
    /// Topic of the page views.
    pub page_views_topic: String,
    /// Partitions of topics created for it.
    pub partitions: i32,
    /// Orders to produce.
    pub events: u64,
    /// Orders per second of wall-clock time; `None` = as fast as the brokers take them.
    pub orders_per_second: Option<u64>,
}

impl ProduceSpec {
    /// What the e-commerce job's settings ask for: `events` orders as fast as possible.
    pub fn from_settings(settings: &ShopSettings) -> Self {
        ProduceSpec {
            orders_topic: settings.orders_topic.clone(),
            page_views_topic: settings.page_views_topic.clone(),
            partitions: settings.partitions,
            events: settings.events,
            orders_per_second: None,
        }
    }
}

/// Produces `spec.events` orders (keyed by product), twice as many page views (keyed by
/// user) and [`MALFORMED_ORDERS`] malformed orders, calling `progress` with the records
/// produced so far, and waits until the brokers acknowledged every one.
pub fn produce(
    kafka: &KafkaConfig,
    spec: &ProduceSpec,
    data: &ShopData,
    mut progress: impl FnMut(u64),
) -> Result<Produced, ShopError> {
    let mut producer = JsonProducer::new(kafka)?;
    let mut done = Produced::default();
    let started = Instant::now();
    for i in 0..spec.events {
        if let Some(rate) = spec.orders_per_second.filter(|r| *r > 0 && i % 64 == 0) {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let order = data.orders.nth(i);
        producer.send(&spec.orders_topic, &order.product_id, &order, Some(order.ts))?;
        done.orders += 1;
        for v in 0..VIEWS_PER_ORDER {
            let view = data.views.nth(i * VIEWS_PER_ORDER + v);
            producer.send(&spec.page_views_topic, &view.user_id, &view, Some(view.ts))?;
            done.views += 1;
        }
        if let Some(bad) = data.malformed_after(i, spec.events) {
            producer.send_raw(&spec.orders_topic, &order.product_id, bad, None)?;
            done.malformed += 1;
        }
        if i % 4096 == 0 {
            progress(done.total());
        }
    }
    producer.flush(Duration::from_secs(60))?;
    progress(done.total());
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_malformed_orders_spread_over_the_input() {
        let data = ShopData::default();
        for events in [10, 1_000, 20_000, 1_000_000, 1_000_003] {
            let bad = (0..events)
                .filter(|i| data.malformed_after(*i, events).is_some())
                .count();
            assert_eq!(bad, 10, "events = {events}");
        }
        assert_eq!(
            (0..5).filter(|i| data.malformed_after(*i, 5).is_some()).count(),
            0
        );
    }
}
