//! The e-commerce job's settings: defaults, a TOML file, and overrides (flags, environment).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::ShopError;
use crate::security::{CassandraSecuritySettings, KafkaSecuritySettings, take_present};
pub use crate::settings::{OnBadRecord, parse_duration};
use crate::settings::{de_duration, de_on_bad_record};

/// Everything the e-commerce job can be told. [`ShopSettings::default`] is the no-servers run:
/// embedded Kafka and CQL store, 1,000,000 generated orders.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopSettings {
    /// Kafka bootstrap servers; `None` starts librdkafka's in-process mock cluster.
    pub brokers: Option<String>,
    /// A CQL contact point (`host:port`); `None` starts the in-process CQL store.
    pub cassandra: Option<String>,
    /// Keyspace of the result tables.
    pub keyspace: String,
    /// Topic of the orders.
    pub orders_topic: String,
    /// Topic of the page views.
    pub page_views_topic: String,
    /// Partitions of the topics when the job creates them.
    pub partitions: i32,
    /// Consumer group of the job (each topic is read in `<group>-<topic>`).
    pub group: String,
    /// Orders to generate and produce before the job starts (page views: twice as many);
    /// `0` produces nothing and only consumes.
    pub events: u64,
    /// End the input after this long without a record, closing open windows as at the end of
    /// input; `None` runs until stopped.
    pub exit_when_idle: Option<Duration>,
    /// Worker threads; `None` = available cores.
    pub workers: Option<usize>,
    /// RocksDB state and checkpoints go here, and a restart resumes from the last complete
    /// checkpoint; `None` keeps state in memory without checkpoints.
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints (with `state_dir`).
    pub checkpoint_interval: Duration,
    /// Also keep the checkpoints here (`s3://bucket/prefix`, with `state_dir`).
    pub checkpoint_store: Option<String>,
    /// What to do with undecodable records.
    pub on_bad_record: OnBadRecord,
    /// Run as one of several processes sharing the job through the consumer groups
    /// `<group>-stage-<stage>` (needs `brokers`, `cassandra`, `state_dir` and `checkpoint_store`).
    pub scale_out: bool,
    /// Serve Prometheus metrics here.
    pub metrics_addr: Option<SocketAddr>,
    /// File holding the bearer token the metrics endpoint requires (or the environment
    /// variable `SLUICE_METRICS_TOKEN`); without either it answers anyone who can reach it.
    pub metrics_token_file: Option<PathBuf>,
    /// Serve the web console and REST API here.
    pub console_addr: Option<SocketAddr>,
    /// File holding the bearer token the console's API requires (or the environment variable
    /// `SLUICE_CONSOLE_TOKEN`); without either it answers anyone who can reach it.
    pub console_token_file: Option<PathBuf>,
    /// TLS and SASL towards Kafka.
    pub kafka_security: KafkaSecuritySettings,
    /// Credentials and TLS towards Cassandra.
    pub cassandra_security: CassandraSecuritySettings,
}

impl Default for ShopSettings {
    fn default() -> Self {
        ShopSettings {
            brokers: None,
            cassandra: None,
            keyspace: "shop".into(),
            orders_topic: "orders".into(),
            page_views_topic: "page_views".into(),
            partitions: 4,
            group: "sluice-shop".into(),
            events: 1_000_000,
            exit_when_idle: None,
            workers: None,
            state_dir: None,
            checkpoint_interval: Duration::from_secs(10),
            checkpoint_store: None,
            on_bad_record: OnBadRecord::DeadLetter(()),
            scale_out: false,
            metrics_addr: None,
            metrics_token_file: None,
            console_addr: None,
            console_token_file: None,
            kafka_security: KafkaSecuritySettings::default(),
            cassandra_security: CassandraSecuritySettings::default(),
        }
    }
}

