//! A stalled sink stops the source: records in flight stay bounded by the channel capacities,
//! whatever the source could produce.

use std::time::{Duration, Instant};

use sluice::prelude::*;
use sluice::testing::CaptureSink;

#[test]
fn a_stalled_sink_bounds_records_in_flight() {
    let (workers, batch, capacity) = (2usize, 64usize, 4usize);
    let stalled = CaptureSink::<u64>::new();
    stalled.block();
    let sink = stalled.clone();
    let config = JobConfig::new("backpressure")
        .workers(workers)
        .batch_size(batch)
        .channel_capacity(capacity);
    let job = Job::new(config, move |b| {
        b.source(
            "numbers",
            GeneratorSource::new(2, None, |p, i| i * 2 + u64::from(p.0)),
            WatermarkStrategy::processing_time(),
        )
        .key_by("spread", |n| *n)
        .records()
        .map("values", |r| r.value)
        .sink("stalled", sink.clone());
        Ok(())
    })
    .expect("valid job");
    let handle = job.start().expect("starts");
    // Wait until both sinks are stuck in a write, then until the generators stop: the
    // channels are full and nothing moves.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stalled.waiting() < workers {
        assert!(Instant::now() < deadline, "the sinks never received a record");
        std::thread::sleep(Duration::from_millis(1));
    }
    let produced = || handle.metrics().total("numbers", "records_out");
    let mut last = produced();
    let mut unchanged = 0;
    while unchanged < 50 {
        assert!(
            Instant::now() < deadline,
            "the source never stopped: {} records produced",
            produced()
        );
        std::thread::sleep(Duration::from_millis(2));
        let now = produced();
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
    }
    // Per exchange and worker pair: the channel, the sender's pending queue and one open
    // batch; plus one source batch per worker and the record each stuck sink holds.
    let bound = (workers * workers * (2 * capacity + 1) * batch + workers * batch + workers) as u64;
    assert!(
        last <= bound,
        "{last} records in flight while the sinks wrote none, bound {bound}"
    );
    stalled.unblock();
    handle.stop();
    handle.join().expect("stops cleanly");
}
