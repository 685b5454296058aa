//! The e-commerce job: orders and page views from Kafka → revenue per product per minute,
//! revenue per category over sliding 5 minutes, user sessions and conversions → Cassandra,
//! then a report read back from the tables.
//!
//! With no flags it needs no servers: it starts an in-process Kafka broker (librdkafka's mock
//! cluster) and an in-process CQL store, starts the job, produces 1,000,000 generated orders
//! and 2,000,000 page views into the broker while the job reads them, runs to the end of that
//! input and prints the report.
//!
//! ```text
//! cargo run --release --example ecommerce
//! cargo run --release --example ecommerce -- --events 200000 --workers 2 --state-dir /tmp/shop
//! cargo run --release --example ecommerce -- --brokers 127.0.0.1:9092 --cassandra 127.0.0.1:9042 \
//!     --events 0 --exit-when-idle 10
//! ```
//!
//! Every flag can also be given in a TOML file (`--config shop.toml`, keys as the flags with
//! underscores) or an environment variable (`SLUICE_BROKERS`, ...); flags win over the
//! environment, which wins over the file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sluice::engine::JobMetrics;
use sluice_cli::shop::{
    OnBadRecord, PartialSettings, Shop, ShopSettings, VIEWS_PER_ORDER, records_read, thousands, utc_clock,
};

// Records cross threads; glibc's allocator serialises those frees, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    about = "Orders and page views from Kafka → windowed revenue, sessions and conversions → Cassandra",
    after_help = "Without --brokers and --cassandra it starts an in-process Kafka broker and CQL store."
)]
struct Args {
    /// Settings file (TOML; keys as the flags below with underscores).
    #[arg(long, env = "SLUICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Rows in the report's product list.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    // Last: its security sections bring their own help headings.
    #[command(flatten)]
    settings: PartialSettings,
}

impl Args {
    fn settings(&self) -> anyhow::Result<ShopSettings> {
        let mut settings = ShopSettings::default();
        if let Some(path) = &self.config {
            settings.apply(PartialSettings::from_file(path)?);
        }
        settings.apply(self.settings.clone());
        settings.validate()?;
        Ok(settings)
    }
}

