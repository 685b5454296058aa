//! Random inputs through a windowed job that crashes and restores: out-of-order records (within
//! the bound), late records (far behind), malformed records; 1–6 partitions read by 1, 2 or 4
//! workers (so some workers own nothing); checkpoints, crashes at quiet points, in the middle
//! of a round, and at every step of completing a checkpoint; restores into the same or another
//! worker count, on memory or RocksDB state.
//!
//! Whatever happened, the final rows equal a batch computation over the records that are on
//! time in an uninterrupted run, and every row written twice was written with the same value.
//! The input comes in rounds, and the test settles the job after each round, before and after
//! a restore alike; the generator puts every late record a whole window behind what the
//! previous rounds' watermark closed, and keeps every other record within the bound of its
//! partition, so whether a record is late does not depend on how the workers interleave.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Event, TempDir};
use proptest::prelude::*;
use sluice::engine::{CheckpointConfig, CheckpointStep, StateBackendConfig};
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness, TestInput};

const BOUND: i64 = 500;
const WINDOW: i64 = 1_000;

/// One entry of a partition's log.
#[derive(Debug, Clone)]
enum Entry {
    OnTime(Event),
    Late(Event),
    Bad,
}

/// What the test does after handing the job a round.
#[derive(Debug, Clone, Copy)]
enum Action {
    Nothing,
    Checkpoint,
    /// Crash once the round is processed.
    Crash,
    /// Crash while the round is still being processed.
    CrashMidRound,
    /// Crash at this step of a checkpoint taken now.
    CrashInCheckpoint(CheckpointStep),
}

#[derive(Debug, Clone)]
struct Case {
    /// Per round, per partition: the entries.
    rounds: Vec<Vec<Vec<Entry>>>,
    actions: Vec<Action>,
    /// Worker count of the first run and of each restart.
    workers: Vec<usize>,
    rocksdb: bool,
}

fn entry_strategy(round: i64, keys: u8) -> impl Strategy<Value = Vec<Entry>> {
    // Sorted offsets in the round, each moved back by less than the bound (out of order, but
    // never behind its partition's watermark).
    (
        prop::collection::vec((0i64..900, 0..BOUND - 50, 0..keys, 1i64..100), 0..6),
        (0..keys, 1i64..100),
        prop::option::weighted(0.3, (0..keys, 0i64..WINDOW, 0usize..8)),
        prop::option::weighted(0.2, 0usize..8),
    )
        .prop_map(move |(mut events, anchor, late, bad)| {
            events.sort_by_key(|e| e.0);
            let mut entries: Vec<Entry> = events
                .iter()
                .map(|(at, back, k, v)| {
                    let ts = round * WINDOW + (at - back).max(0);
                    Entry::OnTime(Event::new(&format!("k{k}"), ts, *v))
                })
                .collect();
            // Every partition reaches the end of every round, so the watermark after round r
            // is at least r * WINDOW + 900 - BOUND.
            entries.push(Entry::OnTime(Event::new(
                &format!("k{}", anchor.0),
                round * WINDOW + 950,
                anchor.1,
            )));
            if let (Some((k, at, pos)), true) = (late, round >= 2) {
                // In a window that closed two rounds ago.
                let ts = (round - 2) * WINDOW + at;
                let pos = pos % (entries.len() + 1);
                entries.insert(pos, Entry::Late(Event::new(&format!("late-k{k}"), ts, 1)));
            }
            if let Some(pos) = bad {
                let pos = pos % (entries.len() + 1);
                entries.insert(pos, Entry::Bad);
            }
            entries
        })
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => Just(Action::Nothing),
        3 => Just(Action::Checkpoint),
        1 => Just(Action::Crash),
        1 => Just(Action::CrashMidRound),
        2 => prop::sample::select(CheckpointStep::ALL.to_vec()).prop_map(Action::CrashInCheckpoint),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=6, 4i64..8, 2u8..5).prop_flat_map(|(partitions, rounds, keys)| {
        let round_entries = (0..rounds)
            .map(|r| prop::collection::vec(entry_strategy(r, keys), partitions))
            .collect::<Vec<_>>();
        (
            round_entries,
            prop::collection::vec(action_strategy(), rounds as usize),
            prop::collection::vec(prop::sample::select(vec![1usize, 2, 4]), 1 + rounds as usize),
            any::<bool>(),
        )
            .prop_map(|(rounds, actions, workers, rocksdb)| Case {
                rounds,
                actions,
                workers,
                rocksdb,
            })
    })
}

type Rows = BTreeMap<(String, i64), (u64, i64)>;

