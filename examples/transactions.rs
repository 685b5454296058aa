//! Payments: per-account running balances and per-currency minute totals in Cassandra,
//! effectively once across a crash.
//!
//! ```text
//! cargo run --release --example transactions                 # with a crash in the middle
//! cargo run --release --example transactions -- --no-crash
//! ```
//!
//! The example starts an in-process Kafka broker and CQL store (or uses `--brokers` /
//! `--cassandra`), produces 200,000 generated payments, then runs the job in a child process
//! with RocksDB state and a checkpoint every 500 ms. Once two checkpoints are complete it kills
//! the child with SIGKILL, starts a new one that resumes from the last complete checkpoint and
//! runs to the end of the input, and finally checks every balance and total in the tables
//! against a computation over all payments at once: a crash neither loses nor doubles a
//! payment.
//!
//! Balances are written with the number of payments applied as the write timestamp. That
//! number only grows, whatever the event times, so an older balance can never overwrite a
//! newer one, and a replay after a crash rewrites the same cells with the same values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraConfig, CassandraSink, TableSchema, read_rows};
use sluice::engine::{BoxError, CheckpointConfig, StateBackendConfig, list_checkpoints};
use sluice::kafka::{KafkaConfig, KafkaSource};
use sluice::prelude::*;
use sluice_cli::datagen::{Payment, PaymentGenerator};
use sluice_cli::embedded::Endpoints;
use sluice_cli::producer::JsonProducer;
use sluice_cli::shop::{dollars, thousands};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    about = "Payments → account balances and minute totals in Cassandra, effectively once across a crash"
)]
struct Args {
    /// Payments to generate and produce.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Run once to the end, without the crash.
    #[arg(long)]
    no_crash: bool,
    /// Kafka bootstrap servers [default: an in-process broker].
    #[arg(long)]
    brokers: Option<String>,
    /// A Cassandra contact point [default: an in-process CQL store].
    #[arg(long)]
    cassandra: Option<String>,
    /// Worker threads of the job [default: available cores].
    #[arg(long)]
    workers: Option<usize>,
    /// State and checkpoints go here [default: a new temporary directory].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Run the job itself (what the example starts in a child process).
    #[arg(long, hide = true)]
    child: Option<u32>,
    /// The CQL store is the in-process kind (child processes).
    #[arg(long, hide = true)]
    embedded_store: bool,
}

/// `payments.account_balances`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Balance {
    account_id: String,
    currency: String,
    balance_cents: i64,
    payments: i64,
    updated_at: i64,
}

/// `payments.currency_totals_1m`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MinuteTotal {
    currency: String,
    window_start: i64,
    net_cents: i64,
    payments: i64,
}

const TOPIC: &str = "payments";
/// A payment's size in the broker's log, generously (JSON of about 110 bytes plus framing).
const PAYMENT_BYTES: u64 = 200;
const KEYSPACE: &str = "payments";

/// Applies each payment to its account's balance and emits the new balance.
struct ApplyPayment;

impl KeyedProcessFunction<String, Payment> for ApplyPayment {
    /// Balance, payments applied, latest payment time.
    type State = (i64, i64, i64);
    type Out = Balance;

    fn process(
        &mut self,
        p: Payment,
        ctx: &mut ProcessContext<'_, String, (i64, i64, i64), Balance>,
    ) -> Result<(), BoxError> {
        let (balance, count, latest) = ctx.state()?.unwrap_or((0, 0, i64::MIN));
        let next = (balance + p.amount_cents, count + 1, latest.max(p.ts));
        ctx.set_state(next)?;
        ctx.emit(Balance {
            account_id: p.account_id,
            currency: p.currency,
            balance_cents: next.0,
            payments: next.1,
            updated_at: next.2,
        })
    }
}

