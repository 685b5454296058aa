//! The e-commerce job end to end, as the `ecommerce` example runs it: generated orders and
//! page views produced into Kafka, the job to the end of input, the four tables read back
//! over CQL and compared with the same results computed over all the input at once.
//!
//! One run uses the embedded defaults (librdkafka's mock cluster, the in-process CQL store);
//! the other a real Kafka-protocol broker (`SLUICE_KAFKA_BROKERS`, Tansu under
//! scripts/test.sh) with RocksDB state and checkpoints.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::TempDir;
use common::kafka::{brokers, unique};
use sluice::cassandra::read_rows;
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::engine::{JobReport, list_checkpoints};
use sluice_cli::datagen::{Order, PageView};
use sluice_cli::shop::{
    ATTRIBUTION_WINDOW, MALFORMED_ORDERS, SESSION_GAP, Shop, ShopReport, ShopSettings, VIEWS_PER_ORDER,
};

type Table = BTreeMap<(String, i64), Vec<i64>>;

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
    let tables = read_tables(&shop);
    (shop, report, tables)
}

fn read_tables(shop: &Shop) -> [Table; 4] {
    let config = &shop.services().cql;
    let ks = config.keyspace();
    let ms = |t: CqlTimestamp| t.0;
    let product = read_rows::<(String, CqlTimestamp, i64, i64, i64)>(
        config,
        &format!(
            "SELECT product_id, window_start, revenue_cents, orders, units FROM {ks}.product_revenue_1m"
        ),
    )
    .expect("product_revenue_1m")
    .into_iter()
    .map(|(k, w, r, o, u)| ((k, ms(w)), vec![r, o, u]))
    .collect();
    let category = read_rows::<(String, CqlTimestamp, i64, i64)>(
        config,
        &format!("SELECT category, window_start, revenue_cents, orders FROM {ks}.category_revenue_5m"),
    )
    .expect("category_revenue_5m")
    .into_iter()
    .map(|(k, w, r, o)| ((k, ms(w)), vec![r, o]))
    .collect();
    let sessions = read_rows::<(String, CqlTimestamp, CqlTimestamp, i64, i64)>(
        config,
        &format!("SELECT user_id, session_start, session_end, orders, revenue_cents FROM {ks}.user_sessions"),
    )
    .expect("user_sessions")
    .into_iter()
    .map(|(k, s, e, o, r)| ((k, ms(s)), vec![ms(e), o, r]))
    .collect();
    let conversions = read_rows::<(String, String, String, CqlTimestamp, i64, CqlTimestamp)>(
        config,
        &format!(
            "SELECT order_id, user_id, product_id, order_ts, views_before, first_view_ts FROM {ks}.conversions"
        ),
    )
    .expect("conversions")
    .into_iter()
    .map(|(id, user, product, ts, views, first)| {
        let check = format!("{user}/{product}");
        ((format!("{id} {check}"), ms(ts)), vec![views, ms(first)])
    })
    .collect();
    [product, category, sessions, conversions]
}

/// The four tables computed over the whole input at once.
fn expected_tables(orders: &[Order], views: &[PageView]) -> [Table; 4] {
    let minute = 60_000;
    let mut product = Table::new();
    let mut category = Table::new();
    for o in orders {
        let start = o.ts - o.ts.rem_euclid(minute);
        let row = product
            .entry((o.product_id.clone(), start))
            .or_insert_with(|| vec![0; 3]);
        row[0] += o.revenue_cents();
        row[1] += 1;
        row[2] += o.quantity;
        // The 5-minute windows sliding by a minute that contain the order.
        for k in 0..5 {
            let row = category
                .entry((o.category.clone(), start - k * minute))
                .or_insert_with(|| vec![0; 2]);
            row[0] += o.revenue_cents();
            row[1] += 1;
        }
    }

    let gap = SESSION_GAP.as_millis() as i64;
    let mut by_user: HashMap<&str, Vec<&Order>> = HashMap::new();
    for o in orders {
        by_user.entry(&o.user_id).or_default().push(o);
    }
    let mut sessions = Table::new();
    for (user, mut list) in by_user {
        list.sort_by_key(|o| o.ts);
        let mut current: Option<(i64, Vec<i64>)> = None;
        for o in list {
            match &mut current {
                Some((_, row)) if o.ts - row[0] < gap => {
                    row[0] = o.ts;
                    row[1] += 1;
                    row[2] += o.revenue_cents();
                }
                _ => {
                    if let Some((start, row)) = current.take() {
                        sessions.insert((user.to_string(), start), row);
                    }
                    current = Some((o.ts, vec![o.ts, 1, o.revenue_cents()]));
                }
            }
        }
        if let Some((start, row)) = current {
            sessions.insert((user.to_string(), start), row);
        }
    }

    let window = ATTRIBUTION_WINDOW.as_millis() as i64;
    let mut views_by_user: HashMap<&str, Vec<i64>> = HashMap::new();
    for v in views {
        views_by_user.entry(&v.user_id).or_default().push(v.ts);
    }
    let mut conversions = Table::new();
    for o in orders {
        let before: Vec<i64> = views_by_user
            .get(o.user_id.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|ts| *ts >= o.ts - window && *ts <= o.ts)
            .collect();
        if let Some(first) = before.iter().min() {
            let key = format!("{} {}/{}", o.order_id, o.user_id, o.product_id);
            conversions.insert((key, o.ts), vec![before.len() as i64, *first]);
        }
    }
    [product, category, sessions, conversions]
}

fn assert_tables_match_batch(shop: &Shop, tables: &[Table; 4]) {
    let n = shop.settings().events;
    let data = shop.data();
    let orders: Vec<Order> = (0..n).map(|i| data.orders.nth(i)).collect();
    let views: Vec<PageView> = (0..n * VIEWS_PER_ORDER).map(|i| data.views.nth(i)).collect();
    let expected = expected_tables(&orders, &views);
    let names = [
        "product_revenue_1m",
        "category_revenue_5m",
        "user_sessions",
        "conversions",
    ];
    for ((name, got), want) in names.iter().zip(tables).zip(&expected) {
        assert!(!want.is_empty(), "{name}: the input must produce rows");
        assert_eq!(got.len(), want.len(), "{name}: row count");
        assert!(got == want, "{name}: rows differ from the batch computation");
    }
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
    assert_tables_match_batch(&shop, &tables);

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
    assert_tables_match_batch(&shop, &tables);
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
