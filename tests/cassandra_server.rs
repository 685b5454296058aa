//! What only a real Cassandra shows: TTLs, batch shapes, consistency levels, a dropped table,
//! a node that stops mid-run, and windows restored after a crash. `SLUICE_CASSANDRA` names the
//! node (`scripts/test.sh` starts one); the outage test starts a node of its own through
//! `scripts/services.sh`. Each test uses a keyspace of its own.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kafka::unique;
use common::services::OwnService;
use common::{Event, TempDir};
use serde::{Deserialize, Serialize};
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{CassandraConfig, CassandraSink, Consistency, TableSchema, execute_cql, read_rows};
use sluice::engine::{CheckpointConfig, EngineError};
use sluice::prelude::*;
use sluice::testing::{JobHarness, TestInput};

/// One window's count, as a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CountRow {
    key: String,
    window_start: i64,
    events: i64,
}

fn node() -> String {
    std::env::var("SLUICE_CASSANDRA")
        .expect("SLUICE_CASSANDRA must name a Cassandra node (scripts/test.sh starts one)")
}

fn keyspace(tag: &str) -> String {
    unique(tag).replace('-', "_")
}

fn count_sink(config: &CassandraConfig) -> CassandraSink<CountRow> {
    CassandraSink::new(config.clone(), "counts").create_table_if_missing(
        TableSchema::partition_key(["key"])
            .clustering_key(["window_start"])
            .timestamp_columns(["window_start"]),
    )
}

fn counts(config: &CassandraConfig) -> BTreeMap<(String, i64), i64> {
    read_rows::<(String, CqlTimestamp, i64)>(
        config,
        &format!(
            "SELECT key, window_start, events FROM {}.counts",
            config.keyspace()
        ),
    )
    .expect("read back")
    .into_iter()
    .map(|(k, w, n)| ((k, w.0), n))
    .collect()
}

/// Events of `keys` keys, one per 100 ms of event time, counted per key in 1-second windows
/// and written to `sink`, with `pace` between records (0: as fast as possible).
fn counting_job(name: &str, events: u64, keys: u64, pace: Duration, sink: CassandraSink<CountRow>) -> Job {
    Job::new(JobConfig::new(name).workers(2), move |b| {
        b.source(
            "events",
            GeneratorSource::new(2, Some(events / 2), move |p, i| {
                if !pace.is_zero() {
                    std::thread::sleep(pace);
                }
                let n = i * 2 + u64::from(p.0);
                Event::new(&format!("k{}", n % keys), (n * 100) as i64, 1)
            }),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500))
                .with_timestamps(|e: &Event| e.ts),
        )
        .key_by("by_key", |e| e.key.clone())
        .window("counts_1s", Windows::tumbling(Duration::from_secs(1)))
        .aggregate(Count)
        .map("row", |w| CountRow {
            key: w.key,
            window_start: w.window.start,
            events: w.value as i64,
        })
        .sink("counts", sink.clone());
        Ok(())
    })
    .expect("valid job")
}

/// What a batch computation of `counting_job` gives.
fn expected_counts(events: u64, keys: u64) -> BTreeMap<(String, i64), i64> {
    let mut rows = BTreeMap::new();
    for n in 0..events {
        let ts = (n * 100) as i64;
        *rows
            .entry((format!("k{}", n % keys), ts - ts % 1_000))
            .or_default() += 1;
    }
    rows
}

