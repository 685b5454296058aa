//! Failures stop the job with an error naming the operator, never a hang; restarts follow the
//! configured strategy; a stop request ends a job that would otherwise run forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sluice::engine::{ConnectorError, EngineError, Message, Retry};
use sluice::prelude::*;

fn endless() -> GeneratorSource<u64> {
    GeneratorSource::new(4, None, |p, i| i * 4 + u64::from(p.0))
}

#[test]
fn an_operator_error_names_the_operator() {
    for workers in [1, 2] {
        let job = Job::new(JobConfig::new("fails").workers(workers), |b| {
            b.source("numbers", endless(), WatermarkStrategy::processing_time())
                .key_by("by_mod", |n| n % 7)
                .records()
                .transform("explode", "custom", Exploding)
                .sink("out", CollectSink::new());
            Ok(())
        })
        .expect("valid job");
        let err = job.run().expect_err("the job must fail");
        match &err {
            EngineError::OperatorFailed { operator, source } => {
                assert_eq!(operator, "explode");
                assert!(source.to_string().contains("record 5000"), "{source}");
            }
            other => panic!("unexpected error: {other}"),
        }
    }
}

struct Exploding;

impl Operator for Exploding {
    type In = Keyed<u64, u64>;
    type Out = u64;

    fn process(
        &mut self,
        r: Keyed<u64, u64>,
        ts: Timestamp,
        out: &mut Output<u64>,
    ) -> Result<(), EngineError> {
        if r.value == 5000 {
            return Err(EngineError::user(Message("cannot handle record 5000".into())));
        }
        out.push(r.value, ts)
    }
}

#[test]
fn a_panic_names_the_operator_and_does_not_hang() {
    let job = Job::new(JobConfig::new("panics").workers(2), |b| {
        b.source("numbers", endless(), WatermarkStrategy::processing_time())
            .map("boom", |n| {
                assert!(n != 777, "bad number {n}");
                n
            })
            .sink("out", CollectSink::new());
        Ok(())
    })
    .expect("valid job");
    let err = job.run().expect_err("the job must fail");
    match err {
        EngineError::OperatorPanicked { operator, message } => {
            assert_eq!(operator, "boom");
            assert!(message.contains("bad number 777"), "{message}");
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn sink_failures_name_the_sink() {
    struct Refusing;
    impl Sink<u64> for Refusing {
        fn write(&mut self, _: u64, _: Timestamp) -> Result<(), sluice::engine::BoxError> {
            Err("table missing".into())
        }
    }
    impl SinkFactory<u64> for Refusing {
        fn create(&self, _: usize, _: usize) -> Result<Box<dyn Sink<u64>>, sluice::engine::BoxError> {
            Ok(Box::new(Refusing))
        }
    }
    let job = Job::new(JobConfig::new("sink").workers(2), |b| {
        b.source("numbers", endless(), WatermarkStrategy::processing_time())
            .sink("store", Refusing);
        Ok(())
    })
    .expect("valid job");
    let err = job.run().expect_err("the job must fail");
    assert!(
        matches!(&err, EngineError::SinkFailed { sink, .. } if sink == "store"),
        "{err}"
    );
    assert!(err.to_string().contains("table missing"));
}

#[test]
fn restart_strategy_retries_then_gives_up() {
    let failures = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&failures);
    let out = CollectSink::new();
    let sink = out.clone();
    let config = JobConfig::new("flaky")
        .workers(2)
        .restart_strategy(RestartStrategy::backoff(2, Duration::from_millis(5)));
    let job = Job::new(config, move |b| {
        let counter = Arc::clone(&counter);
        b.source(
            "numbers",
            MemorySource::new((0..100u64).collect()),
            WatermarkStrategy::monotonous(),
        )
        .map("flaky", move |n| {
            // Fails in the first attempt only.
            if n == 50 && counter.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("transient failure");
            }
            n
        })
        .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    let report = job.run().expect("second attempt succeeds");
    assert_eq!(report.attempts, 2);
    let mut seen = out.take();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());

    let always = Job::new(
        JobConfig::new("broken")
            .workers(1)
            .restart_strategy(RestartStrategy::backoff(2, Duration::from_millis(1))),
        |b| {
            b.source(
                "numbers",
                MemorySource::new(vec![1u64]),
                WatermarkStrategy::monotonous(),
            )
            .map("broken", |_: u64| -> u64 { panic!("always") })
            .sink("out", CollectSink::new());
            Ok(())
        },
    )
    .expect("valid job");
    match always.run() {
        Err(EngineError::RestartsExhausted { attempts, last }) => {
            assert_eq!(attempts, 3);
            assert!(last.to_string().contains("broken"), "{last}");
        }
        other => panic!("expected exhausted restarts, got {:?}", other.map(|r| r.attempts)),
    }
}

/// A sink whose every write fails with `error()`, counting the sinks created (one per
/// worker per attempt).
#[derive(Clone)]
struct Failing {
    created: Arc<AtomicU32>,
    error: fn() -> ConnectorError,
}

impl Sink<u64> for Failing {
    fn write(&mut self, _: u64, _: Timestamp) -> Result<(), sluice::engine::BoxError> {
        Err((self.error)().into())
    }
}

impl SinkFactory<u64> for Failing {
    fn create(&self, _: usize, _: usize) -> Result<Box<dyn Sink<u64>>, sluice::engine::BoxError> {
        self.created.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Failing {
            created: Arc::clone(&self.created),
            error: self.error,
        }))
    }
}

