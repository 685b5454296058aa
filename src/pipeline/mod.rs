//! Declarative pipelines: a Kafka topic of JSON records → optional window and aggregates →
//! a Cassandra table, described in a TOML file instead of Rust code (`sluice run FILE`).
//!
//! The file format is [`PipelineSpec`]. The file is checked before anything connects; errors
//! name the file and line. Records missing a field the pipeline reads, or with a field of the
//! wrong kind, are bad records: `on_bad_record` decides (fail naming topic, partition and
//! offset; skip; or dead-letter).

mod aggregate;
mod error;
mod record;
mod row;
mod scale_out;
mod spec;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use aggregate::{Aggregates, Running, SumOutOfRange};
pub use error::PipelineError;
pub use record::{Decoded, Fields, KeyValue, Num};
pub use scale_out::ScaledPipeline;
use serde_json::{Map, Value};
use sluice_cassandra::{CassandraConfig, CassandraSink, SinkStats};
use sluice_engine::{
    CheckpointConfig, ConsoleConfig, Job, JobConfig, StateBackendConfig, Stream, Timestamp, WatermarkStrategy,
};
use sluice_kafka::{KafkaConfig, KafkaSource};
use sluice_operators::{KeyedStreamExt, StreamExt, Windows};
pub use spec::{
    AggregateSpec, Function, PipelineSpec, ScaleOutSpec, SinkSpec, SourceSpec, WindowKind, WindowSpec,
};

use self::row::{RowNames, WindowRows};
use crate::settings::OnBadRecord;

/// A row written to the table: column → value.
pub type Row = Map<String, Value>;

/// A pipeline read from its file, with its sink, ready to connect and run.
#[derive(Clone)]
pub struct Pipeline {
    spec: PipelineSpec,
    fields: Fields,
    kafka: KafkaConfig,
    sink: CassandraSink<Row>,
    console: Option<ConsoleConfig>,
}

