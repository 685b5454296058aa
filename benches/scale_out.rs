//! Scale-out benchmark: the e-commerce job on 1, 2 and 3 processes of this machine
//! (`--scale-out`: four stages joined by repartition topics, tasks moved by consumer groups,
//! checkpoints in an S3-compatible store), against real Apache Kafka, Apache Cassandra and
//! moto's S3 server on loopback. The input (orders and twice as many page views) is produced
//! once; each measurement runs its processes on it with a group, keyspace and store prefix of
//! its own, from their start until every task of every stage has finished (the input stages
//! end 3 s after their last record; that wait, the processes' start-up and the group joins are
//! in the wall time). CPU seconds are the processes' own (user + system), so they show what
//! the repartition topics, the task jobs and the handovers cost per record, against the same job
//! in one process without scale-out (2 workers, local checkpoints), run first on the same input
//! as the baseline (every run's tables must have its row counts). A machine with two shared
//! cores cannot show a speed-up; a cluster with a core or more per process would.
//!
//! ```text
//! scripts/bench.sh scale_out
//! cargo bench --bench scale_out -- --events 300000 --processes 1,2,3
//! ```

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use common::services::{Service, kafka_version};
use sluice::cassandra::read_rows;
use sluice_cli::shop::{MALFORMED_ORDERS, Shop, ShopSettings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 4;
const STAGES: usize = 4;

#[derive(Parser, Debug)]
struct Args {
    /// Orders produced (and twice as many page views).
    #[arg(long, default_value_t = 300_000)]
    events: u64,
    /// Process counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    processes: Vec<usize>,
    /// Internal: run one process of the job with these settings (JSON).
    #[arg(long, hide = true)]
    member: Option<String>,
    /// Internal: run the job in one process without scale-out, with these settings (JSON).
    #[arg(long, hide = true)]
    single: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match (&args.member, &args.single) {
        (Some(settings), _) => member(settings),
        (None, Some(settings)) => single(settings),
        (None, None) => parent(&args),
    }
}

/// The settings a member process gets, as JSON on its command line.
#[derive(serde::Serialize, serde::Deserialize)]
struct Member {
    brokers: String,
    cassandra: String,
    keyspace: String,
    orders_topic: String,
    group: String,
    state_dir: PathBuf,
    store: String,
}

impl Member {
    fn settings(&self) -> ShopSettings {
        ShopSettings {
            brokers: Some(self.brokers.clone()),
            cassandra: Some(self.cassandra.clone()),
            keyspace: self.keyspace.clone(),
            orders_topic: self.orders_topic.clone(),
            page_views_topic: format!("{}-views", self.orders_topic),
            partitions: PARTITIONS,
            group: self.group.clone(),
            events: 0,
            exit_when_idle: Some(Duration::from_secs(3)),
            state_dir: Some(self.state_dir.clone()),
            checkpoint_store: Some(self.store.clone()),
            checkpoint_interval: Duration::from_secs(1),
            scale_out: true,
            ..ShopSettings::default()
        }
    }
}

/// One process of the job: runs its tasks until SIGINT, logging each task that finishes.
fn member(json: &str) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("warn,sluice_kafka::tasks=info")
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let member: Member = serde_json::from_str(json)?;
    let shop = Shop::start(member.settings())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    Arc::new(shop.scaled()?).run(&stop)?;
    Ok(())
}

/// The baseline: the same job in one process as it runs without `--scale-out` (2 workers,
/// RocksDB state, local checkpoints every second), to the end of its input.
fn single(json: &str) -> anyhow::Result<()> {
    let member: Member = serde_json::from_str(json)?;
    let settings = ShopSettings {
        scale_out: false,
        checkpoint_store: None,
        workers: Some(2),
        ..member.settings()
    };
    Shop::start(settings)?.job()?.run()?;
    Ok(())
}

