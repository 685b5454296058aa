//! The same windowed jobs with 1, 2 and 4 workers, over disordered input with late records,
//! merging sessions and idle partitions, against a batch computation of the same windows. The
//! late records are late by construction (far behind, after every partition delivered), so
//! the expectation never comes from what the engine found late.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Event, Rows, batch_fixed, batch_sessions};
use proptest::prelude::*;
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness, TestInput};

const START: i64 = 1_764_115_200_000;
const BOUND: i64 = 1_000;
const MAX_JITTER: i64 = 800;
const CHUNK: usize = 8;
const GAP: i64 = 400;

#[derive(Debug, Clone)]
struct Case {
    partitions: Vec<Vec<Event>>,
    injected_late: usize,
    windows: Windows,
    lateness: i64,
}

fn case() -> impl Strategy<Value = Case> {
    let partition = (
        prop::collection::vec((0u8..6, 0..=MAX_JITTER, -50i64..50), 20..120),
        1i64..40,
    );
    (
        prop::collection::vec(partition, 1..4),
        prop::collection::vec((0usize..4, 0usize..100), 0..4),
        prop::collection::vec((0usize..4, 0usize..100), 1..3),
        prop_oneof![
            (1i64..4).prop_map(|k| Windows::Tumbling { size: k * 250 }),
            Just(Windows::Sliding {
                size: 1_000,
                slide: 250
            }),
            // Slices of gcd(size, slide) = 200 ms, five to a window.
            Just(Windows::Sliding {
                size: 1_000,
                slide: 400
            }),
            Just(Windows::Session { gap: GAP }),
        ],
        prop_oneof![Just(0i64), Just(300i64)],
    )
        .prop_map(|(parts, lates, bridges, windows, lateness)| {
            let mut partitions: Vec<Vec<Event>> = parts
                .iter()
                .map(|(events, step)| {
                    events
                        .iter()
                        .enumerate()
                        .map(|(i, (k, jitter, v))| {
                            Event::new(&format!("k{k}"), START + i as i64 * step - jitter, *v)
                        })
                        .collect()
                })
                .collect();
            let n = partitions.len();
            // Bridges: a key's two sessions, then a record between them that merges them.
            for (b, (p, at)) in bridges.iter().enumerate() {
                let part = &mut partitions[p % n];
                let at = at % part.len();
                let base = START + at as i64 * parts[p % n].1;
                let key = format!("bridge-{b}");
                let triple = [base - 500, base + 100, base - 200].map(|ts| Event::new(&key, ts, 1));
                for (j, e) in triple.into_iter().enumerate() {
                    part.insert(at + j, e);
                }
            }
            // Late records: far behind everything, after every partition has delivered.
            let mut injected_late = 0;
            for (j, (p, at)) in lates.iter().enumerate() {
                let part = &mut partitions[p % n];
                let first = FIRST_PART;
                if part.len() > first {
                    let at = first + at % (part.len() - first);
                    part.insert(
                        at,
                        Event::new(&format!("late-{j}"), START - 100_000 + j as i64, 7),
                    );
                    injected_late += 1;
                }
            }
            Case {
                partitions,
                injected_late,
                windows,
                lateness,
            }
        })
}

struct Outcome {
    rows: Rows,
    late: Vec<Event>,
    late_counted: u64,
    merges: u64,
    idle: u64,
}

/// Entries before this position of each partition come before any late record.
const FIRST_PART: usize = 3 * CHUNK;

fn run(case: &Case, workers: usize) -> Outcome {
    let input = TestInput::new(case.partitions.len());
    let results = CaptureSink::new();
    let late = CaptureSink::new();
    let (source, r, l) = (input.source(), results.clone(), late.clone());
    let (windows, lateness) = (case.windows, case.lateness);
    let config = JobConfig::new("windows-property").workers(workers).batch_size(16);
    let mut h = JobHarness::new(config, move |b| {
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(BOUND as u64))
            .with_timestamps(|e: &Event| e.ts)
            .with_idleness(Duration::from_millis(20));
        let (rows, late) = b
            .source("events", source.clone(), strategy)
            .key_by("by_key", |e| e.key.clone())
            .window("agg", windows)
            .allowed_lateness(Duration::from_millis(lateness as u64))
            .aggregate_with_late((Count, Sum::of(|e: &Event| e.value)));
        rows.sink("rows", r.clone());
        late.sink("late", l.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    // Every partition delivers before any late record comes, so the watermark has passed the
    // late records' windows whatever the interleaving of the workers.
    for (p, events) in case.partitions.iter().enumerate() {
        for e in events.iter().take(FIRST_PART) {
            input.push(p, e.clone());
        }
    }
    h.settle().expect("settles");
    for (p, events) in case.partitions.iter().enumerate() {
        for e in events.iter().skip(FIRST_PART) {
            input.push(p, e.clone());
        }
    }
    h.settle().expect("settles");
    // Every partition is caught up: they go idle once the idle timeout has passed.
    h.advance(Duration::from_millis(100)).expect("advances");
    input.end_all();
    let report = h.finish().expect("job runs");
    let rows = results
        .values()
        .into_iter()
        .map(|w| ((w.key, w.window.start, w.window.end), w.value))
        .collect::<Vec<_>>();
    let n = rows.len();
    let rows: Rows = rows.into_iter().collect();
    assert_eq!(rows.len(), n, "a window was emitted twice");
    Outcome {
        rows,
        late: late.values(),
        late_counted: report.metrics.total("agg", "late_records"),
        merges: report.metrics.total("agg", "session_merges"),
        idle: report.metrics.total("events", "idle_partitions"),
    }
}

fn batch(case: &Case, on_time: &[Event]) -> Rows {
    match case.windows {
        Windows::Tumbling { size } => batch_fixed(on_time, size, size),
        Windows::Sliding { size, slide } => batch_fixed(on_time, size, slide),
        Windows::Session { gap } => batch_sessions(on_time, gap),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn windows_match_batch_with_any_worker_count(case in case()) {
        let all: Vec<Event> = case.partitions.iter().flatten().cloned().collect();
        // Late by construction: far behind every partition, after all of them delivered.
        let made_late: BTreeSet<&Event> = all.iter().filter(|e| e.key.starts_with("late-")).collect();
        let on_time: Vec<Event> = all.iter().filter(|e| !made_late.contains(e)).cloned().collect();
        let expected = batch(&case, &on_time);
        for workers in [1usize, 2, 4] {
            let out = run(&case, workers);
            let late: BTreeSet<&Event> = out.late.iter().collect();
            prop_assert_eq!(&late, &made_late, "workers = {}", workers);
            prop_assert_eq!(out.late_counted, case.injected_late as u64);
            prop_assert_eq!(&out.rows, &expected, "workers = {}", workers);
            // The interesting cases really happened.
            prop_assert!(out.idle > 0, "no partition went idle");
            if matches!(case.windows, Windows::Session { .. }) {
                prop_assert!(out.merges > 0, "no sessions merged");
            }
        }
    }
}
