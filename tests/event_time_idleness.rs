//! A partition that falls silent stops holding the watermark back once its idle timeout
//! passes, so windows of the other partitions close while it is silent.

mod common;

use std::time::{Duration, Instant};

use common::{Event, ScriptedSource, Step};
use sluice::prelude::*;

/// Partition 0: a few early events, then silence for `silence`. Partition 1: one event per
/// 2 ms of wall time, one second of event time apart, for 300 events.
fn source(silence: Duration) -> ScriptedSource<Event> {
    let quiet = vec![
        Step::Emit(Event::new("a", 0, 1)),
        Step::Emit(Event::new("a", 500, 1)),
        Step::Stall(silence),
    ];
    let mut busy = Vec::new();
    for i in 0..300 {
        busy.push(Step::Emit(Event::new("b", i * 1_000, 1)));
        busy.push(Step::Stall(Duration::from_millis(2)));
    }
    ScriptedSource::new(vec![quiet, busy], 1)
}

/// Runs the job and returns how many window results arrived while partition 0 was silent.
fn results_during_silence(idleness: Option<Duration>, workers: usize) -> (usize, u64) {
    let silence = Duration::from_millis(1_500);
    let out = CollectSink::new();
    let sink = out.clone();
    let config = JobConfig::new("idle")
        .workers(workers)
        .tick_interval(Duration::from_millis(5));
    let job = Job::new(config, move |b| {
        let mut strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100))
            .with_timestamps(|e: &Event| e.ts);
        if let Some(t) = idleness {
            strategy = strategy.with_idleness(t);
        }
        b.source("events", source(silence), strategy)
            .key_by("by_key", |e| e.key.clone())
            .window("per_second", Windows::tumbling(Duration::from_secs(1)))
            .aggregate(Count)
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    let started = Instant::now();
    let handle = job.start().expect("starts");
    std::thread::sleep(silence / 2);
    let during = out.len();
    assert!(
        started.elapsed() < silence,
        "the check ran after the silence ended"
    );
    let report = handle.join().expect("job ends");
    let total = out.len();
    assert_eq!(total, 301, "every window is emitted by the end of input");
    (during, report.metrics.total("events", "idle_partitions"))
}

#[test]
fn idle_partition_does_not_hold_back_windows() {
    for workers in [1, 2] {
        let (during, idle) = results_during_silence(Some(Duration::from_millis(50)), workers);
        assert!(
            during > 10,
            "workers={workers}: only {during} windows closed while partition 0 was idle"
        );
        assert!(idle >= 1, "workers={workers}: idleness was never detected");
    }
}

#[test]
fn without_idleness_a_silent_partition_holds_back_windows() {
    let (during, idle) = results_during_silence(None, 1);
    // Only windows before partition 0's watermark (500 - 100 ms) can close.
    assert_eq!(
        during, 0,
        "windows closed although partition 0 held the watermark"
    );
    assert_eq!(idle, 0);
}