#[test]
#[ignore = "needs Cassandra: run scripts/test.sh"]
fn rows_written_with_a_ttl_expire() {
    let config = CassandraConfig::new([node()], keyspace("ttl"));
    let sink = count_sink(&config).ttl(Duration::from_secs(3));
    counting_job("ttl", 200, 4, Duration::ZERO, sink)
        .run()
        .expect("runs");
    let ttls: Vec<Option<i32>> = read_rows::<(Option<i32>,)>(
        &config,
        &format!("SELECT TTL(events) FROM {}.counts", config.keyspace()),
    )
    .expect("read back")
    .into_iter()
    .map(|(t,)| t)
    .collect();
    assert_eq!(ttls.len(), expected_counts(200, 4).len());
    assert!(
        ttls.iter().all(|t| t.is_some_and(|t| (1..=3).contains(&t))),
        "{ttls:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !counts(&config).is_empty() {
        assert!(Instant::now() < deadline, "rows outlived their TTL");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The log of the node `scripts/services.sh` started (in `SLUICE_SERVICES_DIR`, else its
/// default state directory), if there is one: a node of the user's own keeps its log elsewhere.
fn node_log() -> Option<PathBuf> {
    let dir = std::env::var_os("SLUICE_SERVICES_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/sluice/run")))?;
    let log = dir.join("cassandra").join("log");
    log.exists().then_some(log)
}

/// The node's batch warnings logged after byte `from`.
fn warnings_in(log: &Path, from: usize) -> String {
    let bytes = std::fs::read(log).expect("read the node's log");
    String::from_utf8_lossy(bytes.get(from..).unwrap_or_default())
        .lines()
        .filter(|l| l.contains("Unlogged batch covering") || l.contains("exceeding specified threshold"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore = "needs the Cassandra node scripts/test.sh starts (its log)"]
fn batches_stay_within_one_partition_and_below_the_size_warning() {
    let Some(log) = node_log() else {
        eprintln!("skipped: no log of a node started by scripts/services.sh (SLUICE_SERVICES_DIR)");
        return;
    };
    let config = CassandraConfig::new([node()], keyspace("batches"));
    let from = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
    // Many rows per partition and timestamp: the sink batches them.
    let sink = count_sink(&config);
    let stats = sink.stats();
    counting_job("batches", 20_000, 3, Duration::ZERO, sink)
        .run()
        .expect("runs");
    assert_eq!(counts(&config), expected_counts(20_000, 3));
    assert!(stats.rows_written() > 0);
    // The node warns of neither a batch across partitions nor an oversized one.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        warnings_in(&log, from),
        "",
        "the node warned about the sink's batches"
    );
    // What such a warning looks like: a batch across eleven partitions.
    let ks = config.keyspace().to_string();
    let mut batch = String::from("BEGIN UNLOGGED BATCH ");
    for k in 0..11 {
        batch.push_str(&format!(
            "INSERT INTO {ks}.counts (key, window_start, events) VALUES ('x{k}', 0, 1); "
        ));
    }
    batch.push_str("APPLY BATCH");
    execute_cql(&config, &[&batch]).expect("a batch across partitions");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !warnings_in(&log, from).contains("Unlogged batch covering") {
        assert!(
            Instant::now() < deadline,
            "the node's log shows no batch warnings at all"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs Cassandra: run scripts/test.sh"]
fn a_consistency_level_the_cluster_cannot_meet_fails_the_job_as_cassandra_says() {
    let ks = keyspace("quorum");
    let admin = CassandraConfig::new([node()], ks.clone());
    execute_cql(
        &admin,
        &[&format!(
            "CREATE KEYSPACE {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', 'datacenter1': 2}}"
        )],
    )
    .expect("keyspace");
    // Two replicas wanted, one node: LOCAL_QUORUM (2) cannot be met, ONE can.
    let config = admin.clone().consistency(Consistency::LocalQuorum).retry(
        Duration::from_millis(50),
        Duration::from_millis(200),
        Duration::from_secs(3),
    );
    let err = counting_job("quorum", 100, 2, Duration::ZERO, count_sink(&config))
        .run()
        .expect_err("the writes cannot reach their consistency level");
    let text = err.to_string();
    // Cassandra's Unavailable answer: two replicas required, one alive.
    assert!(
        text.contains("required: 2") && text.contains("alive: 1"),
        "{text}"
    );
    let one = admin.consistency(Consistency::One);
    counting_job("one", 100, 2, Duration::ZERO, count_sink(&one))
        .run()
        .expect("ONE is met by one node");
    assert_eq!(counts(&one), expected_counts(100, 2));
}

#[test]
#[ignore = "needs Cassandra: run scripts/test.sh"]
fn a_table_dropped_mid_run_fails_the_job_naming_it() {
    let config = CassandraConfig::new([node()], keyspace("dropped"));
    let sink = count_sink(&config);
    let stats = sink.stats();
    let handle = counting_job("dropped", 100_000, 4, Duration::from_micros(200), sink)
        .start()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.rows_written() < 20 {
        assert!(
            Instant::now() < deadline && !handle.is_finished(),
            "no rows written"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    execute_cql(&config, &[&format!("DROP TABLE {}.counts", config.keyspace())]).expect("drop");
    let err = handle.join().expect_err("writes to a dropped table fail the job");
    let text = err.to_string();
    assert!(text.contains("counts"), "the error names the table: {text}");
    assert!(matches!(err, EngineError::SinkFailed { .. }), "{err:?}");
}

#[test]
#[ignore = "starts a Cassandra node of its own: needs Java (scripts/test.sh installs it)"]
fn a_node_stopped_for_twenty_seconds_slows_the_job_and_loses_nothing() {
    let node = OwnService::start("cassandra").expect("a node of the test's own");
    let config = CassandraConfig::new([node.addr.clone()], keyspace("outage"))
        .retry(
            Duration::from_millis(100),
            Duration::from_secs(2),
            Duration::from_secs(300),
        )
        .request_timeout(Duration::from_secs(2));
    let sink = count_sink(&config);
    let stats = sink.stats();
    let (events, keys) = (60_000, 50);
    let handle = counting_job("outage", events, keys, Duration::from_micros(300), sink)
        .start()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.rows_written() < 200 {
        assert!(
            Instant::now() < deadline && !handle.is_finished(),
            "no rows written before the outage"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    node.stop().expect("stop the node");
    let read_at_stop = handle.metrics().total("events", "records_out");
    let written_at_stop = stats.rows_written();
    std::thread::sleep(Duration::from_secs(20));
    let read_during = handle.metrics().total("events", "records_out") - read_at_stop;
    let written_during = stats.rows_written() - written_at_stop;
    node.restart().expect("restart the node");
    let report = handle.join().expect("the job rides out the outage");
    assert_eq!(
        written_during, 0,
        "nothing is acknowledged while the node is down"
    );
    assert!(stats.retries() > 0, "writes were retried");
    // Backpressure: the job stopped reading instead of buffering the rest of the input.
    let total = report.metrics.total("events", "records_out");
    assert!(
        read_during < total / 2,
        "read {read_during} of {total} while the node was down"
    );
    assert_eq!(counts(&config), expected_counts(events, keys));
}

#[test]
#[ignore = "needs Cassandra: run scripts/test.sh"]
fn a_window_final_before_a_crash_is_not_mixed_with_a_late_record_after_it() {
    let dir = TempDir::new("cassandra-refire");
    let config = CassandraConfig::new([node()], keyspace("refire"));
    let sink = count_sink(&config);
    sink.connect().expect("table");
    let input = TestInput::new(2);
    let source = input.source();
    let job_config = JobConfig::new("refire")
        .workers(2)
        .checkpoints(CheckpointConfig::new(dir.0.join("checkpoints")));
    let mut h = JobHarness::new(job_config, move |b| {
        b.source(
            "events",
            source.clone(),
            WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
        )
        .key_by("by_key", |e| e.key.clone())
        .window("counts_1s", Windows::tumbling(Duration::from_secs(1)))
        .aggregate(Count)
        .map("row", |w| CountRow {
            key: w.key,
            window_start: w.window.start,
            events: w.value as i64,
        })
        .sink("counts", sink.clone());
        Ok(())
    })
    .expect("valid job");
    h.start().expect("starts");
    for p in 0..2 {
        for ts in [100, 500, 1_500] {
            input.push(p, Event::new("k", ts, 1));
        }
    }
    h.settle().expect("settles");
    h.checkpoint().expect("checkpoint");
    // Late: window [0, 1 s) was final before the checkpoint.
    input.push(0, Event::new("k", 200, 1));
    for p in 0..2 {
        input.push(p, Event::new("k", 2_500, 1));
    }
    h.settle().expect("settles");
    h.crash().expect("crash");
    h.restart(1).expect("restarts");
    input.end_all();
    h.finish().expect("ends");
    let rows = counts(&config);
    assert_eq!(
        rows.get(&("k".to_string(), 0)),
        Some(&4),
        "window [0, 1 s) kept its final count"
    );
    assert_eq!(rows.get(&("k".to_string(), 1_000)), Some(&2));
    assert_eq!(rows.get(&("k".to_string(), 2_000)), Some(&2));
}
