//! End-to-end Kafka tests against a real Apache Kafka broker (started by `scripts/test.sh`, or
//! any Kafka cluster): set `SLUICE_KAFKA_BROKERS`. The broker-restart test starts a broker of
//! its own through `scripts/services.sh`, in a state directory of its own, so it can stop and
//! start it mid-run.
//!
//! They are ignored by plain `cargo test` and fail loudly when run without a broker.

mod common;

use std::time::{Duration, Instant};

use common::kafka::{brokers, order_fixtures, orders, produce, read_topic, unique};
use common::kafka_jobs::{expected_revenue, revenue_from_kafka};
use common::services::OwnService;
use sluice::engine::EngineError;
use sluice::kafka::{KafkaConfig, KafkaSource, ensure_topic};
use sluice::prelude::*;
use sluice_cli::datagen::Order;

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
        revenue_from_kafka(config, &topic, &unique("e2e"), OnBadRecord::Skip, 2).expect("job runs");
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

    let err = revenue_from_kafka(config.clone(), &topic, &unique("fail"), OnBadRecord::Fail, 1)
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
        OnBadRecord::DeadLetter(dlq.clone()),
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

#[test]
#[ignore = "starts a Kafka broker of its own: needs Java (scripts/test.sh installs it)"]
fn broker_restart_mid_run_loses_and_duplicates_nothing() {
    let broker = OwnService::start("kafka").expect("a broker of the test's own");
    let brokers = broker.addr.clone();
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
            panic!(
                "the job ended early: {:?}",
                handle.join().map(|r| r.metrics.snapshot())
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job made no progress: {:?}",
            handle.metrics().snapshot()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.stop().expect("stop the broker");
    let at_stop = handle.metrics().total("slow", "records_in");
    assert!(
        at_stop < 3_000,
        "the restart came after the input was read ({at_stop} orders)"
    );
    broker.restart().expect("restart the broker");
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

#[test]
#[ignore = "needs a Kafka broker: SLUICE_KAFKA_BROKERS (scripts/test.sh starts one)"]
fn slow_downstream_does_not_get_a_group_member_evicted_on_a_real_broker() {
    let brokers = brokers();
    let topic = unique("slow");
    ensure_topic(&KafkaConfig::new(&brokers), &topic, 2).expect("topic");
    let orders = orders(400);
    produce(&brokers, &topic, &order_fixtures(&orders, &[]));
    common::kafka_jobs::assert_not_evicted_under_backpressure(&brokers, &topic, 400);
}

#[test]
#[ignore = "needs a Kafka broker: SLUICE_KAFKA_BROKERS (scripts/test.sh starts one)"]
fn a_group_member_joining_and_leaving_mid_run_loses_and_repeats_nothing() {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let brokers = brokers();
    let topic = unique("rebalance");
    // Members notice a rebalance at their next heartbeat.
    let config = KafkaConfig::new(&brokers)
        .set("heartbeat.interval.ms", "200")
        .set("session.timeout.ms", "6000");
    ensure_topic(&config, &topic, 4).expect("topic");
    let orders = orders(3_000);
    produce(&brokers, &topic, &order_fixtures(&orders, &[]));
    let group = unique("rebalance-group");
    let out = CollectSink::new();
    let (t, g, sink) = (topic.clone(), group.clone(), out.clone());
    let job = Job::new(JobConfig::new("rebalance").workers(2), move |b| {
        b.source(
            "orders",
            KafkaSource::<Order>::json(config.clone(), g.clone(), &[t.as_str()])
                .group_assignment()
                .exit_when_idle(Duration::from_secs(10)),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        )
        .map("slow", |o: Order| {
            std::thread::sleep(Duration::from_millis(2));
            o.order_id
        })
        .sink("ids", sink.clone());
        Ok(())
    })
    .expect("valid job");
    let handle = job.start().expect("starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while handle.metrics().total("slow", "records_in") < 500 {
        assert!(
            Instant::now() < deadline && !handle.is_finished(),
            "the job made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another member joins the group, takes partitions for a while (reading some records,
    // committing nothing), and leaves: the job's readers give partitions up and get them back.
    let other: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("heartbeat.interval.ms", "200")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    other.subscribe(&[topic.as_str()]).expect("subscribe");
    while other.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "the member never got partitions");
        other.poll(Duration::from_millis(50));
    }
    let revoked = handle.metrics().total("orders", "partitions_revoked");
    assert!(revoked > 0, "the job gave no partition up");
    for _ in 0..20 {
        other.poll(Duration::from_millis(50));
    }
    other.unsubscribe();
    drop(other);
    let report = handle.join().expect("the job runs through both rebalances");
    let mut ids = out.take();
    let read = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), read, "orders were read twice");
    let mut expected: Vec<String> = orders.iter().map(|o| o.order_id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected, "orders were lost");
    assert!(report.metrics.total("orders", "partitions_revoked") >= revoked);
}

#[test]
#[ignore = "needs a Kafka broker: SLUICE_KAFKA_BROKERS (scripts/test.sh starts one)"]
fn the_kafka_sink_writes_every_record_with_its_key() {
    use sluice::kafka::{JsonRecord, KafkaSink};

    let brokers = brokers();
    let topic = unique("sink");
    let config = KafkaConfig::new(&brokers);
    ensure_topic(&config, &topic, 3).expect("topic");
    let out_topic = topic.clone();
    Job::new(JobConfig::new("to-kafka").workers(2), move |b| {
        b.source(
            "numbers",
            GeneratorSource::new(4, Some(250), |p, i| {
                (format!("k{}", i % 7), i * 4 + u64::from(p.0))
            }),
            WatermarkStrategy::processing_time(),
        )
        .sink(
            "kafka",
            KafkaSink::new(
                config.clone(),
                out_topic.clone(),
                JsonRecord::keyed_by(|r: &(String, u64)| Some(r.0.clone())),
            ),
        );
        Ok(())
    })
    .expect("valid job")
    .run()
    .expect("runs");
    let written = read_topic(&brokers, &topic, 1_000, Duration::from_secs(30));
    let mut values: Vec<u64> = written
        .iter()
        .map(|r| {
            let (key, value) = serde_json::from_slice::<(String, u64)>(&r.payload).expect("json");
            assert_eq!(
                r.key.as_deref(),
                Some(key.as_str()),
                "each record keyed by its key"
            );
            value
        })
        .collect();
    values.sort();
    assert_eq!(values, (0..1_000).collect::<Vec<_>>());
}
