//! What `stop()` guarantees: sources stop, open windows are not emitted, and every record
//! that reached a sink is written before the job reports that it stopped.

mod common;

use std::time::Duration;

use common::Event;
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness, TestInput};

#[test]
fn stop_flushes_what_reached_the_sinks() {
    let input = TestInput::new(2);
    // A sink that batches its writes (as the Cassandra and Kafka sinks do).
    let out = CaptureSink::<Event>::batched();
    let windows = CaptureSink::<WindowResult<String, u64>>::new();
    let (source, sink, counts) = (input.source(), out.clone(), windows.clone());
    let mut h = JobHarness::new(JobConfig::new("stop-flushes").workers(2), move |b| {
        let events = b.source(
            "events",
            source.clone(),
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        );
        events.sink("out", sink.clone());
        events
            .key_by("by_key", |e| e.key.clone())
            .window("counts", Windows::tumbling(Duration::from_secs(60)))
            .aggregate(Count)
            .sink("counts_out", counts.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    for i in 0..50 {
        input.push(i % 2, Event::new("k", i as i64, 1));
    }
    h.settle().expect("settles");
    assert!(out.is_empty(), "a batching sink holds its writes until a flush");
    let report = h.stop().expect("stops");
    assert!(report.stopped);
    assert_eq!(out.len(), 50, "stop wrote what the sinks held");
    assert!(windows.is_empty(), "stop does not emit open windows");
}
