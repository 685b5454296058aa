//! The revenue table the Cassandra benchmarks write, a keyspace of a measurement's own, and the
//! raw scylla insert loop they compare against.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use sluice::cassandra::scylla::client::session::Session;
use sluice::cassandra::scylla::client::session_builder::SessionBuilder;
use sluice::cassandra::scylla::value::CqlTimestamp;
use sluice::cassandra::{
    CassandraConfig, Consistency, TableSchema, event_time_micros, execute_cql, read_rows,
};
use sluice_cli::datagen::Order;
use tokio::sync::Semaphore;

use super::{Checksum, cpu_seconds};

/// The table's name.
pub const TABLE: &str = "product_revenue_1m";

/// A row of `product_revenue_1m`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevenueRow {
    pub product_id: String,
    pub window_start: i64,
    pub revenue_cents: i64,
    pub orders: i64,
    pub units: i64,
}

/// The table's key and write-timestamp columns.
pub fn schema() -> TableSchema {
    TableSchema::partition_key(["product_id"])
        .clustering_key(["window_start"])
        .timestamp_columns(["window_start"])
}

/// The 1-minute revenue rows of `orders`, each with its window's last millisecond (its event
/// time in a job).
pub fn revenue_rows(orders: impl IntoIterator<Item = Order>) -> Vec<(RevenueRow, i64)> {
    let mut windows: BTreeMap<(String, i64), (i64, i64, i64)> = BTreeMap::new();
    for o in orders {
        let w = windows
            .entry((o.product_id.clone(), o.ts - o.ts.rem_euclid(60_000)))
            .or_default();
        w.0 += o.revenue_cents();
        w.1 += 1;
        w.2 += o.quantity;
    }
    windows
        .into_iter()
        .map(|((product_id, window_start), (revenue_cents, orders, units))| {
            let row = RevenueRow {
                product_id,
                window_start,
                revenue_cents,
                orders,
                units,
            };
            (row, window_start + 60_000 - 1)
        })
        .collect()
}

/// Checksum of rows, as [`table_checksum`] computes it from the table.
pub fn rows_checksum<'a>(rows: impl IntoIterator<Item = &'a RevenueRow>) -> Checksum {
    let mut checksum = Checksum::default();
    for r in rows {
        checksum.add(
            &r.product_id,
            r.window_start,
            r.revenue_cents,
            r.orders as u64,
            r.units,
        );
    }
    checksum
}

/// Checksum of what the table holds in `config`'s keyspace.
pub fn table_checksum(config: &CassandraConfig) -> anyhow::Result<Checksum> {
    let mut checksum = Checksum::default();
    let table = format!("{}.{TABLE}", config.keyspace());
    for (p, w, r, o, u) in read_rows::<(String, CqlTimestamp, i64, i64, i64)>(
        config,
        &format!("SELECT product_id, window_start, revenue_cents, orders, units FROM {table}"),
    )? {
        checksum.add(&p, w.0, r, o as u64, u);
    }
    Ok(checksum)
}

/// The node's own version, e.g. "Apache Cassandra 5.0.9".
pub fn cassandra_version(addr: &str) -> String {
    let config = CassandraConfig::new([addr], "system");
    read_rows::<(String,)>(&config, "SELECT release_version FROM system.local")
        .ok()
        .and_then(|rows| rows.into_iter().next())
        .map_or_else(
            || "Apache Cassandra ?".into(),
            |(v,)| format!("Apache Cassandra {v}"),
        )
}

/// Drops `config`'s keyspace if it exists: a measurement starts with an empty table and leaves
/// nothing behind on a Cassandra node that outlives the benchmark.
pub fn drop_keyspace(config: &CassandraConfig) -> anyhow::Result<()> {
    execute_cql(
        config,
        &[&format!("DROP KEYSPACE IF EXISTS {}", config.keyspace())],
    )?;
    Ok(())
}

/// Writes `rows` with prepared inserts, `in_flight` at a time, each with the row's write
/// timestamp; returns seconds, CPU seconds and the write latencies in microseconds.
pub fn raw_insert_loop(
    config: &CassandraConfig,
    rows: Vec<(RevenueRow, i64)>,
    in_flight: usize,
) -> anyhow::Result<(f64, f64, Histogram<u64>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr = config.contact_points()[0].clone();
    let table = format!("{}.{TABLE}", config.keyspace());
    runtime.block_on(async move {
        let session: Arc<Session> = Arc::new(
            SessionBuilder::new()
                .known_node(addr)
                .fetch_schema_metadata(false)
                .auto_await_schema_agreement(false)
                .build()
                .await?,
        );
        let mut insert = session
            .prepare(format!(
                "INSERT INTO {table} (product_id, window_start, revenue_cents, orders, units) VALUES (?, ?, ?, ?, ?)"
            ))
            .await?;
        insert.set_consistency(Consistency::One);
        insert.set_is_idempotent(true);
        let slots = Arc::new(Semaphore::new(in_flight));
        let latency = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?));
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let mut tasks = tokio::task::JoinSet::new();
        for (row, ts) in rows {
            let permit = Arc::clone(&slots).acquire_owned().await?;
            let (session, latency) = (Arc::clone(&session), Arc::clone(&latency));
            let mut statement = insert.clone();
            statement.set_timestamp(Some(event_time_micros(ts)));
            tasks.spawn(async move {
                let started = Instant::now();
                let values = (
                    row.product_id,
                    CqlTimestamp(row.window_start),
                    row.revenue_cents,
                    row.orders,
                    row.units,
                );
                let result = session.execute_unpaged(&statement, values).await;
                let micros = started.elapsed().as_micros() as u64;
                if let Ok(mut h) = latency.lock() {
                    let _ = h.record(micros.max(1));
                }
                drop(permit);
                result.map(|_| ())
            });
            while let Some(done) = tasks.try_join_next() {
                done??;
            }
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let (seconds, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        let histogram = latency.lock().map_err(|_| anyhow::anyhow!("latency lock"))?.clone();
        anyhow::Ok((seconds, cpu, histogram))
    })
}
