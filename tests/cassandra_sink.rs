//! The Cassandra sink against a CQL server: a real Cassandra/ScyllaDB when `SLUICE_CASSANDRA`
//! names one (`host:port`, as `scripts/test.sh` does; each test uses its own keyspace), else
//! the in-process store. Tests about write timestamps need the real one; the Kafka tests need
//! `SLUICE_KAFKA_BROKERS`.
//!
//! The in-process store keeps no write timestamps and has no batch limit; the sink's unit
//! tests check those below the driver.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::TempDir;
use common::kafka::{brokers, order_fixtures, orders, produce, read_topic, unique};
use common::kafka_jobs::expected_revenue;
use serde::{Deserialize, Serialize};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{
    CassandraConfig, CassandraSink, EmbeddedCql, SinkStats, TableSchema, execute_cql, read_rows,
};
use sluice::engine::{CheckpointConfig, EngineError, RestoreFrom};
use sluice::kafka::{KafkaConfig, KafkaDeadLetters, KafkaSource, ensure_topic};
use sluice::prelude::*;
use sluice_cli::datagen::{Order, OrderGenerator};

/// A row of `product_revenue_1m` as in the e-commerce job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RevenueRow {
    product_id: String,
    window_start: i64,
    revenue_cents: i64,
    orders: i64,
}

/// The store the tests write to: a real one from `SLUICE_CASSANDRA`, else the embedded one.
struct Store {
    _embedded: Option<EmbeddedCql>,
    config: CassandraConfig,
}

impl Store {
    fn new(tag: &str) -> Store {
        let keyspace = unique(tag).replace('-', "_");
        match std::env::var("SLUICE_CASSANDRA") {
            Ok(addr) => Store {
                _embedded: None,
                config: CassandraConfig::new([addr], keyspace),
            },
            Err(_) => {
                let embedded = EmbeddedCql::start().expect("embedded CQL server");
                let config = embedded.config(&keyspace);
                Store {
                    _embedded: Some(embedded),
                    config,
                }
            }
        }
    }

    /// The real Cassandra `SLUICE_CASSANDRA` names: for what the in-process store cannot
    /// show (write timestamps, concurrent requests).
    fn real(tag: &str) -> Store {
        let addr = std::env::var("SLUICE_CASSANDRA")
            .expect("SLUICE_CASSANDRA must name a Cassandra node (scripts/test.sh starts one)");
        Store {
            _embedded: None,
            config: CassandraConfig::new([addr], unique(tag).replace('-', "_")),
        }
    }

    /// Per row of `product_revenue_1m`: its revenue and the cell's write time (microseconds).
    fn revenue_with_write_times(&self) -> BTreeMap<(String, i64), (i64, i64)> {
        let table = format!("{}.product_revenue_1m", self.config.keyspace());
        read_rows::<(String, CqlTimestamp, i64, i64)>(
            &self.config,
            &format!("SELECT product_id, window_start, revenue_cents, WRITETIME(revenue_cents) FROM {table}"),
        )
        .expect("read the table back")
        .into_iter()
        .map(|(p, w, r, t)| ((p, w.0), (r, t)))
        .collect()
    }

    fn revenue(&self) -> BTreeMap<(String, i64), i64> {
        let table = format!("{}.product_revenue_1m", self.config.keyspace());
        read_rows::<(String, CqlTimestamp, i64)>(
            &self.config,
            &format!("SELECT product_id, window_start, revenue_cents FROM {table}"),
        )
        .expect("read the table back")
        .into_iter()
        .map(|(p, w, r)| ((p, w.0), r))
        .collect()
    }
}

fn revenue_sink(config: &CassandraConfig) -> CassandraSink<RevenueRow> {
    CassandraSink::new(config.clone(), "product_revenue_1m").create_table_if_missing(
        TableSchema::partition_key(["product_id"])
            .clustering_key(["window_start"])
            .timestamp_columns(["window_start"]),
    )
}

