//! Joins over longer runs: state stays bounded as the watermark evicts it, late records are
//! routed, and a join stopped mid-run and restored from its checkpoint gives the output of an
//! uninterrupted run (in memory and in RocksDB).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{ScriptedSource, Step, TempDir};
use sluice::engine::{CheckpointConfig, StateBackendConfig};
use sluice::operators::{JoinInterval, KeyedJoinExt, Lookup};
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator, PageView, PageViewGenerator};

const PARTITIONS: u32 = 2;
const ORDERS: u64 = 20_000;
const VIEWS: u64 = 60_000;

fn orders() -> OrderGenerator {
    OrderGenerator {
        users: 200,
        products: 50,
        orders_per_second: 20,
        partitions: PARTITIONS,
        ..OrderGenerator::default()
    }
}

fn views() -> PageViewGenerator {
    PageViewGenerator {
        users: 200,
        products: 50,
        views_per_second: 60,
        partitions: PARTITIONS,
        ..PageViewGenerator::default()
    }
}

/// `(order id, view ts)` for every view of the order's user in the 10 minutes before it.
type Conversion = (String, i64);

/// Orders ⋈ page views of the same user in the 10 minutes before the order; the generators
/// pause every `pause_every` records so that a run spans many checkpoints.
fn conversions_job(config: JobConfig, out: &CollectSink<Conversion>, pause_every: u64) -> Job {
    let out = out.clone();
    Job::new(config, move |b| {
        let (o, v) = (orders(), views());
        let disorder = Duration::from_millis(o.max_disorder_ms as u64 + 1);
        let bound = move || disorder;
        let order_stream = b
            .source(
                "orders",
                GeneratorSource::new(PARTITIONS, Some(ORDERS / u64::from(PARTITIONS)), move |p, i| {
                    if i % pause_every == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    o.order(p.0, i)
                }),
                WatermarkStrategy::bounded_out_of_orderness(bound()).with_timestamps(|o: &Order| o.ts),
            )
            .key_by("orders_by_user", |o| o.user_id.clone());
        let view_stream = b
            .source(
                "views",
                GeneratorSource::new(PARTITIONS, Some(VIEWS / u64::from(PARTITIONS)), move |p, i| {
                    v.view(p.0, i)
                }),
                WatermarkStrategy::bounded_out_of_orderness(bound()).with_timestamps(|v: &PageView| v.ts),
            )
            .key_by("views_by_user", |v| v.user_id.clone());
        order_stream
            .interval_join(
                "conversions",
                &view_stream,
                JoinInterval::preceding(Duration::from_secs(600)),
            )
            .apply(|_, o: &Order, v: &PageView| (o.order_id.clone(), v.ts))
            .sink("out", out.clone());
        Ok(())
    })
    .expect("valid job")
}

fn expected() -> BTreeSet<Conversion> {
    let (o, v) = (orders(), views());
    let all_views: Vec<PageView> = (0..VIEWS).map(|n| v.nth(n)).collect();
    let mut by_user: std::collections::HashMap<&str, Vec<i64>> = std::collections::HashMap::new();
    for view in &all_views {
        by_user.entry(&view.user_id).or_default().push(view.ts);
    }
    let mut out = BTreeSet::new();
    for n in 0..ORDERS {
        let order = o.nth(n);
        for ts in by_user.get(order.user_id.as_str()).into_iter().flatten() {
            if (order.ts - 600_000..=order.ts).contains(ts) {
                out.insert((order.order_id.clone(), *ts));
            }
        }
    }
    out
}