fn main() {
    let args = Args::parse();
    let result = match args.child {
        Some(run) => run_job(&args, run),
        None => run(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn tables(
    cql: &CassandraConfig,
    embedded_store: bool,
) -> (CassandraSink<Balance>, CassandraSink<MinuteTotal>) {
    // The in-process store keeps no write timestamps: the last write to arrive wins, so one
    // account's balances must arrive in order there. Cassandra orders them by timestamp.
    let balance_config = if embedded_store {
        cql.clone().max_in_flight(1)
    } else {
        cql.clone()
    };
    let balances = CassandraSink::new(balance_config, "account_balances")
        .create_table_if_missing(TableSchema::partition_key(["account_id"]).timestamp_columns(["updated_at"]))
        .write_timestamp(|b: &Balance, _| b.payments);
    let totals = CassandraSink::new(cql.clone(), "currency_totals_1m").create_table_if_missing(
        TableSchema::partition_key(["currency"])
            .clustering_key(["window_start"])
            .timestamp_columns(["window_start"]),
    );
    (balances, totals)
}

/// The job (in a child process): run `run` of the job, resuming from the latest checkpoint.
fn run_job(args: &Args, run: u32) -> anyhow::Result<()> {
    let (brokers, cassandra, dir) = match (&args.brokers, &args.cassandra, &args.state_dir) {
        (Some(b), Some(c), Some(d)) => (b.clone(), c.clone(), d.clone()),
        _ => bail!("a job process needs --brokers, --cassandra and --state-dir"),
    };
    let mut cql = CassandraConfig::new([cassandra], KEYSPACE);
    if args.embedded_store {
        cql = cql.for_embedded_store();
    }
    let (balances, totals) = tables(&cql, args.embedded_store);
    let mut config = JobConfig::new("transactions")
        .state_backend(StateBackendConfig::rocksdb(dir.join("state")))
        .checkpoints(CheckpointConfig::new(dir.join("checkpoints")).interval(Duration::from_millis(500)));
    if let Some(w) = args.workers {
        config = config.workers(w);
    }
    let kafka = KafkaConfig::new(brokers);
    // A new consumer group per run: positions come from the checkpoint, and the killed run's
    // group members need not time out first.
    let group = format!("sluice-transactions-{run}");
    let job = Job::new(config, move |b| {
        let payments = b.source(
            "payments",
            KafkaSource::<Payment>::json(kafka.clone(), group.clone(), &[TOPIC])
                .exit_when_idle(Duration::from_secs(2)),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|p: &Payment| p.ts),
        );
        payments
            .key_by("by_account", |p| p.account_id.clone())
            .process("balances", ApplyPayment)
            .sink("account_balances_table", balances.clone());
        payments
            .key_by("by_currency", |p| p.currency.clone())
            .window("currency_totals_1m", Windows::tumbling(Duration::from_secs(60)))
            .aggregate((Sum::of(|p: &Payment| p.amount_cents), Count))
            .map("total_row", |w| MinuteTotal {
                currency: w.key,
                window_start: w.window.start,
                net_cents: w.value.0,
                payments: w.value.1 as i64,
            })
            .sink("currency_totals_table", totals.clone());
        Ok(())
    })?;
    job.run().context("the job failed")?;
    Ok(())
}

fn run(args: &Args) -> anyhow::Result<()> {
    let services = Endpoints::start(args.brokers.as_deref(), args.cassandra.as_deref(), KEYSPACE)?;
    println!("Sluice transactions job\n{}\n", services.describe());
    // The job runs in other processes, so the producer cannot follow its progress: all
    // payments go in first. The in-process broker keeps only 5 MB per partition, so the topic
    // gets enough partitions to hold them all.
    let partitions = if services.kafka_is_embedded() { 16 } else { 4 };
    if services.kafka_is_embedded() && args.events * PAYMENT_BYTES / partitions as u64 > 4_000_000 {
        bail!(
            "the in-process broker keeps 5 MB per partition: at most {} payments (or use --brokers)",
            4_000_000 * partitions as u64 / PAYMENT_BYTES
        );
    }
    services.create_topic(TOPIC, partitions)?;
    let generator = PaymentGenerator::default();
    let payments: Vec<Payment> = (0..args.events).map(|n| generator.nth(n)).collect();
    let mut producer = JsonProducer::new(&services.kafka)?;
    for p in &payments {
        producer.send(TOPIC, &p.account_id, p, Some(p.ts))?;
    }
    producer.flush(Duration::from_secs(60))?;
    println!("Produced {} payments", thousands(payments.len() as u64));
    // Create the tables here, so the child processes find them.
    let (balances, totals) = tables(&services.cql, services.cql_is_embedded());
    balances.connect()?;
    totals.connect()?;

    let temp;
    let dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary state directory")?;
            temp.path().to_path_buf()
        }
    };
    let cql_addr = services.cql.contact_points().join(",");
    let child = |run: u32| -> anyhow::Result<std::process::Child> {
        let exe = std::env::current_exe().context("cannot find this program")?;
        let mut command = Command::new(exe);
        command
            .args(["--child", &run.to_string()])
            .args(["--brokers", services.kafka.brokers()])
            .args(["--cassandra", &cql_addr])
            .arg("--state-dir")
            .arg(&dir)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        if services.cql_is_embedded() {
            command.arg("--embedded-store");
        }
        if let Some(w) = args.workers {
            command.args(["--workers", &w.to_string()]);
        }
        command.spawn().context("cannot start the job process")
    };

    let started = Instant::now();
    let mut run = 1;
    if !args.no_crash {
        let mut first = child(run)?;
        let checkpoints = wait_for_checkpoints(&dir.join("checkpoints"), 2, &mut first)?;
        first.kill().context("cannot kill the job process")?;
        let _ = first.wait();
        println!("Killed the job (SIGKILL) after checkpoint {checkpoints}; restarting from it");
        run += 1;
    }
    let status = child(run)?.wait().context("the job process")?;
    if !status.success() {
        bail!("the job process failed: {status}");
    }
    println!("Job finished in {:.1} s\n", started.elapsed().as_secs_f64());
    verify(&services.cql, &payments)
}