fn parent(args: &Args) -> anyhow::Result<()> {
    let kafka = Service::kafka()?;
    let cassandra = Service::cassandra()?;
    let s3 = std::env::var("SLUICE_S3_ENDPOINT")
        .context("SLUICE_S3_ENDPOINT must name an S3-compatible server (scripts/bench.sh starts one)")?;
    create_bucket(&s3)?;
    let run = format!("bench-scale-{}", std::process::id());
    let orders_topic = format!("{run}-orders");
    let input = ShopSettings {
        brokers: Some(kafka.addr.clone()),
        cassandra: Some(cassandra.addr.clone()),
        keyspace: format!("{run}_input").replace('-', "_"),
        orders_topic: orders_topic.clone(),
        page_views_topic: format!("{orders_topic}-views"),
        partitions: PARTITIONS,
        events: args.events,
        ..ShopSettings::default()
    };
    let produced = Shop::start(input)?.produce(|_| {})?;
    let records = produced.orders + produced.views + MALFORMED_ORDERS;
    println!(
        "scale_out: {} orders, {} page views on {} at {}, {PARTITIONS} partitions per topic; Cassandra at {}; S3 at {s3}",
        produced.orders,
        produced.views,
        kafka_version(&kafka),
        kafka.addr,
        cassandra.addr
    );
    println!(
        "{:<26} {:>8} {:>12} {:>8} {:>8} {:>9}  rows per table",
        "measurement", "wall s", "records/s", "ratio", "cpu s", "cpu s/M"
    );
    let dir = std::env::temp_dir().join(&run);
    let mut lines = Vec::new();
    let mut baseline: Option<(f64, f64, [u64; 4])> = None;
    for n in std::iter::once(0).chain(args.processes.iter().copied()) {
        let name = format!("{run}-p{n}");
        let member = Member {
            brokers: kafka.addr.clone(),
            cassandra: cassandra.addr.clone(),
            keyspace: name.replace('-', "_"),
            orders_topic: orders_topic.clone(),
            group: name.clone(),
            state_dir: dir.join(&name),
            store: format!("s3://sluice-checkpoints/{name}"),
        };
        // 0: the job in one process without scale-out, the baseline.
        let (seconds, cpu) = measure(&member, n, &s3, &dir)?;
        let rows = table_rows(&member)?;
        let rate = records as f64 / seconds;
        let cpu_per_million = cpu * 1e6 / records as f64;
        let (base_rate, base_cpu, base_rows) = *baseline.get_or_insert((rate, cpu_per_million, rows));
        if rows != base_rows {
            bail!("{n} processes wrote {rows:?} rows, the job without scale-out {base_rows:?}");
        }
        let label = match n {
            0 => "job, 1 process, 2 workers".to_string(),
            1 => "scale-out, 1 process".to_string(),
            n => format!("scale-out, {n} processes"),
        };
        println!(
            "{label:<26} {seconds:>8.1} {rate:>12.0} {:>7.2}x {cpu:>8.1} {cpu_per_million:>9.2}  {rows:?}",
            rate / base_rate
        );
        lines.push(serde_json::json!({
            "bench": "scale_out",
            "processes": n,
            "scale_out": n > 0,
            "events": records,
            "seconds": (seconds * 100.0).round() / 100.0,
            "events_per_sec": rate.round(),
            "ratio": ((rate / base_rate) * 1000.0).round() / 1000.0,
            "cpu_seconds": (cpu * 100.0).round() / 100.0,
            "cpu_seconds_per_million": (cpu_per_million * 100.0).round() / 100.0,
            "baseline_cpu_seconds_per_million": (base_cpu * 100.0).round() / 100.0,
            "rows": rows,
        }));
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Runs `n` member processes until every task of every stage has finished (with `n` 0, the
/// job without scale-out to its end); returns the wall time and the processes' CPU seconds.
fn measure(member: &Member, n: usize, s3: &str, dir: &Path) -> anyhow::Result<(f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string(member)?;
    // The keyspace and tables first, so no member's start-up races another's.
    Shop::start(member.settings())?;
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let mut children: Vec<(Child, PathBuf)> = Vec::new();
    if n == 0 {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--single", &json])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the job's process")?;
        if !child.wait()?.success() {
            bail!("the job without scale-out failed");
        }
        return Ok((
            started.elapsed().as_secs_f64(),
            children_cpu_seconds() - cpu_before,
        ));
    }
    for i in 0..n {
        let log = dir.join(format!("{}-{i}.log", member.group));
        let mine = Member {
            state_dir: member.state_dir.join(i.to_string()),
            ..serde_json::from_str(&json)?
        };
        let child = Command::new(std::env::current_exe()?)
            .args(["--member", &serde_json::to_string(&mine)?])
            .env("AWS_ENDPOINT", s3)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start a member process")?;
        children.push((child, log));
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let finished: BTreeSet<String> = children.iter().flat_map(|(_, log)| finished_tasks(log)).collect();
        if finished.len() >= STAGES * PARTITIONS as usize {
            break;
        }
        if let Some(log) = children
            .iter_mut()
            .find_map(|(c, log)| matches!(c.try_wait(), Ok(Some(_))).then_some(log))
        {
            bail!(
                "a member ended early:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the job did not finish in 30 minutes ({} tasks finished)",
                finished.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = started.elapsed().as_secs_f64();
    for (child, _) in &children {
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
    }
    for (child, _) in &mut children {
        child.wait()?;
    }
    Ok((seconds, children_cpu_seconds() - cpu_before))
}

/// The `(group, task)` of every "task finished" line of a member's log.
fn finished_tasks(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("task finished"))
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name).map(str::to_string))
            };
            Some(format!("{}/{}", field("group=")?, field("task=")?))
        })
        .collect()
}

/// User plus system CPU seconds of the child processes waited for so far.
fn children_cpu_seconds() -> f64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(u.user_time()) + seconds(u.system_time())
    })
}

/// Rows of the four tables of a measurement's keyspace.
fn table_rows(member: &Member) -> anyhow::Result<[u64; 4]> {
    let shop = Shop::start(member.settings())?;
    let cql = &shop.services().cql;
    let count = |table: &str| -> anyhow::Result<u64> {
        let rows: Vec<(i64,)> = read_rows(cql, &format!("SELECT COUNT(*) FROM {}.{table}", member.keyspace))?;
        Ok(rows.first().map_or(0, |r| r.0 as u64))
    };
    Ok([
        count("product_revenue_1m")?,
        count("category_revenue_5m")?,
        count("user_sessions")?,
        count("conversions")?,
    ])
}

/// Creates the benchmark's bucket on the S3 server (moto takes unsigned requests).
fn create_bucket(endpoint: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).with_context(|| format!("S3 server at {host}"))?;
    write!(
        stream,
        "PUT /sluice-checkpoints HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if !(response.starts_with("HTTP/1.1 200") || response.contains("BucketAlreadyOwnedByYou")) {
        bail!("cannot create the bucket: {response}");
    }
    Ok(())
}