#[test]
fn interval_join_state_is_evicted_as_the_watermark_passes() {
    let out = CollectSink::new();
    let handle = conversions_job(JobConfig::new("join-state").workers(2), &out, 500)
        .start()
        .expect("start");
    let mut peak = 0;
    let mut samples = 0;
    while !handle.is_finished() {
        peak = peak.max(handle.metrics().gauge_sum("conversions", "state_entries"));
        samples += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let report = handle.join().expect("runs");
    let rows: BTreeSet<Conversion> = out.take().into_iter().collect();
    assert_eq!(rows, expected());
    // 200 users, each with at most a few 10-minute buckets per side in state; the run spans
    // 1,000 s of event time (without eviction: ~2 buckets per user per side per 10 minutes).
    eprintln!("peak state entries {peak} over {samples} samples");
    assert!(samples > 10, "the run was too short to watch");
    assert!(peak > 0);
    assert!(peak <= 200 * 2 * 3, "state not evicted: {peak} entries");
    assert_eq!(report.metrics.total("conversions", "late_records"), 0);
}

#[test]
fn late_records_of_a_join_are_counted_and_routed() {
    // 100 orders over 5 s and an order a minute older at the end; views over the same time.
    // The late order comes after a pause, when both sides' watermarks are past it.
    let mut late = orders().nth(5);
    late.order_id = "late".into();
    late.ts -= 60_000;
    let mut steps: Vec<Step<Order>> = (0..100).map(|n| Step::Emit(orders().nth(n))).collect();
    steps.push(Step::Stall(Duration::from_millis(200)));
    steps.push(Step::Emit(late));
    let order_source = ScriptedSource::new(vec![steps], 8);
    let view_list: Vec<PageView> = (0..300).map(|n| views().nth(n)).collect();
    let (joined, routed) = (CollectSink::new(), CollectSink::new());
    let (j, r) = (joined.clone(), routed.clone());
    let report = Job::new(JobConfig::new("join-late").batch_size(8), move |b| {
        let o = b
            .source(
                "orders",
                order_source.clone(),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                    .with_timestamps(|o: &Order| o.ts),
            )
            .key_by("orders_by_user", |o| o.user_id.clone());
        let v = b
            .source(
                "views",
                MemorySource::new(view_list.clone()),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                    .with_timestamps(|v: &PageView| v.ts),
            )
            .key_by("views_by_user", |v| v.user_id.clone());
        let (pairs, late) = o
            .enrich(
                "last_view",
                &v.map_values("as_change", Some),
                Lookup::AsOfEventTime,
            )
            .apply_with_late(|_, o: &Order, v: Option<&PageView>| (o.order_id.clone(), v.map(|v| v.ts)));
        pairs.sink("joined", j.clone());
        late.map("late_id", |l| match l {
            sluice::operators::JoinInput::Left(o) => o.order_id,
            sluice::operators::JoinInput::Right(_) => "table".to_string(),
        })
        .sink("late", r.clone());
        Ok(())
    })
    .expect("valid job")
    .run()
    .expect("runs");
    assert_eq!(routed.take(), vec!["late".to_string()]);
    assert_eq!(report.metrics.total("last_view", "late_records"), 1);
    assert_eq!(joined.take().len(), 100);
}

fn restore_mid_join(backend: impl Fn(&Path) -> StateBackendConfig) {
    let dir = TempDir::new("join-restore");
    let config = || {
        JobConfig::new("join-restore")
            .workers(2)
            .state_backend(backend(&dir.0))
            .checkpoints(CheckpointConfig::new(dir.0.join("checkpoints")).interval(Duration::from_millis(30)))
    };
    let out = CollectSink::new();
    let handle = conversions_job(config(), &out, 100).start().expect("start");
    common::wait_for_checkpoint(&handle, 4);
    handle.stop();
    handle.join().expect("stopped");
    let before = out.snapshot().len();
    let report = conversions_job(config(), &out, 1 << 20)
        .run()
        .expect("restored run");
    let read = report.metrics.total("orders", "records_out");
    assert!(
        read < ORDERS,
        "the second run restored and read only the rest ({read})"
    );
    let rows = out.take();
    let distinct: BTreeSet<Conversion> = rows.iter().cloned().collect();
    assert!(before < distinct.len());
    // Every pair of the uninterrupted run, nothing else; pairs emitted after the last
    // checkpoint of the first run are emitted again, identically.
    let expected = expected();
    let missing: Vec<_> = expected.difference(&distinct).take(5).collect();
    let extra: Vec<_> = distinct.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} pairs expected, {} emitted; missing {missing:?}..., extra {extra:?}...",
        expected.len(),
        distinct.len()
    );
}

#[test]
fn a_join_restored_mid_run_matches_an_uninterrupted_run_in_memory() {
    restore_mid_join(|_| StateBackendConfig::default());
}

#[test]
fn a_join_restored_mid_run_matches_an_uninterrupted_run_in_rocksdb() {
    restore_mid_join(|dir| StateBackendConfig::rocksdb(dir.join("rocksdb")));
}
