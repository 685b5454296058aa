//! The pipeline file: what it may say, and the checks that point at its lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::PipelineError;
use crate::security::{CassandraSecuritySettings, KafkaSecuritySettings};
use crate::settings::{OnBadRecord, de_duration, de_on_bad_record};

/// A declarative Kafka → (window + aggregates) → Cassandra pipeline.
///
/// ```toml
/// name = "product-revenue"
///
/// [source]
/// brokers = "127.0.0.1:9092"
/// topic = "orders"
/// key = "product_id"           # records are grouped by this field
/// event_time = "ts"            # epoch milliseconds
/// max_out_of_orderness = "5s"
/// idle_timeout = "30s"
/// on_bad_record = "dead-letter"
///
/// [window]
/// kind = "tumbling"            # tumbling (size), sliding (size, slide) or session (gap)
/// size = "1m"
///
/// [[aggregate]]
/// column = "revenue_cents"
/// function = "sum"             # count, sum, min, max or avg
/// field = "price_cents"
///
/// [[aggregate]]
/// column = "orders"
/// function = "count"
///
/// [sink]
/// cassandra = "127.0.0.1:9042"
/// keyspace = "shop"
/// table = "product_revenue_1m"  # key column = the key field's name, plus window_start
/// ```
///
/// Secured clusters: `[source.security]` (`ca_file`, `cert_file`, `key_file`, `username`,
/// `sasl_mechanism`, `password = "${KAFKA_PASSWORD}"` or `password_file`) and
/// `[sink.security]` (`username`, `password`/`password_file`, `tls`, `ca_file`, `cert_file`,
/// `key_file`), as in the README's "Connecting to secured clusters".
///
/// Without `[window]` each record is written as it is: `[sink.columns]` maps columns to the
/// record's fields (`order_id = "order_id"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Job name; also the default consumer group (`sluice-<name>`).
    pub name: String,
    /// Worker threads (default: available cores).
    #[serde(default)]
    pub workers: Option<usize>,
    /// RocksDB state and checkpoints go here; a restart resumes from the last checkpoint.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints (with `state_dir`; default 10 s).
    #[serde(default, deserialize_with = "de_duration")]
    pub checkpoint_interval: Option<Duration>,
    /// Also keep the checkpoints in S3-compatible storage (`s3://bucket/prefix`, with
    /// `state_dir`; endpoint and credentials from the `AWS_…` environment variables).
    #[serde(default)]
    pub checkpoint_store: Option<String>,
    /// Where records come from.
    pub source: Spanned<SourceSpec>,
    /// Optional window over which the aggregates are computed per key.
    #[serde(default)]
    pub window: Option<Spanned<WindowSpec>>,
    /// The aggregates, one column each.
    #[serde(default, rename = "aggregate")]
    pub aggregates: Vec<Spanned<AggregateSpec>>,
    /// Where results go.
    pub sink: Spanned<SinkSpec>,
    /// `[scale_out]`: run as tasks spread over every process started with the same group.
    #[serde(default)]
    pub scale_out: Option<Spanned<ScaleOutSpec>>,
}

/// `[scale_out]`: the pipeline spread over processes, as tasks moved between them by Kafka
/// consumer groups (`<group>-stage-<stage>`), each with its own state and checkpoints under
/// `<checkpoint_store>/<stage>-<partition>`. Needs `state_dir` (one per process) and
/// `checkpoint_store`. Each task is a job with one worker: `workers` does not apply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleOutSpec {
    /// The job's group, the same in every process running it.
    pub group: String,
    /// Partitions of the topic the records are re-keyed through, `<group>-by_key-repartition`
    /// (windowed pipelines; default: as many as the source topic has). The most processes
    /// that can share the windows.
    #[serde(default)]
    pub partitions: Option<u32>,
}

/// `[source]`: a Kafka topic of JSON records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Bootstrap servers.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Consumer group (default `sluice-<name>`).
    #[serde(default)]
    pub group: Option<String>,
    /// Record format; only `json` (one object per record).
    #[serde(default = "json")]
    pub format: String,
    /// Field the records are grouped by (needed with a window).
    #[serde(default)]
    pub key: Option<String>,
    /// Field with the event time in epoch milliseconds.
    pub event_time: String,
    /// How far behind the newest record of its partition a record may be.
    #[serde(default, deserialize_with = "de_duration")]
    pub max_out_of_orderness: Option<Duration>,
    /// A partition caught up for this long stops holding the watermark back (default: never).
    #[serde(default, deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// A partition that delivered nothing this long after it was assigned stops holding the
    /// watermark back (default: never).
    #[serde(default, deserialize_with = "de_duration")]
    pub initial_idle_timeout: Option<Duration>,
    /// Pause partitions more than this far ahead of the slowest (watermark alignment).
    #[serde(default, deserialize_with = "de_duration")]
    pub max_drift: Option<Duration>,
    /// End the input after this long without records (default: run until stopped).
    #[serde(default, deserialize_with = "de_duration")]
    pub exit_when_idle: Option<Duration>,
    /// `fail` (default), `skip` or `dead-letter`.
    #[serde(default, deserialize_with = "de_on_bad_record")]
    pub on_bad_record: Option<OnBadRecord>,
    /// Dead-letter topic (default `<topic>-dlq`).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// `[source.security]`: TLS and SASL towards the brokers.
    #[serde(default)]
    pub security: KafkaSecuritySettings,
}

