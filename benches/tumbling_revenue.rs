//! Tumbling revenue benchmark: 1-minute revenue per product over a JSON-lines file of orders
//! (deterministic seed, up to 4 s out of order), Sluice with 1 and 2 workers against a
//! hand-written single-threaded loop doing the same work in the same run: the same file
//! reader (`LineReader`), the same `serde_json` parsing, the same hasher (FxHash over
//! hashbrown maps) and the same windows and watermark (max event time - 5 s).
//!
//! Every measurement runs in its own child process, so peak RSS is per measurement. The
//! outputs of every run are checksummed and compared with the baseline's before any number is
//! printed. Memory is also measured for 1M and 4M events to show it stays flat.
//!
//! ```text
//! cargo bench --bench tumbling_revenue
//! cargo bench --bench tumbling_revenue -- --events 2000000 --workers 1,2 --runs 3
//! ```

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hashbrown::HashMap;
use rustc_hash::{FxBuildHasher, FxHasher};
use serde::{Deserialize, Serialize};
use sluice::datagen::{Order, OrderGenerator};
use sluice::engine::BoxError;
use sluice::operators::LineReader;
use sluice::prelude::*;

// Records cross threads; glibc's allocator serialises those frees, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WINDOW_MS: i64 = 60_000;
const BOUND_MS: i64 = 5_000;

#[derive(Parser, Debug)]
struct Args {
    /// Orders in the measured file.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Worker counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the 1M / 4M peak-memory measurements.
    #[arg(long)]
    skip_memory: bool,
    /// Internal: run one measurement (`baseline` or `engine`) and print its result.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: input file of a child.
    #[arg(long, hide = true)]
    input: Option<PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What a child measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measurement {
    events: u64,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_bytes: u64,
    checksum: Checksum,
}

/// Order-independent summary of the window results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Checksum {
    rows: u64,
    revenue: i64,
    orders: u64,
    late: u64,
    mix: u64,
}

impl Checksum {
    fn add(&mut self, product: &str, start: i64, revenue: i64, orders: u64, units: i64) {
        let mut h = FxHasher::default();
        (product, start, revenue, orders, units).hash(&mut h);
        self.rows += 1;
        self.revenue += revenue;
        self.orders += orders;
        self.mix = self.mix.wrapping_add(h.finish());
    }

