//! Measurement plumbing shared by the benchmark programs: child processes, CPU time, peak
//! RSS, the common JSON line.
#![allow(dead_code)]

pub mod cql;
pub mod kafka;
pub mod services;

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};
use sluice::engine::{BoxError, Data, Sink, SinkFactory, Timestamp};

/// Environment variable naming a command every measurement process runs under, with its
/// arguments separated by spaces: `SLUICE_BENCH_WRAP_CHILD="valgrind --tool=callgrind
/// --callgrind-out-file=cg.%q{SLUICE_BENCH_CHILD}.%p"` counts each child's instructions.
pub const WRAP_CHILD: &str = "SLUICE_BENCH_WRAP_CHILD";

/// Environment variable every measurement process gets: its kind and workers, `engine-2w`.
pub const CHILD_NAME: &str = "SLUICE_BENCH_CHILD";

/// Options every benchmark program takes.
#[derive(clap::Args, Debug)]
pub struct Harness {
    /// Orders the benchmark processes.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Engine worker counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Internal: run one measurement (the kind) in this process and print its result.
    #[arg(long, hide = true)]
    pub child: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// What a child measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub events: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_bytes: u64,
    pub checksum: Checksum,
}

/// Order-independent summary of window results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub rows: u64,
    pub revenue: i64,
    pub orders: u64,
    pub late: u64,
    pub mix: u64,
}

impl Checksum {
    pub fn add(&mut self, product: &str, start: i64, revenue: i64, orders: u64, units: i64) {
        let mut h = FxHasher::default();
        (product, start, revenue, orders, units).hash(&mut h);
        self.rows += 1;
        self.revenue += revenue;
        self.orders += orders;
        self.mix = self.mix.wrapping_add(h.finish());
    }

    pub fn merge(&mut self, o: &Checksum) {
        self.rows += o.rows;
        self.revenue += o.revenue;
        self.orders += o.orders;
        self.late += o.late;
        self.mix = self.mix.wrapping_add(o.mix);
    }
}

/// A row a [`ChecksumSink`] folds into its checksum.
pub trait ChecksumRow {
    /// Adds this row to `sum`.
    fn add_to(&self, sum: &mut Checksum);
}

/// A sink whose workers each fold their rows into a checksum of their own, added to the
/// shared one when their input ends.
#[derive(Clone, Default)]
pub struct ChecksumSink(Arc<Mutex<Checksum>>);

impl ChecksumSink {
    /// The checksum of every row written by workers that finished.
    pub fn checksum(&self) -> anyhow::Result<Checksum> {
        self.0
            .lock()
            .map(|s| *s)
            .map_err(|_| anyhow::anyhow!("checksum lock poisoned"))
    }
}

struct ChecksumWriter {
    shared: Arc<Mutex<Checksum>>,
    local: Checksum,
}

impl<R: ChecksumRow + Data> SinkFactory<R> for ChecksumSink {
    fn create(&self, _worker: usize, _workers: usize) -> Result<Box<dyn Sink<R>>, BoxError> {
        Ok(Box::new(ChecksumWriter {
            shared: Arc::clone(&self.0),
            local: Checksum::default(),
        }))
    }
}

impl<R: ChecksumRow + Data> Sink<R> for ChecksumWriter {
    fn write(&mut self, row: R, _ts: Timestamp) -> Result<(), BoxError> {
        row.add_to(&mut self.local);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.shared
            .lock()
            .map_err(|_| "checksum lock poisoned")?
            .merge(&self.local);
        self.local = Checksum::default();
        Ok(())
    }
}

/// A process a benchmark started (a broker, a store), killed when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints whether the 1-worker line of `lines` meets `target` (its `ratio` at least that,
/// against `what`), then every line.
pub fn print_target_and_lines(lines: &[serde_json::Value], what: &str, target: f64) {
    if let Some(line) = lines.iter().find(|l| l["workers"] == 1) {
        let ratio = line["ratio"].as_f64().unwrap_or(0.0);
        let verdict = if ratio >= target { "met" } else { "MISSED" };
        println!("\ntarget 1 worker >= {target}x {what}: {ratio:.2}x, {verdict}");
    }
    println!();
    for line in lines {
        println!("{line}");
    }
}

/// Runs this benchmark binary again as `--child kind --workers n` plus `extra`, and reads what
/// it prints last (a [`Measurement`], or more) as JSON.
pub fn measure<T: serde::de::DeserializeOwned>(
    kind: &str,
    workers: usize,
    extra: &[&str],
) -> anyhow::Result<T> {
    let exe = std::env::current_exe()?;
    let mut command = match std::env::var(WRAP_CHILD) {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            let mut words = wrapper.split_whitespace();
            let mut command = Command::new(words.next().unwrap_or_default());
            command.args(words).arg(exe);
            command
        }
        _ => Command::new(exe),
    };
    let output = command
        .env(CHILD_NAME, format!("{kind}-{workers}w"))
        .args(["--child", kind, "--workers", &workers.to_string()])
        .args(extra)
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

/// The median (by time) of `runs` measurements.
pub fn median(kind: &str, workers: usize, extra: &[&str], runs: usize) -> anyhow::Result<Measurement> {
    let mut all = Vec::new();
    for _ in 0..runs.max(1) {
        all.push(measure::<Measurement>(kind, workers, extra)?);
    }
    all.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(all.swap_remove(all.len() / 2))
}

pub fn rate(m: &Measurement) -> f64 {
    m.events as f64 / m.seconds
}

/// CPU seconds per million events: on shared cores a fairer figure than the rate.
pub fn cpu_per_million(m: &Measurement) -> f64 {
    m.cpu_seconds * 1e6 / m.events.max(1) as f64
}

pub fn print_header() {
    println!(
        "{:<22} {:>8} {:>14} {:>8} {:>10} {:>10} {:>12}",
        "measurement", "workers", "events/s", "ratio", "cpu s", "cpu s/M", "peak RSS"
    );
}

pub fn print_row(name: &str, workers: usize, m: &Measurement, ratio: f64) {
    println!(
        "{:<22} {:>8} {:>14.0} {:>7.2}x {:>10.2} {:>10.2} {:>9.1} MiB",
        name,
        workers,
        rate(m),
        ratio,
        m.cpu_seconds,
        cpu_per_million(m),
        m.peak_rss_bytes as f64 / (1 << 20) as f64
    );
}

/// The common benchmark JSON line.
pub fn json_line(
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
        "baseline_cpu_seconds": (baseline.cpu_seconds * 1000.0).round() / 1000.0,
        "engine_cpu_seconds_per_million": (cpu_per_million(engine) * 100.0).round() / 100.0,
        "baseline_cpu_seconds_per_million": (cpu_per_million(baseline) * 100.0).round() / 100.0,
        "peak_rss_bytes": engine.peak_rss_bytes,
        "baseline_peak_rss_bytes": baseline.peak_rss_bytes,
    })
}

/// This process's own resource usage (getrusage), if the kernel tells it.
fn usage() -> Option<nix::sys::resource::Usage> {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok()
}

/// User plus system CPU time of this process.
pub fn cpu_seconds() -> f64 {
    usage().map_or(0.0, |u| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(u.user_time()) + seconds(u.system_time())
    })
}

/// Peak resident set size of this process (Linux reports it in KiB).
pub fn peak_rss_bytes() -> u64 {
    usage().map_or(0, |u| u.max_rss().max(0) as u64 * 1024)
}

/// Target directory for generated benchmark data.
pub fn data_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sluice-bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
