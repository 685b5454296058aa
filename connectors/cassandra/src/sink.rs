use std::any::type_name;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_engine::{
    BoxError, CheckpointId, Data, OnBadRecord, Sink, SinkFactory, Timestamp, Watermark, now_millis,
};
use tokio::runtime::Runtime;

use super::batcher::Batcher;
use super::config::CassandraConfig;
use super::driver_runtime;
use super::encode::RowLayout;
use super::error::{CassandraError, with_retry_hint};
use super::mapping::{Field, FieldFormat, bind_columns, row_fields};
use super::retry::prepare_failed;
use super::schema::TableSchema;
use super::writer::{Dispatcher, DriverTarget, SinkStats, WriteTarget};
use sluice_operators::{DeadLetter, DeadLetterSink};

/// The write timestamp (microseconds) of a row, from the row and its event time.
pub type WriteTimestampFn<T> = Arc<dyn Fn(&T, Timestamp) -> i64 + Send + Sync>;

/// The default write timestamp: the last microsecond of the record's event-time millisecond.
/// A window's final result carries the window's last millisecond, so its timestamp is
/// `end × 1000 − 1`, the same as [`sluice_operators::WindowResult::write_timestamp`] gives it.
pub fn event_time_micros(ts: Timestamp) -> i64 {
    ts.saturating_mul(1000).saturating_add(999)
}

/// Writes a stream of rows into a Cassandra or ScyllaDB table.
///
/// A row is a struct deriving `Serialize` and `Deserialize`; each field is written to the
/// column of the same (serde) name. At start the sink reads the table's columns and refuses
/// to run, naming the field, if a field has no column or a type the column cannot take
/// (`i64` fits `bigint` and `timestamp` (epoch milliseconds), `String` fits `text`, ...).
///
/// **Writes.** Prepared upserts; rows of the same partition and write timestamp are grouped
/// into unlogged batches capped in bytes and rows ([`CassandraConfig::max_batch_bytes`]),
/// a single row goes as a single statement. At most [`CassandraConfig::max_in_flight`]
/// requests per worker are outstanding; when all are taken the job waits. Rows are sent when
/// a group is full, when the input watermark advances (a window's results go out together
/// right after they fire), when a checkpoint barrier arrives and at the end.
///
/// **Idempotence.** Every statement carries a write timestamp derived from the data, never
/// from the clock: by default [`event_time_micros`] of the record's event time; set your own
/// with [`CassandraSink::write_timestamp`]. A replay after a crash rewrites the same cells
/// with the same timestamps and cannot overwrite a newer result with an older one. A write
/// or delete to these rows with a wall-clock timestamp (as `cqlsh` and most drivers do by
/// default) is far above these timestamps and shadows every later write of the sink.
///
/// **Failures.** Each failed write is classed as retryable, a rejected row or systemic.
/// Timeouts, overload, unavailable replicas and unreachable nodes are retried with
/// exponential backoff and jitter (statements are idempotent); the request keeps its slot
/// meanwhile, so an unreachable store backpressures the job. A write failing for longer than
/// the retry limit fails the job (which restarts from its last checkpoint under a restart
/// strategy). Failures that concern the table rather than the row (no permission, bad
/// credentials, a missing table, keyspace or column) fail the job at once, naming the table
/// and the store's reason. Rows whose own values the store refuses go to the
/// [`CassandraSink::on_rejected_rows`] choice.
///
/// **Checkpoints.** At a barrier the sink sends everything it holds and waits until every
/// write is acknowledged, so a checkpoint never completes with writes outstanding: results
/// are effectively-once in the table.
pub struct CassandraSink<T> {
    config: CassandraConfig,
    table: String,
    ttl: Option<Duration>,
    create: Option<TableSchema>,
    columns: Option<Vec<String>>,
    timestamp: WriteTimestampFn<T>,
    rejected: OnBadRecord<DeadLetterSink>,
    connection: Arc<Mutex<Option<Arc<Connection>>>>,
    stats: Arc<SinkStats>,
    _row: PhantomData<fn(T)>,
}