impl Pipeline {
    /// Reads and checks the pipeline file at `path`, and reads the secrets it refers to.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        Self::new(PipelineSpec::from_file(path)?).map_err(|e| match e {
            PipelineError::Security(e) => PipelineError::Invalid {
                path: path.to_path_buf(),
                line: 0,
                reason: e.to_string(),
            },
            other => other,
        })
    }

    /// The pipeline a checked spec describes; reads the secrets its security sections refer
    /// to (environment variables, files).
    pub fn new(spec: PipelineSpec) -> Result<Self, PipelineError> {
        let source = spec.source.get_ref();
        let sink_spec = spec.sink.get_ref();
        let windowed = spec.window.is_some();
        let fields = Fields {
            key: source.key.clone().filter(|_| windowed),
            event_time: source.event_time.clone(),
            numbers: spec
                .aggregates
                .iter()
                .map(|a| {
                    let a = a.get_ref();
                    match a.function {
                        Function::Count => None,
                        _ => a
                            .field
                            .as_ref()
                            .map(|f| f.split('*').map(|part| part.trim().to_string()).collect()),
                    }
                })
                .collect(),
            columns: sink_spec
                .columns
                .iter()
                .map(|(column, field)| (column.clone(), field.clone()))
                .collect(),
        };
        let columns: Vec<String> = if windowed {
            let mut columns = vec![key_column(&spec), window_start_column(sink_spec)];
            columns.extend(sink_spec.window_end_column.clone());
            columns.extend(spec.aggregates.iter().map(|a| a.get_ref().column.clone()));
            columns
        } else {
            sink_spec.columns.keys().cloned().collect()
        };
        let contact_points: Vec<String> = sink_spec
            .cassandra
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        let config = CassandraConfig::new(contact_points, sink_spec.keyspace.clone())
            .schema_metadata(sink_spec.schema_metadata);
        let config = sink_spec.security.apply_to(config, "sink.security", None)?;
        let sink = CassandraSink::new(config, sink_spec.table.clone()).columns(columns);
        let kafka =
            source
                .security
                .apply_to(KafkaConfig::new(source.brokers.clone()), "source.security", None)?;
        Ok(Pipeline {
            spec,
            fields,
            kafka,
            sink,
            console: None,
        })
    }

    /// The job serves a web console and REST API as `console` says.
    pub fn with_console(mut self, console: ConsoleConfig) -> Self {
        self.console = Some(console);
        self
    }

    /// The spec.
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// Connects to the store and checks the table's columns against the pipeline's.
    pub fn connect(&self) -> Result<(), PipelineError> {
        Ok(self.sink.connect()?)
    }

    /// The sink's counters and write latencies.
    pub fn sink_stats(&self) -> Arc<SinkStats> {
        self.sink.stats()
    }

    /// The job.
    pub fn job(&self) -> Result<Job, PipelineError> {
        let spec = &self.spec;
        let mut config = JobConfig::new(spec.name.clone());
        if let Some(workers) = spec.workers {
            config = config.workers(workers);
        }
        if let Some(dir) = &spec.state_dir {
            let interval = spec.checkpoint_interval.unwrap_or(Duration::from_secs(10));
            let mut checkpoints = CheckpointConfig::new(dir.join("checkpoints")).interval(interval);
            if let Some(url) = &spec.checkpoint_store {
                checkpoints = checkpoints.remote(crate::shop::checkpoint_store(url)?);
            }
            config = config
                .state_backend(StateBackendConfig::rocksdb(dir.join("state")))
                .checkpoints(checkpoints);
        }
        if let Some(console) = &self.console {
            config = config.console(console.clone());
        }
        let pipeline = self.clone();
        Ok(Job::new(config, move |b| {
            let strategy = pipeline.watermarks(|d: &Decoded| d.ts);
            let records = b.source("source", pipeline.source(), strategy);
            pipeline.write(&records);
            Ok(())
        })?)
    }

    /// The Kafka source of the pipeline's records.
    fn source(&self) -> KafkaSource<Decoded> {
        let spec = self.spec.source.get_ref();
        let decode = self.fields.clone();
        let mut source =
            KafkaSource::new(
                self.kafka.clone(),
                spec.group
                    .clone()
                    .unwrap_or_else(|| format!("sluice-{}", self.spec.name)),
                &[spec.topic.as_str()],
                move |_: Option<&[u8]>, payload: Option<&[u8]>| decode.decode(payload.unwrap_or_default()),
            )
            .on_bad_record(spec.on_bad_record.unwrap_or(OnBadRecord::Fail).map_dead_letters(
                |()| {
                    spec.dead_letter_topic
                        .clone()
                        .unwrap_or_else(|| format!("{}-dlq", spec.topic))
                },
            ));
        if let Some(idle) = spec.exit_when_idle {
            source = source.exit_when_idle(idle);
        }
        source
    }

    /// The source's out-of-orderness bound (default 5 s).
    fn out_of_orderness(&self) -> Duration {
        self.spec
            .source
            .get_ref()
            .max_out_of_orderness
            .unwrap_or(Duration::from_secs(5))
    }

    /// The source's watermark strategy, reading event time with `ts`.
    fn watermarks<T>(&self, ts: impl Fn(&T) -> Timestamp + Send + Sync + 'static) -> WatermarkStrategy<T> {
        let spec = self.spec.source.get_ref();
        let mut strategy =
            WatermarkStrategy::bounded_out_of_orderness(self.out_of_orderness()).with_timestamps(ts);
        if let Some(idle) = spec.idle_timeout {
            strategy = strategy.with_idleness(idle);
        }
        if let Some(idle) = spec.initial_idle_timeout {
            strategy = strategy.with_initial_idleness(idle);
        }
        if let Some(drift) = spec.max_drift {
            strategy = strategy.with_alignment(drift);
        }
        strategy
    }

    /// Writes `records` to the table: each as a row, or the window's aggregates per key.
    fn write(&self, records: &Stream<Decoded>) {
        let spec = &self.spec;
        let sink = self.sink.clone();
        let Some(window) = &spec.window else {
            records.map("row", |d: Decoded| d.row).sink("table", sink);
            return;
        };
        let w = window.get_ref();
        let windows = match w.kind {
            WindowKind::Tumbling => Windows::tumbling(w.size.unwrap_or_default()),
            WindowKind::Sliding => Windows::sliding(w.size.unwrap_or_default(), w.slide.unwrap_or_default()),
            WindowKind::Session => Windows::session(w.gap.unwrap_or_default()),
        };
        let functions: Vec<Function> = spec.aggregates.iter().map(|a| a.get_ref().function).collect();
        let sink_spec = spec.sink.get_ref();
        let names = RowNames {
            key: key_column(spec),
            start: window_start_column(sink_spec),
            end: sink_spec.window_end_column.clone(),
            aggregates: spec
                .aggregates
                .iter()
                .map(|a| a.get_ref().column.clone())
                .collect(),
        };
        records
            .key_by("by_key", |d: &Decoded| d.key.clone().unwrap_or(KeyValue::Int(0)))
            .window("window", windows)
            .allowed_lateness(w.allowed_lateness.unwrap_or_default())
            .aggregate(Aggregates(Arc::new(functions)))
            .transform("row", "map", WindowRows(names))
            .sink("table", sink);
    }
}

fn key_column(spec: &PipelineSpec) -> String {
    let sink = spec.sink.get_ref();
    sink.key_column
        .clone()
        .or_else(|| spec.source.get_ref().key.clone())
        .unwrap_or_else(|| "key".into())
}

fn window_start_column(sink: &SinkSpec) -> String {
    sink.window_start_column
        .clone()
        .unwrap_or_else(|| "window_start".into())
}
