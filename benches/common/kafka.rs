//! Orders pre-loaded into a Kafka topic, the consumer settings every Kafka benchmark uses, and
//! the raw rdkafka loop they compare against.

use std::time::{Duration, Instant};

use hashbrown::HashMap;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rustc_hash::FxBuildHasher;
use sluice::kafka::{KafkaConfig, ensure_topic};
use sluice_cli::datagen::Order;

/// Creates `topic` with `partitions` partitions and produces `orders` into it as JSON keyed
/// by product, then `marker` (if any) into every partition, e.g. to move every partition's
/// watermark past the orders. Returns the records produced.
pub fn preload(
    brokers: &str,
    topic: &str,
    partitions: i32,
    orders: impl IntoIterator<Item = Order>,
    marker: Option<&Order>,
) -> anyhow::Result<u64> {
    ensure_topic(&KafkaConfig::new(brokers), topic, partitions).map_err(|e| anyhow::anyhow!("{e}"))?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .create()?;
    let started = Instant::now();
    let mut produced = 0u64;
    let mut send = |order: &Order, partition: Option<i32>| -> anyhow::Result<()> {
        let payload = serde_json::to_vec(order)?;
        let mut record = BaseRecord::to(topic).key(&order.product_id).payload(&payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(5));
                    record = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
        produced += 1;
        Ok(())
    };
    for order in orders {
        send(&order, None)?;
    }
    if let Some(marker) = marker {
        for partition in 0..partitions {
            send(marker, Some(partition))?;
        }
    }
    producer.flush(Duration::from_secs(300))?;
    eprintln!(
        "pre-loaded {produced} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(produced)
}

/// A topic of one benchmark run, deleted when dropped: the input should not outlive the run
/// on a broker that does.
pub struct RunTopic {
    brokers: String,
    /// The topic's name.
    pub name: String,
}

impl RunTopic {
    /// A name no other run uses, starting with `prefix`; the topic is created by [`preload`].
    pub fn new(brokers: &str, prefix: &str) -> Self {
        RunTopic {
            brokers: brokers.to_string(),
            name: format!("{prefix}-{}-{}", std::process::id(), sluice::engine::now_millis()),
        }
    }

    fn delete(&self) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in runtime.block_on(admin.delete_topics(&[&self.name], &options))? {
            result.map_err(|(name, code)| anyhow::anyhow!("cannot delete topic {name}: {code}"))?;
        }
        Ok(())
    }
}

impl Drop for RunTopic {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("{e}");
        }
    }
}

/// librdkafka settings of the engine's consumers and the raw loop alike.
pub const CONSUMER_SETTINGS: [(&str, &str); 4] = [
    ("fetch.wait.max.ms", "10"),
    ("fetch.queue.backoff.ms", "10"),
    ("queued.max.messages.kbytes", "16384"),
    ("auto.offset.reset", "earliest"),
];

/// The revenue windows' length.
pub const WINDOW_MS: i64 = 60_000;

/// The raw consumer loop: poll, parse, fold into (product, window) totals on one thread, until
/// `expected` records were read. Returns the records read and the seconds from the first to
/// the last.
pub fn raw_consume_loop(
    brokers: &str,
    topic: &str,
    group: &str,
    expected: u64,
) -> anyhow::Result<(u64, f64)> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (k, v) in CONSUMER_SETTINGS {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    consumer.subscribe(&[topic])?;
    let mut totals: HashMap<(String, i64), (i64, u64), FxBuildHasher> = HashMap::default();
    let mut seen = 0u64;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < expected && (seen % 4096 != 0 || Instant::now() < deadline) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                let order: Order = serde_json::from_slice(m.payload().unwrap_or_default())?;
                let start = order.ts - order.ts.rem_euclid(WINDOW_MS);
                let revenue = order.revenue_cents();
                let t = totals.entry((order.product_id, start)).or_default();
                t.0 += revenue;
                t.1 += 1;
                seen += 1;
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {}
        }
    }
    let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    std::hint::black_box(&totals);
    Ok((seen, seconds))
}
