//! End-to-end Kafka tests against a real Apache Kafka broker (started by `scripts/test.sh`, or
//! any Kafka cluster): set `SLUICE_KAFKA_BROKERS`. The broker-restart test starts a broker of
//! its own through `scripts/services.sh`, in a state directory of its own, so it can stop and
//! start it mid-run.
//!
//! They are ignored by plain `cargo test` and fail loudly when run without a broker.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::kafka::{brokers, order_fixtures, orders, produce, read_topic, unique};
use common::kafka_jobs::{expected_revenue, revenue_from_kafka};
use sluice::datagen::Order;
use sluice::engine::EngineError;
use sluice::operators::kafka::{KafkaConfig, KafkaSource, PoisonPolicy, ensure_topic};
use sluice::prelude::*;

#[test]
#[ignore = "needs a Kafka broker: SLUICE_KAFKA_BROKERS (scripts/test.sh starts one)"]
fn windowed_job_on_a_real_broker_matches_batch() {
    let brokers = brokers();
    let config = KafkaConfig::new(&brokers);
    let topic = unique("e2e-orders");
    ensure_topic(&config, &topic, 4).expect("topic");
    let orders = orders(5_000);
    produce(
        &brokers,
        &topic,
        &order_fixtures(&orders, &[(100, "{oops"), (4_000, "[]")]),
    );
    let (rows, report) =
        revenue_from_kafka(config, &topic, &unique("e2e"), PoisonPolicy::Skip, 2).expect("job runs");
    assert_eq!(rows, expected_revenue(&orders));
    assert_eq!(report.metrics.total("orders", "records_out"), 5_000);
    assert_eq!(report.metrics.total("orders", "bad_records_skipped"), 2);
}

#[test]
#[ignore = "needs a Kafka broker: SLUICE_KAFKA_BROKERS (scripts/test.sh starts one)"]
fn poison_policies_on_a_real_broker() {
    let brokers = brokers();
    let config = KafkaConfig::new(&brokers);
    let topic = unique("e2e-poison");
    ensure_topic(&config, &topic, 2).expect("topic");
    let orders = orders(400);
    produce(
        &brokers,
        &topic,
        &order_fixtures(&orders, &[(50, "poison-a"), (300, "poison-b")]),
    );

    let err = revenue_from_kafka(config.clone(), &topic, &unique("fail"), PoisonPolicy::Fail, 1)
        .expect_err("poison must fail the job");
    assert!(
        matches!(&err, EngineError::BadRecord { location, .. } if location.starts_with(&format!("topic {topic} partition "))),
        "{err}"
    );

    // The dead-letter topic does not exist yet: the source creates it.
    let dlq = format!("{topic}-dlq");
    let (rows, report) = revenue_from_kafka(
        config,
        &topic,
        &unique("dlq"),
        PoisonPolicy::DeadLetter { topic: dlq.clone() },
        2,
    )
    .expect("job runs");
    assert_eq!(rows, expected_revenue(&orders));
    assert_eq!(report.metrics.total("orders", "dead_lettered"), 2);
    let mut dead: Vec<Vec<u8>> = read_topic(&brokers, &dlq, 2, Duration::from_secs(30))
        .into_iter()
        .map(|r| r.payload)
        .collect();
    dead.sort();
    assert_eq!(dead, vec![b"poison-a".to_vec(), b"poison-b".to_vec()]);
}

/// A Kafka broker of the test's own, started and stopped with `scripts/services.sh` in a
/// state directory of its own; its data and ports survive a stop.
struct OwnBroker {
    dir: std::path::PathBuf,
    brokers: String,
}

impl OwnBroker {
    fn services(dir: &std::path::Path, command: &str) -> String {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh");
        let out = Command::new(script)
            .args([command, "kafka"])
            .env("SLUICE_SERVICES_DIR", dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/services.sh");
        assert!(out.status.success(), "scripts/services.sh {command} kafka failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start(dir: &std::path::Path) -> Self {
        let printed = Self::services(dir, "start");
        let brokers = printed
            .lines()
            .find_map(|l| l.strip_prefix("export SLUICE_KAFKA_BROKERS="))
            .expect("the script prints the broker address")
            .to_string();
        OwnBroker {
            dir: dir.to_path_buf(),
            brokers,
        }
    }

    fn stop(&self) {
        Self::services(&self.dir, "stop");
    }

    fn restart(&self) {
        let printed = Self::services(&self.dir, "start");
        assert!(printed.contains(&self.brokers), "the broker came back elsewhere: {printed}");
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
#[ignore = "starts a Kafka broker of its own: needs Java (scripts/test.sh installs it)"]
fn broker_restart_mid_run_loses_and_duplicates_nothing() {
    let dir = TempDir::new("kafka-restart");
    let broker = OwnBroker::start(&dir.0);
    let brokers = broker.brokers.clone();
    let config = KafkaConfig::new(&brokers).set("reconnect.backoff.max.ms", "500");
    let topic = unique("restart");
    ensure_topic(&config, &topic, 2).expect("topic");
    let orders = orders(3_000);
    produce(&brokers, &topic, &order_fixtures(&orders, &[]));

    let out = CollectSink::new();
    let handle = slow_revenue_job(config, &topic, out.clone())
        .start()
        .expect("job starts");
    let started = Instant::now();
    while handle.metrics().total("slow", "records_in") < 500 {
        if handle.is_finished() {
            panic!("the job ended early: {:?}", handle.join().map(|r| r.metrics.snapshot()));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job made no progress: {:?}",
            handle.metrics().snapshot()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.stop();
    let at_stop = handle.metrics().total("slow", "records_in");
    assert!(
        at_stop < 3_000,
        "the restart came after the input was read ({at_stop} orders)"
    );
    broker.restart();
    let report = handle.join().expect("the job survives the restart");
    assert_eq!(report.metrics.total("slow", "records_in"), 3_000);
    let mut rows = out.take();
    rows.sort();
    assert_eq!(rows, expected_revenue(&orders));
}

/// Revenue per product per minute, slowed down (1.5 ms per order) and with little prefetch,
/// so the consumers fetch all through the run.
fn slow_revenue_job(
    config: KafkaConfig,
    topic: &str,
    out: CollectSink<common::kafka_jobs::RevenueRow>,
) -> Job {
    let topic = topic.to_string();
    let group = unique("restart-group");
    Job::new(JobConfig::new("restart").workers(2), move |b| {
        let source = KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()])
            .max_queued_kbytes(64)
            // Longer than the broker takes to stop and start again.
            .exit_when_idle(Duration::from_secs(45));
        b.source(
            "orders",
            source,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        )
        .map("slow", |o: Order| {
            std::thread::sleep(Duration::from_micros(1_500));
            o
        })
        .key_by("by_product", |o| o.product_id.clone())
        .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
        .aggregate(Sum::of(|o: &Order| o.revenue_cents()))
        .map("row", |w| (w.key, w.window.start, w.value))
        .sink("out", out.clone());
        Ok(())
    })
    .expect("valid job")
}
