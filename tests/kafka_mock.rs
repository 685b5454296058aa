//! Kafka source and sink against librdkafka's in-process mock cluster: windowed results,
//! poison-record policies, the sink, and group membership under backpressure.

mod common;

use std::time::Duration;

use common::kafka::{order_fixtures, produce, read_topic, unique};
use common::kafka_jobs::{expected_revenue, revenue_from_kafka};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use sluice::engine::EngineError;
use sluice::kafka::{JsonRecord, KafkaConfig, KafkaSink, KafkaSource};
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator};

fn cluster(topics: &[(&str, i32)]) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    for (topic, partitions) in topics {
        mock.create_topic(topic, *partitions, 1).expect("topic");
    }
    mock
}

fn orders(n: u64) -> Vec<Order> {
    let generator = OrderGenerator {
        products: 30,
        orders_per_second: 20,
        ..OrderGenerator::default()
    };
    (0..n).map(|i| generator.nth(i)).collect()
}

#[test]
fn windowed_job_over_kafka_matches_batch_and_skips_poison() {
    let topic = unique("orders");
    let mock = cluster(&[(&topic, 4)]);
    let brokers = mock.bootstrap_servers();
    let orders = orders(2_000);
    produce(
        &brokers,
        &topic,
        &order_fixtures(&orders, &[(10, "not json"), (1_500, "{\"order_id\":1}")]),
    );
    for workers in [1, 2] {
        let group = unique("revenue");
        let (rows, report) = revenue_from_kafka(
            KafkaConfig::new(&brokers),
            &topic,
            &group,
            OnBadRecord::Skip,
            workers,
        )
        .expect("job runs");
        assert_eq!(rows, expected_revenue(&orders), "workers = {workers}");
        assert_eq!(report.metrics.total("orders", "bad_records_skipped"), 2);
        assert_eq!(report.metrics.total("orders", "records_out"), 2_000);
    }
}

