//! Checkpoints and restore inside one process: a job is stopped after some checkpoints and
//! started again (as after a crash), with the in-memory and the RocksDB backend, with other
//! worker counts, from a savepoint, after an operator failure, and with a changed job graph.
//!
//! Every run's results are collected; together they must hold every window of the batch
//! computation, each with its exact value (a result emitted again after a restore must be
//! identical, a double-counted one would differ).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::TempDir;
use sluice::engine::{
    CheckpointConfig, EngineError, JobHandle, RemoteCheckpoints, RestoreFrom, StateBackendConfig,
    list_checkpoints,
};
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator};

const PARTITIONS: u32 = 4;
const PER_PARTITION: u64 = 60_000;

type Row = (String, i64, i64);

fn generator() -> OrderGenerator {
    OrderGenerator {
        products: 50,
        orders_per_second: 40,
        ..OrderGenerator::default()
    }
}

/// The revenue job; `window_name` lets a test rename its stateful operator. Generation is
/// slowed a little so that a run spans many checkpoints.
fn revenue_job(
    config: JobConfig,
    out: &CollectSink<Row>,
    window_name: &'static str,
    fail_once: Option<Arc<AtomicBool>>,
) -> Result<Job, EngineError> {
    let out = out.clone();
    let orders = generator();
    Job::new(config, move |b| {
        let orders = orders.clone();
        let fail_once = fail_once.clone();
        b.source(
            "orders",
            GeneratorSource::new(PARTITIONS, Some(PER_PARTITION), move |p, i| {
                if i % 256 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                orders.order(p.0, i)
            }),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        )
        .map("checked", move |o: Order| {
            if o.order_id.ends_with("-30000") {
                if let Some(flag) = &fail_once {
                    if !flag.swap(true, Ordering::SeqCst) {
                        panic!("injected failure at {}", o.order_id);
                    }
                }
            }
            o
        })
        .key_by("by_product", |o| o.product_id.clone())
        .window(window_name, Windows::tumbling(Duration::from_secs(60)))
        .aggregate(Sum::of(|o: &Order| o.revenue_cents()))
        .map("row", |w| (w.key, w.window.start, w.value))
        .sink("out", out.clone());
        Ok(())
    })
}

fn expected() -> BTreeMap<(String, i64), i64> {
    let g = generator();
    let mut rows = BTreeMap::new();
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            let o = g.order(p, i);
            *rows
                .entry((o.product_id.clone(), o.ts - o.ts.rem_euclid(60_000)))
                .or_insert(0) += o.revenue_cents();
        }
    }
    rows
}

/// Checks that `rows` (from all runs) cover the batch result exactly; returns how many rows
/// were emitted more than once.
fn check(rows: &[Row]) -> usize {
    let mut seen: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut repeated = 0;
    for (k, start, v) in rows {
        if let Some(prev) = seen.insert((k.clone(), *start), *v) {
            assert_eq!(
                prev, *v,
                "window {k}@{start} emitted with two values: counted twice"
            );
            repeated += 1;
        }
    }
    assert_eq!(seen, expected(), "results differ from the batch computation");
    repeated
}

fn config(name: &str, workers: usize, dir: &Path, backend: &StateBackendConfig) -> JobConfig {
    JobConfig::new(name)
        .workers(workers)
        .state_backend(backend.clone())
        .checkpoints(CheckpointConfig::new(dir.join("checkpoints")).interval(Duration::from_millis(30)))
}

fn rocksdb(dir: &Path) -> StateBackendConfig {
    StateBackendConfig::rocksdb(dir.join("rocksdb"))
}

/// Waits until the running job has completed `more` checkpoints beyond the first it saw.
fn wait_for_checkpoints(handle: &JobHandle, more: u64) {
    common::wait_for_checkpoint(handle, handle.last_checkpoint() + more);
}

/// Runs the job with `workers` until `checkpoints` more checkpoints completed, then stops it
/// without flushing (as a crash would).
fn run_until_checkpoints(
    name: &str,
    workers: usize,
    dir: &Path,
    backend: &StateBackendConfig,
    out: &CollectSink<Row>,
) {
    let job = revenue_job(config(name, workers, dir, backend), out, "revenue_1m", None).expect("job");
    let handle = job.start().expect("start");
    wait_for_checkpoints(&handle, 3);
    handle.stop();
    handle.join().expect("stopped cleanly");
}

