//! Where Kafka partitions start after a restore, and what reaches the consumer group, on a real
//! Kafka broker (`SLUICE_KAFKA_BROKERS`; `scripts/test.sh` starts one).

mod common;

use std::time::{Duration, Instant};

use common::kafka::{brokers, produce_to_partitions, unique};
use common::{Event, TempDir, wait_for};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice::engine::{CheckpointConfig, PartitionId, SourcePosition};
use sluice::kafka::{KafkaConfig, KafkaSource, StartFrom, ensure_topic};
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness};

/// Creates `topic` with `partitions` partitions on the broker; returns the broker's address.
fn create_topic(topic: &str, partitions: i32) -> String {
    let brokers = brokers();
    ensure_topic(&KafkaConfig::new(&brokers), topic, partitions).expect("topic");
    brokers
}

fn event(i: i64) -> Vec<u8> {
    serde_json::to_vec(&Event::new("k", i, i)).expect("json")
}

/// Values read by the job, in the order they arrived.
fn job(dir: &TempDir, source: KafkaSource<Event>, workers: usize) -> (JobHarness, CaptureSink<Event>) {
    let out = CaptureSink::new();
    let sink = out.clone();
    let config = JobConfig::new("offsets")
        .workers(workers)
        .checkpoints(CheckpointConfig::new(dir.0.join("checkpoints")));
    let h = JobHarness::new(config, move |b| {
        b.source(
            "events",
            source.clone(),
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    (h, out)
}

fn wait_assigned(h: &JobHarness, partitions: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let assigned = h
            .metrics()
            .map_or(0, |m| m.gauge_sum("events", "assigned_partitions"));
        if assigned >= partitions as i64 {
            return;
        }
        assert!(Instant::now() < deadline, "partitions never assigned");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn a_partition_that_delivered_nothing_before_a_checkpoint_restarts_where_it_was() {
    let topic = unique("quiet-partition");
    let brokers = create_topic(&topic, 2);
    let dir = TempDir::new("quiet-partition");
    let source = KafkaSource::<Event>::json(KafkaConfig::new(&brokers), unique("g"), &[topic.as_str()])
        .start_from(StartFrom::Latest);
    let (mut h, out) = job(&dir, source, 1);
    h.start().expect("starts");
    wait_assigned(&h, 2);
    // Only partition 0 delivers before the checkpoint.
    produce_to_partitions(
        &brokers,
        &topic,
        &(0..10).map(|i| (0, event(i))).collect::<Vec<_>>(),
    );
    wait_for(&out, 10);
    h.checkpoint().expect("checkpoint");
    h.crash().expect("crash");
    // While the job is down, both partitions receive records.
    produce_to_partitions(
        &brokers,
        &topic,
        &(10..20).map(|i| ((i % 2) as i32, event(i))).collect::<Vec<_>>(),
    );
    h.restart(1).expect("restarts");
    wait_for(&out, 20);
    std::thread::sleep(Duration::from_millis(300));
    let mut values: Vec<i64> = out.values().iter().map(|e| e.value).collect();
    values.sort();
    assert_eq!(
        values,
        (0..20).collect::<Vec<_>>(),
        "partition 1 skipped what arrived while down"
    );
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn a_restored_offset_wins_over_start_at() {
    let topic = unique("start-at");
    let brokers = create_topic(&topic, 1);
    let dir = TempDir::new("start-at");
    produce_to_partitions(
        &brokers,
        &topic,
        &(0..10).map(|i| (0, event(i))).collect::<Vec<_>>(),
    );
    let start = SourcePosition::of_offsets([(PartitionId(0), 2)]);
    let source = KafkaSource::<Event>::json(KafkaConfig::new(&brokers), unique("g"), &[topic.as_str()])
        .start_at(start);
    let (mut h, out) = job(&dir, source, 1);
    h.start().expect("starts");
    wait_for(&out, 8);
    h.checkpoint().expect("checkpoint");
    h.crash().expect("crash");
    produce_to_partitions(
        &brokers,
        &topic,
        &(10..15).map(|i| (0, event(i))).collect::<Vec<_>>(),
    );
    h.restart(1).expect("restarts");
    wait_for(&out, 13);
    std::thread::sleep(Duration::from_millis(300));
    let values: Vec<i64> = out.values().iter().map(|e| e.value).collect();
    assert_eq!(
        values,
        (2..15).collect::<Vec<_>>(),
        "the restore must continue at offset 10"
    );
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn more_workers_than_partitions_close_windows_while_the_topic_is_open() {
    let topic = unique("spare-workers");
    let brokers = create_topic(&topic, 2);
    let counts = CaptureSink::<WindowResult<String, u64>>::new();
    let (config, group, sink) = (KafkaConfig::new(&brokers), unique("g"), counts.clone());
    let t = topic.clone();
    let mut h = JobHarness::new(JobConfig::new("spare-workers").workers(4), move |b| {
        let source = KafkaSource::<Event>::json(config.clone(), group.clone(), &[t.as_str()]);
        b.source(
            "events",
            source,
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .key_by("by_key", |e| e.key.clone())
        .window("counts", Windows::tumbling(Duration::from_secs(1)))
        .aggregate(Count)
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    produce_to_partitions(
        &brokers,
        &topic,
        &(0..20)
            .map(|i| ((i % 2) as i32, event(i / 2 * 1_000)))
            .collect::<Vec<_>>(),
    );
    // Both partitions reach 9 000 ms: windows [0, 9 s) close although the topic stays open.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counts.len() < 9 {
        assert!(
            Instant::now() < deadline,
            "only {} windows closed: readers without partitions hold event time back",
            counts.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.crash().expect("stops");
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn a_rebalance_commits_nothing_a_checkpoint_does_not_cover() {
    let topic = unique("handover");
    let brokers = create_topic(&topic, 2);
    let group = unique("g");
    produce_to_partitions(
        &brokers,
        &topic,
        &(0..20).map(|i| ((i % 2) as i32, event(i))).collect::<Vec<_>>(),
    );
    let out = CaptureSink::<Event>::new();
    // Members notice a rebalance at their next heartbeat.
    let config = KafkaConfig::new(&brokers)
        .set("heartbeat.interval.ms", "100")
        .set("session.timeout.ms", "6000");
    let (g, t, sink) = (group.clone(), topic.clone(), out.clone());
    // No checkpoints: nothing the job reads is covered by one.
    let mut h = JobHarness::new(JobConfig::new("handover").workers(1), move |b| {
        let source = KafkaSource::<Event>::json(config.clone(), g.clone(), &[t.as_str()])
            .start_from(StartFrom::Earliest)
            .group_assignment();
        b.source(
            "events",
            source,
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    wait_for(&out, 20);
    // Another member joins the group: the job's reader gives a partition up.
    let other: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("heartbeat.interval.ms", "100")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    other.subscribe(&[topic.as_str()]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while other.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "the rebalance never happened");
        other.poll(Duration::from_millis(50));
    }
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(&topic, 0);
    partitions.add_partition(&topic, 1);
    let committed = other
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("committed offsets");
    for e in committed.elements() {
        assert!(
            matches!(e.offset(), Offset::Invalid),
            "partition {} has a committed offset {:?} that no checkpoint covers",
            e.partition(),
            e.offset()
        );
    }
    drop(other);
    h.crash().expect("stops");
}
