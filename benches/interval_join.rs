//! Interval join benchmark: orders ⋈ page views of the same user in the 30 minutes before the
//! order (conversion attribution), 2,000,000 orders and 10,000,000 views by default, as a Sluice
//! job (two sources, keyed by user, `interval_join`) and as a hand-written single-threaded
//! streaming join over the same events in the same run.
//!
//! Events are generated into memory before the clock starts (compact records: ids and times,
//! no strings), each measurement in its own process (peak RSS per process, data included).
//! The hand-written join reads both streams in the sources' order, keeps per-user buffers of
//! both sides in FxHash maps and evicts them by the same watermark rule (4 s out of order).
//! Pair count and checksum must match before numbers are printed.
//!
//! ```text
//! cargo bench --bench interval_join
//! cargo bench --bench interval_join -- --events 2000000 --workers 1,2 --runs 3
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use common::{
    Checksum, Measurement, cpu_seconds, json_line, median, peak_rss_bytes, print_header, print_row,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sluice::engine::{BoxError, Sink, SinkFactory, Timestamp};
use sluice::operators::{JoinInterval, KeyedJoinExt};
use sluice::prelude::*;
use sluice_cli::datagen::{OrderGenerator, PageViewGenerator};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WINDOW_MS: i64 = 30 * 60 * 1000;
const BOUND_MS: i64 = 4_000;
const PARTITIONS: u32 = 4;
const VIEWS_PER_ORDER: u64 = 5;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    harness: common::Harness,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct OrderEvent {
    id: u64,
    user: u64,
    ts: i64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ViewEvent {
    user: u64,
    ts: i64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.harness.child.as_deref() {
        Some(kind) => child(kind, &args),
        None => parent(&args),
    }
}

fn parent(args: &Args) -> anyhow::Result<()> {
    let orders = args.harness.events;
    println!(
        "interval_join: orders ⋈ page views of the same user in the 30 min before the order, {orders} orders, {} views",
        orders * VIEWS_PER_ORDER
    );
    println!("  data:      generated into memory before timing (1,000,000 users, 4 partitions per stream)");
    println!("  state:     engine: keyed state (memory backend); baseline: FxHash maps of per-user buffers");
    println!("  eviction:  watermark = max event time - 4 s on both sides");
    println!("  allocator: mimalloc (engine and baseline)");
    println!(
        "  runs:      median of {} per measurement, each in its own process\n",
        args.harness.runs
    );
    let events = orders.to_string();
    let extra = ["--events", events.as_str()];
    let baseline = median("baseline", 1, &extra, args.harness.runs)?;
    print_header();
    print_row("hand-written join", 1, &baseline, 1.0);
    let mut lines = Vec::new();
    for &workers in &args.harness.workers {
        let engine = median("engine", workers, &extra, args.harness.runs)?;
        if engine.checksum != baseline.checksum {
            bail!(
                "outputs differ with {workers} workers: engine {:?}, baseline {:?}",
                engine.checksum,
                baseline.checksum
            );
        }
        let ratio = baseline.seconds / engine.seconds;
        print_row("sluice interval_join", workers, &engine, ratio);
        lines.push(json_line(
            "interval_join",
            "orders_x_page_views_30m",
            workers,
            &engine,
            &baseline,
            ratio,
        ));
    }
    println!("\n{} pairs, checksums equal", baseline.checksum.rows);
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn data(orders: u64) -> (Vec<OrderEvent>, Vec<ViewEvent>) {
    let users = 1_000_000;
    let order_gen = OrderGenerator {
        users,
        ..OrderGenerator::default()
    };
    let view_gen = PageViewGenerator {
        users,
        views_per_second: order_gen.orders_per_second * VIEWS_PER_ORDER,
        ..PageViewGenerator::default()
    };
    let user = |id: &str| id[2..].parse::<u64>().unwrap_or(0);
    let o = (0..orders)
        .map(|n| {
            let o = order_gen.nth(n);
            OrderEvent {
                id: n,
                user: user(&o.user_id),
                ts: o.ts,
            }
        })
        .collect();
    let v = (0..orders * VIEWS_PER_ORDER)
        .map(|n| {
            let v = view_gen.nth(n);
            ViewEvent {
                user: user(&v.user_id),
                ts: v.ts,
            }
        })
        .collect();
    (o, v)
}

/// A pair's contribution to the checksum.
fn pair_hash(order: u64, view_ts: i64) -> u64 {
    let mut z = order.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (view_ts as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

fn child(kind: &str, args: &Args) -> anyhow::Result<()> {
    let (orders, views) = data(args.harness.events);
    let events = (orders.len() + views.len()) as u64;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let checksum = match kind {
        "baseline" => baseline(&orders, &views),
        "engine" => engine(orders, views, args.harness.workers.first().copied().unwrap_or(1))?,
        other => bail!("unknown measurement {other}"),
    };
    let m = Measurement {
        events,
        seconds: t0.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds() - cpu0,
        peak_rss_bytes: peak_rss_bytes(),
        checksum,
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Per-user buffers of both sides, matched on arrival and evicted by the watermark.
fn baseline(orders: &[OrderEvent], views: &[ViewEvent]) -> Checksum {
    let mut view_buf: FxHashMap<u64, Vec<i64>> = FxHashMap::default();
    let mut order_buf: FxHashMap<u64, Vec<(i64, u64)>> = FxHashMap::default();
    let (mut max_order, mut max_view) = (i64::MIN, i64::MIN);
    let mut sum = Checksum::default();
    let mut since_evict = 0u64;
    let chunk = 512usize;
    let (mut oi, mut vi) = (0usize, 0usize);
    while oi < orders.len() || vi < views.len() {
        for o in &orders[oi..(oi + chunk).min(orders.len())] {
            max_order = max_order.max(o.ts);
            if let Some(vs) = view_buf.get(&o.user) {
                for &vts in vs {
                    if (o.ts - WINDOW_MS..=o.ts).contains(&vts) {
                        sum.rows += 1;
                        sum.mix = sum.mix.wrapping_add(pair_hash(o.id, vts));
                    }
                }
            }
            order_buf.entry(o.user).or_default().push((o.ts, o.id));
        }
        oi = (oi + chunk).min(orders.len());
        let vchunk = chunk * VIEWS_PER_ORDER as usize;
        for v in &views[vi..(vi + vchunk).min(views.len())] {
            max_view = max_view.max(v.ts);
            if let Some(os) = order_buf.get(&v.user) {
                for &(ots, id) in os {
                    if (ots - WINDOW_MS..=ots).contains(&v.ts) {
                        sum.rows += 1;
                        sum.mix = sum.mix.wrapping_add(pair_hash(id, v.ts));
                    }
                }
            }
            view_buf.entry(v.user).or_default().push(v.ts);
        }
        vi = (vi + vchunk).min(views.len());
        since_evict += (chunk + vchunk) as u64;
        if since_evict >= 1 << 16 {
            since_evict = 0;
            let wm = max_order.min(max_view) - BOUND_MS;
            // Future orders are at or after `wm`: views older than `wm - window` cannot match.
            view_buf.retain(|_, vs| {
                vs.retain(|&ts| ts >= wm - WINDOW_MS);
                !vs.is_empty()
            });
            // Future views are at or after `wm`: orders before `wm` cannot match.
            order_buf.retain(|_, os| {
                os.retain(|&(ts, _)| ts >= wm);
                !os.is_empty()
            });
        }
    }
    sum
}

/// Counts pairs and adds up their hashes, per worker, handed over at the end.
#[derive(Clone, Default)]
struct CountSink {
    rows: Arc<AtomicU64>,
    mix: Arc<AtomicU64>,
}

struct CountWriter {
    shared: CountSink,
    rows: u64,
    mix: u64,
}

impl SinkFactory<u64> for CountSink {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<u64>>, BoxError> {
        Ok(Box::new(CountWriter {
            shared: self.clone(),
            rows: 0,
            mix: 0,
        }))
    }
}

impl Sink<u64> for CountWriter {
    fn write(&mut self, hash: u64, _ts: Timestamp) -> Result<(), BoxError> {
        self.rows += 1;
        self.mix = self.mix.wrapping_add(hash);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.shared.rows.fetch_add(self.rows, Ordering::Relaxed);
        self.shared.mix.fetch_add(self.mix, Ordering::Relaxed);
        Ok(())
    }
}

fn engine(orders: Vec<OrderEvent>, views: Vec<ViewEvent>, workers: usize) -> anyhow::Result<Checksum> {
    let (orders, views) = (Arc::new(orders), Arc::new(views));
    let sink = CountSink::default();
    let out = sink.clone();
    let job = Job::new(JobConfig::new("interval-join-bench").workers(workers), move |b| {
        let (o, v) = (Arc::clone(&orders), Arc::clone(&views));
        let per = |n: usize| (n as u64).div_ceil(u64::from(PARTITIONS));
        let (no, nv) = (o.len(), v.len());
        let bound = Duration::from_millis(BOUND_MS as u64);
        let order_stream = b
            .source(
                "orders",
                GeneratorSource::new(PARTITIONS, Some(per(no)), move |p, i| {
                    let n = (i * u64::from(PARTITIONS) + u64::from(p.0)) as usize;
                    o.get(n).copied().unwrap_or(OrderEvent {
                        id: u64::MAX,
                        user: u64::MAX,
                        ts: i64::MIN / 2,
                    })
                }),
                WatermarkStrategy::bounded_out_of_orderness(bound).with_timestamps(|o: &OrderEvent| o.ts),
            )
            .filter("real_orders", |o| o.id != u64::MAX)
            .key_by("orders_by_user", |o| o.user);
        let view_stream = b
            .source(
                "views",
                GeneratorSource::new(PARTITIONS, Some(per(nv)), move |p, i| {
                    let n = (i * u64::from(PARTITIONS) + u64::from(p.0)) as usize;
                    v.get(n).copied().unwrap_or(ViewEvent {
                        user: u64::MAX,
                        ts: i64::MIN / 2,
                    })
                }),
                WatermarkStrategy::bounded_out_of_orderness(bound).with_timestamps(|v: &ViewEvent| v.ts),
            )
            .filter("real_views", |v| v.user != u64::MAX)
            .key_by("views_by_user", |v| v.user);
        order_stream
            .interval_join(
                "conversions",
                &view_stream,
                JoinInterval::preceding(Duration::from_millis(WINDOW_MS as u64)),
            )
            .apply(|_, o: &OrderEvent, v: &ViewEvent| pair_hash(o.id, v.ts))
            .sink("pairs", sink.clone());
        Ok(())
    })?;
    job.run()?;
    Ok(Checksum {
        rows: out.rows.load(Ordering::Relaxed),
        mix: out.mix.load(Ordering::Relaxed),
        ..Checksum::default()
    })
}
