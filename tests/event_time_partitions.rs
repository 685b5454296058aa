//! How partitions drive event time: workers without partitions, partitions that stop being
//! read (backpressure), partitions that are caught up and quiet. Every scenario runs on the
//! test harness with a manual clock, so nothing depends on timing.

mod common;

use std::time::Duration;

use common::Event;
use sluice::prelude::*;
use sluice::state::{KeyGroup, KeyGroupRange};
use sluice::testing::{CaptureSink, JobHarness, TestInput};

type Counts = CaptureSink<WindowResult<String, u64>>;

/// Events per key counted in `window_ms` tumbling windows, with a bound of `bound_ms`.
fn counting_job(
    name: &str,
    workers: usize,
    input: &TestInput<Event>,
    counts: &Counts,
    window_ms: u64,
    bound_ms: u64,
    idleness: Option<Duration>,
) -> JobHarness {
    let (source, sink) = (input.source(), counts.clone());
    JobHarness::new(JobConfig::new(name).workers(workers), move |b| {
        let mut strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(bound_ms))
            .with_timestamps(|e: &Event| e.ts);
        if let Some(idle) = idleness {
            strategy = strategy.with_idleness(idle);
        }
        b.source("events", source.clone(), strategy)
            .key_by("by_key", |e| e.key.clone())
            .window("counts", Windows::tumbling(Duration::from_millis(window_ms)))
            .aggregate(Count)
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job")
}

fn metric(h: &JobHarness, operator: &str, name: &str) -> u64 {
    h.metrics().map_or(0, |m| m.total(operator, name))
}

#[test]
fn more_workers_than_partitions_still_close_windows() {
    // Two partitions, four workers: two readers own no partition and must not hold event
    // time back.
    let input = TestInput::new(2);
    let counts = Counts::new();
    let mut h = counting_job("spare-workers", 4, &input, &counts, 1_000, 0, None);
    h.start().expect("starts");
    for p in 0..2 {
        for i in 0..10 {
            input.push(p, Event::new(&format!("k{p}"), i * 1_000, 1));
        }
    }
    h.settle().expect("settles");
    // Both partitions stand at 9 000: the nine windows before it are final, per key.
    let closed: Vec<(String, i64)> = counts
        .values()
        .into_iter()
        .map(|w| (w.key, w.window.start))
        .collect();
    assert_eq!(
        closed.len(),
        18,
        "windows closed while the input was open: {closed:?}"
    );
    input.end_all();
    h.finish().expect("ends");
    assert_eq!(counts.len(), 20);
}

/// A key whose key group belongs to `worker` of `workers`.
fn key_on(worker: usize, workers: usize) -> u64 {
    (0..)
        .find(|k: &u64| KeyGroupRange::worker_for(KeyGroup::of(k, 128), workers, 128) == worker)
        .expect("some key lands on every worker")
}

#[test]
fn a_partition_that_is_not_read_does_not_go_idle() {
    // Worker 0 reads partitions 0 and 2 (partition 1 is empty and ended, so worker 1 reads
    // nothing). Every record also goes to a sink on worker 1, which stalls: worker 0 then
    // cannot hand on records and stops reading its partitions for longer than the idle
    // timeout, while partition 2 receives records. Nobody saw partition 2 caught up
    // meanwhile, so it may not go idle: when the sink recovers, its records must not be late
    // because partition 0 is read further first.
    let input = TestInput::new(3);
    input.end(1);
    let counts = Counts::new();
    let stalled = CaptureSink::<u64>::new();
    let (source, sink, raw) = (input.source(), counts.clone(), stalled.clone());
    let to_worker_1 = key_on(1, 2);
    let config = JobConfig::new("not-read-is-not-idle")
        .workers(2)
        .batch_size(16)
        .channel_capacity(1);
    let mut h = JobHarness::new(config, move |b| {
        let strategy = WatermarkStrategy::monotonous()
            .with_timestamps(|e: &Event| e.ts)
            .with_idleness(Duration::from_secs(5));
        let events = b.source("events", source.clone(), strategy);
        events
            .key_by("by_key", |e| e.key.clone())
            .window("counts", Windows::tumbling(Duration::from_millis(100)))
            .aggregate(Count)
            .sink("out", sink.clone());
        events
            .key_by("to_worker_1", move |_| to_worker_1)
            .records()
            .map("ts", |r| r.value.ts as u64)
            .sink("stalled", raw.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    for p in [0, 2] {
        for i in 0..10 {
            input.push(p, Event::new(&format!("k{p}"), i * 100, 1));
        }
    }
    h.settle().expect("settles");
    stalled.block();
    for i in 10..400 {
        input.push(0, Event::new("k0", i * 100, 1));
    }
    // Worker 0 reads partition 0 until it is stuck behind the stalled sink; partition 2 was
    // caught up before, and its next records arrive only now.
    let mut read = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        read = metric(&h, "events", "records_out");
    }
    assert!(
        read < 420,
        "the stalled sink did not hold the source back ({read} read)"
    );
    // Partition 2 moves faster through event time: whichever partition a reader that takes
    // "not read" for "idle" reads first after the stall, the other one's records fall behind.
    for i in 1..=390 {
        input.push(2, Event::new("k2", i * 1_000, 1));
    }
    // Processing time passes, tick by tick, while worker 0 cannot read.
    for _ in 0..30 {
        h.clock().advance(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    stalled.unblock();
    input.end_all();
    let report = h.finish().expect("ends");
    assert_eq!(
        report.metrics.total("counts", "late_records"),
        0,
        "on-time records were dropped as late"
    );
    let total: u64 = counts.values().iter().map(|w| w.value).sum();
    assert_eq!(total, 800, "every record is counted in its window");
}

/// Partition 1 has two records and then nothing; partition 0 gets one record per second of
/// processing time. Returns the job with the inputs still open, and how many windows closed
/// after 11 s.
fn quiet_partition(
    workers: usize,
    idleness: Option<Duration>,
) -> (JobHarness, TestInput<Event>, Counts, usize) {
    let input = TestInput::new(2);
    let counts = Counts::new();
    let mut h = counting_job("quiet-partition", workers, &input, &counts, 1_000, 0, idleness);
    h.start().expect("starts");
    input.push(1, Event::new("quiet", 0, 1));
    input.push(1, Event::new("quiet", 500, 1));
    for i in 0..10 {
        input.push(0, Event::new("busy", i * 1_000, 1));
        h.advance(Duration::from_secs(1)).expect("advances");
        assert!(
            counts.is_empty(),
            "partition 1 at 500 holds every window back until it is idle"
        );
    }
    input.push(0, Event::new("busy", 10_000, 1));
    h.advance(Duration::from_secs(1)).expect("advances");
    let closed = counts.len();
    (h, input, counts, closed)
}

#[test]
fn a_caught_up_partition_goes_idle_after_the_timeout_of_processing_time() {
    for workers in [1, 2] {
        let (mut h, input, counts, closed) = quiet_partition(workers, Some(Duration::from_secs(10)));
        // Windows [0, 10 s) of "busy" and [0, 1 s) of "quiet".
        assert_eq!(
            closed, 11,
            "workers = {workers}: partition 1 went idle after 10 s caught up"
        );
        assert!(metric(&h, "events", "idle_partitions") >= 1);
        // A record of the idle partition makes it active again and it holds the watermark.
        input.push(1, Event::new("quiet", 10_500, 1));
        h.settle().expect("settles");
        input.push(0, Event::new("busy", 12_000, 1));
        h.advance(Duration::from_secs(1)).expect("advances");
        assert_eq!(
            counts.len(),
            11,
            "workers = {workers}: partition 1 at 10 500 holds window [10 s, 11 s) back"
        );
        input.end_all();
        h.finish().expect("ends");
    }
}

#[test]
fn without_idleness_a_quiet_partition_holds_windows_back() {
    let (mut h, input, counts, closed) = quiet_partition(2, None);
    assert_eq!(
        closed, 0,
        "windows closed although partition 1 held the watermark at 500"
    );
    assert_eq!(metric(&h, "events", "idle_partitions"), 0);
    input.end_all();
    h.finish().expect("ends");
    assert_eq!(
        counts.len(),
        12,
        "every window is emitted at the end of the input"
    );
}

#[test]
fn when_the_partition_holding_the_minimum_goes_idle_last_the_windows_still_close() {
    for workers in [1, 2] {
        let input = TestInput::new(2);
        let counts = Counts::new();
        let idle = Duration::from_secs(1);
        let mut h = counting_job("idle-last", workers, &input, &counts, 1_000, 0, Some(idle));
        h.start().expect("starts");
        for i in 0..10 {
            input.push(0, Event::new("busy", i * 1_000, 1));
        }
        h.advance(Duration::from_millis(600)).expect("advances");
        // Partition 1 delivers late and far behind: it holds the minimum, at 500.
        input.push(1, Event::new("quiet", 500, 1));
        h.settle().expect("settles");
        // Partition 0 (at 9 000) goes idle first; partition 1 still holds every window back.
        h.advance(Duration::from_millis(600)).expect("advances");
        assert!(
            counts.is_empty(),
            "workers = {workers}: partition 1 at 500 holds the windows back"
        );
        // Then partition 1 goes idle too: nothing will move the minimum any more, so the
        // watermark moves to the largest of the idle partitions' (9 000).
        h.advance(Duration::from_millis(600)).expect("advances");
        let closed: Vec<(String, i64)> = counts
            .values()
            .into_iter()
            .map(|w| (w.key, w.window.start))
            .collect();
        assert_eq!(
            closed.len(),
            10,
            "workers = {workers}: windows [0, 9 s) of busy and [0, 1 s) of quiet: {closed:?}"
        );
        input.end_all();
        h.finish().expect("ends");
        assert_eq!(counts.len(), 11);
    }
}

/// Orders one day behind the rest in the second half of partition 0, which a single reader
/// reads before partitions 1–3 deliver anything (as a broker that serves one partition at a
/// time makes it). Returns (late records, records beyond their partition's bound, windows of
/// the day-old records).
fn day_old_records(
    strategy: impl Fn(WatermarkStrategy<Event>) -> WatermarkStrategy<Event> + Send + Sync + 'static,
) -> (u64, u64, usize) {
    const DAY: i64 = 86_400_000;
    let input = TestInput::new(4);
    let counts = Counts::new();
    let (source, sink) = (input.source(), counts.clone());
    let mut h = JobHarness::new(JobConfig::new("day-old").workers(1), move |b| {
        let base = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
            .with_timestamps(|e: &Event| e.ts);
        b.source("events", source.clone(), strategy(base))
            .key_by("by_key", |e| e.key.clone())
            .window("counts", Windows::tumbling(Duration::from_secs(60)))
            .aggregate(Count)
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    let start = 2 * DAY;
    for i in 0..100 {
        input.push(0, Event::new("now", start + i * 1_000, 1));
    }
    h.settle().expect("settles");
    // Processing time passes while partitions 1–3 have not delivered.
    h.advance(Duration::from_secs(10)).expect("advances");
    for i in 100..200 {
        input.push(0, Event::new("now", start + i * 1_000, 1));
        if i % 10 == 0 {
            input.push(0, Event::new("day-old", start - DAY + i * 1_000, 1));
        }
    }
    h.settle().expect("settles");
    for p in 1..4 {
        for i in 0..200 {
            input.push(p, Event::new("now", start + i * 1_000, 1));
        }
    }
    input.end_all();
    let report = h.finish().expect("ends");
    let day_old = counts.values().iter().filter(|w| w.key == "day-old").count();
    (
        report.metrics.total("counts", "late_records"),
        report.metrics.total("events", "records_beyond_bound"),
        day_old,
    )
}

#[test]
fn a_partition_that_has_not_delivered_holds_the_watermark_at_its_minimum() {
    // The per-partition semantics (as in Flink): until partitions 1–3 deliver, the watermark
    // stays at its minimum, so the day-old records are on time. They are counted as beyond
    // their partition's bound.
    let (late, beyond, windows) = day_old_records(|s| s);
    assert_eq!(late, 0);
    assert_eq!(beyond, 10);
    // The ten day-old records, 10 s apart from 100 s into their day, fill three minutes.
    assert_eq!(windows, 3, "the day-old records were on time");
}

#[test]
fn initial_idleness_bounds_the_wait_for_partitions_that_have_not_delivered() {
    // The price: what partitions 1–3 deliver later is behind partition 0, and late too.
    let (late, beyond, windows) = day_old_records(|s| s.with_initial_idleness(Duration::from_secs(5)));
    assert_eq!((beyond, windows), (10, 0), "the day-old records are late");
    assert!(
        late > 10,
        "partitions 1-3 came after partition 0 had moved on: {late} late"
    );
}

#[test]
fn watermark_alignment_keeps_a_partition_from_running_ahead_of_the_others() {
    // Partition 0 is paused while the others have not delivered; once they have, it is read
    // in step with them and its day-old records are late.
    let (late, beyond, windows) = day_old_records(|s| s.with_alignment(Duration::from_secs(30)));
    assert_eq!(
        (late, beyond, windows),
        (10, 10, 0),
        "the day-old records are late"
    );
}

#[test]
fn a_record_that_does_not_move_the_watermark_reaches_the_sink_after_the_poll_that_read_it() {
    let input = TestInput::<u64>::new(1);
    let out = CaptureSink::<u64>::new();
    let (source, sink) = (input.source(), out.clone());
    let mut h = JobHarness::new(JobConfig::new("pass-through").workers(1), move |b| {
        // Processing time stands still on the harness's clock: only the first record moves
        // the watermark.
        b.source("numbers", source.clone(), WatermarkStrategy::processing_time())
            .map("double", |v: u64| v * 2)
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("start");
    input.push(0, 1);
    h.settle().expect("settle");
    assert_eq!(out.values(), vec![2]);
    input.push(0, 2);
    h.settle().expect("settle");
    assert_eq!(out.values(), vec![2, 4], "handed on with no watermark behind it");
    input.end_all();
    h.finish().expect("finish");
    assert_eq!(out.values(), vec![2, 4]);
}
