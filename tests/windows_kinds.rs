//! Tumbling, sliding and session windows, allowed lateness, the late side output and the
//! flush of open windows at the end of input, on small hand-checked inputs.

mod common;

use std::time::Duration;

use common::Event;
use sluice::prelude::*;

type Row = (String, i64, i64, u64, i64);

fn run(events: Vec<Event>, windows: Windows, lateness_ms: u64, workers: usize) -> (Vec<Row>, Vec<Event>) {
    run_with_bound(events, windows, lateness_ms, workers, 100)
}

/// Runs with watermarks `bound_ms` behind the largest timestamp seen.
fn run_with_bound(
    events: Vec<Event>,
    windows: Windows,
    lateness_ms: u64,
    workers: usize,
    bound_ms: u64,
) -> (Vec<Row>, Vec<Event>) {
    let rows = CollectSink::new();
    let late = CollectSink::new();
    let (r, l) = (rows.clone(), late.clone());
    let job = Job::new(JobConfig::new("kinds").workers(workers), move |b| {
        let (results, late) = b
            .source(
                "events",
                MemorySource::new(events.clone()).chunk(1),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(bound_ms))
                    .with_timestamps(|e: &Event| e.ts),
            )
            .key_by("by_key", |e| e.key.clone())
            .window("agg", windows)
            .allowed_lateness(Duration::from_millis(lateness_ms))
            .aggregate_with_late((Count, Sum::of(|e: &Event| e.value)));
        results
            .map("row", |w| {
                (w.key, w.window.start, w.window.end, w.value.0, w.value.1)
            })
            .sink("rows", r.clone());
        late.sink("late", l.clone());
        Ok(())
    })
    .expect("valid job");
    job.run().expect("runs");
    let mut out = rows.take();
    out.sort();
    (out, late.take())
}

fn e(key: &str, ts: i64, value: i64) -> Event {
    Event::new(key, ts, value)
}

fn row(key: &str, start: i64, end: i64, count: u64, sum: i64) -> Row {
    (key.to_string(), start, end, count, sum)
}

#[test]
fn tumbling_windows() {
    let events = vec![
        e("a", 10, 1),
        e("b", 20, 2),
        e("a", 999, 3),
        e("a", 1_000, 4),
        e("a", 2_500, 5),
    ];
    for workers in [1, 3] {
        let (rows, late) = run(
            events.clone(),
            Windows::tumbling(Duration::from_secs(1)),
            0,
            workers,
        );
        assert_eq!(
            rows,
            vec![
                row("a", 0, 1_000, 2, 4),
                row("a", 1_000, 2_000, 1, 4),
                row("a", 2_000, 3_000, 1, 5),
                row("b", 0, 1_000, 1, 2),
            ]
        );
        assert!(late.is_empty());
    }
}

#[test]
fn sliding_windows_count_each_record_in_every_window() {
    let events = vec![e("a", 50, 1), e("a", 120, 10)];
    let (rows, _) = run(
        events,
        Windows::sliding(Duration::from_millis(200), Duration::from_millis(100)),
        0,
        2,
    );
    assert_eq!(
        rows,
        vec![
            row("a", -100, 100, 1, 1),
            row("a", 0, 200, 2, 11),
            row("a", 100, 300, 1, 10),
        ]
    );
}

#[test]
fn sessions_merge_when_a_record_bridges_them() {
    // Two sessions [0, 300) and [500, 800), then 250 arrives (on time with a 1 s bound) and
    // joins them.
    let events = vec![
        e("a", 0, 1),
        e("a", 500, 1),
        e("a", 250, 1),
        e("b", 100, 7),
        e("a", 5_000, 1),
    ];
    let (rows, late) = run_with_bound(events, Windows::session(Duration::from_millis(300)), 0, 2, 1_000);
    assert_eq!(
        rows,
        vec![
            row("a", 0, 800, 3, 3),
            row("a", 5_000, 5_300, 1, 1),
            row("b", 100, 400, 1, 7)
        ]
    );
    assert!(late.is_empty());
}