fn json() -> String {
    "json".into()
}

/// Window kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumbling,
    /// Windows of `size` starting every `slide`.
    Sliding,
    /// Activity separated by `gap`.
    Session,
}

/// `[window]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// The kind.
    pub kind: WindowKind,
    /// Length (tumbling, sliding).
    #[serde(default, deserialize_with = "de_duration")]
    pub size: Option<Duration>,
    /// Distance between window starts (sliding).
    #[serde(default, deserialize_with = "de_duration")]
    pub slide: Option<Duration>,
    /// Inactivity that ends a session.
    #[serde(default, deserialize_with = "de_duration")]
    pub gap: Option<Duration>,
    /// How long after the watermark passed a window's end late records still update it.
    #[serde(default, deserialize_with = "de_duration")]
    pub allowed_lateness: Option<Duration>,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Number of records.
    Count,
    /// Sum of a numeric field.
    Sum,
    /// Smallest value of a numeric field.
    Min,
    /// Largest value of a numeric field.
    Max,
    /// Mean of a numeric field.
    Avg,
}

/// `[[aggregate]]`: one result column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// The column it is written to.
    pub column: String,
    /// The function.
    pub function: Function,
    /// The numeric field it is computed over (not for `count`). `a * b` multiplies two
    /// fields (e.g. `price_cents * quantity`).
    #[serde(default)]
    pub field: Option<String>,
}

/// `[sink]`: a Cassandra table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// Contact point(s), `host:port`, comma-separated.
    pub cassandra: String,
    /// Keyspace.
    pub keyspace: String,
    /// Table (must exist).
    pub table: String,
    /// Column of the key (windowed; default: the key field's name).
    #[serde(default)]
    pub key_column: Option<String>,
    /// Column of the window start (windowed; default `window_start`).
    #[serde(default)]
    pub window_start_column: Option<String>,
    /// Column of the window end (windowed; optional).
    #[serde(default)]
    pub window_end_column: Option<String>,
    /// Column → field (without a window).
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Whether the driver reads the cluster's schema metadata (token-aware routing). Stores
    /// with incomplete system tables (such as the in-process test store) need `false`.
    #[serde(default = "yes")]
    pub schema_metadata: bool,
    /// `[sink.security]`: credentials and TLS towards the store.
    #[serde(default)]
    pub security: CassandraSecuritySettings,
}

fn yes() -> bool {
    true
}

