//! A checkpoint that cannot complete is abandoned after its timeout, whichever worker is
//! stuck, and the job goes on.

mod common;

use std::time::Duration;

use common::{Event, TempDir};
use sluice::engine::CheckpointConfig;
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness, TestInput};

#[test]
fn a_worker_stuck_in_a_sink_flush_does_not_stop_the_timeout() {
    let dir = TempDir::new("checkpoint-timeout");
    let input = TestInput::new(2);
    let out = CaptureSink::<Event>::new();
    let (source, sink) = (input.source(), out.clone());
    let config = JobConfig::new("stuck-flush")
        .workers(2)
        .checkpoints(CheckpointConfig::new(dir.0.join("checkpoints")).timeout(Duration::from_millis(500)));
    let mut h = JobHarness::new(config, move |b| {
        b.source(
            "events",
            source.clone(),
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job")
    .settle_timeout(Duration::from_secs(30));
    h.start().expect("starts");
    input.push(0, Event::new("a", 1, 1));
    input.push(1, Event::new("b", 1, 1));
    h.settle().expect("settles");
    // Worker 0's sink never returns from its flush: only another worker can notice that the
    // checkpoint takes too long.
    out.block_checkpoints_on(0);
    let result = h.checkpoint();
    out.unblock();
    let error = result.expect_err("the checkpoint cannot complete").to_string();
    assert!(
        error.contains("abandoned"),
        "not abandoned by its timeout: {error}"
    );
    assert!(h.metrics().expect("running").total("checkpoints", "abandoned") >= 1);
    // The job goes on and the next checkpoint completes.
    input.push(0, Event::new("a", 2, 1));
    h.checkpoint().expect("the next checkpoint completes");
    input.end_all();
    h.finish().expect("ends");
    assert_eq!(out.len(), 3);
}
