//! The parent process: runs the children, checks every output against the baseline, prints
//! the table, the targets and the JSON lines, and writes `target/nexmark/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::latency;
use super::query::{BOUND_MS, Query, SLIDE_MS, WINDOW_MS};
use super::svg::{Group, grouped_bars};
use super::{Args, ChildReport, median, parse_interval, queries};
use crate::common::{Checksum, json_line, rate};
use crate::events::PARTITIONS;

/// The measurements of one query.
struct QueryResult {
    query: Query,
    baseline: ChildReport,
    engines: Vec<(usize, ChildReport)>,
}

/// Fails naming what differs when `engine` is not `baseline`.
fn compare(what: &str, engine: &Checksum, baseline: &Checksum) -> anyhow::Result<()> {
    if engine == baseline {
        return Ok(());
    }
    let mut diffs = Vec::new();
    if engine.rows != baseline.rows {
        diffs.push(format!(
            "rows: engine {} vs baseline {}",
            engine.rows, baseline.rows
        ));
    }
    if engine.revenue != baseline.revenue {
        diffs.push(format!(
            "total of the value column: engine {} vs baseline {}",
            engine.revenue, baseline.revenue
        ));
    }
    if engine.mix != baseline.mix {
        diffs.push(format!(
            "sum of row hashes: engine {:#018x} vs baseline {:#018x} (rows with different content)",
            engine.mix, baseline.mix
        ));
    }
    if engine.late != baseline.late {
        diffs.push(format!(
            "late records: engine {} vs baseline {}",
            engine.late, baseline.late
        ));
    }
    bail!(
        "{what}: output differs from the hand-written baseline: {}",
        diffs.join("; ")
    )
}

/// Bytes in MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The table's column names.
fn header() {
    println!(
        "{:<6} {:>8} {:>16} {:>16} {:>7} {:>8} {:>11} {:>11}",
        "query", "workers", "engine ev/s", "baseline ev/s", "ratio", "cpu s", "peak RSS", "base RSS"
    );
}

/// One table row: an engine measurement against its baseline.
fn row(name: &str, workers: &str, engine: &ChildReport, baseline: &ChildReport) {
    let (e, b) = (&engine.measurement, &baseline.measurement);
    println!(
        "{:<6} {:>8} {:>16.0} {:>16.0} {:>6.2}x {:>8.2} {:>7.1} MiB {:>7.1} MiB",
        name,
        workers,
        rate(e),
        rate(b),
        rate(e) / rate(b),
        e.cpu_seconds,
        mib(e.peak_rss_bytes),
        mib(b.peak_rss_bytes)
    );
}

