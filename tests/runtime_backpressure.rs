//! A slow sink slows the source: records in flight stay bounded by the channel capacities,
//! whatever the source could produce.

use std::time::Duration;

use sluice::engine::BoxError;
use sluice::prelude::*;

struct Slow;

impl Sink<u64> for Slow {
    fn write(&mut self, _: u64, _: Timestamp) -> Result<(), BoxError> {
        std::thread::sleep(Duration::from_micros(200));
        Ok(())
    }
}

impl SinkFactory<u64> for Slow {
    fn create(&self, _: usize, _: usize) -> Result<Box<dyn Sink<u64>>, BoxError> {
        Ok(Box::new(Slow))
    }
}

#[test]
fn slow_sink_bounds_records_in_flight() {
    let (workers, batch, capacity) = (2usize, 64usize, 4usize);
    let config = JobConfig::new("backpressure")
        .workers(workers)
        .batch_size(batch)
        .channel_capacity(capacity);
    let job = Job::new(config, |b| {
        b.source(
            "numbers",
            GeneratorSource::new(2, None, |p, i| i * 2 + u64::from(p.0)),
            WatermarkStrategy::processing_time(),
        )
        .key_by("spread", |n| *n)
        .records()
        .map("values", |r| r.value)
        .sink("slow", Slow);
        Ok(())
    })
    .expect("valid job");
    let handle = job.start().expect("starts");
    // Per exchange and worker pair: the channel, the sender's pending queue and one open batch;
    // plus one source batch per worker.
    let bound = (workers * workers * (2 * capacity + 1) * batch + workers * batch) as u64;
    let mut max_in_flight = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(25));
        let produced = handle.metrics().total("numbers", "records_out");
        let written = handle.metrics().total("slow", "records_in");
        max_in_flight = max_in_flight.max(produced.saturating_sub(written));
    }
    let produced = handle.metrics().total("numbers", "records_out");
    handle.stop();
    handle.join().expect("stops cleanly");
    assert!(
        max_in_flight <= bound,
        "{max_in_flight} records in flight, bound {bound}"
    );
    // An unthrottled generator makes millions per second; the sink allows ~10k/s.
    assert!(
        produced < 200_000,
        "source ran ahead of the sink: {produced} records"
    );
}
