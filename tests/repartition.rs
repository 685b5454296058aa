//! Re-keying through a repartition topic on a real Kafka broker (`SLUICE_KAFKA_BROKERS`;
//! `scripts/test.sh` starts one): event time crosses the topic in band, and what a restored
//! job writes to it again is read once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::kafka::{brokers, produce_to_partitions, unique};
use common::{Event, Rows, TempDir, batch_fixed};
use sluice::engine::{CheckpointConfig, JobMetrics};
use sluice::kafka::{KafkaConfig, KafkaSource, Located, Repartition, StartFrom, ensure_topic};
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness};

const PARTITIONS: i32 = 4;
const EVENTS: i64 = 4_000;
const WINDOW_MS: i64 = 60_000;

/// Event `i`: partition `i mod 4`, one of 7 keys. Partition 0's event time runs half an hour
/// behind the others', so a reader of the repartition topic that took its watermark from the
/// records it sees (mostly the other partitions') would find partition 0's records late.
fn event(i: i64) -> (i32, Event) {
    let partition = (i % i64::from(PARTITIONS)) as i32;
    let base = if partition == 0 { 0 } else { 1_800_000 };
    let ts = base + (i / i64::from(PARTITIONS)) * 100;
    (partition, Event::new(&format!("k{}", i % 7), ts, i))
}

fn produce(brokers: &str, topic: &str, range: std::ops::Range<i64>) {
    let records: Vec<(i32, Vec<u8>)> = range
        .map(event)
        .map(|(p, e)| (p, serde_json::to_vec(&e).expect("json")))
        .collect();
    produce_to_partitions(brokers, topic, &records);
}

fn wait_until(what: &str, metrics: &JobMetrics, operator: &str, counter: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.total(operator, counter) < at_least {
        assert!(
            Instant::now() < deadline,
            "{what}: {operator} {counter} stayed at {} (< {at_least})",
            metrics.total(operator, counter)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn re_keyed_windows_equal_the_batch_result_across_a_crash_that_writes_twice() {
    let brokers = brokers();
    let config = KafkaConfig::new(&brokers);
    let input = unique("repartition-in");
    ensure_topic(&config, &input, PARTITIONS).expect("input topic");
    let repartition = Repartition::new(
        config.clone(),
        Repartition::topic_name(&unique("rekey"), "by_key"),
        3,
        &[input.as_str()],
    )
    .exit_when_idle(Duration::from_secs(3));
    let group = unique("g");
    let out = CaptureSink::<WindowResult<String, (u64, i64)>>::new();
    let dir = TempDir::new("repartition");
    let (sink, topic) = (out.clone(), input.clone());
    let job_config = JobConfig::new("rekey")
        .workers(2)
        .checkpoints(CheckpointConfig::new(dir.0.join("checkpoints")));
    let mut h = JobHarness::new(job_config, move |b| {
        let source = KafkaSource::<Event>::json(config.clone(), group.clone(), &[topic.as_str()])
            .start_from(StartFrom::Earliest)
            .exit_when_idle(Duration::from_secs(3))
            .located();
        let events = b.source(
            "events",
            source,
            WatermarkStrategy::monotonous().with_timestamps(|e: &Located<Event>| e.value.ts),
        );
        repartition
            .through(b, "by_key", &events, |e: &Event| e.key.clone())
            .key_by("keys", |e| e.key.clone())
            .window("counts", Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)))
            .aggregate((Count, Sum::of(|e: &Event| e.value)))
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job")
    .settle_timeout(Duration::from_secs(5));

    // Run 1: a checkpoint after the first half, then the second half is written to the
    // repartition topic and read from it, then a crash.
    produce(&brokers, &input, 0..EVENTS / 2);
    h.start().expect("starts");
    let run1 = h.metrics().expect("running").clone();
    wait_until("first half", &run1, "by_key_write", "records_in", (EVENTS / 2) as u64);
    h.checkpoint().expect("checkpoint");
    produce(&brokers, &input, EVENTS / 2..EVENTS);
    wait_until("second half", &run1, "by_key_read", "records_out", EVENTS as u64);
    h.crash().expect("crash");

    // Run 2 reads the second half again from the input and writes it again: the reader
    // applies each record once.
    h.restart(2).expect("restarts");
    let run2 = h.metrics().expect("running").clone();
    h.finish().expect("ends when idle");
    assert_eq!(
        run2.total("by_key_read", "duplicates_dropped"),
        (EVENTS / 2) as u64,
        "every record the restored job wrote again is dropped once"
    );
    assert_eq!(run2.total("counts", "late_records"), 0, "no record is late");

    // Results of windows emitted twice (before the crash and after the restore) are upserts.
    let mut rows = Rows::new();
    for r in out.values() {
        rows.insert((r.key.clone(), r.window.start, r.window.end), r.value);
    }
    let events: Vec<Event> = (0..EVENTS).map(|i| event(i).1).collect();
    let expected = batch_fixed(&events, WINDOW_MS, WINDOW_MS);
    let differ: BTreeMap<_, _> = expected
        .iter()
        .filter(|(k, v)| rows.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), (*v, rows.get(k).copied())))
        .take(5)
        .collect();
    assert!(differ.is_empty(), "windows differ from the batch result: {differ:?}");
    assert_eq!(rows.len(), expected.len(), "no window beyond the batch result's");
}
