//! A job graph is checked before anything runs; each problem names the operator at fault.

use std::time::Duration;

use sluice::engine::EngineError;
use sluice::prelude::*;

fn numbers() -> MemorySource<u64> {
    MemorySource::new((0..10).collect())
}

#[test]
fn duplicate_operator_names_are_refused() {
    let err = Job::new(JobConfig::new("dup").workers(1), |b| {
        let s = b.source("numbers", numbers(), WatermarkStrategy::monotonous());
        s.map("double", |n| n * 2)
            .map("double", |n| n + 1)
            .sink("out", CollectSink::new());
        Ok(())
    })
    .err()
    .expect("duplicate names must fail");
    assert!(
        matches!(&err, EngineError::DuplicateOperator { operator } if operator == "double"),
        "{err}"
    );
    assert!(err.to_string().contains("'double'"));
}

#[test]
fn dangling_streams_are_refused() {
    let err = Job::new(JobConfig::new("dangling").workers(1), |b| {
        let s = b.source("numbers", numbers(), WatermarkStrategy::monotonous());
        s.sink("out", CollectSink::new());
        s.filter("evens", |n| n % 2 == 0);
        Ok(())
    })
    .err()
    .expect("a dangling stream must fail");
    assert!(
        matches!(&err, EngineError::DanglingStream { operator } if operator == "evens"),
        "{err}"
    );
}

#[test]
fn unused_late_output_is_a_dangling_stream() {
    let err = Job::new(JobConfig::new("late").workers(1), |b| {
        let (rows, _late) = b
            .source("numbers", numbers(), WatermarkStrategy::monotonous())
            .key_by("by_parity", |n| n % 2)
            .window("sums", Windows::tumbling(Duration::from_secs(1)))
            .aggregate_with_late(Count);
        rows.sink("out", CollectSink::new());
        Ok(())
    })
    .err()
    .expect("unused side output must fail");
    assert!(
        matches!(&err, EngineError::DanglingStream { operator } if operator == "sums"),
        "{err}"
    );
}

#[test]
fn jobs_need_a_source_and_a_sink() {
    let err = Job::new(JobConfig::new("empty").workers(1), |_| Ok(()))
        .err()
        .expect("a job without source must fail");
    assert!(err.to_string().contains("no source"), "{err}");
    // Every stream must be consumed and only sinks consume without producing, so a job
    // without a sink always has a dangling stream, named by its producer.
    let err = Job::new(JobConfig::new("sinkless").workers(1), |b| {
        let s = b.source("numbers", numbers(), WatermarkStrategy::monotonous());
        s.union("all", &[]);
        Ok(())
    })
    .err()
    .expect("a job without sink must fail");
    assert!(
        matches!(&err, EngineError::DanglingStream { operator } if operator == "all"),
        "{err}"
    );
}

#[test]
fn invalid_names_and_settings_are_explained() {
    let err = Job::new(JobConfig::new("names").workers(1), |b| {
        b.source("a/b", numbers(), WatermarkStrategy::monotonous())
            .sink("out", CollectSink::new());
        Ok(())
    })
    .err()
    .expect("a name with a slash must fail");
    assert!(
        matches!(&err, EngineError::InvalidOperatorName { operator, .. } if operator == "a/b"),
        "{err}"
    );

    let err = Job::new(JobConfig::new("workers").workers(0), |_| Ok(()))
        .err()
        .expect("zero workers must fail");
    assert!(
        matches!(err, EngineError::InvalidConfig { key: "workers", .. }),
        "{err}"
    );

    let err = Job::new(JobConfig::new("slide").workers(1), |b| {
        b.source("numbers", numbers(), WatermarkStrategy::monotonous())
            .key_by("k", |n| *n)
            .window(
                "bad_slide",
                Windows::sliding(Duration::from_secs(1), Duration::from_secs(5)),
            )
            .aggregate(Count)
            .sink("out", CollectSink::new());
        Ok(())
    })
    .err()
    .expect("slide > size must fail");
    assert!(err.to_string().contains("bad_slide"), "{err}");
}

#[test]
fn graph_describes_the_job_and_has_a_stable_fingerprint() {
    let build = |b: &mut JobBuilder| {
        b.source("numbers", numbers(), WatermarkStrategy::monotonous())
            .key_by("by_parity", |n| n % 2)
            .window("counts", Windows::tumbling(Duration::from_secs(1)))
            .aggregate(Count)
            .sink("out", CollectSink::new());
        Ok(())
    };
    let a = Job::new(JobConfig::new("g").workers(1), build).expect("valid");
    let b = Job::new(JobConfig::new("g").workers(3), build).expect("valid");
    let kinds: Vec<&str> = a.graph().operators.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds, ["source", "key_by", "window", "sink"]);
    assert_eq!(
        a.graph().operator("counts").map(|o| o.inputs.clone()),
        Some(vec!["by_parity".to_string()])
    );
    assert_eq!(a.graph().fingerprint(), b.graph().fingerprint());
    let renamed = Job::new(JobConfig::new("g").workers(1), |b| {
        b.source("numbers", numbers(), WatermarkStrategy::monotonous())
            .key_by("by_parity", |n| n % 2)
            .window("totals", Windows::tumbling(Duration::from_secs(1)))
            .aggregate(Count)
            .sink("out", CollectSink::new());
        Ok(())
    })
    .expect("valid");
    assert_ne!(a.graph().fingerprint(), renamed.graph().fingerprint());
}