impl<T> Clone for CassandraSink<T> {
    fn clone(&self) -> Self {
        CassandraSink {
            config: self.config.clone(),
            table: self.table.clone(),
            ttl: self.ttl,
            create: self.create.clone(),
            columns: self.columns.clone(),
            timestamp: Arc::clone(&self.timestamp),
            rejected: self.rejected.clone(),
            connection: Arc::clone(&self.connection),
            stats: Arc::clone(&self.stats),
            _row: PhantomData,
        }
    }
}

/// What every worker of a sink shares: one runtime, one driver session, one prepared insert.
struct Connection {
    runtime: Runtime,
    target: Arc<dyn WriteTarget>,
    layout: Arc<RowLayout>,
}

impl<T: Data + Serialize + DeserializeOwned> CassandraSink<T> {
    /// Writes rows of type `T` into `table` of the configured keyspace.
    pub fn new(config: CassandraConfig, table: impl Into<String>) -> Self {
        CassandraSink {
            config,
            table: table.into(),
            ttl: None,
            create: None,
            columns: None,
            timestamp: Arc::new(|_, ts| event_time_micros(ts)),
            rejected: OnBadRecord::Fail,
            connection: Arc::default(),
            stats: Arc::default(),
            _row: PhantomData,
        }
    }

    /// Derives each row's write timestamp (microseconds) from the row and its event time.
    pub fn write_timestamp(mut self, f: impl Fn(&T, Timestamp) -> i64 + Send + Sync + 'static) -> Self {
        self.timestamp = Arc::new(f);
        self
    }

    /// Rows expire after `ttl` (`USING TTL`).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// What happens to a row that cannot be written because of its own values (a value the
    /// column or the store refuses, a missing partition key). Never routed here: timeouts,
    /// overload and unreachable nodes (retried) and failures that concern the table rather
    /// than the row, such as no permission or a missing table or keyspace (the job fails).
    ///
    /// `Fail` (the default) stops the job with an error naming the table and the row's key.
    /// `Skip` logs the row's key and the error at warn and goes on. `DeadLetter(sink)` hands
    /// the row as JSON to the sink (e.g. `KafkaDeadLetters`, a Kafka topic) with the table and
    /// the error in the headers `sluice.table` and `sluice.error`, and goes on; a row that
    /// cannot be serialized at all is written as
    /// `{"sluice.unserializable_row":{"type":"<Rust type>","error":"<why>"}}`.
    pub fn on_rejected_rows(mut self, choice: OnBadRecord<DeadLetterSink>) -> Self {
        self.rejected = choice;
        self
    }

    /// Creates the table (and keyspace) at start if missing, from the row type's fields and
    /// `schema`'s keys (for examples and quick starts; production tables are usually managed
    /// elsewhere).
    pub fn create_table_if_missing(mut self, schema: TableSchema) -> Self {
        self.create = Some(schema);
        self
    }