/// Orders → 1-minute revenue per product → `sink`.
fn revenue_graph(orders: Stream<Order>, sink: &CassandraSink<RevenueRow>) {
    orders
        .key_by("by_product", |o| o.product_id.clone())
        .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
        .aggregate((Sum::of(|o: &Order| o.revenue_cents()), Count))
        .map("row", revenue_row)
        .sink("product_revenue_1m", sink.clone());
}

fn revenue_row(w: WindowResult<String, (i64, u64)>) -> RevenueRow {
    RevenueRow {
        product_id: w.key,
        window_start: w.window.start,
        revenue_cents: w.value.0,
        orders: w.value.1 as i64,
    }
}

fn expected_map(orders: &[Order]) -> BTreeMap<(String, i64), i64> {
    expected_revenue(orders)
        .into_iter()
        .map(|(p, w, r)| ((p, w), r))
        .collect()
}

fn kafka_job(brokers: &str, topic: &str, group: &str, sink: &CassandraSink<RevenueRow>) -> Job {
    let (config, topic, group, sink) = (
        KafkaConfig::new(brokers),
        topic.to_string(),
        group.to_string(),
        sink.clone(),
    );
    Job::new(JobConfig::new("kafka-to-cassandra").workers(2), move |b| {
        let source = KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()])
            .exit_when_idle(Duration::from_secs(2));
        let orders = b.source(
            "orders",
            source,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        );
        revenue_graph(orders, &sink);
        Ok(())
    })
    .expect("valid job")
}

/// The job of `kafka_job`, writing only the early results of each window (partial sums), as a
/// replay that stops before the windows close would.
fn early_only_job(brokers: &str, topic: &str, group: &str, sink: &CassandraSink<RevenueRow>) -> Job {
    let (config, topic, group, sink) = (
        KafkaConfig::new(brokers),
        topic.to_string(),
        group.to_string(),
        sink.clone(),
    );
    Job::new(JobConfig::new("kafka-to-cassandra-early").workers(2), move |b| {
        let source = KafkaSource::<Order>::json(config.clone(), group.clone(), &[topic.as_str()])
            .exit_when_idle(Duration::from_secs(2));
        b.source(
            "orders",
            source,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        )
        .key_by("by_product", |o| o.product_id.clone())
        .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
        .early_results(Duration::from_millis(1))
        .aggregate((Sum::of(|o: &Order| o.revenue_cents()), Count))
        .filter("early", |w| w.emit != sluice::operators::Emit::Final)
        // Early results carry the event time just before the window's end, so the sink's
        // data-derived write timestamps put them below the final result's.
        .map("row", revenue_row)
        .sink("product_revenue_1m", sink.clone());
        Ok(())
    })
    .expect("valid job")
}

#[test]
#[ignore = "needs Kafka and Cassandra: run scripts/test.sh"]
fn rows_carry_data_derived_write_times_and_a_replay_cannot_overwrite_them() {
    let brokers = brokers();
    let topic = unique("cql-orders");
    ensure_topic(&KafkaConfig::new(&brokers), &topic, 4).expect("topic");
    let input = orders(20_000);
    produce(&brokers, &topic, &order_fixtures(&input, &[]));
    let store = Store::real("cql_kafka");
    let sink = revenue_sink(&store.config);
    let stats = sink.stats();

    kafka_job(&brokers, &topic, &unique("g1"), &sink)
        .run()
        .expect("first run");
    let expected = expected_map(&input);
    let first = store.revenue_with_write_times();
    assert_eq!(first.len(), expected.len());
    for ((product, start), (revenue, written_at)) in &first {
        assert_eq!(Some(revenue), expected.get(&(product.clone(), *start)));
        // The last microsecond of the window: data, not the wall clock.
        assert_eq!(*written_at, (start + 60_000) * 1_000 - 1, "{product} @ {start}");
    }
    assert_eq!(stats.rows_written(), expected.len() as u64);

    // A replay that writes partial results (below the final results' timestamps) changes no
    // cell and no write time: the final results win whatever arrives last.
    let early = revenue_sink(&store.config);
    let early_stats = early.stats();
    early_only_job(&brokers, &topic, &unique("g2"), &early)
        .run()
        .expect("replay");
    assert!(early_stats.rows_written() > 0, "the replay wrote early results");
    assert_eq!(store.revenue_with_write_times(), first);
}

