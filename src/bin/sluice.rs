//! `sluice`: run declarative pipelines, generate input, inspect checkpoints.
//!
//! ```text
//! sluice run pipeline.toml
//! sluice produce --brokers 127.0.0.1:9092 --events 100000 --rate 5000
//! sluice produce --brokers 127.0.0.1:9092 --kind iot --events 1000000
//! sluice run pipeline.toml --console 8080
//! sluice status --console 127.0.0.1:8080
//! sluice savepoint --console 127.0.0.1:8080 --name before-upgrade
//! sluice stop --console 127.0.0.1:8080
//! sluice status --brokers 127.0.0.1:9092 --group sluice-shop --checkpoint-store s3://checkpoints/shop
//! sluice checkpoints list --state-dir /var/lib/sluice/revenue
//! sluice checkpoints show --state-dir /var/lib/sluice/revenue 12
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sluice::cassandra::{CassandraConfig, query_text};
use sluice::engine::{ConsoleConfig, RemoteCheckpoints, RemoteHead, list_checkpoints, show_manifest};
use sluice::kafka::{KafkaConfig, task_groups};
use sluice_cli::console_client::ConsoleClient;
use sluice_cli::datagen::{HostMetricGenerator, PaymentGenerator, SensorGenerator};
use sluice_cli::pipeline::{Pipeline, ScaledPipeline};
use sluice_cli::producer::JsonProducer;
use sluice_cli::security::{CassandraSecuritySettings, KafkaSecuritySettings};
use sluice_cli::shop::{ProduceSpec, ShopData, bearer_token, parse_listen_addr, produce, thousands, utc};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Sluice stream processing: pipelines, test data, checkpoints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a declarative pipeline (Kafka JSON → optional window and aggregates → Cassandra).
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Only read and check the file and the table, then stop.
        #[arg(long)]
        check: bool,
        /// Serve the web console and its REST API on this address; a port alone listens on
        /// loopback only.
        #[arg(long = "console", env = "SLUICE_CONSOLE", value_parser = parse_listen_addr, value_name = "[HOST:]PORT")]
        console_addr: Option<SocketAddr>,
        /// Require `Authorization: Bearer <token>` on the console's API, the token read from
        /// this file (or from SLUICE_CONSOLE_TOKEN).
        #[arg(long, env = "SLUICE_CONSOLE_TOKEN_FILE", value_name = "FILE")]
        console_token_file: Option<PathBuf>,
    },
    /// Generate events into Kafka: e-commerce orders and page views, sensor readings,
    /// payments or host metrics.
    Produce {
        /// Kafka bootstrap servers.
        #[arg(long, value_name = "HOST:PORT")]
        brokers: String,
        /// What to generate.
        #[arg(long, value_enum, default_value = "ecommerce")]
        kind: Kind,
        /// Topic of the orders, or of the other kinds' events (created if missing)
        /// [default: orders, sensor_readings, payments, host_metrics].
        #[arg(long)]
        topic: Option<String>,
        /// Topic of the page views (created if missing).
        #[arg(long, default_value = "page_views")]
        page_views_topic: String,
        /// Events to produce (for e-commerce: orders, and twice as many page views).
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Events (orders) per second of wall-clock time [default: as fast as the brokers take them].
        #[arg(long)]
        rate: Option<u64>,
        /// Partitions of topics it creates.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// TLS and SASL towards the brokers (the password: --kafka-password-file or
        /// SLUICE_KAFKA_PASSWORD).
        #[command(flatten)]
        security: KafkaSecuritySettings,
    },
    /// Run a CQL statement against Cassandra and print its rows (where no cqlsh is at hand).
    Cql {
        /// A Cassandra node.
        #[arg(long, value_name = "HOST:PORT", env = "SLUICE_CASSANDRA")]
        cassandra: String,
        /// Credentials and TLS (the password: --cassandra-password-file or
        /// SLUICE_CASSANDRA_PASSWORD).
        #[command(flatten)]
        security: CassandraSecuritySettings,
        /// The statement, e.g. "SELECT * FROM shop.product_revenue_1m LIMIT 10".
        statement: String,
    },
    /// A running job's state, operators, partitions, checkpoints and sinks, from its console
    /// (--console); or, for a job spread over processes (the e-commerce job's --scale-out),
    /// which process runs which task and each task's newest published checkpoint (--brokers
    /// and --group).
    Status {
        /// The job's console.
        #[command(flatten)]
        console: ConsoleTarget,
        /// Kafka bootstrap servers.
        #[arg(
            long,
            value_name = "HOST:PORT",
            env = "SLUICE_BROKERS",
            required_unless_present = "console"
        )]
        brokers: Option<String>,
        /// The job's group: its stages are the consumer groups `<group>-stage-<stage>`.
        #[arg(long, env = "SLUICE_GROUP", required_unless_present = "console")]
        group: Option<String>,
        /// The job's checkpoint store (s3://bucket/prefix): task q of stage s keeps its
        /// checkpoints under <store>/<s>-<q>. Endpoint and credentials from AWS_ENDPOINT,
        /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
        #[arg(long, env = "SLUICE_CHECKPOINT_STORE", value_name = "URL")]
        checkpoint_store: Option<String>,
        /// TLS and SASL towards the brokers.
        #[command(flatten)]
        security: KafkaSecuritySettings,
    },
    /// Take a savepoint of a running job through its console.
    Savepoint {
        /// The job's console.
        #[command(flatten)]
        console: ConsoleTarget,
        /// The savepoint's name [default: savepoint-<milliseconds since the epoch>].
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop a running job through its console, after a final checkpoint.
    Stop {
        /// The job's console.
        #[command(flatten)]
        console: ConsoleTarget,
    },
    /// List or show a job's checkpoints.
    Checkpoints {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
}

/// Kinds of generated events.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Orders and page views (`sluice_cli::datagen::{Order, PageView}`).
    Ecommerce,
    /// Sensor readings (`SensorReading`, key `device_id`).
    Iot,
    /// Payments (`Payment`, key `account_id`).
    Payments,
    /// Request latencies per host (`HostMetric`, key `host`).
    Hosts,
}