fn run_to_end(
    name: &str,
    workers: usize,
    dir: &Path,
    backend: &StateBackendConfig,
    out: &CollectSink<Row>,
) -> JobReport {
    revenue_job(config(name, workers, dir, backend), out, "revenue_1m", None)
        .expect("job")
        .run()
        .expect("runs to the end")
}

fn stop_and_restore(backend_of: fn(&Path) -> StateBackendConfig, workers: usize) {
    let dir = TempDir::new("chk-restore");
    let backend = backend_of(&dir.0);
    let out = CollectSink::new();
    run_until_checkpoints("restore", workers, &dir.0, &backend, &out);
    let before = out.snapshot().len();
    let report = run_to_end("restore", workers, &dir.0, &backend, &out);
    let rows = out.take();
    let repeated = check(&rows);
    assert!(before < expected().len(), "the first run must not have finished");
    // The second run restored: it read less than all input.
    let read = report.metrics.total("orders", "records_out");
    assert!(
        read < u64::from(PARTITIONS) * PER_PARTITION,
        "restored run read everything ({read})"
    );
    eprintln!("{} rows, {repeated} emitted again after the restore", rows.len());
}

#[test]
fn stop_and_restore_with_memory_state() {
    stop_and_restore(|_| StateBackendConfig::Memory, 2);
}

#[test]
fn stop_and_restore_with_rocksdb_state() {
    stop_and_restore(rocksdb, 2);
}