/// Waits until `count` checkpoints under `dir` are complete; returns the newest id.
fn wait_for_checkpoints(dir: &Path, count: usize, child: &mut std::process::Child) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("the job ended ({status}) before {count} checkpoints completed; try more --events");
        }
        let done: Vec<u64> = list_checkpoints(dir)
            .map(|list| {
                list.into_iter()
                    .filter(|c| c.manifest.is_ok())
                    .map(|c| c.id)
                    .collect()
            })
            .unwrap_or_default();
        if done.len() >= count {
            return Ok(done.into_iter().max().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no {count} checkpoints within 2 minutes")
}

/// Compares the tables with balances and totals computed over all payments at once.
fn verify(cql: &CassandraConfig, payments: &[Payment]) -> anyhow::Result<()> {
    let mut expected_balances: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut expected_totals: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for p in payments {
        let b = expected_balances.entry(p.account_id.clone()).or_default();
        b.0 += p.amount_cents;
        b.1 += 1;
        let t = expected_totals
            .entry((p.currency.clone(), p.ts - p.ts.rem_euclid(60_000)))
            .or_default();
        t.0 += p.amount_cents;
        t.1 += 1;
    }
    let balances: BTreeMap<String, (i64, i64)> = read_rows::<(String, i64, i64)>(
        cql,
        &format!("SELECT account_id, balance_cents, payments FROM {KEYSPACE}.account_balances"),
    )?
    .into_iter()
    .map(|(a, b, n)| (a, (b, n)))
    .collect();
    let totals: BTreeMap<(String, i64), (i64, i64)> = read_rows::<(String, CqlTimestamp, i64, i64)>(
        cql,
        &format!("SELECT currency, window_start, net_cents, payments FROM {KEYSPACE}.currency_totals_1m"),
    )?
    .into_iter()
    .map(|(c, w, n, p)| ((c, w.0), (n, p)))
    .collect();
    let wrong_balances = expected_balances
        .iter()
        .filter(|(a, b)| balances.get(*a) != Some(b))
        .count();
    let wrong_totals = expected_totals
        .iter()
        .filter(|(k, t)| totals.get(*k) != Some(t))
        .count();
    let total: i64 = balances.values().map(|b| b.0).sum();
    println!(
        "account_balances: {} accounts, {} differ from the payments ({} held in total)",
        thousands(balances.len() as u64),
        wrong_balances,
        dollars(total)
    );
    println!(
        "currency_totals_1m: {} minute totals, {} differ from the payments",
        thousands(totals.len() as u64),
        wrong_totals
    );
    if wrong_balances > 0 || wrong_totals > 0 || balances.len() != expected_balances.len() {
        bail!("the tables do not match the payments");
    }
    println!("Every payment counted exactly once.");
    Ok(())
}