/// Where a running job's console is.
#[derive(clap::Args, Debug)]
struct ConsoleTarget {
    /// The console's address (host:port, as the job's --console).
    #[arg(long = "console", env = "SLUICE_CONSOLE", value_name = "HOST:PORT")]
    console: Option<String>,
    /// File holding the console's bearer token (or SLUICE_CONSOLE_TOKEN).
    #[arg(long, env = "SLUICE_CONSOLE_TOKEN_FILE", value_name = "FILE")]
    console_token_file: Option<PathBuf>,
}

impl ConsoleTarget {
    fn client(&self) -> anyhow::Result<ConsoleClient> {
        let addr = self.console.as_deref().context("--console is required")?;
        let token = bearer_token(
            self.console_token_file.as_deref(),
            "console-token-file",
            "SLUICE_CONSOLE_TOKEN",
        )?;
        Ok(ConsoleClient::new(addr, token))
    }
}

#[derive(Subcommand, Debug)]
enum CheckpointCommand {
    /// Every checkpoint and savepoint, oldest first, with whether it verifies.
    List {
        /// The job's state directory (checkpoints are in its `checkpoints/`), or a checkpoint
        /// directory.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// One checkpoint's manifest as JSON (default: the newest).
    Show {
        /// The job's state directory, or a checkpoint directory.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// Checkpoint id.
        id: Option<u64>,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Run {
            pipeline,
            check,
            console_addr,
            console_token_file,
        } => console_config(console_addr, console_token_file.as_deref())
            .and_then(|console| run(&pipeline, check, console)),
        Command::Produce {
            brokers,
            kind,
            topic,
            page_views_topic,
            events,
            rate,
            partitions,
            security,
        } => {
            let spec = ProduceSpec {
                orders_topic: topic.unwrap_or_else(|| default_topic(kind).to_string()),
                page_views_topic,
                partitions,
                events,
                orders_per_second: rate,
            };
            security
                .apply_to(KafkaConfig::new(brokers), "kafka", Some("SLUICE_KAFKA"))
                .map_err(anyhow::Error::from)
                .and_then(|kafka| produce_events(&kafka, kind, &spec))
        }
        Command::Cql {
            cassandra,
            statement,
            security,
        } => cql(&cassandra, &security, &statement),
        Command::Status {
            console,
            brokers,
            group,
            checkpoint_store,
            security,
        } => match (console.console.is_some(), brokers, group) {
            (true, _, _) => console
                .client()
                .and_then(|c| Ok(c.summary()?))
                .map(|summary| print!("{summary}")),
            (false, Some(brokers), Some(group)) => security
                .apply_to(KafkaConfig::new(brokers), "kafka", Some("SLUICE_KAFKA"))
                .map_err(anyhow::Error::from)
                .and_then(|kafka| status(&kafka, &group, checkpoint_store.as_deref())),
            _ => Err(anyhow::anyhow!("give --console, or --brokers and --group")),
        },
        Command::Savepoint { console, name } => console.client().and_then(|c| {
            let path = match name {
                Some(name) => format!("savepoint?name={name}"),
                None => "savepoint".to_string(),
            };
            let saved = c.post(&path)?;
            println!(
                "savepoint {} at {}",
                saved["name"].as_str().unwrap_or("?"),
                saved["path"].as_str().unwrap_or("?")
            );
            Ok(())
        }),
        Command::Stop { console } => console.client().and_then(|c| {
            let stopped = c.post("stop")?;
            match stopped["final_checkpoint"].as_u64() {
                Some(id) => println!("stopping after final checkpoint {id}"),
                None => println!("stopping (the job takes no checkpoints)"),
            }
            Ok(())
        }),
        Command::Checkpoints { command } => match command {
            CheckpointCommand::List { state_dir } => list(&state_dir),
            CheckpointCommand::Show { state_dir, id } => show(&state_dir, id),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Prints every task group of job `group`: members, each task's owner and, with a store, its
/// newest published checkpoint.
fn status(kafka: &KafkaConfig, group: &str, store: Option<&str>) -> anyhow::Result<()> {
    let prefix = format!("{group}-stage");
    let groups = task_groups(kafka, &prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
    if groups.is_empty() {
        bail!(
            "no consumer group '{prefix}-<stage>' with members on {}",
            kafka.brokers()
        );
    }
    for g in groups {
        let stage = g.group.strip_prefix(&format!("{prefix}-")).unwrap_or(&g.group);
        println!("{} ({}, {} members)", g.group, g.state, g.members);
        println!("  {:>5}  {:<22} {:<18} last checkpoint", "task", "owner", "host");
        for owner in &g.owners {
            let checkpoint = match store {
                Some(url) => {
                    last_checkpoint(&format!("{}/{stage}-{}", url.trim_end_matches('/'), owner.task))
                }
                None => "-".to_string(),
            };
            println!(
                "  {:>5}  {:<22} {:<18} {checkpoint}",
                owner.task, owner.client_id, owner.host
            );
        }
    }
    Ok(())
}

/// "`id` (epoch `e`)" of the newest checkpoint published under `url`, or why not.
fn last_checkpoint(url: &str) -> String {
    let head = RemoteCheckpoints::s3(url, &[])
        .map_err(|e| e.to_string())
        .and_then(|store| store.head_now().map_err(|e| e.to_string()));
    match head {
        Ok(Some(RemoteHead {
            checkpoint: Some(id),
            name,
            ..
        })) => {
            let epoch = name
                .as_deref()
                .and_then(|n| n.rsplit_once("-e"))
                .and_then(|(_, e)| e.parse::<u64>().ok())
                .map_or("?".to_string(), |e| e.to_string());
            format!("{id} (epoch {epoch})")
        }
        Ok(_) => "none yet".to_string(),
        Err(e) => format!("unknown: {e}"),
    }
}

/// The console the job serves, if `--console` asks for one.
fn console_config(
    addr: Option<SocketAddr>,
    token_file: Option<&Path>,
) -> anyhow::Result<Option<ConsoleConfig>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let console = ConsoleConfig::new(addr);
    Ok(Some(
        match bearer_token(token_file, "console-token-file", "SLUICE_CONSOLE_TOKEN")? {
            Some(token) => console.token(token),
            None => console,
        },
    ))
}

fn run(path: &Path, check: bool, console: Option<ConsoleConfig>) -> anyhow::Result<()> {
    let mut pipeline = Pipeline::load(path)?;
    if let Some(console) = console {
        pipeline = pipeline.with_console(console);
    }
    pipeline.connect()?;
    let spec = pipeline.spec();
    println!(
        "{}: {} → {}.{}",
        spec.name,
        spec.source.get_ref().topic,
        spec.sink.get_ref().keyspace,
        spec.sink.get_ref().table
    );
    if check {
        println!("pipeline and table check out");
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("cannot handle Ctrl-C")?;
    if let Some(scale_out) = &spec.scale_out {
        let group = &scale_out.get_ref().group;
        println!(
            "running this process's share of group {group}'s tasks (sluice status --group {group}); Ctrl-C hands them over"
        );
        let scaled = Arc::new(ScaledPipeline::new(&pipeline)?);
        scaled.run(&stop)?;
        println!(
            "tasks handed over; {} rows written here",
            thousands(pipeline.sink_stats().rows_written())
        );
        return Ok(());
    }
    let handle = pipeline.job()?.start().context("the job did not start")?;
    if let Some(addr) = handle.console_addr() {
        println!("console: http://{addr}/");
    }
    let started = Instant::now();
    while !handle.is_finished() {
        if stop.load(Ordering::SeqCst) {
            eprintln!("stopping; with state_dir the next run resumes from the last checkpoint");
            handle.stop();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = handle.join().context("the pipeline failed")?;
    let m = &report.metrics;
    let stats = pipeline.sink_stats();
    println!(
        "{} records in {:.1} s, {} rows written, {} bad records skipped, {} dead-lettered, {} late",
        thousands(m.total("source", "records_out")),
        started.elapsed().as_secs_f64(),
        thousands(stats.rows_written()),
        thousands(m.total("source", "bad_records_skipped")),
        thousands(m.total("source", "dead_lettered")),
        thousands(m.total_all("late_records")),
    );
    Ok(())
}

fn cql(cassandra: &str, security: &CassandraSecuritySettings, statement: &str) -> anyhow::Result<()> {
    // No keyspace of its own: statements name their tables in full.
    let config = security.apply_to(
        CassandraConfig::new([cassandra.to_string()], "system"),
        "cassandra",
        Some("SLUICE_CASSANDRA"),
    )?;
    let table = query_text(&config, statement)?;
    if table.columns.is_empty() {
        println!("done");
        return Ok(());
    }
    let widths: Vec<usize> = (0..table.columns.len())
        .map(|i| {
            table
                .rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([table.columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect::<Vec<_>>()
            .join("|")
    };
    println!("{}", line(&table.columns));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    for row in &table.rows {
        println!("{}", line(row));
    }
    println!("\n({} rows)", table.rows.len());
    Ok(())
}

fn default_topic(kind: Kind) -> &'static str {
    match kind {
        Kind::Ecommerce => "orders",
        Kind::Iot => "sensor_readings",
        Kind::Payments => "payments",
        Kind::Hosts => "host_metrics",
    }
}

fn produce_events(kafka: &KafkaConfig, kind: Kind, spec: &ProduceSpec) -> anyhow::Result<()> {
    let mut topics = vec![&spec.orders_topic];
    if kind == Kind::Ecommerce {
        topics.push(&spec.page_views_topic);
    }
    for topic in topics {
        sluice::kafka::ensure_topic(kafka, topic, spec.partitions).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let started = Instant::now();
    if kind == Kind::Ecommerce {
        let produced = produce(kafka, spec, &ShopData::default(), |_| {})?;
        println!(
            "produced {} orders, {} page views and {} malformed orders in {:.1} s",
            thousands(produced.orders),
            thousands(produced.views),
            produced.malformed,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let (sensors, payments, hosts) = (
        SensorGenerator::default(),
        PaymentGenerator::default(),
        HostMetricGenerator::default(),
    );
    let mut producer = JsonProducer::new(kafka)?;
    let topic = spec.orders_topic.as_str();
    for n in 0..spec.events {
        if let Some(rate) = spec.orders_per_second.filter(|r| *r > 0 && n % 64 == 0) {
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        match kind {
            Kind::Iot => {
                let r = sensors.nth(n);
                producer.send(topic, &r.device_id, &r, Some(r.ts))?;
            }
            Kind::Payments => {
                let p = payments.nth(n);
                producer.send(topic, &p.account_id, &p, Some(p.ts))?;
            }
            // (E-commerce events were produced above.)
            Kind::Hosts | Kind::Ecommerce => {
                let m = hosts.nth(n);
                producer.send(topic, &m.host, &m, Some(m.ts))?;
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    println!(
        "produced {} events to '{topic}' in {:.1} s",
        thousands(spec.events),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The checkpoint directory of a state directory, or the directory itself.
fn checkpoint_dir(state_dir: &std::path::Path) -> PathBuf {
    let nested = state_dir.join("checkpoints");
    if nested.is_dir() {
        nested
    } else {
        state_dir.to_path_buf()
    }
}

fn list(state_dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = checkpoint_dir(state_dir);
    let checkpoints = list_checkpoints(&dir)?;
    if checkpoints.is_empty() {
        println!("no checkpoints in {}", dir.display());
        return Ok(());
    }
    println!(
        "{:>6}  {:<20}  {:>10}  {:<20}  directory",
        "id", "completed", "partitions", "watermark"
    );
    for c in checkpoints {
        match &c.manifest {
            Ok(m) => {
                let partitions: usize = m.offsets.values().map(|p| p.len()).sum();
                println!(
                    "{:>6}  {:<20}  {:>10}  {:<20}  {}",
                    c.id,
                    utc(m.completed_at_ms as i64),
                    partitions,
                    if m.watermark > 0 {
                        utc(m.watermark)
                    } else {
                        "-".into()
                    },
                    c.dir.display()
                );
            }
            Err(e) => println!("{:>6}  unusable: {e}  {}", c.id, c.dir.display()),
        }
    }
    Ok(())
}

fn show(state_dir: &std::path::Path, id: Option<u64>) -> anyhow::Result<()> {
    let dir = checkpoint_dir(state_dir);
    let checkpoints = list_checkpoints(&dir)?;
    let chosen = match id {
        Some(id) => checkpoints.iter().find(|c| c.id == id),
        None => checkpoints.iter().rev().find(|c| c.manifest.is_ok()),
    };
    let Some(checkpoint) = chosen else {
        bail!("no such checkpoint in {}", dir.display());
    };
    println!("{}", show_manifest(&checkpoint.dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_has_an_id_and_a_name_of_its_own() {
        super::Cli::command().debug_assert();
    }
}