/// Runs one worker writing into a `Failing` sink with two restarts allowed; the error and
/// how many attempts created a sink.
fn run_failing(error: fn() -> ConnectorError) -> (EngineError, u32) {
    let created = Arc::new(AtomicU32::new(0));
    let sink = Failing {
        created: Arc::clone(&created),
        error,
    };
    let job = Job::new(
        JobConfig::new("hinted")
            .workers(1)
            .restart_strategy(RestartStrategy::backoff(2, Duration::from_millis(1))),
        move |b| {
            b.source(
                "numbers",
                MemorySource::new(vec![1u64, 2, 3]),
                WatermarkStrategy::monotonous(),
            )
            .sink("store", sink.clone());
            Ok(())
        },
    )
    .expect("valid job");
    let err = job.run().expect_err("every write fails");
    (err, created.load(Ordering::SeqCst))
}

#[test]
fn a_connector_error_that_a_restart_cannot_mend_stops_the_job_at_once() {
    let (err, attempts) = run_failing(|| ConnectorError::new(Retry::Stop, "no MODIFY permission on shop.t"));
    assert_eq!(attempts, 1, "the job was restarted: {err}");
    assert!(
        matches!(&err, EngineError::SinkFailed { sink, .. } if sink == "store"),
        "{err}"
    );
    assert!(!err.is_restartable());
    assert!(
        err.to_string().contains("no MODIFY permission on shop.t"),
        "{err}"
    );
}

#[test]
fn a_connector_error_that_a_restart_may_mend_is_retried_per_the_strategy() {
    let (err, attempts) = run_failing(|| ConnectorError::new(Retry::Restart, "connection refused"));
    assert_eq!(attempts, 3, "{err}");
    match err {
        EngineError::RestartsExhausted { attempts, last } => {
            assert_eq!(attempts, 3);
            assert!(last.to_string().contains("connection refused"), "{last}");
        }
        other => panic!("expected exhausted restarts, got {other}"),
    }
}

#[test]
fn bad_records_are_not_retried() {
    let job = Job::new(
        JobConfig::new("bad")
            .workers(1)
            .restart_strategy(RestartStrategy::backoff(3, Duration::from_millis(1))),
        |b| {
            b.source(
                "numbers",
                MemorySource::new(vec![1i64, -5]),
                WatermarkStrategy::monotonous().with_timestamps(|n: &i64| *n),
            )
            .sink("out", CollectSink::new());
            Ok(())
        },
    )
    .expect("valid job");
    let err = job.run().expect_err("negative timestamp must fail");
    assert!(matches!(err, EngineError::BadRecord { .. }), "{err}");
    assert!(err.to_string().contains("partition 0 record 1"), "{err}");
}

#[test]
fn stop_ends_an_endless_job() {
    let out = CollectSink::new();
    let sink = out.clone();
    let job = Job::new(JobConfig::new("endless").workers(2), move |b| {
        b.source("numbers", endless(), WatermarkStrategy::processing_time())
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid job");
    let handle = job.start().expect("starts");
    while handle.metrics().total("out", "records_in") < 10_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop();
    let report = handle.join().expect("stopped cleanly");
    assert!(report.stopped);
}
