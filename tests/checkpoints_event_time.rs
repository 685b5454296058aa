//! Checkpoints keep event time: after a restore, every record is late or on time exactly as
//! in the run that crashed, so a window that was final stays final.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Event, TempDir};
use sluice::engine::{CheckpointConfig, StateBackendConfig};
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness, TestInput};

type Windowed = CaptureSink<WindowResult<String, u64>>;

fn harness(
    dir: &TempDir,
    workers: usize,
    input: &TestInput<Event>,
    out: &Windowed,
    late: &CaptureSink<Event>,
    rocksdb: bool,
) -> JobHarness {
    let mut config = JobConfig::new("final-stays-final")
        .workers(workers)
        .checkpoints(CheckpointConfig::new(dir.0.join("checkpoints")));
    if rocksdb {
        config = config.state_backend(StateBackendConfig::rocksdb(dir.0.join("state")));
    }
    let (source, sink, late) = (input.source(), out.clone(), late.clone());
    JobHarness::new(config, move |b| {
        let (windows, late_records) = b
            .source(
                "events",
                source.clone(),
                WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
            )
            .key_by("by_key", |e| e.key.clone())
            .window("counts", Windows::tumbling(Duration::from_secs(1)))
            .aggregate_with_late(Count);
        windows.sink("out", sink.clone());
        late_records.sink("late", late.clone());
        Ok(())
    })
    .expect("valid job")
}

/// Every emission of every window, by (key, start).
fn emissions(out: &Windowed) -> BTreeMap<(String, i64), Vec<u64>> {
    let mut all: BTreeMap<(String, i64), Vec<u64>> = BTreeMap::new();
    for w in out.values() {
        all.entry((w.key, w.window.start)).or_default().push(w.value);
    }
    all
}

fn a_late_record_after_the_checkpoint_stays_late(rocksdb: bool, restore_workers: usize) {
    let dir = TempDir::new("final-stays-final");
    let input = TestInput::new(2);
    let out = Windowed::new();
    let late = CaptureSink::new();
    let mut h = harness(&dir, 2, &input, &out, &late, rocksdb);
    h.start().expect("starts");
    for p in 0..2 {
        input.push(p, Event::new("k", 100, 1));
        input.push(p, Event::new("k", 500, 1));
        input.push(p, Event::new("k", 1_500, 1));
    }
    h.settle().expect("settles");
    assert_eq!(
        emissions(&out)[&("k".to_string(), 0)],
        vec![4],
        "window [0, 1 s) is final"
    );
    h.checkpoint().expect("checkpoint");
    // Behind the watermark (1 500): late, and window [0, 1 s) is not touched.
    input.push(0, Event::new("k", 200, 1));
    for p in 0..2 {
        input.push(p, Event::new("k", 2_500, 1));
    }
    h.settle().expect("settles");
    assert_eq!(late.len(), 1);
    h.crash().expect("crashes");

    h.restart(restore_workers).expect("restarts");
    input.end_all();
    h.settle().expect("settles");
    h.finish().expect("ends");
    for (window, values) in emissions(&out) {
        assert!(
            values.windows(2).all(|v| v[0] == v[1]),
            "window {window:?} was written with different results: {values:?}"
        );
    }
    assert_eq!(emissions(&out)[&("k".to_string(), 0)][0], 4);
    assert_eq!(emissions(&out)[&("k".to_string(), 1_000)][0], 2);
    assert_eq!(emissions(&out)[&("k".to_string(), 2_000)][0], 2);
    let late: Vec<i64> = late.values().iter().map(|e| e.ts).collect();
    assert_eq!(
        late,
        vec![200, 200],
        "the replay classifies the record as late again"
    );
}

#[test]
fn a_late_record_replayed_after_a_restore_stays_late_in_memory() {
    a_late_record_after_the_checkpoint_stays_late(false, 2);
}

#[test]
fn a_late_record_replayed_after_a_restore_stays_late_with_rocksdb_and_more_workers() {
    a_late_record_after_the_checkpoint_stays_late(true, 3);
}
