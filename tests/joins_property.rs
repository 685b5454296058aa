//! Window joins and interval joins with 1, 2 and 4 workers over disordered input (within the
//! watermark bound), against a batch computation of the same join.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Event, ScriptedSource, Step};
use proptest::prelude::*;
use sluice::engine::Data;
use sluice::operators::{JoinInterval, KeyedJoinExt, Lookup};
use sluice::prelude::*;

const START: i64 = 1_764_115_200_000;
const BOUND: i64 = 1_000;
const MAX_JITTER: i64 = 800;
const CHUNK: usize = 8;

#[derive(Debug, Clone)]
struct Case {
    left: Vec<Vec<Event>>,
    right: Vec<Vec<Event>>,
}

/// Partitions of events for keys k0..k4, values unique over the case (`side` tells them apart).
fn side(side: i64) -> impl Strategy<Value = Vec<Vec<Event>>> {
    prop::collection::vec(
        (prop::collection::vec((0u8..5, 0..=MAX_JITTER), 10..80), 5i64..40),
        1..4,
    )
    .prop_map(move |parts| {
        parts
            .iter()
            .enumerate()
            .map(|(p, (events, step))| {
                events
                    .iter()
                    .enumerate()
                    .map(|(i, (k, jitter))| {
                        let value = side * 1_000_000 + p as i64 * 1_000 + i as i64;
                        Event::new(&format!("k{k}"), START + i as i64 * step - jitter, value)
                    })
                    .collect()
            })
            .collect()
    })
}

fn case() -> impl Strategy<Value = Case> {
    (side(1), side(2)).prop_map(|(left, right)| Case { left, right })
}

fn source(partitions: &[Vec<Event>]) -> ScriptedSource<Event> {
    ScriptedSource::new(
        partitions
            .iter()
            .map(|p| p.iter().cloned().map(Step::Emit).collect())
            .collect(),
        CHUNK,
    )
}