#[test]
fn late_records_go_to_the_side_output_and_lateness_admits_some() {
    // The watermark trails the largest timestamp by 100 ms. After 1_150 the watermark is
    // 1_050: window [0, 1_000) has closed, so 990 is late; with 200 ms allowed lateness
    // it still counts.
    let events = vec![e("a", 10, 1), e("a", 1_150, 1), e("a", 990, 1), e("a", 1_500, 1)];
    let (rows, late) = run(events.clone(), Windows::tumbling(Duration::from_secs(1)), 0, 1);
    assert_eq!(rows, vec![row("a", 0, 1_000, 1, 1), row("a", 1_000, 2_000, 2, 2)]);
    assert_eq!(late, vec![e("a", 990, 1)]);

    let (rows, late) = run(events, Windows::tumbling(Duration::from_secs(1)), 200, 1);
    assert_eq!(rows, vec![row("a", 0, 1_000, 2, 2), row("a", 1_000, 2_000, 2, 2)]);
    assert!(late.is_empty());
}

#[test]
fn late_records_are_counted_even_without_side_output() {
    let out = CollectSink::new();
    let sink = out.clone();
    let job = Job::new(JobConfig::new("counted").workers(1), move |b| {
        b.source(
            "events",
            MemorySource::new(vec![e("a", 5_000, 1), e("a", 10, 1)]).chunk(1),
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .key_by("k", |e| e.key.clone())
        .window("w", Windows::tumbling(Duration::from_secs(1)))
        .aggregate(Count)
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid");
    let report = job.run().expect("runs");
    assert_eq!(report.metrics.total("w", "late_records"), 1);
    assert_eq!(out.len(), 1);
}

#[test]
fn end_of_input_flushes_open_windows() {
    // The watermark never passes the window end before the input ends.
    let events = vec![e("a", 1_000_000, 1), e("b", 1_000_001, 2)];
    let (rows, _) = run(events, Windows::session(Duration::from_secs(3_600)), 0, 2);
    assert_eq!(
        rows,
        vec![
            row("a", 1_000_000, 4_600_000, 1, 1),
            row("b", 1_000_001, 4_600_001, 1, 2)
        ]
    );
}

#[test]
fn min_max_avg_over_windows() {
    let out = CollectSink::new();
    let sink = out.clone();
    let job = Job::new(JobConfig::new("stats").workers(2), move |b| {
        b.source(
            "events",
            MemorySource::new(vec![e("a", 1, 4), e("a", 2, -2), e("a", 3, 10)]),
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .key_by("k", |e| e.key.clone())
        .window("stats", Windows::tumbling(Duration::from_secs(1)))
        .aggregate((
            Min::of(|e: &Event| e.value),
            Max::of(|e: &Event| e.value),
            Avg::of(|e: &Event| e.value as f64),
        ))
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid");
    job.run().expect("runs");
    let rows = out.take();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, (Some(-2), Some(10), Some(4.0)));
}

#[test]
fn union_takes_the_minimum_watermark() {
    // Stream x runs far ahead; y's record at 500 must not be late, because the union's
    // watermark is the minimum of its inputs.
    let out = CollectSink::new();
    let sink = out.clone();
    let job = Job::new(JobConfig::new("union").workers(1), move |b| {
        let strategy = || WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts);
        let x = b.source(
            "x",
            MemorySource::new(vec![e("k", 100, 1), e("k", 90_000, 1)]),
            strategy(),
        );
        let y = b.source("y", MemorySource::new(vec![e("k", 500, 1)]), strategy());
        x.union("both", &[&y])
            .key_by("k", |e| e.key.clone())
            .window("w", Windows::tumbling(Duration::from_secs(1)))
            .aggregate(Count)
            .map("row", |w| (w.window.start, w.value))
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid");
    job.run().expect("runs");
    let mut rows = out.take();
    rows.sort();
    assert_eq!(rows, vec![(0, 2), (90_000, 1)]);
}
