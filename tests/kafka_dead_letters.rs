//! Poison records reach the dead-letter topic exactly once across crashes, with the headers
//! that say where they came from, on a real Kafka broker (`SLUICE_KAFKA_BROKERS`; `scripts/test.sh`
//! starts one).

mod common;

use std::time::Duration;

use common::kafka::{brokers, produce_to_partitions, read_topic, unique};
use common::{Event, TempDir, wait_for};
use sluice::engine::CheckpointConfig;
use sluice::kafka::{KafkaConfig, KafkaSource, StartFrom, ensure_topic};
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness};

struct Setup {
    brokers: String,
    topic: String,
    dead_letters: String,
    dir: TempDir,
}

/// Ten events in a one-partition topic, with an undecodable record after the fifth.
fn setup(tag: &str) -> Setup {
    let (topic, dead_letters) = (unique(tag), unique(&format!("{tag}-dlq")));
    let brokers = brokers();
    for t in [&topic, &dead_letters] {
        ensure_topic(&KafkaConfig::new(&brokers), t, 1).expect("topic");
    }
    let mut records: Vec<(i32, Vec<u8>)> = (0..10)
        .map(|i| (0, serde_json::to_vec(&Event::new("k", i, i)).expect("json")))
        .collect();
    records.insert(5, (0, b"not an event".to_vec()));
    produce_to_partitions(&brokers, &topic, &records);
    Setup {
        brokers,
        topic,
        dead_letters,
        dir: TempDir::new(tag),
    }
}

fn job(s: &Setup, config: KafkaConfig, group: &str) -> (JobHarness, CaptureSink<Event>) {
    let out = CaptureSink::new();
    let (topic, dlq, group, sink) = (
        s.topic.clone(),
        s.dead_letters.clone(),
        group.to_string(),
        out.clone(),
    );
    let job_config = JobConfig::new("dead-letters")
        .workers(1)
        .checkpoints(CheckpointConfig::new(s.dir.0.join("checkpoints")));
    let h = JobHarness::new(job_config, move |b| {
        let source = KafkaSource::<Event>::json(config.clone(), group.clone(), &[topic.as_str()])
            .start_from(StartFrom::Earliest)
            .on_bad_record(OnBadRecord::DeadLetter(dlq.clone()));
        b.source(
            "events",
            source,
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    (h, out)
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn a_checkpoint_covers_a_poison_record_only_once_its_dead_letter_is_written() {
    let s = setup("dlq-flush");
    // The dead-letter producer would hold its writes for a minute unless flushed.
    let config = KafkaConfig::new(&s.brokers).set("linger.ms", "60000");
    let (mut h, out) = job(&s, config, &unique("g"));
    h.start().expect("starts");
    wait_for(&out, 10);
    h.checkpoint().expect("checkpoint");
    // A crash right after the checkpoint: the restored job starts after the poison record.
    h.crash().expect("crash");
    h.restart(1).expect("restarts");
    h.settle().expect("settles");
    h.crash().expect("stops");
    let dead = read_topic(&s.brokers, &s.dead_letters, 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "the poison record's dead letter was lost");
    // The record as it was, and where it came from.
    assert_eq!(dead[0].payload, b"not an event");
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", dead[0].headers))
    };
    assert_eq!(header("sluice.topic"), s.topic);
    assert_eq!(header("sluice.partition"), "0");
    assert_eq!(header("sluice.offset"), "5");
    assert!(!header("sluice.error").is_empty());
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn a_replay_does_not_dead_letter_a_record_twice() {
    let s = setup("dlq-replay");
    let group = unique("g");
    let (mut h, out) = job(&s, KafkaConfig::new(&s.brokers), &group);
    h.start().expect("starts");
    wait_for(&out, 10);
    // The dead letter is written; the job crashes before any checkpoint and reads it all again.
    assert_eq!(
        read_topic(&s.brokers, &s.dead_letters, 1, Duration::from_secs(10)).len(),
        1
    );
    h.crash().expect("crash");
    h.restart(1).expect("restarts");
    wait_for(&out, 20);
    h.checkpoint().expect("checkpoint");
    h.crash().expect("stops");
    let dead = read_topic(&s.brokers, &s.dead_letters, 2, Duration::from_secs(5));
    assert_eq!(dead.len(), 1, "the replay wrote the dead letter again");
}
