//! Declarative pipelines (`sluice run FILE`): a windowed aggregation and a pass-through copy
//! from librdkafka's mock cluster into the in-process CQL store, compared with the input; and
//! the `sluice` binary's checks, errors and checkpoint listing.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::TempDir;
use common::kafka::{order_fixtures, produce};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraConfig, execute_cql, read_rows};
use sluice_cli::datagen::{Order, OrderGenerator};
use sluice_cli::embedded::{EmbeddedCql, EmbeddedKafka};
use sluice_cli::pipeline::Pipeline;

const ORDERS: u64 = 3_000;

struct Setup {
    kafka: EmbeddedKafka,
    store: EmbeddedCql,
    cql: CassandraConfig,
    orders: Vec<Order>,
    dir: TempDir,
}

/// Orders (with two malformed records) in topic `orders`; keyspace `pipes` with a revenue table
/// and a copy table.
fn setup(tag: &str) -> Setup {
    let kafka = EmbeddedKafka::start().expect("mock cluster");
    kafka.create_topic("orders", 4).expect("topic");
    kafka.create_topic("orders-dlq", 1).expect("topic");
    let generator = OrderGenerator {
        products: 30,
        orders_per_second: 20,
        ..OrderGenerator::default()
    };
    let orders: Vec<Order> = (0..ORDERS).map(|i| generator.nth(i)).collect();
    let records = order_fixtures(
        &orders,
        &[
            (100, "not json"),
            (2_000, "{\"product_id\":\"p-1\",\"ts\":\"noon\"}"),
        ],
    );
    produce(kafka.config().brokers(), "orders", &records);
    let store = EmbeddedCql::start().expect("CQL store");
    let cql = store.config("pipes");
    execute_cql(
        &cql,
        &[
            "CREATE KEYSPACE IF NOT EXISTS pipes WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            "CREATE TABLE IF NOT EXISTS pipes.revenue (product_id text, window_start timestamp, revenue_cents bigint, orders bigint, largest bigint, PRIMARY KEY ((product_id), window_start))",
            "CREATE TABLE IF NOT EXISTS pipes.copy (id text PRIMARY KEY, product text, cents bigint, at timestamp)",
        ],
    )
    .expect("tables");
    Setup {
        kafka,
        store,
        cql,
        orders,
        dir: TempDir::new(tag),
    }
}

impl Setup {
    /// Writes a pipeline file with `body` after the common `[source]` settings.
    fn file(&self, name: &str, key: Option<&str>, body: &str) -> std::path::PathBuf {
        let key = key.map(|k| format!("key = \"{k}\"\n")).unwrap_or_default();
        let text = format!(
            "name = \"{name}\"\nworkers = 2\n\n[source]\nbrokers = \"{}\"\ntopic = \"orders\"\n{key}event_time = \"ts\"\nexit_when_idle = \"2s\"\non_bad_record = \"skip\"\n\n{body}",
            self.kafka.config().brokers()
        );
        let path = self.dir.0.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write pipeline");
        path
    }

    fn sink(&self, table: &str) -> String {
        format!(
            "[sink]\ncassandra = \"{}\"\nkeyspace = \"pipes\"\ntable = \"{table}\"\nschema_metadata = false\n",
            self.store.addr()
        )
    }
}