impl ShopSettings {
    /// The dead-letter topic: `<orders topic>-dlq`.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}-dlq", self.orders_topic)
    }

    /// How long the job waits without input before it ends: the setting, or 2 s when it
    /// produced its own input into an embedded broker (which then holds nothing else).
    pub fn idle_exit(&self) -> Option<Duration> {
        self.exit_when_idle
            .or((self.brokers.is_none()).then_some(Duration::from_secs(2)))
    }

    /// Applies every setting `overrides` has.
    pub fn apply(&mut self, overrides: PartialSettings) {
        let o = overrides;
        macro_rules! take {
            ($($field:ident),*) => { $(if let Some(v) = o.$field { self.$field = v; })* };
        }
        take!(
            keyspace,
            orders_topic,
            page_views_topic,
            partitions,
            group,
            events,
            checkpoint_interval,
            on_bad_record,
            scale_out
        );
        take_present!(self, o: brokers,
            cassandra,
            exit_when_idle,
            workers,
            state_dir,
            checkpoint_store,
            metrics_addr,
            metrics_token_file,
            console_addr,
            console_token_file
        );
        self.kafka_security.apply(o.kafka_security);
        self.cassandra_security.apply(o.cassandra_security);
    }

    /// Refuses settings the job cannot run with, naming the setting.
    pub fn validate(&self) -> Result<(), ShopError> {
        let invalid = |key: &str, reason: &str| {
            Err(ShopError::Setting {
                key: key.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.workers == Some(0) {
            return invalid("workers", "must be at least 1");
        }
        if self.partitions < 1 {
            return invalid("partitions", "must be at least 1");
        }
        if self.checkpoint_interval.is_zero() {
            return invalid("checkpoint-interval", "must be longer than zero");
        }
        if let Some(url) = &self.checkpoint_store {
            if self.state_dir.is_none() {
                return invalid(
                    "checkpoint-store",
                    "needs --state-dir (checkpoints are taken there first)",
                );
            }
            if let Err(e) = super::pipeline::checkpoint_store(url) {
                return invalid("checkpoint-store", &e.to_string());
            }
        }
        if self.scale_out {
            for (key, missing) in [
                ("brokers", self.brokers.is_none()),
                ("cassandra", self.cassandra.is_none()),
                ("state-dir", self.state_dir.is_none()),
                ("checkpoint-store", self.checkpoint_store.is_none()),
            ] {
                if missing {
                    return invalid(
                        key,
                        "must be set with --scale-out: the processes share Kafka, Cassandra and the checkpoint store",
                    );
                }
            }
        }
        if !self
            .keyspace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || self.keyspace.is_empty()
        {
            return invalid("keyspace", "must be letters, digits and underscores");
        }
        for (key, topic) in [
            ("orders-topic", &self.orders_topic),
            ("page-views-topic", &self.page_views_topic),
        ] {
            if topic.is_empty() {
                return invalid(key, "must not be empty");
            }
        }
        if self.orders_topic == self.page_views_topic {
            return invalid("page-views-topic", "must differ from orders-topic");
        }
        Ok(())
    }
}

/// Some of the settings, as a TOML file, the environment or the command line gives them: one
/// list for all three. The flags are `--orders-topic`, the environment variables
/// `SLUICE_ORDERS_TOPIC` and the file's keys `orders_topic` (`checkpoint_interval = "1s"`);
/// flags win over the environment, which wins over the file.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct PartialSettings {
    /// Kafka bootstrap servers [default: an in-process broker].
    #[arg(long, env = "SLUICE_BROKERS", value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// A Cassandra/ScyllaDB contact point [default: an in-process CQL store].
    #[arg(long, env = "SLUICE_CASSANDRA", value_name = "HOST:PORT")]
    pub cassandra: Option<String>,
    /// Keyspace of the result tables (created if missing) [default: shop].
    #[arg(long, env = "SLUICE_KEYSPACE")]
    pub keyspace: Option<String>,
    /// Topic of the orders [default: orders].
    #[arg(long, env = "SLUICE_ORDERS_TOPIC")]
    pub orders_topic: Option<String>,
    /// Topic of the page views [default: page_views].
    #[arg(long, env = "SLUICE_PAGE_VIEWS_TOPIC")]
    pub page_views_topic: Option<String>,
    /// Partitions of the topics when the job creates them [default: 4].
    #[arg(long, env = "SLUICE_PARTITIONS")]
    pub partitions: Option<i32>,
    /// Consumer group of the job; each topic is read in `<group>-<topic>` [default: sluice-shop].
    #[arg(long, env = "SLUICE_GROUP")]
    pub group: Option<String>,
    /// Orders to generate and produce first (twice as many page views); 0 = only consume
    /// [default: 1000000].
    #[arg(long, env = "SLUICE_EVENTS")]
    pub events: Option<u64>,
    /// Stop after this long without input, closing open windows as at the end of input
    /// (e.g. 10, 10s, 500ms) [default: 2s with the in-process broker, else never].
    #[arg(long, env = "SLUICE_EXIT_WHEN_IDLE", value_parser = parse_duration, value_name = "DURATION")]
    #[serde(default, deserialize_with = "de_duration")]
    pub exit_when_idle: Option<Duration>,
    /// Worker threads [default: available cores].
    #[arg(long, env = "SLUICE_WORKERS")]
    pub workers: Option<usize>,
    /// Keep state in RocksDB here and checkpoint it; a restart with the same directory resumes
    /// from the last complete checkpoint [default: state in memory, no checkpoints].
    #[arg(long, env = "SLUICE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also keep the checkpoints in S3-compatible storage (s3://bucket/prefix; with
    /// --state-dir): a run with an empty state directory restores from there, and an older
    /// run still going is fenced. Endpoint and credentials from AWS_ENDPOINT, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "SLUICE_CHECKPOINT_STORE", value_name = "URL")]
    pub checkpoint_store: Option<String>,
    /// Time between checkpoints (with --state-dir) [default: 10s].
    #[arg(long, env = "SLUICE_CHECKPOINT_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    #[serde(default, deserialize_with = "de_duration")]
    pub checkpoint_interval: Option<Duration>,
    /// Undecodable records: fail, skip, or dead-letter (to <orders-topic>-dlq) [default: dead-letter].
    #[arg(long, env = "SLUICE_ON_BAD_RECORD", value_name = "CHOICE")]
    #[serde(default, deserialize_with = "de_on_bad_record")]
    pub on_bad_record: Option<OnBadRecord>,
    /// Run as one of several processes sharing the job: each stage's tasks (one per
    /// partition) are spread over the processes by consumer groups `<group>-stage-<stage>`, and move
    /// with their checkpoints when processes come and go. Needs --brokers, --cassandra,
    /// --state-dir and --checkpoint-store [default: false].
    #[arg(long, env = "SLUICE_SCALE_OUT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub scale_out: Option<bool>,
    /// Serve Prometheus metrics on this address; a port alone listens on loopback only
    /// (e.g. 9464 = 127.0.0.1:9464, 0.0.0.0:9464 for every interface).
    #[arg(long, env = "SLUICE_METRICS_ADDR", value_parser = parse_listen_addr, value_name = "[HOST:]PORT")]
    #[serde(default, deserialize_with = "de_listen_addr")]
    pub metrics_addr: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on the metrics endpoint, the token read from
    /// this file (or from SLUICE_METRICS_TOKEN).
    #[arg(long, env = "SLUICE_METRICS_TOKEN_FILE", value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Serve the web console and its REST API on this address; a port alone listens on
    /// loopback only (e.g. 8080 = 127.0.0.1:8080).
    #[arg(long = "console", env = "SLUICE_CONSOLE", value_parser = parse_listen_addr, value_name = "[HOST:]PORT")]
    #[serde(default, rename = "console", deserialize_with = "de_listen_addr")]
    pub console_addr: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on the console's API, the token read from this
    /// file (or from SLUICE_CONSOLE_TOKEN); the page takes it from its address, /#token=<token>.
    #[arg(long, env = "SLUICE_CONSOLE_TOKEN_FILE", value_name = "FILE")]
    pub console_token_file: Option<PathBuf>,
    /// Kafka TLS and SASL; `[kafka_security]` in a settings file.
    #[command(flatten)]
    #[serde(default)]
    pub kafka_security: KafkaSecuritySettings,
    /// Cassandra credentials and TLS; `[cassandra_security]` in a settings file.
    #[command(flatten)]
    #[serde(default)]
    pub cassandra_security: CassandraSecuritySettings,
}

/// A listening address: `host:port`, or a port alone for loopback.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("'{text}' is not an address (host:port, or a port for 127.0.0.1)"))
}