/// The windows of every on-time record, computed at once.
fn batch(case: &Case) -> Rows {
    let mut rows = Rows::new();
    for e in case.rounds.iter().flatten().flatten() {
        if let Entry::OnTime(e) = e {
            let r = rows
                .entry((e.key.clone(), e.ts - e.ts.rem_euclid(WINDOW)))
                .or_default();
            r.0 += 1;
            r.1 += e.value;
        }
    }
    rows
}

fn push_round(input: &TestInput<Event>, round: &[Vec<Entry>]) {
    for (p, entries) in round.iter().enumerate() {
        for e in entries {
            match e {
                Entry::OnTime(e) | Entry::Late(e) => input.push(p, e.clone()),
                Entry::Bad => input.push_bad(p, "not an event"),
            }
        }
    }
}

/// Writes rounds `..upto` again after a restart, settling after each, as the first run got
/// them: the restored job skips what its checkpoint covers and sees the rest at the same pace.
fn write_again(h: &mut JobHarness, input: &TestInput<Event>, case: &Case, upto: usize) {
    input.clear();
    for round in &case.rounds[..upto] {
        push_round(input, round);
        h.settle().expect("settles after a restore");
    }
}

type Counted = CaptureSink<WindowResult<String, (u64, i64)>>;

fn run(case: &Case) -> (Counted, CaptureSink<Event>, TempDir) {
    let dir = TempDir::new("checkpoints-property");
    let partitions = case.rounds[0].len();
    let input = TestInput::new(partitions);
    let (rows, late) = (Counted::new(), CaptureSink::new());
    let (source, rows_sink, late_sink) = (input.source(), rows.clone(), late.clone());
    let mut config = JobConfig::new("crash-property")
        .workers(case.workers[0])
        .batch_size(8)
        .checkpoints(CheckpointConfig::new(dir.0.join("checkpoints")).retain(2));
    if case.rocksdb {
        config = config.state_backend(StateBackendConfig::rocksdb(dir.0.join("state")));
    }
    let mut h = JobHarness::new(config, move |b| {
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(BOUND as u64))
            .with_timestamps(|e: &Event| e.ts);
        let (windows, late) = b
            .source("events", source.clone(), strategy)
            .key_by("by_key", |e| e.key.clone())
            .window("sums", Windows::tumbling(Duration::from_millis(WINDOW as u64)))
            .aggregate_with_late((Count, Sum::of(|e: &Event| e.value)));
        windows.sink("rows", rows_sink.clone());
        late.sink("late", late_sink.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    let mut restarts = 1;
    for (r, round) in case.rounds.iter().enumerate() {
        push_round(&input, round);
        let action = case.actions[r];
        if !matches!(action, Action::CrashMidRound) {
            h.settle().expect("settles");
        }
        let crashed = match action {
            Action::Nothing => false,
            Action::Checkpoint => {
                h.checkpoint().expect("checkpoint");
                false
            }
            Action::Crash | Action::CrashMidRound => {
                h.crash().expect("crash");
                true
            }
            Action::CrashInCheckpoint(step) => {
                h.crash_at(step).expect("crash at the step");
                true
            }
        };
        if crashed {
            let workers = case.workers[restarts % case.workers.len()];
            restarts += 1;
            h.restart(workers).expect("restarts");
            write_again(&mut h, &input, case, r + 1);
        }
    }
    input.end_all();
    h.finish().expect("ends");
    (rows, late, dir)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn crashes_and_restores_change_no_result(case in case()) {
        let (rows, late, _dir) = run(&case);
        let mut written: BTreeMap<(String, i64), Vec<(u64, i64)>> = BTreeMap::new();
        for w in rows.values() {
            written.entry((w.key, w.window.start)).or_default().push(w.value);
        }
        for (window, values) in &written {
            prop_assert!(
                values.windows(2).all(|v| v[0] == v[1]),
                "window {:?} written with different results {:?}", window, values
            );
        }
        let last: Rows = written.into_iter().map(|(w, v)| (w, v[v.len() - 1])).collect();
        prop_assert_eq!(last, batch(&case));
        // Every late record was found late (some twice, when replayed), and nothing else was.
        let mut late_seen: Vec<(String, i64)> = late.values().into_iter().map(|e| (e.key, e.ts)).collect();
        late_seen.sort();
        late_seen.dedup();
        let mut late_made: Vec<(String, i64)> = case
            .rounds
            .iter()
            .flatten()
            .flatten()
            .filter_map(|e| match e {
                Entry::Late(e) => Some((e.key.clone(), e.ts)),
                _ => None,
            })
            .collect();
        late_made.sort();
        late_made.dedup();
        prop_assert_eq!(late_seen, late_made);
    }
}
