use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;

use super::security::KafkaSecurity;

/// Connection settings shared by Kafka sources, sinks and dead-letter writers.
///
/// Any librdkafka property can be set (TLS, SASL, fetch and batch sizes...). Values of
/// properties that hold secrets (passwords, keys, tokens, JAAS configs) never appear in
/// `Debug` output or logs.
///
/// ```
/// use sluice_kafka::KafkaConfig;
/// let config = KafkaConfig::new("127.0.0.1:9092")
///     .set("security.protocol", "SASL_SSL")
///     .set("sasl.password", "hunter2");
/// assert!(!format!("{config:?}").contains("hunter2"));
/// ```
#[derive(Clone)]
pub struct KafkaConfig {
    brokers: String,
    properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Connects to `brokers` (`host:port[,host:port...]`).
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
        }
    }

    /// Sets a librdkafka property; it takes precedence over Sluice's defaults.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Connects with `security` (TLS, SASL); logs at `warn` what it leaves unprotected.
    ///
    /// ```
    /// use sluice_kafka::{KafkaConfig, KafkaSecurity, KafkaTls, Sasl, SaslMechanism};
    /// let security = KafkaSecurity {
    ///     tls: Some(KafkaTls::with_ca_file("/etc/kafka/ca.pem")),
    ///     sasl: Some(Sasl::new(SaslMechanism::ScramSha512, "sluice", "hunter2")),
    /// };
    /// let config = KafkaConfig::new("kafka-1:9093").security(&security);
    /// assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
    /// assert!(!format!("{config:?}").contains("hunter2"));
    /// ```
    pub fn security(mut self, security: &KafkaSecurity) -> Self {
        for (key, value) in security.properties(&self.brokers) {
            self.properties.insert(key.to_string(), value);
        }
        self
    }

    /// The bootstrap servers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// A librdkafka configuration: `defaults` first, then the user's properties. With the
    /// `librdkafka` log target at debug (`RUST_LOG=librdkafka=debug`), librdkafka's own debug
    /// logs of its configuration, connections and security handshakes are turned on too
    /// (unless the user set `debug`).
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
            config.set("debug", "conf,broker,security");
            config.set_log_level(RDKafkaLogLevel::Debug);
        } else {
            // Info at least: connection failures (a peer closing the connection during the
            // first request) are logged at info only, and say why a broker cannot be reached.
            config.set_log_level(RDKafkaLogLevel::Info);
        }
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}

/// Whether the value of property `key` is a secret.
pub(crate) fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "ssl.key",
        "keystore",
        "credential",
    ]
    .iter()
    .any(|marker| key.contains(marker))
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &shown)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_user_settings_win() {
        let c = KafkaConfig::new("b:9092")
            .set("sasl.password", "p4ss")
            .set("ssl.key.password", "k3y")
            .set("sasl.jaas.config", "secret-jaas")
            .set("fetch.wait.max.ms", "50");
        let shown = format!("{c:?}");
        for secret in ["p4ss", "k3y", "secret-jaas"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("fetch.wait.max.ms") && shown.contains("50"));
        let native = c.client_config(&[("fetch.wait.max.ms", "10")]);
        assert_eq!(native.get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(native.get("bootstrap.servers"), Some("b:9092"));
    }
}