fn de_listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Port(u16),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Port(port) => Ok(Some(SocketAddr::from(([127, 0, 0, 1], port)))),
        Raw::Text(text) => parse_listen_addr(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl ShopSettings {
    /// The metrics endpoint's bearer token: the contents of `metrics_token_file` (one
    /// trailing newline dropped), else `SLUICE_METRICS_TOKEN`, else none.
    pub fn metrics_token(&self) -> Result<Option<String>, ShopError> {
        bearer_token(
            self.metrics_token_file.as_deref(),
            "metrics-token-file",
            "SLUICE_METRICS_TOKEN",
        )
    }

    /// The console's bearer token: the contents of `console_token_file` (one trailing
    /// newline dropped), else `SLUICE_CONSOLE_TOKEN`, else none.
    pub fn console_token(&self) -> Result<Option<String>, ShopError> {
        bearer_token(
            self.console_token_file.as_deref(),
            "console-token-file",
            "SLUICE_CONSOLE_TOKEN",
        )
    }
}

/// A bearer token: the contents of `file` (one trailing newline dropped; the setting `key`
/// names it in errors), else the environment variable `env`, else none.
pub fn bearer_token(file: Option<&Path>, key: &str, env: &str) -> Result<Option<String>, ShopError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ShopError::Setting {
            key: key.into(),
            reason: format!("{}: {e}", path.display()),
        })?;
        let token = text.trim_end_matches(['\n', '\r']).to_string();
        if token.is_empty() {
            return Err(ShopError::Setting {
                key: key.into(),
                reason: format!("{} is empty", path.display()),
            });
        }
        return Ok(Some(token));
    }
    Ok(std::env::var(env).ok().filter(|t| !t.is_empty()))
}