    /// Writes these columns, taking each from the row's field of the same name, instead of
    /// the fields the row type declares: for rows whose fields are only known at run time,
    /// such as `serde_json::Map`. Each value is converted to its column's type when written
    /// (a value that does not fit fails the row naming the column); a missing field is null.
    /// Creating the table then needs every column's type in the [`TableSchema`].
    pub fn columns(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Connects, creates the table if asked and checks the row type against it now, instead
    /// of when the job starts (the connection is then shared by the job's workers).
    ///
    /// # Errors
    /// As the job would fail at start: store unreachable, table missing, mapping mismatch.
    pub fn connect(&self) -> Result<(), CassandraError> {
        self.connection().map(|_| ())
    }

    /// Counters and write latencies over all workers of this sink.
    pub fn stats(&self) -> Arc<SinkStats> {
        Arc::clone(&self.stats)
    }

    fn qualified_table(&self) -> String {
        format!("{}.{}", self.config.keyspace, self.table)
    }

    fn connection(&self) -> Result<Arc<Connection>, CassandraError> {
        let mut slot = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = slot.as_ref() {
            return Ok(Arc::clone(c));
        }
        let runtime = driver_runtime("sluice-cassandra")?;
        let (session, insert, layout) = runtime.block_on(self.prepare())?;
        let target: Arc<dyn WriteTarget> = Arc::new(DriverTarget {
            session: Arc::new(session),
            insert,
        });
        let connection = Arc::new(Connection {
            runtime,
            target,
            layout: Arc::new(layout),
        });
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Connects, creates the table if asked, checks the row type against the table's
    /// columns and prepares the insert.
    async fn prepare(&self) -> Result<(Session, PreparedStatement, RowLayout), CassandraError> {
        let table = self.qualified_table();
        let row = type_name::<T>();
        let fields = match &self.columns {
            Some(names) => names
                .iter()
                .map(|name| Field {
                    name: name.clone(),
                    format: FieldFormat::Any,
                    // A missing value is written as null all the same; key columns refuse it
                    // row by row.
                    nullable: false,
                })
                .collect(),
            None => row_fields::<T>().map_err(|reason| CassandraError::Mapping {
                row,
                table: table.clone(),
                reason,
            })?,
        };
        let session = self.config.connect().await?;
        if let Some(schema) = &self.create {
            schema
                .create::<T>(&session, &self.config.keyspace, &self.table, &fields)
                .await?;
        }
        let select = session
            .prepare(format!("SELECT * FROM {table}"))
            .await
            .map_err(|e| prepare_failed(&table, "cannot read its columns (does it exist?)", e))?;
        let columns: Vec<_> = select
            .get_current_result_set_col_specs()
            .get()
            .iter()
            .map(|c| (c.name().to_string(), c.typ().clone().into_owned()))
            .collect();
        let bound = bind_columns(row, &table, &fields, &columns)?;
        let names: Vec<&str> = bound.iter().map(|c| c.name.as_str()).collect();
        let markers = vec!["?"; names.len()].join(", ");
        let mut cql = format!("INSERT INTO {table} ({}) VALUES ({markers})", names.join(", "));
        if let Some(ttl) = self.ttl {
            cql.push_str(&format!(" USING TTL {}", ttl.as_secs().max(1)));
        }
        let mut insert = session
            .prepare(cql)
            .await
            .map_err(|e| prepare_failed(&table, "cannot prepare the insert", e))?;
        insert.set_is_idempotent(true);
        let mut key: Vec<_> = insert
            .get_variable_pk_indexes()
            .iter()
            .map(|k| (k.sequence, usize::from(k.index)))
            .collect();
        key.sort_unstable();
        let mut partition_key: Vec<usize> = key.into_iter().map(|(_, i)| i).collect();
        if partition_key.is_empty() {
            // The store did not say which columns form the partition key: group only
            // identical rows, so no batch ever spans partitions.
            partition_key = (0..bound.len()).collect();
        }
        let layout = RowLayout {
            table,
            columns: bound,
            partition_key,
        };
        Ok((session, insert, layout))
    }
}

impl<T: Data + Serialize + DeserializeOwned> SinkFactory<T> for CassandraSink<T> {
    fn create(&self, worker: usize, workers: usize) -> Result<Box<dyn Sink<T>>, BoxError> {
        self.create_writer(worker, workers).map_err(with_retry_hint)
    }

    fn report(&self) -> Option<Arc<dyn sluice_engine::status::SinkReport>> {
        Some(Arc::clone(&self.stats) as Arc<dyn sluice_engine::status::SinkReport>)
    }
}

impl<T: Data + Serialize + DeserializeOwned> CassandraSink<T> {
    fn create_writer(&self, worker: usize, workers: usize) -> Result<Box<dyn Sink<T>>, BoxError> {
        let connection = self.connection()?;
        let rejected = match &self.rejected {
            OnBadRecord::Fail => OnBadRecord::Fail,
            OnBadRecord::Skip => OnBadRecord::Skip,
            OnBadRecord::DeadLetter(sink) => OnBadRecord::DeadLetter(sink.create(worker, workers)?),
        };
        let dispatcher = Dispatcher::new(
            connection.runtime.handle().clone(),
            Arc::clone(&connection.target),
            connection.layout.table.as_str().into(),
            self.config.backoff,
            self.config.max_in_flight,
            Arc::clone(&self.stats),
        );
        Ok(Box::new(CassandraWriter {
            layout: Arc::clone(&connection.layout),
            batcher: Batcher::new(self.config.max_batch_bytes, self.config.max_batch_rows),
            max_pending_rows: self.config.max_pending_rows,
            dispatcher,
            timestamp: Arc::clone(&self.timestamp),
            rejected,
            key: Vec::new(),
            _connection: connection,
        }))
    }
}

/// One worker's sink instance.
struct CassandraWriter<T> {
    layout: Arc<RowLayout>,
    batcher: Batcher,
    max_pending_rows: usize,
    dispatcher: Dispatcher,
    timestamp: WriteTimestampFn<T>,
    rejected: OnBadRecord<Box<dyn Sink<DeadLetter>>>,
    key: Vec<u8>,
    _connection: Arc<Connection>,
}

impl<T: Serialize> CassandraWriter<T> {
    /// Sends every group held, without waiting for acknowledgements.
    fn send_pending(&mut self) -> Result<(), BoxError> {
        for batch in self.batcher.drain() {
            self.dispatcher.send(batch)?;
        }
        self.handle_rejected()
    }

    /// Sends everything and waits until the store acknowledged it all.
    fn flush(&mut self) -> Result<(), BoxError> {
        self.send_pending()?;
        self.dispatcher.wait_idle()?;
        self.handle_rejected()
    }

    fn handle_rejected(&mut self) -> Result<(), BoxError> {
        for (row, reason) in self.dispatcher.take_rejected() {
            let error = CassandraError::Rejected {
                table: self.layout.table.clone(),
                key: self.layout.key_text(&row),
                reason,
            };
            self.reject(|layout| layout.row_json(&row), error)?;
        }
        Ok(())
    }

    /// Applies the rejected-rows choice to a row that cannot be written.
    fn reject(
        &mut self,
        payload: impl FnOnce(&RowLayout) -> String,
        error: CassandraError,
    ) -> Result<(), BoxError> {
        let dead_letters = match &mut self.rejected {
            OnBadRecord::Fail => return Err(error.into()),
            OnBadRecord::Skip => {
                tracing::warn!(error = %error, "row skipped");
                return Ok(());
            }
            OnBadRecord::DeadLetter(sink) => sink,
        };
        let reason = error.to_string();
        tracing::warn!(error = %reason, "row dead-lettered");
        let letter = DeadLetter {
            key: None,
            payload: payload(&self.layout).into_bytes(),
            headers: vec![
                ("sluice.table".to_string(), self.layout.table.clone()),
                ("sluice.error".to_string(), reason),
            ],
        };
        dead_letters.write(letter, now_millis())
    }
}

/// The row as JSON for the dead-letter topic. A row that does not serialize is described
/// instead (its type and the serializer's error), so no dead-letter record goes out empty.
fn dead_letter_payload<T: Serialize>(row: &T) -> String {
    serde_json::to_string(row).unwrap_or_else(|e| {
        let described = serde_json::json!({
            "sluice.unserializable_row": {"type": type_name::<T>(), "error": e.to_string()}
        });
        described.to_string()
    })
}

/// The sink's steps, before their errors get a retry hint.
impl<T: Data + Serialize> CassandraWriter<T> {
    fn write_row(&mut self, value: T, ts: Timestamp) -> Result<(), BoxError> {
        self.key.clear();
        let row = match self.layout.encode(&value, &mut self.key) {
            Ok(row) => row,
            Err(e) => return self.reject(|_| dead_letter_payload(&value), e),
        };
        let timestamp = (self.timestamp)(&value, ts);
        if let Some(full) = self.batcher.add(&self.key, timestamp, row) {
            self.dispatcher.send(full)?;
        }
        if self.batcher.pending_rows() >= self.max_pending_rows {
            self.send_pending()?;
        }
        Ok(())
    }

    fn send_on_watermark(&mut self) -> Result<(), BoxError> {
        self.send_pending()
    }

    fn flush_for_checkpoint(&mut self, id: CheckpointId) -> Result<(), BoxError> {
        self.flush()?;
        // Rows dead-lettered before the barrier are durable before it is acknowledged.
        match &mut self.rejected {
            OnBadRecord::DeadLetter(dead_letters) => dead_letters.on_checkpoint(id),
            OnBadRecord::Fail | OnBadRecord::Skip => Ok(()),
        }
    }

    fn flush_at_end(&mut self) -> Result<(), BoxError> {
        self.flush()?;
        match &mut self.rejected {
            OnBadRecord::DeadLetter(dead_letters) => dead_letters.finish(),
            OnBadRecord::Fail | OnBadRecord::Skip => Ok(()),
        }
    }
}

impl<T: Data + Serialize> Sink<T> for CassandraWriter<T> {
    fn write(&mut self, value: T, ts: Timestamp) -> Result<(), BoxError> {
        self.write_row(value, ts).map_err(with_retry_hint)
    }

    fn on_watermark(&mut self, _wm: Watermark) -> Result<(), BoxError> {
        self.send_on_watermark().map_err(with_retry_hint)
    }

    fn on_checkpoint(&mut self, id: CheckpointId) -> Result<(), BoxError> {
        self.flush_for_checkpoint(id).map_err(with_retry_hint)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.flush_at_end().map_err(with_retry_hint)
    }
}

#[cfg(test)]
mod tests {
    use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
    use scylla::value::CqlValue;
    use serde::Deserialize;
    use serde::ser::Error as _;

    use super::*;
    use crate::batcher::WriteBatch;
    use crate::mapping::{BoundColumn, CqlType};
    use crate::retry::Backoff;
    use crate::writer::WriteFuture;
    use sluice_operators::{CollectSink, Emit, Window, WindowResult};

    /// Records what would be written (the test store keeps no write timestamps).
    #[derive(Default)]
    struct Recording(Mutex<Vec<(i64, Vec<Option<CqlValue>>)>>);

    impl WriteTarget for Recording {
        fn write<'a>(&'a self, batch: &'a WriteBatch) -> WriteFuture<'a> {
            Box::pin(async move {
                let mut seen = self.0.lock().unwrap();
                seen.extend(batch.rows.iter().map(|r| (batch.timestamp, r.values.clone())));
                Ok(())
            })
        }
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Row {
        product_id: String,
        window_start: i64,
        revenue_cents: i64,
    }

    fn writer<T: Data + Serialize>(
        target: Arc<dyn WriteTarget>,
        timestamp: WriteTimestampFn<T>,
        rejected: OnBadRecord<Box<dyn Sink<DeadLetter>>>,
    ) -> CassandraWriter<T> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let col = |name: &str, ty| BoundColumn {
            name: name.into(),
            ty,
        };
        let layout = Arc::new(RowLayout {
            table: "shop.t".into(),
            columns: vec![
                col("product_id", CqlType::Text),
                col("window_start", CqlType::Timestamp),
                col("revenue_cents", CqlType::BigInt),
            ],
            partition_key: vec![0],
        });
        let dispatcher = Dispatcher::new(
            runtime.handle().clone(),
            Arc::clone(&target),
            "shop.t".into(),
            Backoff::default(),
            4,
            Arc::default(),
        );
        CassandraWriter {
            layout: Arc::clone(&layout),
            batcher: Batcher::new(5 * 1024, 100),
            max_pending_rows: 1_000,
            dispatcher,
            timestamp,
            rejected,
            key: Vec::new(),
            _connection: Arc::new(Connection {
                runtime,
                target,
                layout,
            }),
        }
    }

    fn results() -> Vec<WindowResult<String, i64>> {
        let window = |start| Window {
            start,
            end: start + 60_000,
        };
        vec![
            WindowResult {
                key: "p-1".into(),
                window: window(0),
                value: 10,
                emit: Emit::Early { records: 1 },
            },
            WindowResult {
                key: "p-1".into(),
                window: window(0),
                value: 25,
                emit: Emit::Early { records: 2 },
            },
            WindowResult {
                key: "p-1".into(),
                window: window(0),
                value: 40,
                emit: Emit::Final,
            },
            WindowResult {
                key: "p-2".into(),
                window: window(60_000),
                value: 7,
                emit: Emit::Final,
            },
        ]
    }

    /// Writes every result as a row at its event time (the window's last millisecond), then
    /// checkpoints.
    fn write_all(w: &mut CassandraWriter<Row>) {
        for r in results() {
            let row = Row {
                product_id: r.key.clone(),
                window_start: r.window.start,
                revenue_cents: r.value,
            };
            w.write(row, r.window.max_timestamp()).unwrap();
        }
        w.on_checkpoint(CheckpointId(1)).unwrap();
    }

    #[test]
    fn a_replay_writes_the_same_cells_with_the_same_timestamps() {
        let target = Arc::new(Recording::default());
        let mut w = writer(
            Arc::clone(&target) as _,
            Arc::new(|_, ts| event_time_micros(ts)),
            OnBadRecord::Fail,
        );
        write_all(&mut w);
        let mut first = std::mem::take(&mut *target.0.lock().unwrap());
        write_all(&mut w);
        let mut second = std::mem::take(&mut *target.0.lock().unwrap());
        first.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        second.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        assert_eq!(first, second);
        // A final result's default timestamp is the window end's: end × 1000 − 1.
        assert!(first.iter().any(|(ts, _)| *ts == 60_000 * 1000 - 1));
        assert!(first.iter().all(|(ts, _)| *ts < 1_000_000_000_000));
    }

    #[test]
    fn early_results_are_written_below_the_final_one() {
        let target = Arc::new(Recording::default());
        let results = results();
        // The timestamp function sees the row; here it looks the result up, as a job's map
        // would carry `WindowResult::write_timestamp` along.
        let stamps: Vec<(i64, i64)> = results.iter().map(|r| (r.value, r.write_timestamp())).collect();
        let mut w = writer(
            Arc::clone(&target) as _,
            Arc::new(move |row: &Row, _| {
                stamps
                    .iter()
                    .find(|(v, _)| *v == row.revenue_cents)
                    .map_or(0, |s| s.1)
            }),
            OnBadRecord::Fail,
        );
        write_all(&mut w);
        let seen = target.0.lock().unwrap();
        let ts_of = |value: i64| {
            seen.iter()
                .find(|(_, v)| v[2] == Some(CqlValue::BigInt(value)))
                .map(|(ts, _)| *ts)
                .unwrap()
        };
        assert!(ts_of(10) < ts_of(25), "later early results win over earlier ones");
        assert!(
            ts_of(25) < ts_of(40),
            "the final result wins over every early one"
        );
        assert_eq!(ts_of(40), 60_000 * 1000 - 1);
    }

    /// Acknowledges rows, refuses those with an empty partition key as Cassandra does, or
    /// answers `every_write` to every write.
    #[derive(Default)]
    struct Store {
        every_write: Option<(DbError, &'static str)>,
        written: Mutex<Vec<Vec<Option<CqlValue>>>>,
    }

    impl WriteTarget for Store {
        fn write<'a>(&'a self, batch: &'a WriteBatch) -> WriteFuture<'a> {
            Box::pin(async move {
                let refusal = |error: &DbError, message: &str| {
                    ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                        error.clone(),
                        message.to_string(),
                    ))
                };
                if let Some((error, message)) = &self.every_write {
                    return Err(refusal(error, message));
                }
                let empty_key = Some(CqlValue::Text(String::new()));
                if batch.rows.iter().any(|r| r.values[0] == empty_key) {
                    return Err(refusal(&DbError::Invalid, "Key may not be empty"));
                }
                let mut written = self.written.lock().unwrap();
                written.extend(batch.rows.iter().map(|r| r.values.clone()));
                Ok(())
            })
        }
    }

    fn rows() -> Vec<Row> {
        ["p-1", "", "p-2"]
            .into_iter()
            .enumerate()
            .map(|(n, product)| Row {
                product_id: product.into(),
                window_start: 60_000 * n as i64,
                revenue_cents: 100 + n as i64,
            })
            .collect()
    }

    /// A dead-letter sink that collects, and the writer side of it.
    fn dead_letter() -> (CollectSink<DeadLetter>, OnBadRecord<Box<dyn Sink<DeadLetter>>>) {
        let collected = CollectSink::new();
        let sink = collected.create(0, 1).unwrap();
        (collected, OnBadRecord::DeadLetter(sink))
    }

    /// The dead letters collected: payload and headers.
    fn dead_lettered(collected: &CollectSink<DeadLetter>) -> Vec<(String, Vec<(String, String)>)> {
        collected
            .snapshot()
            .into_iter()
            .map(|d| (String::from_utf8_lossy(&d.payload).into_owned(), d.headers))
            .collect()
    }

    fn header<'a>(headers: &'a [(String, String)], key: &str) -> &'a str {
        headers
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    #[test]
    fn a_row_the_store_refuses_goes_to_the_dead_letter_sink_and_the_rest_are_written() {
        let (collected, dead_letters) = dead_letter();
        let store = Arc::new(Store::default());
        let mut w = writer(
            Arc::clone(&store) as _,
            Arc::new(|_: &Row, ts| event_time_micros(ts)),
            dead_letters,
        );
        for row in rows() {
            w.write(row, 1).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(store.written.lock().unwrap().len(), 2);
        let dead = dead_lettered(&collected);
        assert_eq!(dead.len(), 1);
        let (payload, headers) = &dead[0];
        assert_eq!(
            payload,
            r#"{"product_id":"","window_start":60000,"revenue_cents":101}"#
        );
        assert_eq!(header(headers, "sluice.table"), "shop.t");
        assert!(
            header(headers, "sluice.error").contains("Key may not be empty"),
            "{headers:?}"
        );
    }

    #[test]
    fn a_store_refusing_every_write_fails_the_job_instead_of_dead_lettering_rows() {
        let (collected, dead_letters) = dead_letter();
        let store = Arc::new(Store {
            every_write: Some((
                DbError::Unauthorized,
                "User app has no MODIFY permission on <table shop.t> or any of its parents",
            )),
            ..Store::default()
        });
        let mut w = writer(
            Arc::clone(&store) as _,
            Arc::new(|_: &Row, ts| event_time_micros(ts)),
            dead_letters,
        );
        let outcome = rows()
            .into_iter()
            .try_for_each(|row| w.write(row, 1))
            .and_then(|()| w.on_checkpoint(CheckpointId(1)));
        let err = outcome.expect_err("the job fails").to_string();
        assert!(
            err.contains("shop.t") && err.contains("no MODIFY permission"),
            "{err}"
        );
        assert!(dead_lettered(&collected).is_empty(), "rows were dead-lettered");
    }

    /// A row whose `Serialize` implementation fails.
    #[derive(Debug, Clone)]
    struct Unserializable;

    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom("the sensor reading cannot be encoded"))
        }
    }

    #[test]
    fn a_row_that_cannot_be_serialized_is_dead_lettered_with_its_error() {
        let (collected, dead_letters) = dead_letter();
        let store = Arc::new(Store::default());
        let mut w = writer(
            Arc::clone(&store) as _,
            Arc::new(|_: &Unserializable, ts| event_time_micros(ts)),
            dead_letters,
        );
        w.write(Unserializable, 1).unwrap();
        w.finish().unwrap();
        let dead = dead_lettered(&collected);
        assert_eq!(dead.len(), 1);
        let (payload, headers) = &dead[0];
        assert!(
            header(headers, "sluice.error").contains("the sensor reading cannot be encoded"),
            "{headers:?}"
        );
        let described: serde_json::Value = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("the payload is not JSON ({e}): {payload:?}"));
        assert!(
            described
                .to_string()
                .contains("the sensor reading cannot be encoded")
                && described.to_string().contains("Unserializable"),
            "{payload}"
        );
    }

    #[test]
    fn a_row_the_store_refuses_fails_the_job_by_default_naming_table_and_key() {
        let store = Arc::new(Store::default());
        let mut w = writer(
            Arc::clone(&store) as _,
            Arc::new(|_: &Row, ts| event_time_micros(ts)),
            OnBadRecord::Fail,
        );
        let outcome = rows()
            .into_iter()
            .try_for_each(|row| w.write(row, 1))
            .and_then(|()| w.finish());
        let err = outcome.expect_err("the job fails").to_string();
        assert!(
            err.contains("shop.t") && err.contains("Key may not be empty"),
            "{err}"
        );
    }

    #[test]
    fn a_row_the_store_refuses_is_skipped_when_told_and_the_rest_are_written() {
        let store = Arc::new(Store::default());
        let mut w = writer(
            Arc::clone(&store) as _,
            Arc::new(|_: &Row, ts| event_time_micros(ts)),
            OnBadRecord::Skip,
        );
        for row in rows() {
            w.write(row, 1).unwrap();
        }
        w.finish().unwrap();
        let written = store.written.lock().unwrap();
        // Rows of different partitions go out in separate requests, in no set order.
        let mut products: Vec<String> = written
            .iter()
            .map(|values| match &values[0] {
                Some(CqlValue::Text(product)) => product.clone(),
                other => panic!("not a product id: {other:?}"),
            })
            .collect();
        products.sort();
        assert_eq!(products, ["p-1", "p-2"]);
    }
}