/// `v` to three decimals, for JSON.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Where the results file and the plot go.
fn out_dir() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nexmark");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Measures, checks and reports everything `args` asks for.
pub fn parent(args: &Args) -> anyhow::Result<()> {
    let queries = queries(args)?;
    let intervals = args
        .checkpoint_interval
        .iter()
        .map(|s| parse_interval(s).map(|_| s.trim().to_string()))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let (events, runs) = (args.harness.events, args.harness.runs);
    let workers = &args.harness.workers;
    if workers.is_empty() || workers.contains(&0) {
        bail!("--workers needs counts of at least 1");
    }
    println!("nexmark: {events} events (persons, auctions, bids) from the nexmark 0.2 generator");
    println!(
        "  data:       generated into memory before timing, compact records, {PARTITIONS} partitions (round-robin)"
    );
    println!("  event time: date_time; watermark = max event time - {BOUND_MS} ms per partition");
    println!(
        "  windows:    q5 sliding {} s / {} s, q7 q8 q12 tumbling {} s; final results only",
        WINDOW_MS / 1000,
        SLIDE_MS / 1000,
        WINDOW_MS / 1000
    );
    println!(
        "  engine:     MemorySource (256-record chunks), exchange batch size {}, memory state (hashbrown + FxHash)",
        args.batch_size
    );
    println!(
        "  baseline:   one loop in event order, FxHash maps (rustc-hash) per open window, same watermark rule"
    );
    println!(
        "  checksum:   rows, value-column total, wrapping sum of FxHash row hashes (engine and baseline)"
    );
    println!("  allocator:  mimalloc (engine and baseline)");
    println!("  runs:       median of {runs} per measurement, each in its own process\n");
    for q in &queries {
        println!("  {:<4} {}", q.name(), q.summary());
    }
    println!();

    let mut results = Vec::new();
    header();
    for &query in &queries {
        let baseline = median(&format!("baseline:{query}"), 1, args, events)?;
        let mut engines = Vec::new();
        for &w in workers {
            let engine = median(&format!("engine:{query}"), w, args, events)?;
            compare(
                &format!("{query} with {w} worker(s)"),
                &engine.measurement.checksum,
                &baseline.measurement.checksum,
            )?;
            engines.push((w, engine));
        }
        for (w, engine) in &engines {
            row(query.name(), &w.to_string(), engine, &baseline);
        }
        results.push(QueryResult {
            query,
            baseline,
            engines,
        });
    }
    println!("\noutput rows, identical in every run of engine and baseline:");
    for r in &results {
        let c = &r.baseline.measurement.checksum;
        println!("  {:<4} {:>9} rows, {} late", r.query.name(), c.rows, c.late);
    }

    let mut lines = Vec::new();
    for r in &results {
        for (w, engine) in &r.engines {
            let ratio = rate(&engine.measurement) / rate(&r.baseline.measurement);
            let mut line = json_line(
                "nexmark",
                r.query.name(),
                *w,
                &engine.measurement,
                &r.baseline.measurement,
                ratio,
            );
            line["output_rows"] = json!(engine.measurement.checksum.rows);
            line["baseline_cpu_seconds"] = json!(round3(r.baseline.measurement.cpu_seconds));
            lines.push(line);
        }
    }
    let checkpoint_lines = if intervals.is_empty() {
        Vec::new()
    } else {
        checkpoint_cost(&intervals, workers[0], args)?
    };

    println!("\ntargets:");
    let mut verdicts = Vec::new();
    for r in &results {
        if let Some((_, one)) = r.engines.iter().find(|(w, _)| *w == 1) {
            let target = if r.query.stateful() { 0.5 } else { 0.7 };
            let ratio = rate(&one.measurement) / rate(&r.baseline.measurement);
            verdicts.push(format!(
                "{} 1 worker >= {target}x baseline: {ratio:.2}x, {}",
                r.query,
                if ratio >= target { "met" } else { "MISSED" }
            ));
        }
        if matches!(r.query, Query::Q5 | Query::Q7) {
            let one = r.engines.iter().find(|(w, _)| *w == 1);
            let two = r.engines.iter().find(|(w, _)| *w == 2);
            if let (Some((_, one)), Some((_, two))) = (one, two) {
                let scale = rate(&two.measurement) / rate(&one.measurement);
                verdicts.push(format!(
                    "{} 2 workers >= 1.6x 1 worker: {scale:.2}x, {}",
                    r.query,
                    if scale >= 1.6 { "met" } else { "MISSED" }
                ));
            }
        }
    }
    let none = checkpoint_lines
        .iter()
        .find(|l| l["checkpoint_interval"] == "none");
    let every_1s = checkpoint_lines.iter().find(|l| l["checkpoint_interval"] == "1s");
    if let (Some(none), Some(every_1s)) = (none, every_1s) {
        let slower = 1.0
            - every_1s["engine_events_per_sec"].as_f64().unwrap_or(0.0)
                / none["engine_events_per_sec"].as_f64().unwrap_or(f64::INFINITY);
        verdicts.push(format!(
            "q5 checkpoints every 1 s <= 10% slower than none (RocksDB both): {:.1}% slower, {}",
            slower * 100.0,
            if slower <= 0.10 { "met" } else { "MISSED" }
        ));
    }
    for v in &verdicts {
        println!("  {v}");
    }

    let dir = out_dir()?;
    let latency_lines = if args.latency_seconds > 0.0 && !args.latency.is_empty() {
        latency::report(&args.latency, args.latency_seconds, workers, &dir)?
    } else {
        Vec::new()
    };

    println!();
    for line in lines.iter().chain(&checkpoint_lines).chain(&latency_lines) {
        println!("{line}");
    }

    let file = json!({
        "bench": "nexmark",
        "events": events,
        "runs": runs,
        "settings": {
            "partitions": PARTITIONS,
            "batch_size": args.batch_size,
            "watermark_bound_ms": BOUND_MS,
            "hasher": "FxHash (rustc-hash)",
            "allocator": "mimalloc",
        },
        "measurements": lines,
        "checkpoints": checkpoint_lines,
        "latency": latency_lines,
        "targets": verdicts,
    });
    let results_path = dir.join("results.json");
    std::fs::write(&results_path, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("cannot write {}", results_path.display()))?;
    let svg_path = dir.join("throughput.svg");
    std::fs::write(&svg_path, plot(&results, workers, events))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    println!(
        "\nwrote {} and {} (latency runs: latency.svg next to them)",
        results_path.display(),
        svg_path.display()
    );
    Ok(())
}