#[test]
fn window_state_holds_open_windows_only() {
    let dir = TempDir::new("chk-state-size");
    let out = CollectSink::new();
    // One worker reads the partitions round-robin, so event time advances evenly.
    let job = revenue_job(
        config("state-size", 1, &dir.0, &rocksdb(&dir.0)),
        &out,
        "revenue_1m",
        None,
    )
    .expect("job");
    let handle = job.start().expect("start");
    let mut samples = Vec::new();
    while !handle.is_finished() {
        samples.push(handle.metrics().gauge_sum("revenue_1m", "state_entries"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = handle.join().expect("runs");
    let emitted = report.metrics.total("out", "records_in");
    let largest = samples.iter().copied().max().unwrap_or(0);
    // 50 products with one-minute windows and 5 s of disorder: a few windows per product are
    // open at a time, never the thousands already emitted.
    assert!(emitted > 3_000, "{emitted} windows emitted");
    assert!(
        largest > 0 && largest <= 200,
        "state held {largest} entries while {emitted} windows were emitted"
    );
    assert_eq!(report.metrics.gauge_sum("revenue_1m", "state_entries"), 0);
}

#[test]
fn restores_with_one_then_two_then_one_worker() {
    for backend_of in [
        (|_: &Path| StateBackendConfig::Memory) as fn(&Path) -> StateBackendConfig,
        rocksdb,
    ] {
        let dir = TempDir::new("chk-rescale");
        let backend = backend_of(&dir.0);
        let out = CollectSink::new();
        run_until_checkpoints("rescale", 1, &dir.0, &backend, &out);
        run_until_checkpoints("rescale", 2, &dir.0, &backend, &out);
        run_to_end("rescale", 1, &dir.0, &backend, &out);
        check(&out.take());
    }
}

#[test]
fn an_operator_failure_restarts_from_the_last_checkpoint() {
    let dir = TempDir::new("chk-failure");
    let out = CollectSink::new();
    let failed = Arc::new(AtomicBool::new(false));
    let config = config("failure", 2, &dir.0, &rocksdb(&dir.0))
        .restart_strategy(RestartStrategy::backoff(2, Duration::from_millis(10)));
    let job = revenue_job(config, &out, "revenue_1m", Some(Arc::clone(&failed))).expect("job");
    let report = job.run().expect("recovers");
    assert!(failed.load(Ordering::SeqCst), "the failure was injected");
    assert_eq!(report.attempts, 2);
    check(&out.take());
    let read = report.metrics.total("orders", "records_out");
    assert!(
        read < 2 * u64::from(PARTITIONS) * PER_PARTITION,
        "the restart replayed everything ({read} records read)"
    );
}

#[test]
fn a_savepoint_is_kept_and_restored_explicitly() {
    let dir = TempDir::new("chk-savepoint");
    let backend = rocksdb(&dir.0);
    let out = CollectSink::new();
    let job = revenue_job(config("savepoint", 2, &dir.0, &backend), &out, "revenue_1m", None).expect("job");
    let handle = job.start().expect("start");
    wait_for_checkpoints(&handle, 1);
    let saved = handle
        .savepoint("mid-run", Duration::from_secs(30))
        .expect("savepoint");
    wait_for_checkpoints(&handle, 3);
    handle.stop();
    handle.join().expect("stopped");
    // Retention keeps 3 checkpoints; the savepoint stays.
    assert!(saved.join("MANIFEST.json").exists());
    let summaries = list_checkpoints(&dir.0.join("checkpoints")).expect("list");
    assert!(
        summaries.len() <= 3 && summaries.iter().all(|s| s.manifest.is_ok()),
        "{summaries:?}"
    );

    // Results emitted after the savepoint are discarded: the restored run emits them again.
    let restored = CollectSink::new();
    let config = config("savepoint", 2, &dir.0, &backend).checkpoints(
        CheckpointConfig::new(dir.0.join("checkpoints"))
            .interval(Duration::from_millis(30))
            .restore_from(RestoreFrom::Savepoint("mid-run".into())),
    );
    revenue_job(config, &restored, "revenue_1m", None)
        .expect("job")
        .run()
        .expect("runs from the savepoint");
    let mut rows = out.take();
    rows.extend(restored.take());
    check(&rows);
}

#[test]
fn a_changed_graph_or_lost_state_is_refused_with_a_clear_error() {
    let dir = TempDir::new("chk-refuse");
    let backend = rocksdb(&dir.0);
    let out = CollectSink::new();
    run_until_checkpoints("refuse", 2, &dir.0, &backend, &out);

    // The window operator was renamed: its state would be lost.
    let renamed = revenue_job(
        config("refuse", 2, &dir.0, &backend),
        &out,
        "revenue_per_minute",
        None,
    )
    .expect("job")
    .run()
    .expect_err("renamed stateful operator");
    assert!(
        matches!(&renamed, EngineError::Checkpoint { reason, .. } if reason.contains("'revenue_1m'")),
        "{renamed}"
    );

    // RocksDB state cannot be read by the in-memory backend.
    let memory = revenue_job(
        config("refuse", 2, &dir.0, &StateBackendConfig::Memory),
        &out,
        "revenue_1m",
        None,
    )
    .expect("job")
    .run()
    .expect_err("backend changed");
    assert!(memory.to_string().contains("RocksDB"), "{memory}");

    // Every manifest damaged: no silent fresh start...
    for s in list_checkpoints(&dir.0.join("checkpoints")).expect("list") {
        std::fs::write(s.dir.join("MANIFEST.json"), b"{").expect("damage");
    }
    let err = revenue_job(config("refuse", 2, &dir.0, &backend), &out, "revenue_1m", None)
        .expect("job")
        .run()
        .expect_err("no usable checkpoint");
    assert!(err.to_string().contains("no usable checkpoint"), "{err}");

    // ...unless asked for.
    let fresh = CollectSink::new();
    let config = config("refuse", 2, &dir.0, &backend).checkpoints(
        CheckpointConfig::new(dir.0.join("checkpoints"))
            .interval(Duration::from_millis(30))
            .restore_from(RestoreFrom::Fresh),
    );
    revenue_job(config, &fresh, "revenue_1m", None)
        .expect("job")
        .run()
        .expect("fresh start");
    check(&fresh.take());
}

/// The job's checkpoints also in the S3-compatible store, under a prefix of this test's own.
fn remote_checkpoints(prefix: &str) -> RemoteCheckpoints {
    let endpoint = common::s3_endpoint();
    RemoteCheckpoints::s3(
        &format!("s3://sluice-checkpoints/{prefix}"),
        &[
            ("aws_endpoint", endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
        ],
    )
    .expect("an S3 client")
}

fn remote_config(dir: &Path, backend: &StateBackendConfig, remote: RemoteCheckpoints) -> JobConfig {
    JobConfig::new("remote")
        .workers(2)
        .state_backend(backend.clone())
        .checkpoints(
            CheckpointConfig::new(dir.join("checkpoints"))
                .interval(Duration::from_millis(40))
                .remote(remote),
        )
}

#[test]
#[ignore = "needs an S3-compatible server: run scripts/test.sh"]
fn checkpoints_in_object_storage_restore_on_another_machine_and_fence_a_superseded_run() {
    let prefix = format!("remote-{}-{}", std::process::id(), sluice::engine::now_millis());
    let out = CollectSink::new();

    // The first machine runs until some checkpoints were uploaded, then stops.
    let first = TempDir::new("chk-remote-first");
    let job = revenue_job(
        remote_config(&first.0, &rocksdb(&first.0), remote_checkpoints(&prefix)),
        &out,
        "revenue_1m",
        None,
    )
    .expect("job");
    let handle = job.start().expect("start");
    wait_for_checkpoints(&handle, 3);
    handle.stop();
    handle.join().expect("stopped cleanly");
    let published = remote_checkpoints(&prefix).published().expect("HEAD");
    assert!(published.is_some(), "the first run published checkpoints");

    // A second machine, with nothing on its disk, restores from the store and finishes.
    let second = TempDir::new("chk-remote-second");
    let report = revenue_job(
        remote_config(&second.0, &rocksdb(&second.0), remote_checkpoints(&prefix)),
        &out,
        "revenue_1m",
        None,
    )
    .expect("job")
    .run()
    .expect("runs to the end");
    let read = report.metrics.total("orders", "records_out");
    assert!(
        read < u64::from(PARTITIONS) * PER_PARTITION,
        "the second machine restored from the store ({read} records read)"
    );
    check(&out.take());

    // Two runs at once: the one started later claims a newer epoch, and the older one fails
    // at its next checkpoint instead of publishing over it.
    let fenced_prefix = format!("{prefix}-fenced");
    let older_dir = TempDir::new("chk-remote-older");
    let older = revenue_job(
        remote_config(
            &older_dir.0,
            &rocksdb(&older_dir.0),
            remote_checkpoints(&fenced_prefix),
        ),
        &CollectSink::new(),
        "revenue_1m",
        None,
    )
    .expect("job")
    .start()
    .expect("start");
    wait_for_checkpoints(&older, 1);
    let newer_remote = remote_checkpoints(&fenced_prefix);
    newer_remote.claim().expect("a newer run claims the checkpoints");
    let at_claim = newer_remote.published().expect("HEAD");
    let error = older
        .join()
        .expect_err("the superseded run is fenced")
        .to_string();
    assert!(error.contains("fenced"), "{error}");
    assert_eq!(
        newer_remote.published().expect("HEAD"),
        at_claim,
        "the superseded run published nothing after the claim"
    );
}

/// The e-commerce example as a user runs it with `--checkpoint-store` (embedded Kafka and CQL
/// store, the S3 endpoint and credentials from the `AWS_…` environment): its checkpoints are
/// published in the store.
#[test]
#[ignore = "needs an S3-compatible server: run scripts/test.sh"]
fn the_ecommerce_job_publishes_its_checkpoints_in_the_store_it_is_given() {
    let endpoint = common::s3_endpoint();
    let prefix = format!("shop-{}-{}", std::process::id(), sluice::engine::now_millis());
    let dir = TempDir::new("chk-remote-shop");
    let out = std::process::Command::new(common::example("ecommerce"))
        .args(["--events", "20000", "--workers", "2", "--quiet"])
        .args([
            "--state-dir",
            &dir.0.display().to_string(),
            "--checkpoint-interval",
            "100ms",
        ])
        .args(["--checkpoint-store", &format!("s3://sluice-checkpoints/{prefix}")])
        .env("AWS_ENDPOINT", &endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run the ecommerce example");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let published = remote_checkpoints(&prefix).published().expect("HEAD");
    let local = list_checkpoints(&dir.0.join("checkpoints")).expect("local checkpoints");
    let newest = local.iter().map(|c| c.id).max();
    assert!(published.is_some(), "nothing published");
    assert_eq!(
        published, newest,
        "the newest checkpoint is published before the job returns"
    );
}
