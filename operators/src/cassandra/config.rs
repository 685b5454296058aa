use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{SslContext, SslFiletype, SslMethod, SslVerifyMode};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::retry::FallthroughRetryPolicy;
pub use scylla::statement::Consistency;

use super::error::CassandraError;
use super::retry::Backoff;

/// Where and how a Cassandra sink connects and writes.
///
/// ```
/// use std::time::Duration;
/// use sluice_operators::cassandra::{CassandraConfig, Consistency};
/// let config = CassandraConfig::new(["10.0.0.1:9042", "10.0.0.2:9042"], "shop")
///     .consistency(Consistency::LocalQuorum)
///     .credentials("sluice", "secret")
///     .max_in_flight(64);
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct CassandraConfig {
    pub(crate) contact_points: Vec<String>,
    pub(crate) keyspace: String,
    pub(crate) consistency: Consistency,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_batch_rows: usize,
    pub(crate) max_pending_rows: usize,
    pub(crate) backoff: Backoff,
    pub(crate) schema_metadata: bool,
}

/// User name and password; the password never appears in `Debug` output or logs.
#[derive(Clone)]
pub(crate) struct Credentials {
    user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// TLS to the store (OpenSSL).
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities to trust; the system's when `None`.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Verify the server's certificate (default true).
    pub verify_peer: bool,
}

impl TlsConfig {
    /// TLS verifying the server against the CAs in `ca_file`.
    pub fn with_ca_file(ca_file: impl Into<PathBuf>) -> Self {
        TlsConfig {
            ca_file: Some(ca_file.into()),
            client_cert: None,
            verify_peer: true,
        }
    }

    fn context(&self) -> Result<SslContext, CassandraError> {
        let tls_error = |e: openssl::error::ErrorStack| CassandraError::Config {
            key: "tls",
            reason: e.to_string(),
        };
        let mut builder = SslContext::builder(SslMethod::tls()).map_err(tls_error)?;
        match &self.ca_file {
            Some(ca) => builder.set_ca_file(ca).map_err(|e| CassandraError::Config {
                key: "tls.ca_file",
                reason: format!("{}: {e}", ca.display()),
            })?,
            None => builder.set_default_verify_paths().map_err(tls_error)?,
        }
        if let Some((cert, key)) = &self.client_cert {
            builder
                .set_certificate_file(cert, SslFiletype::PEM)
                .map_err(|e| CassandraError::Config {
                    key: "tls.client_cert",
                    reason: format!("{}: {e}", cert.display()),
                })?;
            builder
                .set_private_key_file(key, SslFiletype::PEM)
                .map_err(|e| CassandraError::Config {
                    key: "tls.client_key",
                    reason: format!("{}: {e}", key.display()),
                })?;
        }
        builder.set_verify(if self.verify_peer {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });
        Ok(builder.build())
    }
}

impl fmt::Debug for CassandraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CassandraConfig")
            .field("contact_points", &self.contact_points)
            .field("keyspace", &self.keyspace)
            .field("consistency", &self.consistency)
            .field("credentials", &self.credentials)
            .field("tls", &self.tls)
            .field("request_timeout", &self.request_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .finish_non_exhaustive()
    }
}

impl CassandraConfig {
    /// Connects to `contact_points` (`host:port`) and writes into `keyspace`.
    ///
    /// Defaults: consistency `LocalQuorum`, 64 requests in flight per worker, unlogged batches
    /// of at most 5 KiB and 100 rows (Cassandra warns above 5 KiB and rejects batches above
    /// 50 KiB by default), 12 s request timeout, retries backing off from 100 ms to 10 s and
    /// giving up after 10 minutes.
    pub fn new(
        contact_points: impl IntoIterator<Item = impl Into<String>>,
        keyspace: impl Into<String>,
    ) -> Self {
        CassandraConfig {
            contact_points: contact_points.into_iter().map(Into::into).collect(),
            keyspace: keyspace.into(),
            consistency: Consistency::LocalQuorum,
            credentials: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(12),
            max_in_flight: 64,
            max_batch_bytes: 5 * 1024,
            max_batch_rows: 100,
            max_pending_rows: 4096,
            backoff: Backoff::default(),
            schema_metadata: true,
        }
    }