    fn merge(&mut self, o: &Checksum) {
        self.rows += o.rows;
        self.revenue += o.revenue;
        self.orders += o.orders;
        self.late += o.late;
        self.mix = self.mix.wrapping_add(o.mix);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.child.as_deref() {
        Some(kind) => child(kind, &args),
        None => parent(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: data, child processes, table and JSON lines.

fn data_file(events: u64) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sluice-bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("orders-{events}.jsonl"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("generating {events} orders into {}", path.display());
    let tmp = path.with_extension("jsonl.tmp");
    let generator = OrderGenerator::default();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    for n in 0..events {
        serde_json::to_writer(&mut out, &generator.nth(n))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn measure(kind: &str, workers: usize, input: &Path) -> anyhow::Result<Measurement> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .args(["--child", kind, "--workers", &workers.to_string(), "--input"])
        .arg(input)
        .output()
        .context("cannot start the measurement process")?;
    if !output.status.success() {
        bail!(
            "{kind} with {workers} workers failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout.lines().last().context("child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

fn median(kind: &str, workers: usize, input: &Path, runs: usize) -> anyhow::Result<Measurement> {
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        all.push(measure(kind, workers, input)?);
    }
    all.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(all.swap_remove(all.len() / 2))
}

fn rate(m: &Measurement) -> f64 {
    m.events as f64 / m.seconds
}

fn parent(args: &Args) -> anyhow::Result<()> {
    let input = data_file(args.events)?;
    println!(
        "tumbling_revenue: 1-minute revenue per product, {} orders",
        args.events
    );
    println!("  file reader: sluice_operators::LineReader (1 MiB buffer), one file, 4 MiB splits");
    println!("  parsing:     serde_json::from_slice::<Order>");
    println!("  state:       hashbrown maps with FxHash (rustc-hash), keyed by (product, window)");
    println!("  allocator:   mimalloc (engine and baseline)");
    println!("  windows:     tumbling 60 s, watermark = max event time - 5 s, final results only");
    println!(
        "  runs:        median of {} per measurement, each in its own process\n",
        args.runs
    );

    let baseline = median("baseline", 1, &input, args.runs)?;
    println!(
        "{:<22} {:>8} {:>14} {:>8} {:>10} {:>12}",
        "measurement", "workers", "events/s", "ratio", "cpu s", "peak RSS"
    );
    print_row("hand-written loop", 1, &baseline, 1.0);
    let mut lines = Vec::new();
    for &workers in &args.workers {
        let engine = median("engine", workers, &input, args.runs)?;
        if engine.checksum != baseline.checksum {
            bail!(
                "engine output with {workers} workers differs from the baseline: {:?} vs {:?}",
                engine.checksum,
                baseline.checksum
            );
        }
        let ratio = rate(&engine) / rate(&baseline);
        print_row("sluice", workers, &engine, ratio);
        lines.push(json_line(
            "tumbling_revenue",
            "revenue_1m",
            workers,
            &engine,
            &baseline,
            ratio,
        ));
    }
    println!(
        "\noutputs checked: {} window rows, {} orders, revenue {} cents, {} late, identical in every run",
        baseline.checksum.rows, baseline.checksum.orders, baseline.checksum.revenue, baseline.checksum.late
    );
    for (workers, target) in [(1usize, 0.7), (2, 1.3)] {
        if let Some(line) = lines.iter().find(|l| l["workers"] == workers) {
            let ratio = line["ratio"].as_f64().unwrap_or(0.0);
            let verdict = if ratio >= target { "met" } else { "MISSED" };
            println!("target {workers} worker(s) >= {target}x the hand-written loop: {ratio:.2}x, {verdict}");
        }
    }

    if !args.skip_memory {
        println!("\npeak memory, sluice with 1 worker, each in its own process:");
        for events in [1_000_000u64, 4_000_000] {
            let file = data_file(events)?;
            let m = measure("engine", 1, &file)?;
            let b = measure("baseline", 1, &file)?;
            println!(
                "  {:>9} events: sluice {:>7.1} MiB, hand-written loop {:>7.1} MiB",
                events,
                m.peak_rss_bytes as f64 / (1 << 20) as f64,
                b.peak_rss_bytes as f64 / (1 << 20) as f64
            );
            let ratio = rate(&m) / rate(&b);
            lines.push(json_line(
                "tumbling_revenue_memory",
                "revenue_1m",
                1,
                &m,
                &b,
                ratio,
            ));
        }
    }
    println!();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn print_row(name: &str, workers: usize, m: &Measurement, ratio: f64) {
    println!(
        "{:<22} {:>8} {:>14.0} {:>7.2}x {:>10.2} {:>9.1} MiB",
        name,
        workers,
        rate(m),
        ratio,
        m.cpu_seconds,
        m.peak_rss_bytes as f64 / (1 << 20) as f64
    );
}

fn json_line(
    bench: &str,
    query: &str,
    workers: usize,
    engine: &Measurement,
    baseline: &Measurement,
    ratio: f64,
) -> serde_json::Value {
    serde_json::json!({
        "bench": bench,
        "query": query,
        "workers": workers,
        "events": engine.events,
        "engine_events_per_sec": rate(engine).round(),
        "baseline_events_per_sec": rate(baseline).round(),
        "ratio": (ratio * 1000.0).round() / 1000.0,
        "engine_cpu_seconds": (engine.cpu_seconds * 1000.0).round() / 1000.0,
        "peak_rss_bytes": engine.peak_rss_bytes,
        "baseline_peak_rss_bytes": baseline.peak_rss_bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// Children: one measurement each.

fn child(kind: &str, args: &Args) -> anyhow::Result<()> {
    let input = args.input.clone().context("--input is required")?;
    let workers = args.workers.first().copied().unwrap_or(1);
    let started = Instant::now();
    let (events, checksum) = match kind {
        "baseline" => baseline(&input)?,
        "engine" => engine(&input, workers)?,
        other => bail!("unknown measurement {other}"),
    };
    let seconds = started.elapsed().as_secs_f64();
    let m = Measurement {
        events,
        seconds,
        cpu_seconds: cpu_seconds(),
        peak_rss_bytes: peak_rss_bytes(),
        checksum,
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

type Totals = (i64, u64, i64);

/// The hand-written loop: parse, assign windows, fold, close windows behind the watermark.
fn baseline(input: &Path) -> anyhow::Result<(u64, Checksum)> {
    let len = std::fs::metadata(input)?.len();
    let mut reader = LineReader::open(input, 0, len)?;
    let mut state: HashMap<(String, i64), Totals, FxBuildHasher> = HashMap::default();
    let mut closing: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut checksum = Checksum::default();
    let mut max_ts = i64::MIN;
    let mut events = 0u64;
    let close = |wm: i64,
                 state: &mut HashMap<(String, i64), Totals, FxBuildHasher>,
                 closing: &mut BTreeMap<i64, Vec<String>>,
                 checksum: &mut Checksum| {
        while let Some(entry) = closing.first_entry() {
            if *entry.key() > wm {
                break;
            }
            let (end, keys) = entry.remove_entry();
            for key in keys {
                if let Some((k, (rev, n, units))) = state.remove_entry(&(key, end - WINDOW_MS)) {
                    checksum.add(&k.0, k.1, rev, n, units);
                }
            }
        }
    };
    while let Some((_, line)) = reader.next_line()? {
        let order: Order = serde_json::from_slice(line)?;
        events += 1;
        let start = order.ts - order.ts.rem_euclid(WINDOW_MS);
        let wm = max_ts.saturating_sub(BOUND_MS);
        if start + WINDOW_MS <= wm {
            checksum.late += 1;
            continue;
        }
        let revenue = order.revenue_cents();
        let quantity = order.quantity;
        match state.get_mut(&(order.product_id.clone(), start)) {
            Some(t) => {
                t.0 += revenue;
                t.1 += 1;
                t.2 += quantity;
            }
            None => {
                closing
                    .entry(start + WINDOW_MS)
                    .or_default()
                    .push(order.product_id.clone());
                state.insert((order.product_id, start), (revenue, 1, quantity));
            }
        }
        if order.ts > max_ts {
            max_ts = order.ts;
            close(max_ts - BOUND_MS, &mut state, &mut closing, &mut checksum);
        }
    }
    close(i64::MAX, &mut state, &mut closing, &mut checksum);
    Ok((events, checksum))
}

/// Sums the window results of each worker into one checksum.
#[derive(Clone, Default)]
struct ChecksumSink(Arc<Mutex<Checksum>>);

struct ChecksumWriter {
    shared: Arc<Mutex<Checksum>>,
    local: Checksum,
}

impl SinkFactory<WindowResult<String, Totals>> for ChecksumSink {
    fn create(&self, _: usize, _: usize) -> Result<Box<dyn Sink<WindowResult<String, Totals>>>, BoxError> {
        Ok(Box::new(ChecksumWriter {
            shared: Arc::clone(&self.0),
            local: Checksum::default(),
        }))
    }
}

impl Sink<WindowResult<String, Totals>> for ChecksumWriter {
    fn write(&mut self, r: WindowResult<String, Totals>, _: Timestamp) -> Result<(), BoxError> {
        self.local
            .add(&r.key, r.window.start, r.value.0, r.value.1, r.value.2);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.shared
            .lock()
            .map_err(|_| "checksum lock poisoned")?
            .merge(&self.local);
        Ok(())
    }
}

fn engine(input: &Path, workers: usize) -> anyhow::Result<(u64, Checksum)> {
    let sink = ChecksumSink::default();
    let out = sink.clone();
    let input = input.to_path_buf();
    let job = Job::new(JobConfig::new("tumbling_revenue").workers(workers), move |b| {
        b.source(
            "orders",
            JsonLinesSource::<Order>::new(input.clone()),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(BOUND_MS as u64))
                .with_timestamps(|o: &Order| o.ts),
        )
        .key_by("by_product", |o| o.product_id.clone())
        .window(
            "revenue_1m",
            Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)),
        )
        .aggregate((
            Sum::of(|o: &Order| o.revenue_cents()),
            Count,
            Sum::of(|o: &Order| o.quantity),
        ))
        .sink("checksum", out.clone());
        Ok(())
    })?;
    let report = job.run()?;
    let mut checksum = *sink
        .0
        .lock()
        .map_err(|_| anyhow::anyhow!("checksum lock poisoned"))?;
    checksum.late = report.metrics.total("revenue_1m", "late_records");
    Ok((report.metrics.total("orders", "records_out"), checksum))
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/self/stat (11 and 12 after the name).
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports 100 ticks per second to user space on every supported architecture.
    100.0
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
