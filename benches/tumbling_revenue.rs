//! Tumbling revenue benchmark: 1-minute revenue per product over a JSON-lines file of orders
//! (deterministic seed, up to 4 s out of order), Sluice with 1 and 2 workers against a
//! hand-written single-threaded loop doing the same work in the same run: the same file
//! reader (`LineReader`), the same `serde_json` parsing, the same hasher (FxHash over
//! hashbrown maps) and the same windows and watermark (max event time - 5 s).
//!
//! The same job then runs with its state in RocksDB (and with RocksDB plus a checkpoint every
//! second) against the in-memory state in the same run.
//!
//! Every measurement runs in its own child process, so peak RSS is per measurement. The
//! outputs of every run are checksummed and compared with the baseline's before any number is
//! printed. Memory is also measured for 1M and 4M events to show it stays flat.
//!
//! ```text
//! cargo bench --bench tumbling_revenue
//! cargo bench --bench tumbling_revenue -- --events 2000000 --workers 1,2 --runs 3
//! ```

mod common;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use common::{
    Checksum, Measurement, cpu_seconds, json_line, measure, median, peak_rss_bytes, print_header, print_row,
    rate,
};
use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;
use sluice::engine::{CheckpointConfig, StateBackendConfig};
use sluice::operators::LineReader;
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator};

// Records cross threads; glibc's allocator serialises those frees, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WINDOW_MS: i64 = 60_000;
const BOUND_MS: i64 = 5_000;

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    harness: common::Harness,
    /// Skip the 1M / 4M peak-memory measurements.
    #[arg(long)]
    skip_memory: bool,
    /// Skip the RocksDB state measurements.
    #[arg(long)]
    skip_state: bool,
    /// Internal: input file of a child.
    #[arg(long, hide = true)]
    input: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.harness.child.as_deref() {
        Some(kind) => child(kind, &args),
        None => parent(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: data, child processes, table and JSON lines.

fn data_file(events: u64) -> anyhow::Result<PathBuf> {
    let path = common::data_dir()?.join(format!("orders-{events}.jsonl"));
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

fn input_arg(path: &Path) -> Vec<&str> {
    vec!["--input", path.to_str().unwrap_or_default()]
}

fn parent(args: &Args) -> anyhow::Result<()> {
    let input = data_file(args.harness.events)?;
    println!(
        "tumbling_revenue: 1-minute revenue per product, {} orders",
        args.harness.events
    );
    println!("  file reader: sluice_operators::LineReader (1 MiB buffer), one file, 4 MiB splits");
    println!("  parsing:     serde_json::from_slice::<Order>");
    println!("  state:       hashbrown maps with FxHash (rustc-hash), keyed by (product, window)");
    println!("  allocator:   mimalloc (engine and baseline)");
    println!("  windows:     tumbling 60 s, watermark = max event time - 5 s, final results only");
    println!(
        "  runs:        median of {} per measurement, each in its own process\n",
        args.harness.runs
    );

    let measured = input_arg(&input);
    let baseline = median("baseline", 1, &measured, args.harness.runs)?;
    print_header();
    print_row("hand-written loop", 1, &baseline, 1.0);
    let mut lines = Vec::new();
    let mut in_memory = Vec::new();
    for &workers in &args.harness.workers {
        let engine = median("engine", workers, &measured, args.harness.runs)?;
        in_memory.push((workers, engine.clone()));
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

    if !args.skip_state {
        println!("\nstate backends, against the in-memory state of the same job:");
        print_header();
        for (workers, memory) in &in_memory {
            print_row("sluice, memory state", *workers, memory, 1.0);
            for (kind, label, query) in [
                ("engine-rocksdb", "sluice, RocksDB", "rocksdb"),
                ("engine-rocksdb-chk", "RocksDB + chk 1 s", "rocksdb_checkpoint_1s"),
            ] {
                let m = median(kind, *workers, &measured, args.harness.runs)?;
                if m.checksum != memory.checksum {
                    bail!("{label} output with {workers} workers differs from the in-memory run");
                }
                let ratio = rate(&m) / rate(memory);
                print_row(label, *workers, &m, ratio);
                lines.push(json_line(
                    "tumbling_revenue_state",
                    query,
                    *workers,
                    &m,
                    memory,
                    ratio,
                ));
            }
        }
        for line in lines.iter().filter(|l| l["query"] == "rocksdb") {
            let ratio = line["ratio"].as_f64().unwrap_or(0.0);
            let verdict = if ratio >= 0.6 { "met" } else { "MISSED" };
            println!(
                "target RocksDB >= 0.6x in-memory state with {} worker(s): {ratio:.2}x, {verdict}",
                line["workers"]
            );
        }
    }

    if !args.skip_memory {
        println!("\npeak memory, sluice with 1 worker, each in its own process:");
        for events in [1_000_000u64, 4_000_000] {
            let file = data_file(events)?;
            let m: Measurement = measure("engine", 1, &input_arg(&file))?;
            let b: Measurement = measure("baseline", 1, &input_arg(&file))?;
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

// ---------------------------------------------------------------------------------------------
// Children: one measurement each.

fn child(kind: &str, args: &Args) -> anyhow::Result<()> {
    let input = args.input.clone().context("--input is required")?;
    let workers = args.harness.workers.first().copied().unwrap_or(1);
    let started = Instant::now();
    let (events, checksum) = match kind {
        "baseline" => baseline(&input)?,
        "engine" => engine(&input, workers, State::Memory)?,
        "engine-rocksdb" => engine(&input, workers, State::RocksDb)?,
        "engine-rocksdb-chk" => engine(&input, workers, State::RocksDbCheckpoints)?,
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

impl common::ChecksumRow for WindowResult<String, Totals> {
    fn add_to(&self, sum: &mut Checksum) {
        sum.add(
            &self.key,
            self.window.start,
            self.value.0,
            self.value.1,
            self.value.2,
        );
    }
}

/// Where the engine keeps its window state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Memory,
    RocksDb,
    RocksDbCheckpoints,
}

fn engine(input: &Path, workers: usize, state: State) -> anyhow::Result<(u64, Checksum)> {
    let sink = common::ChecksumSink::default();
    let out = sink.clone();
    let input = input.to_path_buf();
    let dir = common::data_dir()?.join(format!("state-{}", std::process::id()));
    let mut config = JobConfig::new("tumbling_revenue").workers(workers);
    if state != State::Memory {
        config = config.state_backend(StateBackendConfig::rocksdb(dir.join("rocksdb")));
    }
    if state == State::RocksDbCheckpoints {
        config = config
            .checkpoints(CheckpointConfig::new(dir.join("checkpoints")).interval(Duration::from_secs(1)));
    }
    let job = Job::new(config, move |b| {
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
    let _ = std::fs::remove_dir_all(&dir);
    let mut checksum = sink.checksum()?;
    checksum.late = report.metrics.total("revenue_1m", "late_records");
    Ok((report.metrics.total("orders", "records_out"), checksum))
}