fn main() {
    let args = Args::parse();
    let settings = args.settings();
    // The in-process CQL store lacks the system tables the driver reads for cluster metadata;
    // the driver logs that at every connection.
    let embedded_store = settings.as_ref().is_ok_and(|s| s.cassandra.is_none());
    let default_filter = if embedded_store { "warn,scylla=off" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = settings.and_then(|settings| run(&args, settings)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args, settings: ShopSettings) -> anyhow::Result<()> {
    println!("Sluice e-commerce job");
    // Before anything starts: an interrupt while connecting stops the run cleanly too.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("cannot handle Ctrl-C")?;
    let shop = Shop::start(settings.clone())?;
    describe(&shop);
    if settings.scale_out {
        return run_scaled(&shop, &interrupted);
    }
    let job = shop.job()?;
    let started = Instant::now();
    let handle = job.start().context("the job did not start")?;
    let metrics_server = match settings.metrics_addr {
        Some(addr) => {
            let (tables, metrics) = (shop.tables().clone(), handle.metrics().clone());
            Some(sluice::engine::serve_prometheus_with_token(
                addr,
                settings.metrics_token()?,
                move || tables.prometheus_page(&metrics),
            )?)
        }
        None => None,
    };
    if let Some(addr) = handle.console_addr() {
        println!("Console: http://{addr}/");
    }
    if let Some(server) = &metrics_server {
        println!("Metrics: http://{}/metrics", server.addr());
    }
    let expected = settings.events * (1 + VIEWS_PER_ORDER);
    let bar = bar(args.quiet, (settings.events > 0).then_some(expected));
    if settings.events > 0 {
        // Generated records go in while the job reads them, as a shop's events would.
        let produced = shop.produce_alongside(&handle, |n| {
            if interrupted.load(Ordering::SeqCst) {
                handle.stop();
            }
            bar.set_message(status(handle.metrics(), started, n));
            bar.set_position(records_read(handle.metrics()));
        })?;
        bar.suspend(|| {
            println!(
                "Produced {} orders, {} page views and {} malformed orders in {:.1} s",
                thousands(produced.orders),
                thousands(produced.views),
                produced.malformed,
                started.elapsed().as_secs_f64()
            )
        });
    }
    while !handle.is_finished() {
        if interrupted.load(Ordering::SeqCst) {
            bar.suspend(|| {
                println!("Stopping (Ctrl-C); with --state-dir the next run resumes from the last checkpoint")
            });
            handle.stop();
            break;
        }
        bar.set_position(records_read(handle.metrics()));
        bar.set_message(status(handle.metrics(), started, expected));
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = handle.join().context("the job failed")?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let m = &report.metrics;
    let records = records_read(m);
    println!(
        "Processed {} records in {:.1} s ({} records/s): {} late orders, {} bad records dead-lettered, {} skipped",
        thousands(records),
        elapsed,
        thousands((records as f64 / elapsed) as u64),
        thousands(m.total("product_revenue_1m", "late_records")),
        thousands(m.total_all("dead_lettered")),
        thousands(m.total_all("bad_records_skipped")),
    );
    if settings.on_bad_record == OnBadRecord::DeadLetter(()) && m.total_all("dead_lettered") > 0 {
        println!(
            "  dead-lettered records are in topic '{}'",
            settings.dead_letter_topic()
        );
    }
    println!();
    print!("{}", shop.report(args.top, 6)?);
    Ok(())
}

/// One process of the job spread over several: runs the tasks the consumer groups give it
/// until Ctrl-C or SIGTERM, then hands them over.
fn run_scaled(shop: &Shop, interrupted: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let s = shop.settings();
    println!(
        "  scale-out: member of consumer groups {}-stage-{{orders,views,users,categories}}; tasks move with their checkpoints in {}",
        s.group,
        s.checkpoint_store.as_deref().unwrap_or_default()
    );
    println!(
        "  this process only reads its input (produce it with `sluice produce`); Ctrl-C hands its tasks over and leaves"
    );
    let scaled = Arc::new(shop.scaled()?);
    scaled.run(interrupted).context("a stage failed")?;
    println!("Stopped: tasks handed over");
    Ok(())
}

fn describe(shop: &Shop) {
    let s = shop.settings();
    println!("{}", shop.services().describe());
    println!(
        "  topics:    {} and {} → keyspace {}: product_revenue_1m, category_revenue_5m, user_sessions, conversions",
        s.orders_topic, s.page_views_topic, s.keyspace
    );
    let state = match &s.state_dir {
        Some(dir) => format!(
            "RocksDB in {}, checkpoint every {:?}",
            dir.display(),
            s.checkpoint_interval
        ),
        None => "in memory, no checkpoints (--state-dir DIR to keep it)".to_string(),
    };
    println!("  state:     {state}");
    if let Ok(config) = sluice_cli::shop::job_config(s) {
        println!(
            "  workers:   {}; watermark: newest order time per partition − 5 s\n",
            config.worker_count()
        );
    }
}

fn status(m: &JobMetrics, started: Instant, produced: u64) -> String {
    let records = records_read(m);
    let rate = records as f64 / started.elapsed().as_secs_f64().max(0.001);
    let watermark = [
        m.gauge_min("orders", "watermark"),
        m.gauge_min("page_views", "watermark"),
    ]
    .into_iter()
    .flatten()
    .min()
    .filter(|w| *w > 0)
    .map_or_else(|| "-".to_string(), utc_clock);
    format!(
        "{} records/s, lag {}, watermark {watermark}, {} dead-lettered",
        thousands(rate as u64),
        thousands(produced.saturating_sub(records)),
        m.total_all("dead_lettered")
    )
}

fn bar(quiet: bool, total: Option<u64>) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "[{elapsed_precise}] {bar:30} {human_pos}/{human_len} records {msg}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "[{elapsed_precise}] {spinner} {human_pos} records {msg}",
        ),
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
