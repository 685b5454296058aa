//! JSON-lines input split across workers by byte range: every line read once whatever the
//! number of workers and splits; bad lines fail with file and line, or are skipped and counted.

mod common;

use std::io::Write;
use std::time::Duration;

use common::TempDir;
use common::kafka_jobs::expected_revenue;
use sluice::engine::EngineError;
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator};

fn write_orders(
    dir: &std::path::Path,
    name: &str,
    orders: &[Order],
    bad_lines: &[(usize, &str)],
) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for (i, o) in orders.iter().enumerate() {
        for (at, line) in bad_lines {
            if *at == i {
                writeln!(f, "{line}").expect("write");
            }
        }
        writeln!(f, "{}", serde_json::to_string(o).expect("json")).expect("write");
    }
    f.flush().expect("flush");
    path
}

fn revenue_job(
    path: std::path::PathBuf,
    policy: OnBadRecord,
    workers: usize,
    out: CollectSink<(String, i64, i64)>,
) -> Job {
    Job::new(JobConfig::new("json").workers(workers), move |b| {
        b.source(
            "orders",
            JsonLinesSource::<Order>::new(path.clone())
                .split_size(8 * 1024)
                .on_bad_record(policy),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        )
        .key_by("by_product", |o| o.product_id.clone())
        .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
        .aggregate(Sum::of(|o: &Order| o.revenue_cents()))
        .map("row", |w| (w.key, w.window.start, w.value))
        .sink("out", out.clone());
        Ok(())
    })
    .expect("valid job")
}

#[test]
fn parallel_splits_read_every_line_once() {
    let dir = TempDir::new("jsonl");
    let generator = OrderGenerator {
        products: 50,
        orders_per_second: 50,
        ..OrderGenerator::default()
    };
    let orders: Vec<Order> = (0..3_000).map(|n| generator.nth(n)).collect();
    // Two files in one directory, plus a hidden file that must be ignored.
    write_orders(&dir.0, "a.jsonl", &orders[..1_700], &[]);
    write_orders(&dir.0, "b.jsonl", &orders[1_700..], &[]);
    std::fs::write(dir.0.join(".hidden"), "not json\n").expect("write");
    let want = expected_revenue(&orders);
    for workers in [1, 2, 4] {
        let out = CollectSink::new();
        let report = revenue_job(dir.0.clone(), OnBadRecord::Fail, workers, out.clone())
            .run()
            .expect("runs");
        let mut rows = out.take();
        rows.sort();
        assert_eq!(rows, want, "workers = {workers}");
        assert_eq!(report.metrics.total("orders", "records_out"), 3_000);
        assert_eq!(report.metrics.total("revenue_1m", "late_records"), 0);
    }
}

#[test]
fn bad_lines_fail_with_file_and_line() {
    let dir = TempDir::new("jsonl-bad");
    let orders: Vec<Order> = (0..500).map(|n| OrderGenerator::default().nth(n)).collect();
    let path = write_orders(&dir.0, "orders.jsonl", &orders, &[(300, "{\"order_id\": broken")]);
    let err = revenue_job(path.clone(), OnBadRecord::Fail, 2, CollectSink::new())
        .run()
        .expect_err("bad line must fail");
    match &err {
        EngineError::BadRecord {
            source_name,
            location,
            ..
        } => {
            assert_eq!(source_name, "orders");
            assert_eq!(location, &format!("{}:301", path.display()));
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn bad_lines_and_timestamps_are_skipped_and_counted() {
    let dir = TempDir::new("jsonl-skip");
    let orders: Vec<Order> = (0..800).map(|n| OrderGenerator::default().nth(n)).collect();
    let mut out_of_range = orders[0].clone();
    out_of_range.ts = -1;
    let bad_ts = serde_json::to_string(&out_of_range).expect("json");
    let missing_field = r#"{"order_id":"o-x","user_id":"u-1"}"#;
    let path = write_orders(
        &dir.0,
        "orders.jsonl",
        &orders,
        &[
            (10, "garbage"),
            (400, missing_field),
            (650, &bad_ts),
            (651, "   "),
        ],
    );
    for workers in [1, 2] {
        let out = CollectSink::new();
        let report = revenue_job(path.clone(), OnBadRecord::Skip, workers, out.clone())
            .run()
            .expect("runs");
        let mut rows = out.take();
        rows.sort();
        assert_eq!(rows, expected_revenue(&orders));
        assert_eq!(report.metrics.total("orders", "bad_records_skipped"), 3);
    }
}

#[test]
fn missing_input_names_the_path() {
    let err = revenue_job(
        "/nonexistent/orders.jsonl".into(),
        OnBadRecord::Fail,
        1,
        CollectSink::new(),
    )
    .run()
    .expect_err("missing file must fail");
    assert!(
        matches!(&err, EngineError::SourceFailed { source_name, .. } if source_name == "orders"),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/orders.jsonl"), "{err}");
}