impl PartialSettings {
    /// Reads a TOML settings file; errors name the file, line and column.
    pub fn from_file(path: &Path) -> Result<Self, ShopError> {
        let text = std::fs::read_to_string(path).map_err(|e| ShopError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ShopError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string().trim_end().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_file_overrides_defaults_and_errors_name_the_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("shop.toml");
        std::fs::write(
            &path,
            "keyspace = \"analytics\"\ncheckpoint_interval = \"1s\"\non_bad_record = \"skip\"\nexit_when_idle = 5\n",
        )
        .expect("write");
        let mut settings = ShopSettings::default();
        settings.apply(PartialSettings::from_file(&path).expect("valid file"));
        assert_eq!(settings.keyspace, "analytics");
        assert_eq!(settings.checkpoint_interval, Duration::from_secs(1));
        assert_eq!(settings.on_bad_record, OnBadRecord::Skip);
        assert_eq!(settings.exit_when_idle, Some(Duration::from_secs(5)));
        assert_eq!(
            settings.orders_topic, "orders",
            "untouched settings keep their default"
        );

        std::fs::write(&path, "keyspace = \"shop\"\norder_topic = \"x\"\n").expect("write");
        let error = PartialSettings::from_file(&path)
            .expect_err("unknown key")
            .to_string();
        assert!(error.contains("shop.toml") && error.contains("line 2"), "{error}");
        std::fs::write(&path, "checkpoint_interval = \"often\"\n").expect("write");
        let error = PartialSettings::from_file(&path)
            .expect_err("bad duration")
            .to_string();
        assert!(error.contains("line 1") && error.contains("often"), "{error}");
    }

    #[test]
    fn the_defaults_the_flags_announce_are_the_defaults() {
        use clap::Args as _;
        let d = ShopSettings::default();
        let expected = [
            ("keyspace", d.keyspace.clone()),
            ("orders_topic", d.orders_topic.clone()),
            ("page_views_topic", d.page_views_topic.clone()),
            ("partitions", d.partitions.to_string()),
            ("group", d.group.clone()),
            ("events", d.events.to_string()),
            (
                "checkpoint_interval",
                format!("{}s", d.checkpoint_interval.as_secs()),
            ),
            ("on_bad_record", d.on_bad_record.to_string()),
        ];
        let command = PartialSettings::augment_args(clap::Command::new("shop"));
        // Every flag has an id and a name of its own (the security sections share field names).
        command.clone().debug_assert();
        for (id, value) in expected {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("no flag for {id}"));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(help.contains(&format!("[default: {value}]")), "--{id}: {help}");
        }
    }

    #[test]
    fn a_checkpoint_store_needs_a_state_directory_and_an_s3_url() {
        let mut settings = ShopSettings {
            checkpoint_store: Some("s3://checkpoints/shop".into()),
            ..ShopSettings::default()
        };
        let error = settings.validate().expect_err("no state dir").to_string();
        assert!(
            error.contains("checkpoint-store") && error.contains("state-dir"),
            "{error}"
        );
        settings.state_dir = Some("/var/lib/sluice/shop".into());
        assert!(settings.validate().is_ok());
        settings.checkpoint_store = Some("ftp://checkpoints/shop".into());
        let error = settings.validate().expect_err("not S3").to_string();
        assert!(error.contains("checkpoint-store"), "{error}");
    }

    #[test]
    fn scale_out_needs_shared_services_and_a_checkpoint_store() {
        let mut settings = ShopSettings {
            scale_out: true,
            brokers: Some("127.0.0.1:9092".into()),
            cassandra: Some("127.0.0.1:9042".into()),
            state_dir: Some("/var/lib/sluice/shop".into()),
            ..ShopSettings::default()
        };
        let error = settings.validate().expect_err("no store").to_string();
        assert!(
            error.contains("checkpoint-store") && error.contains("scale-out"),
            "{error}"
        );
        settings.checkpoint_store = Some("s3://checkpoints/shop".into());
        assert!(settings.validate().is_ok());
        settings.brokers = None;
        let error = settings.validate().expect_err("embedded Kafka").to_string();
        assert!(error.contains("brokers"), "{error}");
    }

    #[test]
    fn invalid_settings_name_the_setting() {
        let settings = ShopSettings {
            workers: Some(0),
            ..ShopSettings::default()
        };
        let error = settings.validate().expect_err("zero workers").to_string();
        assert!(error.contains("workers"), "{error}");
        let settings = ShopSettings {
            keyspace: "shop; DROP".into(),
            ..ShopSettings::default()
        };
        assert!(settings.validate().is_err());
    }
}