impl PipelineSpec {
    /// Reads and checks a pipeline file.
    pub fn from_file(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks the text of a pipeline file; errors name `path` and the line.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PipelineError> {
        let spec: PipelineSpec = toml::from_str(text).map_err(|e| PipelineError::Invalid {
            path: path.to_path_buf(),
            line: e.span().map_or(0, |span| line_of(text, span.start)),
            reason: e.message().to_string(),
        })?;
        spec.check().map_err(|(start, reason)| PipelineError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, start),
            reason,
        })?;
        Ok(spec)
    }

    /// Checks what the file's structure cannot: `(byte offset, reason)` of the first problem.
    fn check(&self) -> Result<(), (usize, String)> {
        let source = self.source.get_ref();
        if source.format != "json" {
            return Err((
                at(&self.source),
                format!("format '{}' is not supported (json)", source.format),
            ));
        }
        if self.workers == Some(0) {
            return Err((0, "workers must be at least 1".into()));
        }
        if self.checkpoint_store.is_some() && self.state_dir.is_none() {
            return Err((
                0,
                "checkpoint_store needs state_dir (checkpoints are taken there first)".into(),
            ));
        }
        if let Some(scale_out) = &self.scale_out {
            if self.state_dir.is_none() || self.checkpoint_store.is_none() {
                return Err((
                    at(scale_out),
                    "[scale_out] needs state_dir and checkpoint_store (tasks move between processes with their checkpoints)".into(),
                ));
            }
            if scale_out.get_ref().partitions == Some(0) {
                return Err((at(scale_out), "partitions must be at least 1".into()));
            }
        }
        let sink = self.sink.get_ref();
        match &self.window {
            Some(window) => {
                let w = window.get_ref();
                let problem = match w.kind {
                    WindowKind::Tumbling if w.size.is_none() => Some("a tumbling window needs size"),
                    WindowKind::Sliding if w.size.is_none() || w.slide.is_none() => {
                        Some("a sliding window needs size and slide")
                    }
                    WindowKind::Session if w.gap.is_none() => Some("a session window needs gap"),
                    _ => None,
                };
                if let Some(problem) = problem {
                    return Err((at(window), problem.into()));
                }
                if [w.size, w.slide, w.gap].iter().flatten().any(Duration::is_zero) {
                    return Err((at(window), "window durations must be longer than zero".into()));
                }
                if source.key.is_none() {
                    return Err((
                        at(&self.source),
                        "a windowed pipeline needs the source's key field".into(),
                    ));
                }
                if self.aggregates.is_empty() {
                    return Err((at(window), "a window needs at least one [[aggregate]]".into()));
                }
                if !sink.columns.is_empty() {
                    return Err((
                        at(&self.sink),
                        "[sink.columns] is for pipelines without a window; windowed columns are the key, window and aggregate columns".into(),
                    ));
                }
            }
            None => {
                if let Some(a) = self.aggregates.first() {
                    return Err((at(a), "aggregates need a [window]".into()));
                }
                if sink.columns.is_empty() {
                    return Err((
                        at(&self.sink),
                        "without a window, [sink.columns] must map columns to fields".into(),
                    ));
                }
            }
        }
        for a in &self.aggregates {
            let spec = a.get_ref();
            match (spec.function, &spec.field) {
                (Function::Count, _) => {}
                (_, None) => {
                    return Err((at(a), format!("aggregate '{}' needs a field", spec.column)));
                }
                (_, Some(field)) => {
                    if field.split('*').any(|f| f.trim().is_empty()) {
                        return Err((
                            at(a),
                            format!("field '{field}' is not a field or a product of two"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where a part of the file starts.
fn at<T>(spanned: &Spanned<T>) -> usize {
    spanned.span().start
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWED: &str = r#"name = "revenue"

[source]
brokers = "127.0.0.1:9092"
topic = "orders"
key = "product_id"
event_time = "ts"

[window]
kind = "tumbling"
size = "1m"

[[aggregate]]
column = "revenue_cents"
function = "sum"
field = "price_cents * quantity"

[sink]
cassandra = "127.0.0.1:9042"
keyspace = "shop"
table = "product_revenue_1m"
"#;

    fn parse(text: &str) -> Result<PipelineSpec, String> {
        PipelineSpec::parse(Path::new("p.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_windowed_pipeline_parses() {
        let spec = parse(WINDOWED).expect("valid");
        assert_eq!(
            spec.window.expect("window").get_ref().size,
            Some(Duration::from_secs(60))
        );
        assert_eq!(spec.aggregates.len(), 1);
    }

    #[test]
    fn errors_point_at_the_line() {
        let typo = WINDOWED.replace("function = \"sum\"", "function = \"total\"");
        let error = parse(&typo).expect_err("unknown function");
        assert!(error.starts_with("p.toml:15:"), "{error}");

        let no_size = WINDOWED.replace("size = \"1m\"\n", "");
        let error = parse(&no_size).expect_err("no size");
        assert!(
            error.starts_with("p.toml:9:") && error.contains("size"),
            "{error}"
        );

        let no_field = WINDOWED.replace("field = \"price_cents * quantity\"\n", "");
        let error = parse(&no_field).expect_err("no field");
        assert!(
            error.starts_with("p.toml:13:") && error.contains("revenue_cents"),
            "{error}"
        );

        let bad_duration = WINDOWED.replace("size = \"1m\"", "size = \"soon\"");
        let error = parse(&bad_duration).expect_err("bad duration");
        assert!(
            error.starts_with("p.toml:11:") && error.contains("soon"),
            "{error}"
        );

        let unknown = WINDOWED.replace("topic = \"orders\"", "topic = \"orders\"\ntopics = \"x\"");
        let error = parse(&unknown).expect_err("unknown key");
        assert!(
            error.starts_with("p.toml:6:") && error.contains("topics"),
            "{error}"
        );
    }

    #[test]
    fn pass_through_needs_columns_and_no_aggregates() {
        let text = "name = \"copy\"\n[source]\nbrokers = \"b\"\ntopic = \"t\"\nevent_time = \"ts\"\n[sink]\ncassandra = \"c\"\nkeyspace = \"k\"\ntable = \"t\"\n";
        let error = parse(text).expect_err("no columns");
        assert!(
            error.starts_with("p.toml:6:") && error.contains("columns"),
            "{error}"
        );
        let with_columns = format!("{text}[sink.columns]\nid = \"order_id\"\n");
        assert!(parse(&with_columns).is_ok());
    }

    #[test]
    fn scale_out_needs_the_checkpoint_store() {
        let scaled = format!("{WINDOWED}\n[scale_out]\ngroup = \"revenue\"\n");
        let error = parse(&scaled).expect_err("no store");
        assert!(
            error.starts_with("p.toml:23:") && error.contains("checkpoint_store"),
            "{error}"
        );
        let stored = format!(
            "state_dir = \"/tmp/s\"\ncheckpoint_store = \"s3://b/p\"\n{}",
            scaled
        );
        let spec = parse(&stored).expect("valid");
        assert_eq!(spec.scale_out.expect("scale_out").get_ref().group, "revenue");
    }
}