const PARTITIONS: u32 = 4;
const PER_PARTITION: u64 = 30_000;

fn generated() -> (OrderGenerator, Vec<Order>) {
    let generator = OrderGenerator {
        products: 30,
        orders_per_second: 40,
        ..OrderGenerator::default()
    };
    let all = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| (p, i)))
        .map(|(p, i)| generator.order(p, i))
        .collect();
    (generator, all)
}

/// Generated orders (slowed a little so a run spans many checkpoints) → the revenue table.
fn generated_job(config: JobConfig, sink: &CassandraSink<RevenueRow>, pause_every: u64) -> Job {
    let (generator, _) = generated();
    let sink = sink.clone();
    Job::new(config, move |b| {
        let generator = generator.clone();
        let orders = b.source(
            "orders",
            GeneratorSource::new(PARTITIONS, Some(PER_PARTITION), move |p, i| {
                if i % pause_every == 0 {
                    std::thread::sleep(Duration::from_micros(500));
                }
                generator.order(p.0, i)
            }),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                .with_timestamps(|o: &Order| o.ts),
        );
        revenue_graph(orders, &sink);
        Ok(())
    })
    .expect("valid job")
}

fn checkpointed(dir: &Path, restore: RestoreFrom) -> JobConfig {
    JobConfig::new("cql-restart").workers(2).checkpoints(
        CheckpointConfig::new(dir.join("checkpoints"))
            .interval(Duration::from_millis(50))
            .restore_from(restore),
    )
}

#[test]
fn restarts_from_the_latest_or_an_earlier_checkpoint_leave_the_table_identical() {
    let dir = TempDir::new("cql-restart");
    let store = Store::new("cql_restart");
    let sink = revenue_sink(&store.config);
    let (_, input) = generated();
    let expected = expected_map(&input);

    // First run: a savepoint early on, more checkpoints, then a crash-like stop.
    let handle = generated_job(checkpointed(&dir.0, RestoreFrom::Latest), &sink, 64)
        .start()
        .expect("start");
    common::wait_for_checkpoint(&handle, 2);
    handle
        .savepoint("early", Duration::from_secs(60))
        .expect("savepoint");
    common::wait_for_checkpoint(&handle, handle.last_checkpoint() + 3);
    handle.stop();
    handle.join().expect("stopped");
    let partial = store.revenue();
    assert!(
        partial.len() < expected.len(),
        "the first run must not have finished"
    );

    // Restart from the latest checkpoint and run to the end.
    generated_job(checkpointed(&dir.0, RestoreFrom::Latest), &sink, 1 << 20)
        .run()
        .expect("restored run");
    assert_eq!(store.revenue(), expected);

    // Go back to the early savepoint and run again: rows are rewritten, the table is the same.
    let report = generated_job(
        checkpointed(&dir.0, RestoreFrom::Savepoint("early".into())),
        &sink,
        1 << 20,
    )
    .run()
    .expect("run from the savepoint");
    assert!(report.metrics.total("orders", "records_out") < u64::from(PARTITIONS) * PER_PARTITION);
    assert_eq!(store.revenue(), expected);
}