#[test]
fn poison_record_fails_with_topic_partition_and_offset() {
    let topic = unique("poison");
    let mock = cluster(&[(&topic, 1)]);
    let brokers = mock.bootstrap_servers();
    produce(&brokers, &topic, &order_fixtures(&orders(50), &[(20, "{broken")]));
    let err = revenue_from_kafka(
        KafkaConfig::new(&brokers),
        &topic,
        &unique("g"),
        OnBadRecord::Fail,
        1,
    )
    .expect_err("poison must fail the job");
    match &err {
        EngineError::BadRecord {
            source_name,
            location,
            reason,
        } => {
            assert_eq!(source_name, "orders");
            assert_eq!(location, &format!("topic {topic} partition 0 offset 20"));
            assert!(reason.contains("invalid JSON"), "{reason}");
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn poison_records_go_to_the_dead_letter_topic_with_their_origin() {
    let topic = unique("orders-dl");
    let dlq = format!("{topic}-dlq");
    let mock = cluster(&[(&topic, 2), (&dlq, 1)]);
    let brokers = mock.bootstrap_servers();
    let orders = orders(400);
    produce(
        &brokers,
        &topic,
        &order_fixtures(&orders, &[(5, "garbage-1"), (200, "garbage-2")]),
    );
    let (rows, report) = revenue_from_kafka(
        KafkaConfig::new(&brokers),
        &topic,
        &unique("g"),
        OnBadRecord::DeadLetter(dlq.clone()),
        2,
    )
    .expect("job runs");
    assert_eq!(rows, expected_revenue(&orders));
    assert_eq!(report.metrics.total("orders", "dead_lettered"), 2);
    let mut dead = read_topic(&brokers, &dlq, 2, Duration::from_secs(20));
    dead.sort_by(|a, b| a.payload.cmp(&b.payload));
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].payload, b"garbage-1");
    assert_eq!(dead[1].payload, b"garbage-2");
    for d in &dead {
        let header = |k: &str| d.headers.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(header("sluice.topic"), Some(topic.clone()));
        assert!(
            header("sluice.error").is_some_and(|e| e.contains("invalid JSON")),
            "{:?}",
            d.headers
        );
        assert!(header("sluice.partition").is_some() && header("sluice.offset").is_some());
    }
}

#[test]
fn kafka_sink_writes_every_record() {
    let topic = unique("sink");
    let mock = cluster(&[(&topic, 3)]);
    let brokers = mock.bootstrap_servers();
    let config = KafkaConfig::new(&brokers);
    let out_topic = topic.clone();
    let job = Job::new(JobConfig::new("to-kafka").workers(2), move |b| {
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
    .expect("valid job");
    job.run().expect("runs");
    let written = read_topic(&brokers, &topic, 1_000, Duration::from_secs(20));
    let mut values: Vec<u64> = written
        .iter()
        .map(|r| {
            serde_json::from_slice::<(String, u64)>(&r.payload)
                .expect("json")
                .1
        })
        .collect();
    values.sort();
    assert_eq!(values, (0..1_000).collect::<Vec<_>>());
}

/// Worker 1's sink needs far longer than `max.poll.interval.ms` (6 s, the smallest the mock
/// cluster's group coordinator handles well) for its share, so worker 0's source is blocked
/// on the exchange for longer than that; it keeps polling its consumer (paused), so the group
/// never evicts it and nothing is read twice. Eviction timing is librdkafka's own, so the mock
/// cluster shows it as a real broker would.
#[test]
fn slow_downstream_does_not_get_the_consumer_evicted() {
    let topic = unique("slow");
    let mock = cluster(&[(&topic, 2)]);
    let brokers = mock.bootstrap_servers();
    let orders = orders(400);
    produce(&brokers, &topic, &order_fixtures(&orders, &[]));
    common::kafka_jobs::assert_not_evicted_under_backpressure(&brokers, &topic, 400);
}

/// With `exit_when_idle`, a source whose topic stays empty while another source of the job is
/// being read does not end: it reads what arrives later, and the job ends once both are quiet.
#[test]
fn a_quiet_source_waits_for_the_rest_of_the_job() {
    let (busy, quiet) = (unique("busy"), unique("quiet"));
    let mock = cluster(&[(&busy, 1), (&quiet, 1)]);
    let brokers = mock.bootstrap_servers();
    let orders = orders(60);
    let (busy_out, quiet_out) = (CollectSink::new(), CollectSink::new());
    let (busy_sink, quiet_sink) = (busy_out.clone(), quiet_out.clone());
    let (busy_topic, quiet_topic, config) = (busy.clone(), quiet.clone(), KafkaConfig::new(&brokers));
    let (busy_group, quiet_group) = (unique("busy"), unique("quiet"));
    let job = Job::new(JobConfig::new("quiet-source").workers(2), move |b| {
        for (name, topic, group, sink) in [
            ("busy", &busy_topic, &busy_group, &busy_sink),
            ("quiet", &quiet_topic, &quiet_group, &quiet_sink),
        ] {
            let source = KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()])
                .exit_when_idle(Duration::from_secs(1));
            b.source(
                name,
                source,
                WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO).with_timestamps(|o: &Order| o.ts),
            )
            .map(&format!("{name}_id"), |o| o.order_id)
            .sink(&format!("{name}_out"), sink.clone());
        }
        Ok(())
    })
    .expect("valid job");
    let handle = job.start().expect("job starts");
    // The busy topic gets a record every 200 ms for 4 s; the quiet one only after 3 s, long
    // after it would have ended on its own.
    let fixtures = order_fixtures(&orders, &[]);
    for (i, record) in fixtures.iter().take(20).enumerate() {
        std::thread::sleep(Duration::from_millis(200));
        produce(&brokers, &busy, std::slice::from_ref(record));
        if i == 15 {
            produce(&brokers, &quiet, &fixtures[20..]);
        }
    }
    let report = handle.join().expect("job runs");
    assert!(!report.stopped);
    assert_eq!(busy_out.take().len(), 20);
    assert_eq!(quiet_out.take().len(), 40, "the quiet source read what came late");
}
