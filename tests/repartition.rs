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

/// The windows' final results, later emissions of a window replacing earlier ones (as the
/// upserts of a table would), compared with the batch computation over every event.
fn assert_batch_result(out: &CaptureSink<WindowResult<String, (u64, i64)>>) {
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
    assert!(
        differ.is_empty(),
        "windows differ from the batch result: {differ:?}"
    );
    assert_eq!(rows.len(), expected.len(), "no window beyond the batch result's");
}

/// Windows of 60 s per key with count and sum.
fn windows(events: &Stream<Event>, sink: &CaptureSink<WindowResult<String, (u64, i64)>>) {
    events
        .key_by("keys", |e| e.key.clone())
        .window(
            "counts",
            Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)),
        )
        .aggregate((Count, Sum::of(|e: &Event| e.value)))
        .sink("out", sink.clone());
}

/// The input read with locations, from the earliest offset, ending after 3 idle seconds.
fn located_events(
    b: &mut JobBuilder,
    config: &KafkaConfig,
    group: &str,
    topic: &str,
) -> Stream<Located<Event>> {
    let source = KafkaSource::<Event>::json(config.clone(), group, &[topic])
        .start_from(StartFrom::Earliest)
        .exit_when_idle(Duration::from_secs(3))
        .located();
    b.source(
        "events",
        source,
        WatermarkStrategy::monotonous().with_timestamps(|e: &Located<Event>| e.value.ts),
    )
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
        let events = located_events(b, &config, &group, &topic);
        let rekeyed = repartition.through(b, "by_key", &events, |e: &Event| e.key.clone());
        windows(&rekeyed, &sink);
        Ok(())
    })
    .expect("valid job")
    .settle_timeout(Duration::from_secs(5));

    // Run 1: a checkpoint after the first half, then the second half is written to the
    // repartition topic and read from it, then a crash.
    produce(&brokers, &input, 0..EVENTS / 2);
    h.start().expect("starts");
    let run1 = h.metrics().expect("running").clone();
    wait_until(
        "first half",
        &run1,
        "by_key_write",
        "records_in",
        (EVENTS / 2) as u64,
    );
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
    assert_batch_result(&out);
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn a_stage_restored_after_its_reader_drops_what_it_writes_again() {
    let brokers = brokers();
    let config = KafkaConfig::new(&brokers);
    let input = unique("stages-in");
    ensure_topic(&config, &input, PARTITIONS).expect("input topic");
    let repartition = Repartition::new(
        config.clone(),
        Repartition::topic_name(&unique("stages"), "by_key"),
        3,
        &[input.as_str()],
    );

    // Stage 1 reads the input and writes the repartition topic; stage 2 reads it. Each is a
    // job with checkpoints of its own, as two processes would run them. Stage 2 ends when
    // every partition of the input has ended upstream.
    let (dir1, dir2) = (TempDir::new("stage-1"), TempDir::new("stage-2"));
    let (r, topic, group) = (repartition.clone(), input.clone(), unique("g"));
    let mut stage1 = JobHarness::new(
        JobConfig::new("stage-1").checkpoints(CheckpointConfig::new(dir1.0.join("checkpoints"))),
        move |b| {
            located_events(b, &config, &group, &topic)
                .sink("by_key_write", r.writer(|e: &Event| e.key.clone()));
            Ok(())
        },
    )
    .expect("valid job")
    .settle_timeout(Duration::from_secs(5));
    let out = CaptureSink::<WindowResult<String, (u64, i64)>>::new();
    let (r, sink) = (repartition.clone(), out.clone());
    let mut stage2 = JobHarness::new(
        JobConfig::new("stage-2")
            .workers(2)
            .checkpoints(CheckpointConfig::new(dir2.0.join("checkpoints"))),
        move |b| {
            let events = b.source("by_key_read", r.reader::<Event>(), r.watermarks());
            windows(&events, &sink);
            Ok(())
        },
    )
    .expect("valid job")
    .settle_timeout(Duration::from_secs(5));

    // Stage 1 checkpoints after the first half, writes the second, and stops without a
    // checkpoint (its writes acknowledged: a crash could lose the last ones unsent).
    produce(&brokers, &input, 0..EVENTS / 2);
    stage1.start().expect("stage 1 starts");
    let metrics = stage1.metrics().expect("running").clone();
    wait_until(
        "first half",
        &metrics,
        "by_key_write",
        "records_in",
        (EVENTS / 2) as u64,
    );
    stage1.checkpoint().expect("stage 1 checkpoint");
    produce(&brokers, &input, EVENTS / 2..EVENTS);
    wait_until(
        "second half",
        &metrics,
        "by_key_write",
        "records_in",
        EVENTS as u64,
    );
    stage1.stop().expect("stage 1 stops");

    // Stage 2 reads everything and checkpoints: its checkpoint holds what it applied.
    stage2.start().expect("stage 2 starts");
    let metrics = stage2.metrics().expect("running").clone();
    wait_until("all", &metrics, "by_key_read", "records_out", EVENTS as u64);
    stage2.checkpoint().expect("stage 2 checkpoint");
    stage2.crash().expect("stage 2 crash");

    // Stage 1 restored from its older checkpoint writes the second half again; stage 2
    // restored from its newer one must know it applied those records already.
    stage1.restart(1).expect("stage 1 restarts");
    stage1.finish().expect("stage 1 ends when idle");
    stage2.restart(2).expect("stage 2 restarts");
    let metrics = stage2.metrics().expect("running").clone();
    stage2.finish().expect("stage 2 ends with its input");
    assert_eq!(
        metrics.total("by_key_read", "duplicates_dropped"),
        (EVENTS / 2) as u64,
        "the records stage 1 wrote again are dropped by the restored stage 2"
    );
    assert_eq!(metrics.total("counts", "late_records"), 0, "no record is late");
    assert_batch_result(&out);
}
