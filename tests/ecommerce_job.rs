//! The e-commerce job end to end, as the `ecommerce` example runs it: generated orders and
//! page views produced into Kafka, the job to the end of input, the four tables read back
//! over CQL and compared with the same results computed over all the input at once.
//!
//! One run uses the embedded defaults (librdkafka's mock cluster, the in-process CQL store);
//! the other a real Kafka-protocol broker (`SLUICE_KAFKA_BROKERS`, Tansu under
//! scripts/test.sh) with RocksDB state and checkpoints.

mod common;

use std::time::Duration;

use common::TempDir;
use common::kafka::{brokers, unique};
use common::shop::{Table, assert_tables_match_batch, read_tables};
use sluice::engine::{JobReport, list_checkpoints};
use sluice_cli::shop::{MALFORMED_ORDERS, Shop, ShopReport, ShopSettings, VIEWS_PER_ORDER};

/// Runs the job to the end of its input, producing the input first or (as the example does)
/// while the job runs; returns its report and the tables as read back.
fn run(settings: ShopSettings, alongside: bool) -> (Shop, JobReport, [Table; 4]) {
    let shop = Shop::start(settings).expect("services and tables");
    let job = shop.job().expect("valid job");
    let report = if alongside {
        let handle = job.start().expect("job starts");
        let produced = shop.produce_alongside(&handle, |_| {}).expect("produced");
        assert_eq!(produced.orders, shop.settings().events);
        handle.join().expect("job runs")
    } else {
        let produced = shop.produce(|_| {}).expect("produced");
        assert_eq!(produced.orders, shop.settings().events);
        job.run().expect("job runs")
    };
    let tables = read_tables(&shop.services().cql);
    (shop, report, tables)
}

#[test]
fn embedded_defaults_write_the_tables_a_batch_computation_gives() {
    let settings = ShopSettings {
        events: 30_000,
        workers: Some(2),
        ..ShopSettings::default()
    };
    let (shop, report, tables) = run(settings, true);
    let m = &report.metrics;
    assert_eq!(m.total("orders", "dead_lettered"), MALFORMED_ORDERS);
    assert_eq!(m.total("orders", "records_out"), 30_000);
    assert_eq!(m.total("page_views", "records_out"), 30_000 * VIEWS_PER_ORDER);
    let late: Vec<_> = m
        .snapshot()
        .into_iter()
        .filter(|(_, name, n)| name == "late_records" && *n > 0)
        .collect();
    assert!(late.is_empty(), "late records: {late:?}");
    assert_tables_match_batch(shop.data(), shop.settings().events, &tables);

    let summary = shop.report(3, 4).expect("report");
    assert_eq!(summary.rows[0], tables[0].len() as u64);
    assert_eq!(summary.top_products.len(), 3);
    assert!(
        summary.top_products[0].revenue_cents >= summary.top_products[1].revenue_cents,
        "best seller first"
    );
    assert_eq!(summary.trend_windows.len(), 4);
    let text = summary.to_string();
    for part in ["Top products in the minute from", "Sessions", "Conversions"] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
}

#[test]
fn invalid_settings_are_refused_before_anything_starts() {
    let settings = ShopSettings {
        orders_topic: "same".into(),
        page_views_topic: "same".into(),
        ..ShopSettings::default()
    };
    let error = Shop::start(settings).err().expect("refused").to_string();
    assert!(error.contains("page-views-topic"), "{error}");
}

#[test]
fn unreachable_services_give_one_clear_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let settings = ShopSettings {
        cassandra: Some(closed.to_string()),
        events: 10,
        ..ShopSettings::default()
    };
    let error = Shop::start(settings).err().expect("refused").to_string();
    assert!(error.contains("connect") && !error.contains('\n'), "{error}");
}

/// The main job as a user runs it against real servers (`scripts/services.sh start`, then
/// `--brokers` and `--cassandra`).
#[test]
#[ignore = "needs Kafka and Cassandra: run scripts/test.sh"]
fn against_real_kafka_and_cassandra_with_checkpoints_the_tables_match_a_batch_computation() {
    let dir = TempDir::new("ecommerce");
    let topic = unique("shop-orders");
    let cassandra = std::env::var("SLUICE_CASSANDRA")
        .expect("SLUICE_CASSANDRA must name a Cassandra node (scripts/test.sh starts one)");
    let keyspace = unique("shop").replace('-', "_");
    let settings = ShopSettings {
        brokers: Some(brokers()),
        cassandra: Some(cassandra.clone()),
        keyspace: keyspace.clone(),
        orders_topic: topic.clone(),
        page_views_topic: format!("{topic}-views"),
        group: unique("shop-group"),
        events: 6_000,
        exit_when_idle: Some(Duration::from_secs(3)),
        workers: Some(2),
        state_dir: Some(dir.0.clone()),
        checkpoint_interval: Duration::from_millis(200),
        ..ShopSettings::default()
    };
    let (shop, report, tables) = run(settings, false);
    assert_tables_match_batch(shop.data(), shop.settings().events, &tables);
    assert_eq!(report.metrics.total("orders", "dead_lettered"), MALFORMED_ORDERS);
    let checkpoints = list_checkpoints(&dir.0.join("checkpoints")).expect("checkpoints listed");
    assert!(!checkpoints.is_empty(), "the run took checkpoints");
    let summary: ShopReport = shop.report(5, 6).expect("report");
    assert_eq!(summary.rows[3], tables[3].len() as u64);
    // The tables as a user looks at them where no cqlsh is installed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "cql",
            "--cassandra",
            &cassandra,
            &format!(
                "SELECT product_id, window_start, revenue_cents FROM {keyspace}.product_revenue_1m LIMIT 3"
            ),
        ])
        .output()
        .expect("run sluice cql");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.starts_with(" product_id"), "{printed}");
    assert!(printed.contains("(3 rows)"), "{printed}");
    // Header, rule, three rows: each a row of the table as the driver read it.
    let rows: Vec<Vec<&str>> = printed
        .lines()
        .skip(2)
        .take(3)
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    for row in &rows {
        let revenue: i64 = row[2].parse().expect("revenue printed as a number");
        assert!(
            tables[0]
                .iter()
                .any(|((product, _), values)| product == row[0] && values[0] == revenue),
            "{row:?} is not a row of product_revenue_1m"
        );
    }
}