    /// The contact points.
    pub fn contact_points(&self) -> &[String] {
        &self.contact_points
    }

    /// The keyspace.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// Consistency level of every write.
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// Authenticates with a user name and password.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Connects over TLS.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long one request may take before it counts as timed out (and is retried).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long connecting to a node may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Requests in flight per worker; when all are taken the job waits (backpressure).
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Upper bound of an unlogged batch's serialized values, in bytes. A group of rows that
    /// would exceed it is split into several batches; a single row above it goes alone.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes.max(1);
        self
    }

    /// Upper bound of the statements in one batch.
    pub fn max_batch_rows(mut self, rows: usize) -> Self {
        self.max_batch_rows = rows.max(1);
        self
    }

    /// Rows a worker collects into batches before sending them all.
    pub fn max_pending_rows(mut self, rows: usize) -> Self {
        self.max_pending_rows = rows.max(1);
        self
    }

    /// Retry timing for timeouts, overload and unreachable nodes: exponential from `initial`
    /// to `max` with full jitter, failing the job once a write has been retried for `give_up_after`.
    pub fn retry(mut self, initial: Duration, max: Duration, give_up_after: Duration) -> Self {
        self.backoff = Backoff {
            initial,
            max,
            give_up_after,
        };
        self
    }

    /// Whether the driver reads the cluster's schema metadata (default true: it is what
    /// token-aware routing uses to find replicas). Stores that lack full system tables need `false`.
    pub fn schema_metadata(mut self, fetch: bool) -> Self {
        self.schema_metadata = fetch;
        self
    }

    /// The settings the in-process test store needs.
    pub fn for_embedded_store(mut self) -> Self {
        self.schema_metadata = false;
        self.consistency = Consistency::One;
        self
    }

    pub(crate) fn check(&self) -> Result<(), CassandraError> {
        if self.contact_points.is_empty() {
            return Err(CassandraError::Config {
                key: "contact_points",
                reason: "at least one host:port is needed".into(),
            });
        }
        if self.keyspace.is_empty()
            || !self
                .keyspace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(CassandraError::Config {
                key: "keyspace",
                reason: format!("'{}' is not a valid keyspace name", self.keyspace),
            });
        }
        Ok(())
    }

    /// Opens a driver session: token-aware routing as the driver provides, no driver-level
    /// retries (the sink retries idempotent writes itself, with backoff).
    pub(crate) async fn connect(&self) -> Result<Session, CassandraError> {
        self.check()?;
        let profile = ExecutionProfile::builder()
            .consistency(self.consistency)
            .request_timeout(Some(self.request_timeout))
            .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
            .build()
            .into_handle();
        let mut builder = SessionBuilder::new()
            .known_nodes(&self.contact_points)
            .connection_timeout(self.connect_timeout)
            .default_execution_profile_handle(profile)
            .fetch_schema_metadata(self.schema_metadata)
            .auto_await_schema_agreement(self.schema_metadata);
        if let Some(c) = &self.credentials {
            builder = builder.user(c.user.clone(), c.password.clone());
        }
        if let Some(tls) = &self.tls {
            builder = builder.tls_context(Some(tls.context()?));
        }
        builder
            .build()
            .await
            .map_err(|e| CassandraError::Connect(format!("{} ({e})", self.contact_points.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_and_bad_settings_name_their_key() {
        let config = CassandraConfig::new(["127.0.0.1:9042"], "shop").credentials("app", "hunter2");
        let shown = format!("{config:?}");
        assert!(shown.contains("app") && !shown.contains("hunter2"), "{shown}");
        let err = TlsConfig::with_ca_file("/nonexistent/ca.pem")
            .context()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls.ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
        let err = CassandraConfig::new(["h:1"], "bad-name")
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("'keyspace'"), "{err}");
        let err = CassandraConfig::new(Vec::<String>::new(), "shop")
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("contact_points"), "{err}");
    }
}