#[test]
fn an_unreachable_store_slows_the_job_and_loses_nothing() {
    let embedded = EmbeddedCql::start().expect("embedded CQL server");
    let keyspace = unique("cql_outage").replace('-', "_");
    let config = embedded
        .config(&keyspace)
        .retry(
            Duration::from_millis(20),
            Duration::from_millis(500),
            Duration::from_secs(120),
        )
        .request_timeout(Duration::from_secs(2));
    let sink = revenue_sink(&config);
    let stats: std::sync::Arc<SinkStats> = sink.stats();
    let (_, input) = generated();

    let handle = generated_job(JobConfig::new("cql-outage").workers(2), &sink, 16)
        .start()
        .expect("start");
    while stats.rows_written() < 200 {
        assert!(!handle.is_finished(), "the job ended before the outage");
        std::thread::sleep(Duration::from_millis(5));
    }
    let retries_before = stats.retries();
    embedded.set_available(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // The writers notice: a write fails and is retried.
    while stats.retries() == retries_before {
        assert!(
            std::time::Instant::now() < deadline,
            "no write failed during the outage"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let read_at_outage = handle.metrics().total("orders", "records_out");
    let written_at_outage = stats.rows_written();
    // The job stops reading: every request slot is held by a retry, the exchanges fill up.
    let read = || handle.metrics().total("orders", "records_out");
    let (mut last, mut unchanged) = (read(), 0);
    while unchanged < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the source never stopped during the outage"
        );
        std::thread::sleep(Duration::from_millis(2));
        let now = read();
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
    }
    let read_during = last - read_at_outage;
    let written_during = stats.rows_written() - written_at_outage;
    embedded.set_available(true);
    let report = handle.join().expect("the job recovers and ends");

    let store = Store {
        _embedded: Some(embedded),
        config,
    };
    assert_eq!(store.revenue(), expected_map(&input));
    assert!(stats.retries() > 0, "writes were retried");
    assert_eq!(
        written_during, 0,
        "nothing was acknowledged while the store was down"
    );
    let total = report.metrics.total("orders", "records_out");
    eprintln!(
        "during the outage: {read_during} of {total} orders read, {} retries",
        stats.retries()
    );
    // Backpressure: the job stopped reading instead of buffering the rest of the input.
    assert!(
        read_during < total / 4,
        "read {read_during} of {total} while the store was down"
    );
}

#[test]
fn a_missing_table_or_a_mistyped_column_is_refused_naming_it() {
    let store = Store::new("cql_errors");
    let job = |sink: CassandraSink<RevenueRow>| {
        let (generator, _) = generated();
        Job::new(JobConfig::new("cql-errors"), move |b| {
            let generator = generator.clone();
            let orders = b.source(
                "orders",
                GeneratorSource::new(1, Some(100), move |p, i| generator.order(p.0, i)),
                WatermarkStrategy::monotonous().with_timestamps(|o: &Order| o.ts),
            );
            revenue_graph(orders, &sink);
            Ok(())
        })
        .expect("valid job")
        .run()
    };
    let ks = store.config.keyspace().to_string();
    execute_cql(
        &store.config,
        &[&format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )],
    )
    .expect("keyspace");

    let missing = job(CassandraSink::new(store.config.clone(), "nope")).expect_err("no table");
    let text = missing.to_string();
    assert!(
        text.contains(&format!("{ks}.nope")) && text.contains("does it exist"),
        "{text}"
    );

    execute_cql(
        &store.config,
        &[&format!(
            "CREATE TABLE {ks}.mistyped (product_id text, window_start timestamp, revenue_cents text, orders bigint, \
             PRIMARY KEY ((product_id), window_start))"
        )],
    )
    .expect("table");
    let mistyped = job(CassandraSink::new(store.config.clone(), "mistyped")).expect_err("wrong type");
    let text = mistyped.to_string();
    assert!(
        text.contains("column 'revenue_cents' is text but field 'revenue_cents' is a 64-bit integer"),
        "{text}"
    );
    assert!(matches!(mistyped, EngineError::SinkFailed { .. }), "{mistyped:?}");
}

/// A row whose partition key may be missing.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tagged {
    tag: Option<String>,
    n: i64,
}

fn tagged_job(sink: CassandraSink<Tagged>) -> Result<JobReport, EngineError> {
    let rows: Vec<(Tagged, i64)> = (0..50)
        .map(|n| {
            let tag = (n % 10 != 3).then(|| format!("t-{n}"));
            (Tagged { tag, n }, n)
        })
        .collect();
    Job::new(JobConfig::new("cql-rejected"), move |b| {
        b.source(
            "rows",
            MemorySource::new(rows.clone()),
            WatermarkStrategy::monotonous().with_timestamps(|r: &(Tagged, i64)| r.1),
        )
        .map("row", |r| r.0)
        .sink("tagged", sink.clone());
        Ok(())
    })
    .expect("valid job")
    .run()
}