/// Throughput by query: baseline, then the engine with each worker count.
fn plot(results: &[QueryResult], workers: &[usize], events: u64) -> String {
    let mut series = vec!["hand-written baseline".to_string()];
    series.extend(workers.iter().map(|w| format!("sluice {w} worker(s)")));
    let groups: Vec<Group> = results
        .iter()
        .map(|r| {
            let mut values = vec![Some(rate(&r.baseline.measurement))];
            values.extend(workers.iter().map(|w| {
                r.engines
                    .iter()
                    .find(|(n, _)| n == w)
                    .map(|(_, e)| rate(&e.measurement))
            }));
            Group {
                label: r.query.name().to_string(),
                values,
            }
        })
        .collect();
    grouped_bars(
        &format!("Nexmark throughput, {events} events (log scale)"),
        "events per second",
        &series,
        &groups,
    )
}

/// q5 with RocksDB state at each checkpoint interval; returns one JSON line per interval.
fn checkpoint_cost(intervals: &[String], workers: usize, args: &Args) -> anyhow::Result<Vec<Value>> {
    let events = args.checkpoint_events;
    println!(
        "\nq5 checkpoint cost, {events} events, {workers} worker(s), RocksDB state, checkpoints to a temporary directory:"
    );
    let baseline = median("baseline:q5", 1, args, events)?;
    let memory = median("engine:q5", workers, args, events)?;
    compare(
        "q5 (checkpoint-cost input)",
        &memory.measurement.checksum,
        &baseline.measurement.checksum,
    )?;
    println!(
        "{:<10} {:>14} {:>9} {:>7} {:>9} {:>9} {:>9} {:>12} {:>11}",
        "interval", "events/s", "vs none", "chk", "p50 ms", "p90 ms", "max ms", "bytes/chk", "peak RSS"
    );
    for (label, m) in [("(baseline)", &baseline), ("(memory)", &memory)] {
        println!(
            "{:<10} {:>14.0} {:>9} {:>7} {:>9} {:>9} {:>9} {:>12} {:>7.1} MiB",
            label,
            rate(&m.measurement),
            "",
            "-",
            "-",
            "-",
            "-",
            "-",
            mib(m.measurement.peak_rss_bytes)
        );
    }
    let mut measured = Vec::new();
    for interval in intervals {
        let m = median(&format!("rocksdb:q5:{interval}"), workers, args, events)?;
        compare(
            &format!("q5 with RocksDB and checkpoint interval {interval}"),
            &m.measurement.checksum,
            &baseline.measurement.checksum,
        )?;
        measured.push((interval.clone(), m));
    }
    let reference = measured
        .iter()
        .find(|(i, _)| i.eq_ignore_ascii_case("none"))
        .map(|(_, m)| rate(&m.measurement));
    let mut lines = Vec::new();
    for (interval, m) in &measured {
        let stats = m.checkpoints.clone().unwrap_or_default();
        let q = |p| {
            stats
                .duration_quantile(p)
                .map_or("-".to_string(), |v| v.to_string())
        };
        let vs_none = reference.map(|r| rate(&m.measurement) / r);
        println!(
            "{:<10} {:>14.0} {:>9} {:>7} {:>9} {:>9} {:>9} {:>12} {:>7.1} MiB",
            interval,
            rate(&m.measurement),
            vs_none.map_or("-".to_string(), |v| format!("{v:.2}x")),
            stats.completed,
            q(0.5),
            q(0.9),
            q(1.0),
            stats.mean_bytes().map_or("-".to_string(), |b| format!("{b:.0}")),
            mib(m.measurement.peak_rss_bytes)
        );
        let ratio = rate(&m.measurement) / rate(&baseline.measurement);
        let mut line = json_line(
            "nexmark_checkpoints",
            &format!("q5_rocksdb_checkpoint_{interval}"),
            workers,
            &m.measurement,
            &baseline.measurement,
            ratio,
        );
        line["checkpoint_interval"] = json!(interval.to_ascii_lowercase());
        line["memory_state_events_per_sec"] = json!(rate(&memory.measurement).round());
        line["ratio_to_no_checkpoints"] = json!(vs_none.map(round3));
        line["checkpoints_completed"] = json!(stats.completed);
        line["checkpoints_abandoned"] = json!(stats.abandoned);
        line["checkpoint_p50_ms"] = json!(stats.duration_quantile(0.5));
        line["checkpoint_p90_ms"] = json!(stats.duration_quantile(0.9));
        line["checkpoint_max_ms"] = json!(stats.duration_quantile(1.0));
        line["checkpoint_mean_bytes"] = json!(stats.mean_bytes().map(f64::round));
        lines.push(line);
    }
    Ok(lines)
}