fn sluice(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_windowed_pipeline_file_writes_the_aggregates_a_batch_computation_gives() {
    let s = setup("pipe-window");
    let body = format!(
        "[window]\nkind = \"tumbling\"\nsize = \"1m\"\n\n\
         [[aggregate]]\ncolumn = \"revenue_cents\"\nfunction = \"sum\"\nfield = \"price_cents * quantity\"\n\n\
         [[aggregate]]\ncolumn = \"orders\"\nfunction = \"count\"\n\n\
         [[aggregate]]\ncolumn = \"largest\"\nfunction = \"max\"\nfield = \"quantity\"\n\n{}",
        s.sink("revenue")
    );
    let path = s.file("revenue", Some("product_id"), &body);
    let pipeline = Pipeline::load(&path).expect("valid pipeline");
    pipeline.connect().expect("table fits");
    let report = pipeline.job().expect("job").run().expect("runs");
    assert_eq!(report.metrics.total("source", "bad_records_skipped"), 2);

    let mut expected: BTreeMap<(String, i64), (i64, i64, i64)> = BTreeMap::new();
    for o in &s.orders {
        let e = expected
            .entry((o.product_id.clone(), o.ts - o.ts.rem_euclid(60_000)))
            .or_default();
        e.0 += o.revenue_cents();
        e.1 += 1;
        e.2 = e.2.max(o.quantity);
    }
    let got: BTreeMap<(String, i64), (i64, i64, i64)> = read_rows::<(String, CqlTimestamp, i64, i64, i64)>(
        &s.cql,
        "SELECT product_id, window_start, revenue_cents, orders, largest FROM pipes.revenue",
    )
    .expect("read back")
    .into_iter()
    .map(|(p, w, r, o, l)| ((p, w.0), (r, o, l)))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(pipeline.sink_stats().rows_written(), expected.len() as u64);
}

#[test]
fn a_pass_through_pipeline_copies_mapped_fields() {
    let s = setup("pipe-copy");
    let body = format!(
        "{}\n[sink.columns]\nid = \"order_id\"\nproduct = \"product_id\"\ncents = \"price_cents\"\nat = \"ts\"\n",
        s.sink("copy")
    );
    let path = s.file("copy", None, &body);
    let pipeline = Pipeline::load(&path).expect("valid pipeline");
    pipeline.job().expect("job").run().expect("runs");
    let got: BTreeMap<String, (String, i64, i64)> = read_rows::<(String, String, i64, CqlTimestamp)>(
        &s.cql,
        "SELECT id, product, cents, at FROM pipes.copy",
    )
    .expect("read back")
    .into_iter()
    .map(|(id, p, c, at)| (id, (p, c, at.0)))
    .collect();
    let expected: BTreeMap<String, (String, i64, i64)> = s
        .orders
        .iter()
        .map(|o| (o.order_id.clone(), (o.product_id.clone(), o.price_cents, o.ts)))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn an_integer_sum_beyond_64_bits_fails_the_pipeline_naming_its_column() {
    let s = setup("pipe-overflow");
    s.kafka.create_topic("readings", 1).expect("topic");
    let reading = |ts: i64, v: i64| {
        let json = format!("{{\"sensor\":\"s-1\",\"ts\":{ts},\"v\":{v}}}");
        (Some("s-1".to_string()), json.into_bytes())
    };
    produce(
        s.kafka.config().brokers(),
        "readings",
        &[reading(1_000, i64::MAX), reading(2_000, i64::MAX)],
    );
    execute_cql(
        &s.cql,
        &["CREATE TABLE IF NOT EXISTS pipes.totals (sensor text, window_start timestamp, total double, PRIMARY KEY ((sensor), window_start))"],
    )
    .expect("table");
    let text = format!(
        "name = \"totals\"\n\n[source]\nbrokers = \"{}\"\ntopic = \"readings\"\nkey = \"sensor\"\nevent_time = \"ts\"\nexit_when_idle = \"2s\"\n\n\
         [window]\nkind = \"tumbling\"\nsize = \"1m\"\n\n\
         [[aggregate]]\ncolumn = \"total\"\nfunction = \"sum\"\nfield = \"v\"\n\n{}",
        s.kafka.config().brokers(),
        s.sink("totals")
    );
    let path = s.dir.0.join("totals.toml");
    std::fs::write(&path, text).expect("write pipeline");
    let pipeline = Pipeline::load(&path).expect("valid pipeline");
    pipeline.connect().expect("table fits");
    let err = pipeline
        .job()
        .expect("job")
        .run()
        .expect_err("an exact sum cannot be written")
        .to_string();
    assert!(
        err.contains("'total'") && err.contains("18446744073709551614"),
        "{err}"
    );
    let rows = read_rows::<(String, CqlTimestamp, f64)>(
        &s.cql,
        "SELECT sensor, window_start, total FROM pipes.totals",
    )
    .expect("read back");
    assert!(rows.is_empty(), "a rounded sum was written: {rows:?}");
}

#[test]
fn the_command_line_produces_generated_events() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let s = setup("pipe-produce");
    s.kafka.create_topic("readings", 3).expect("topic");
    let brokers = s.kafka.config().brokers().to_string();
    let (ok, out, err) = sluice(&[
        "produce",
        "--brokers",
        &brokers,
        "--kind",
        "iot",
        "--topic",
        "readings",
        "--events",
        "500",
    ]);
    assert!(
        ok && out.contains("produced 500 events to 'readings'"),
        "{out}{err}"
    );
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("consumer");
    let stored: i64 = (0..3)
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks("readings", p, std::time::Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum();
    assert_eq!(stored, 500);
}

#[test]
fn the_command_line_checks_files_points_at_lines_and_lists_checkpoints() {
    let s = setup("pipe-cli");
    let state = s.dir.0.join("state");
    let body = format!(
        "[window]\nkind = \"sliding\"\nsize = \"2m\"\nslide = \"1m\"\n\n\
         [[aggregate]]\ncolumn = \"revenue_cents\"\nfunction = \"sum\"\nfield = \"price_cents\"\n\n\
         [[aggregate]]\ncolumn = \"orders\"\nfunction = \"count\"\n\n\
         [[aggregate]]\ncolumn = \"largest\"\nfunction = \"max\"\nfield = \"quantity\"\n\n{}",
        s.sink("revenue")
    );
    let path = s.file("sliding", Some("product_id"), &body);
    let path_text = path.to_string_lossy().into_owned();

    let (ok, out, err) = sluice(&["run", &path_text, "--check"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("pipeline and table check out"), "{out}");

    // A table column the pipeline does not have: refused before running, naming the column.
    let wrong = std::fs::read_to_string(&path)
        .expect("read")
        .replace("column = \"largest\"", "column = \"biggest\"");
    let wrong_path = s.dir.0.join("wrong.toml");
    std::fs::write(&wrong_path, wrong).expect("write");
    let (ok, _, err) = sluice(&["run", &wrong_path.to_string_lossy(), "--check"]);
    assert!(!ok && err.contains("biggest"), "{err}");

    // A typo in the file: one line naming file and line.
    let typo = std::fs::read_to_string(&path)
        .expect("read")
        .replace("kind = \"sliding\"", "kind = \"slidin\"");
    let typo_path = s.dir.0.join("typo.toml");
    std::fs::write(&typo_path, typo).expect("write");
    let (ok, _, err) = sluice(&["run", &typo_path.to_string_lossy()]);
    let expected_prefix = format!("error: {}:13:", typo_path.display());
    assert!(!ok && err.starts_with(&expected_prefix), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    // Run with checkpoints, then list and show them.
    let with_state = format!(
        "state_dir = \"{}\"\ncheckpoint_interval = \"100ms\"\n{}",
        state.display(),
        std::fs::read_to_string(&path).expect("read")
    );
    std::fs::write(&path, with_state).expect("write");
    let (ok, out, err) = sluice(&["run", &path_text]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("records in"), "{out}");
    let (ok, out, err) = sluice(&["checkpoints", "list", "--state-dir", &state.to_string_lossy()]);
    assert!(ok, "{err}");
    assert!(
        out.lines().count() >= 2,
        "a header and at least one checkpoint: {out}"
    );
    let (ok, out, err) = sluice(&["checkpoints", "show", "--state-dir", &state.to_string_lossy()]);
    assert!(ok, "{err}");
    assert!(out.contains("\"checkpoint_id\""), "{out}");
}

/// A windowed pipeline over a topic whose partition 1 never receives a record, running until
/// stopped. Returns the rows written once every order was read.
fn rows_with_an_empty_partition(idle_timeout: Option<&str>) -> usize {
    use common::kafka::produce_to_partitions;
    use std::time::{Duration, Instant};
    let s = setup("pipe-empty-partition");
    s.kafka.create_topic("sparse", 2).expect("topic");
    let records: Vec<(i32, Vec<u8>)> = s
        .orders
        .iter()
        .map(|o| (0, serde_json::to_vec(o).expect("json")))
        .collect();
    produce_to_partitions(s.kafka.config().brokers(), "sparse", &records);
    let idle = idle_timeout
        .map(|t| format!("idle_timeout = \"{t}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "name = \"sparse\"\nworkers = 2\n\n[source]\nbrokers = \"{}\"\ntopic = \"sparse\"\nkey = \"product_id\"\nevent_time = \"ts\"\n{idle}\n\
         [window]\nkind = \"tumbling\"\nsize = \"1m\"\n\n\
         [[aggregate]]\ncolumn = \"revenue_cents\"\nfunction = \"sum\"\nfield = \"price_cents * quantity\"\n\n\
         [[aggregate]]\ncolumn = \"orders\"\nfunction = \"count\"\n\n\
         [[aggregate]]\ncolumn = \"largest\"\nfunction = \"max\"\nfield = \"quantity\"\n\n{}",
        s.kafka.config().brokers(),
        s.sink("revenue")
    );
    let path = s.dir.0.join("sparse.toml");
    std::fs::write(&path, text).expect("write pipeline");
    let pipeline = Pipeline::load(&path).expect("valid pipeline");
    let handle = pipeline.job().expect("job").start().expect("starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while handle.metrics().total("source", "records_out") < ORDERS {
        assert!(Instant::now() < deadline, "the orders were never read");
        std::thread::sleep(Duration::from_millis(20));
    }
    // With idleness, windows close once partition 1 has been caught up for the timeout.
    if idle_timeout.is_some() {
        while pipeline.sink_stats().rows_written() == 0 {
            assert!(
                Instant::now() < deadline,
                "no window closed although partition 1 is idle"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let written = pipeline.sink_stats().rows_written() as usize;
    handle.stop();
    handle.join().expect("stops");
    written
}

#[test]
fn a_partition_without_records_holds_windows_back_unless_it_may_go_idle() {
    assert_eq!(
        rows_with_an_empty_partition(None),
        0,
        "without idleness, the empty partition holds the watermark at its minimum"
    );
    assert!(rows_with_an_empty_partition(Some("1s")) > 0);
}