#[test]
#[ignore = "needs a Kafka broker: run scripts/test.sh"]
fn a_rejected_row_fails_the_job_or_goes_to_the_dead_letter_topic() {
    let store = Store::new("cql_rejected");
    let ks = store.config.keyspace().to_string();
    execute_cql(
        &store.config,
        &[
            &format!(
                "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &format!("CREATE TABLE {ks}.tagged (tag text PRIMARY KEY, n bigint)"),
        ],
    )
    .expect("table");

    let failed =
        tagged_job(CassandraSink::new(store.config.clone(), "tagged")).expect_err("a row has no key");
    let text = failed.to_string();
    assert!(
        text.contains(&format!("{ks}.tagged"))
            && text.contains("column 'tag'")
            && text.contains("cannot be null"),
        "{text}"
    );

    let brokers = brokers();
    let dlq = unique("tagged-dlq");
    let sink = CassandraSink::new(store.config.clone(), "tagged").on_rejected_rows(OnBadRecord::DeadLetter(
        DeadLetterSink::new(KafkaDeadLetters::new(KafkaConfig::new(&brokers), dlq.clone())),
    ));
    tagged_job(sink).expect("rejected rows are dead-lettered");
    let rows =
        read_rows::<(String, i64)>(&store.config, &format!("SELECT tag, n FROM {ks}.tagged")).expect("read");
    assert_eq!(rows.len(), 45);
    let dead = read_topic(&brokers, &dlq, 5, Duration::from_secs(30));
    assert_eq!(dead.len(), 5);
    for record in &dead {
        let payload = String::from_utf8_lossy(&record.payload);
        assert!(payload.contains("\"tag\":null"), "{payload}");
        let header = |k: &str| {
            record
                .headers
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header("sluice.table").as_deref(),
            Some(format!("{ks}.tagged").as_str())
        );
        assert!(header("sluice.error").is_some_and(|e| e.contains("cannot be null")));
    }
}

#[test]
#[ignore = "needs Cassandra: run scripts/test.sh"]
fn early_results_update_the_row_until_the_final_one() {
    // Many requests in flight: early and final results of a window may arrive in any order,
    // and the write timestamps (early below final) decide.
    let store = Store::real("cql_early");
    let sink = revenue_sink(&store.config.clone().max_in_flight(64));
    // Two minutes of orders, arriving slowly enough for early firings every 20 ms.
    let generator = OrderGenerator {
        products: 5,
        orders_per_second: 50,
        ..OrderGenerator::default()
    };
    let input: Vec<Order> = (0..6_000).map(|i| generator.nth(i)).collect();
    let early_rows = CollectSink::new();
    let (early_out, sink2, source_input) = (early_rows.clone(), sink.clone(), input.clone());
    Job::new(JobConfig::new("cql-early"), move |b| {
        let results = b
            .source(
                "orders",
                GeneratorSource::new(1, Some(source_input.len() as u64), {
                    let input = source_input.clone();
                    move |_, i| {
                        if i % 200 == 0 {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        input[i as usize].clone()
                    }
                }),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                    .with_timestamps(|o: &Order| o.ts),
            )
            .key_by("by_product", |o| o.product_id.clone())
            .window("revenue_1m", Windows::tumbling(Duration::from_secs(60)))
            .early_results(Duration::from_millis(20))
            .aggregate((Sum::of(|o: &Order| o.revenue_cents()), Count));
        results
            .filter("early", |w| w.emit != sluice::operators::Emit::Final)
            .map("ts", |w| (w.write_timestamp(), w.window.end * 1000 - 1))
            .sink("early_rows", early_out.clone());
        results
            .map("row", revenue_row)
            .sink("product_revenue_1m", sink2.clone());
        Ok(())
    })
    .expect("valid job")
    .run()
    .expect("runs");
    let early = early_rows.take();
    assert!(!early.is_empty(), "early results were emitted");
    assert!(early.iter().all(|(early, final_ts)| early < final_ts));
    assert_eq!(store.revenue(), expected_map(&input));
}