/// Runs `join` over both sides keyed by `key` and returns its sorted output.
fn run<O: Data + Ord>(
    case: &Case,
    workers: usize,
    join: impl Fn(&KeyedStream<String, Event>, &KeyedStream<String, Event>) -> Stream<O> + Send + Sync + 'static,
) -> Vec<O> {
    let (left, right) = (source(&case.left), source(&case.right));
    let out = CollectSink::new();
    let sink = out.clone();
    let config = JobConfig::new("joins-property")
        .workers(workers)
        .batch_size(16)
        .tick_interval(Duration::from_millis(5));
    Job::new(config, move |b| {
        let strategy = || {
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(BOUND as u64))
                .with_timestamps(|e: &Event| e.ts)
        };
        let l = b
            .source("left", left.clone(), strategy())
            .key_by("left_by_key", |e| e.key.clone());
        let r = b
            .source("right", right.clone(), strategy())
            .key_by("right_by_key", |e| e.key.clone());
        join(&l, &r).sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job")
    .run()
    .expect("job runs");
    let mut rows = out.take();
    rows.sort();
    rows
}

type Pair = (String, i64, i64);

fn batch_interval(case: &Case, interval: JoinInterval) -> Vec<Pair> {
    let rights: Vec<&Event> = case.right.iter().flatten().collect();
    let mut out = Vec::new();
    for l in case.left.iter().flatten() {
        for r in &rights {
            if r.key == l.key && (l.ts + interval.lower..=l.ts + interval.upper).contains(&r.ts) {
                out.push((l.key.clone(), l.value, r.value));
            }
        }
    }
    out.sort();
    out
}

/// Windows of a key's records: `(start, end) → (lefts, rights)`.
type Groups = BTreeMap<(String, i64, i64), (Vec<i64>, Vec<i64>)>;

fn batch_windows(case: &Case, windows: Windows) -> Groups {
    let tagged = case
        .left
        .iter()
        .flatten()
        .map(|e| (e, true))
        .chain(case.right.iter().flatten().map(|e| (e, false)));
    let mut groups = Groups::new();
    let mut put = |key: &str, start, end, e: &Event, is_left: bool| {
        let g = groups.entry((key.to_string(), start, end)).or_default();
        if is_left {
            g.0.push(e.value)
        } else {
            g.1.push(e.value)
        }
    };
    match windows {
        Windows::Tumbling { size } | Windows::Sliding { size, .. } => {
            let slide = match windows {
                Windows::Sliding { slide, .. } => slide,
                _ => size,
            };
            for (e, is_left) in tagged {
                let mut start = e.ts - e.ts.rem_euclid(slide);
                while start > e.ts - size {
                    put(&e.key, start, start + size, e, is_left);
                    start -= slide;
                }
            }
        }
        Windows::Session { gap } => {
            let mut by_key: BTreeMap<&str, Vec<(&Event, bool)>> = BTreeMap::new();
            for (e, is_left) in tagged {
                by_key.entry(&e.key).or_default().push((e, is_left));
            }
            for (key, mut es) in by_key {
                es.sort_by_key(|(e, _)| e.ts);
                let mut session: Vec<(&Event, bool)> = Vec::new();
                let mut bounds = (0, 0);
                for (e, is_left) in es {
                    if !session.is_empty() && e.ts >= bounds.1 {
                        for (s, l) in session.drain(..) {
                            put(key, bounds.0, bounds.1, s, l);
                        }
                    }
                    bounds = if session.is_empty() {
                        (e.ts, e.ts + gap)
                    } else {
                        (bounds.0, bounds.1.max(e.ts + gap))
                    };
                    session.push((e, is_left));
                }
                for (s, l) in session.drain(..) {
                    put(key, bounds.0, bounds.1, s, l);
                }
            }
        }
    }
    groups
}

type WindowPair = (String, i64, i64, i64, Option<i64>);

fn batch_window_join(case: &Case, windows: Windows, outer: bool) -> Vec<WindowPair> {
    let mut out = Vec::new();
    for ((key, start, end), (lefts, rights)) in batch_windows(case, windows) {
        for l in &lefts {
            if rights.is_empty() && outer {
                out.push((key.clone(), start, end, *l, None));
            }
            for r in &rights {
                out.push((key.clone(), start, end, *l, Some(*r)));
            }
        }
    }
    out.sort();
    out
}

/// The table's changelog from the right side: one change per (key, time) (two changes of a
/// key at the same time have no order), every fifth a delete.
fn changelog(case: &Case) -> Vec<Vec<(Event, Option<i64>)>> {
    let mut seen = std::collections::BTreeSet::new();
    case.right
        .iter()
        .map(|p| {
            p.iter()
                .filter(|e| seen.insert((e.key.clone(), e.ts)))
                .map(|e| (e.clone(), (e.value % 5 != 0).then_some(e.value)))
                .collect()
        })
        .collect()
}

fn batch_enrich(case: &Case) -> Vec<(String, i64, Option<i64>)> {
    let changes: Vec<(Event, Option<i64>)> = changelog(case).into_iter().flatten().collect();
    let mut out: Vec<_> = case
        .left
        .iter()
        .flatten()
        .map(|l| {
            let value = changes
                .iter()
                .filter(|(c, _)| c.key == l.key && c.ts <= l.ts)
                .max_by_key(|(c, _)| c.ts)
                .and_then(|(_, v)| *v);
            (l.key.clone(), l.value, value)
        })
        .collect();
    out.sort();
    out
}

fn run_enrich(case: &Case, workers: usize) -> Vec<(String, i64, Option<i64>)> {
    let left = source(&case.left);
    let table = ScriptedSource::new(
        changelog(case)
            .into_iter()
            .map(|p| p.into_iter().map(Step::Emit).collect())
            .collect(),
        CHUNK,
    );
    let out = CollectSink::new();
    let sink = out.clone();
    let config = JobConfig::new("enrich-property")
        .workers(workers)
        .batch_size(16)
        .tick_interval(Duration::from_millis(5));
    Job::new(config, move |b| {
        let bound = Duration::from_millis(BOUND as u64);
        let events = b
            .source(
                "events",
                left.clone(),
                WatermarkStrategy::bounded_out_of_orderness(bound).with_timestamps(|e: &Event| e.ts),
            )
            .key_by("events_by_key", |e| e.key.clone());
        let changes = b
            .source(
                "changes",
                table.clone(),
                WatermarkStrategy::bounded_out_of_orderness(bound)
                    .with_timestamps(|c: &(Event, Option<i64>)| c.0.ts),
            )
            .key_by("changes_by_key", |c| c.0.key.clone());
        let table = changes.map_values("change", |c: (Event, Option<i64>)| c.1);
        events
            .enrich("enrich", &table, Lookup::AsOfEventTime)
            .apply(|k: &String, e: &Event, v: Option<&i64>| (k.clone(), e.value, v.copied()))
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job")
    .run()
    .expect("job runs");
    let mut rows = out.take();
    rows.sort();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn interval_joins_match_batch_with_any_worker_count(
        case in case(),
        interval in prop_oneof![
            Just(JoinInterval::preceding(Duration::from_millis(300))),
            Just(JoinInterval::around(Duration::from_millis(200), Duration::from_millis(100))),
            Just(JoinInterval::millis(50, 400)),
        ],
    ) {
        let expected = batch_interval(&case, interval);
        prop_assert!(!expected.is_empty());
        for workers in [1usize, 2, 4] {
            let got = run(&case, workers, move |l, r| {
                l.interval_join("join", r, interval).apply(|k: &String, l: &Event, r: &Event| (k.clone(), l.value, r.value))
            });
            prop_assert_eq!(&got, &expected, "workers = {}", workers);
        }
    }

    #[test]
    fn window_joins_match_batch_with_any_worker_count(
        case in case(),
        windows in prop_oneof![
            (1i64..4).prop_map(|k| Windows::Tumbling { size: k * 250 }),
            Just(Windows::Sliding { size: 1_000, slide: 250 }),
            Just(Windows::Session { gap: 150 }),
        ],
        outer in any::<bool>(),
    ) {
        let expected = batch_window_join(&case, windows, outer);
        for workers in [1usize, 2, 4] {
            let got = run(&case, workers, move |l, r| {
                let join = l.window_join("join", r, windows);
                let row = |k: &String, w: &Window, l: &Event, r: Option<&Event>| (k.clone(), w.start, w.end, l.value, r.map(|r| r.value));
                if outer {
                    join.left_outer(row)
                } else {
                    join.inner(move |k, w, l, r| row(k, w, l, Some(r)))
                }
            });
            prop_assert_eq!(&got, &expected, "workers = {}", workers);
        }
    }

    #[test]
    fn enrichment_as_of_event_time_matches_batch_with_any_worker_count(case in case()) {
        let expected = batch_enrich(&case);
        prop_assert!(expected.iter().any(|r| r.2.is_some()));
        for workers in [1usize, 2, 4] {
            prop_assert_eq!(&run_enrich(&case, workers), &expected, "workers = {}", workers);
        }
    }
}
