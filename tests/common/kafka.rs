//! Kafka helpers for tests: producing fixtures and reading topics back.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice_cli::datagen::{Order, OrderGenerator};

/// A record to produce: key, payload.
pub type Fixture = (Option<String>, Vec<u8>);

/// Orders as JSON keyed by product, with `poison` undecodable payloads inserted at the given
/// positions.
pub fn order_fixtures(orders: &[Order], poison: &[(usize, &str)]) -> Vec<Fixture> {
    let mut out = Vec::new();
    for (i, o) in orders.iter().enumerate() {
        for (at, bad) in poison {
            if *at == i {
                out.push((Some(o.product_id.clone()), bad.as_bytes().to_vec()));
            }
        }
        out.push((Some(o.product_id.clone()), serde_json::to_vec(o).expect("json")));
    }
    out
}

/// Produces `records` to `topic` and waits until every one is acknowledged.
pub fn produce(brokers: &str, topic: &str, records: &[Fixture]) {
    produce_batched(brokers, topic, records, 10_000);
}

/// Produces `records` to `topic` in record batches of at most `per_batch` records and waits
/// until every one is acknowledged.
pub fn produce_batched(brokers: &str, topic: &str, records: &[Fixture], per_batch: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", per_batch.to_string())
        .create()
        .expect("producer");
    for (key, payload) in records {
        let mut record = BaseRecord::<String, Vec<u8>>::to(topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        let mut pending = record;
        loop {
            match producer.send(pending) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    pending = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("all records acknowledged");
}

/// Produces each `(partition, payload)` to that partition of `topic` and waits until every one
/// is acknowledged.
pub fn produce_to_partitions(brokers: &str, topic: &str, records: &[(i32, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (partition, payload) in records {
        let mut pending = BaseRecord::<(), Vec<u8>>::to(topic)
            .partition(*partition)
            .payload(payload);
        loop {
            match producer.send(pending) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    pending = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("all records acknowledged");
}

/// A record read back: payload and headers.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Reads every partition of `topic` from the beginning (assigned directly: no group join to
/// wait for) until `expected` records arrived and the reader has reached the end of every
/// partition, so records beyond `expected` (duplicates) are read too; or until `timeout`.
pub fn read_topic(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<ReadBack> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique(&format!("reader-{topic}")))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let started = Instant::now();
    let partitions: Vec<i32> = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("topic metadata");
        let found: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !found.is_empty() || started.elapsed() > timeout {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment
            .add_partition_offset(topic, *p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let at_end = |consumer: &BaseConsumer| {
        let position = consumer.position().expect("position");
        partitions.iter().all(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(5))
                .expect("watermarks");
            match position.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(next)) => next >= high,
                _ => high == 0,
            }
        })
    };
    let mut out = Vec::new();
    while started.elapsed() < timeout {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(ReadBack {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(e)) => eprintln!("reading {topic}: {e}"),
            None if out.len() >= expected && at_end(&consumer) => break,
            None => {}
        }
    }
    out
}

/// A topic name no other test uses.
pub fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{name}-{}-{n}-{}",
        std::process::id(),
        sluice::engine::now_millis()
    )
}

/// The broker the end-to-end tests use.
pub fn brokers() -> String {
    std::env::var("SLUICE_KAFKA_BROKERS")
        .expect("SLUICE_KAFKA_BROKERS must name a Kafka broker (scripts/test.sh starts one)")
}

/// The first `n` orders of the end-to-end tests: 40 products, 25 orders per second.
pub fn orders(n: u64) -> Vec<Order> {
    let generator = OrderGenerator {
        products: 40,
        orders_per_second: 25,
        ..OrderGenerator::default()
    };
    (0..n).map(|i| generator.nth(i)).collect()
}
