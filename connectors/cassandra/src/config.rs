use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{SslContext, SslFiletype, SslMethod, SslVerifyMode};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{
    ConnectionError, ConnectionPoolError, ConnectionSetupRequestErrorKind, DbError, MetadataError,
    NewSessionError,
};
use scylla::policies::retry::FallthroughRetryPolicy;
pub use scylla::statement::Consistency;

use super::error::CassandraError;
use super::retry::Backoff;

/// Where and how a Cassandra sink connects and writes.
///
/// ```
/// use std::time::Duration;
/// use sluice_cassandra::{CassandraConfig, Consistency};
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
///
/// By default the server's certificate must chain to a trusted CA (`verify_peer`) and name
/// the address the driver connects to (`verify_hostname`; the driver reaches nodes by IP
/// address, so the certificate needs that IP among its subject alternative names). Turning
/// either off has to be done explicitly, and is logged at `warn` whenever a session is built.
///
/// ```
/// use sluice_cassandra::TlsConfig;
/// let tls = TlsConfig::with_ca_file("/etc/cassandra/ca.pem");
/// assert!(tls.verify_peer && tls.verify_hostname);
/// // Certificates that name the nodes by DNS name only: still verified against the CA.
/// let by_ca_only = TlsConfig { verify_hostname: false, ..tls };
/// ```
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities to trust; the system's when `None`.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Verify the server's certificate against the trusted CAs (default true). Without it any
    /// certificate is accepted, and so is any name.
    pub verify_peer: bool,
    /// Check that the server's certificate names the node's address (default true).
    pub verify_hostname: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            client_cert: None,
            verify_peer: true,
            verify_hostname: true,
        }
    }
}

/// OpenSSL's `X509_V_ERR_HOSTNAME_MISMATCH` and `X509_V_ERR_IP_ADDRESS_MISMATCH`
/// (`x509_vfy.h`), the only verification errors `verify_hostname: false` lets through.
const NAME_MISMATCH: [std::ffi::c_int; 2] = [62, 64];

impl TlsConfig {
    /// TLS verifying the server against the CAs in `ca_file`.
    pub fn with_ca_file(ca_file: impl Into<PathBuf>) -> Self {
        TlsConfig {
            ca_file: Some(ca_file.into()),
            ..TlsConfig::default()
        }
    }

    /// Logs at `warn` what this configuration leaves unverified.
    fn warn_if_weakened(&self, contact_points: &[String]) {
        let nodes = contact_points.join(", ");
        if !self.verify_peer {
            tracing::warn!(
                nodes,
                "TLS peer verification is off: any server certificate is accepted"
            );
        } else if !self.verify_hostname {
            tracing::warn!(
                nodes,
                "TLS hostname verification is off: a certificate from a trusted CA is accepted whatever node it names"
            );
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
        if !self.verify_peer {
            builder.set_verify(SslVerifyMode::NONE);
        } else if self.verify_hostname {
            builder.set_verify(SslVerifyMode::PEER);
        } else {
            // The driver has OpenSSL check each node's certificate against the node's IP
            // address; accept a mismatch there and nothing else.
            builder.set_verify_callback(SslVerifyMode::PEER, |verified, store| {
                verified || NAME_MISMATCH.contains(&store.error().as_raw())
            });
        }
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
            tls.warn_if_weakened(&self.contact_points);
            builder = builder.tls_context(Some(tls.context()?));
        }
        builder
            .build()
            .await
            .map_err(|e| connect_error(&self.contact_points.join(", "), &e))
    }
}

/// What a failed session set-up means: bad credentials and failed TLS handshakes stop the
/// job (retrying cannot mend them); anything else may be a node on its way back.
fn connect_error(nodes: &str, error: &NewSessionError) -> CassandraError {
    let NewSessionError::MetadataError(MetadataError::ConnectionPoolError(ConnectionPoolError::Broken {
        last_connection_error,
    })) = error
    else {
        return CassandraError::Connect(format!("{nodes} ({error})"));
    };
    match last_connection_error {
        ConnectionError::ConnectionSetupRequestError(setup) => match setup.get_error() {
            ConnectionSetupRequestErrorKind::DbError(DbError::AuthenticationError, message) => {
                CassandraError::Authentication {
                    nodes: nodes.to_string(),
                    reason: message.clone(),
                }
            }
            ConnectionSetupRequestErrorKind::MissingAuthentication => CassandraError::Authentication {
                nodes: nodes.to_string(),
                reason: "the node requires credentials and none are configured".into(),
            },
            ConnectionSetupRequestErrorKind::StartAuthSessionError(e)
            | ConnectionSetupRequestErrorKind::AuthChallengeEvaluationError(e)
            | ConnectionSetupRequestErrorKind::AuthFinishError(e) => CassandraError::Authentication {
                nodes: nodes.to_string(),
                reason: e.to_string(),
            },
            _ => CassandraError::Connect(format!("{nodes} ({error})")),
        },
        ConnectionError::IoError(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<openssl::ssl::Error>().is_some()) =>
        {
            CassandraError::Tls {
                nodes: nodes.to_string(),
                reason: io.to_string(),
            }
        }
        _ => CassandraError::Connect(format!("{nodes} ({error})")),
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

    #[test]
    fn tls_verifies_the_peer_by_default() {
        let tls = TlsConfig::default();
        assert!(tls.verify_peer && tls.verify_hostname, "{tls:?}");
        let context = tls.context().unwrap();
        assert_eq!(context.verify_mode(), SslVerifyMode::PEER);
    }

    mod handshake {
        use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};

        use openssl::asn1::Asn1Time;
        use openssl::bn::BigNum;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::{PKey, Private};
        use openssl::ssl::{Ssl, SslAcceptor};
        use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
        use openssl::x509::{X509, X509NameBuilder};

        use super::*;

        const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

        fn key() -> PKey<Private> {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
            PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
        }

        /// A certificate for `key`, signed by `issuer` (self-signed CA when `None`), naming
        /// `name` (an IP address or a DNS name) as its subject alternative name.
        fn certificate(key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, name: &str) -> X509 {
            let mut subject = X509NameBuilder::new().unwrap();
            subject.append_entry_by_text("CN", name).unwrap();
            let subject = subject.build();
            let mut b = X509::builder().unwrap();
            b.set_version(2).unwrap();
            let serial = BigNum::from_u32(rand::random::<u32>()).unwrap();
            b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
            b.set_subject_name(&subject).unwrap();
            b.set_issuer_name(issuer.map_or(&*subject, |(ca, _)| ca.subject_name()))
                .unwrap();
            b.set_pubkey(key).unwrap();
            b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
            b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
            match issuer {
                None => {
                    let ca = BasicConstraints::new().critical().ca().build().unwrap();
                    b.append_extension(ca).unwrap();
                }
                Some((ca, _)) => {
                    let mut san = SubjectAlternativeName::new();
                    if name.parse::<IpAddr>().is_ok() {
                        san.ip(name);
                    } else {
                        san.dns(name);
                    }
                    let san = san.build(&b.x509v3_context(Some(ca), None)).unwrap();
                    b.append_extension(san).unwrap();
                }
            }
            b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
                .unwrap();
            b.build()
        }

        /// A CA, written to a PEM file in a fresh directory.
        struct Ca {
            cert: X509,
            key: PKey<Private>,
            file: PathBuf,
        }

        impl Ca {
            fn new(dir: &std::path::Path, name: &str) -> Ca {
                let key = key();
                let cert = certificate(&key, None, name);
                let file = dir.join(format!("{name}.pem"));
                std::fs::write(&file, cert.to_pem().unwrap()).unwrap();
                Ca { cert, key, file }
            }
        }

        /// Whether a client with `tls` completes a handshake with a server presenting a
        /// certificate from `ca` that names `name`, connecting by IP as the driver does.
        fn handshake(tls: &TlsConfig, ca: &Ca, name: &str) -> Result<(), String> {
            let key = key();
            let cert = certificate(&key, Some((&ca.cert, &ca.key)), name);
            let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
            acceptor.set_private_key(&key).unwrap();
            acceptor.set_certificate(&cert).unwrap();
            let acceptor = acceptor.build();
            let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (tcp, _) = listener.accept().unwrap();
                let _ = acceptor.accept(tcp);
            });
            let context = tls.context().map_err(|e| e.to_string())?;
            let mut ssl = Ssl::new(&context).unwrap();
            // What the driver does for every connection to a node.
            ssl.param_mut().set_ip(addr.ip()).unwrap();
            let outcome = ssl
                .connect(TcpStream::connect(addr).unwrap())
                .map(drop)
                .map_err(|e| e.to_string());
            server.join().unwrap();
            outcome
        }

        #[test]
        fn the_default_checks_the_ca_and_the_name_and_either_check_can_be_turned_off() {
            let dir = std::env::temp_dir().join(format!("sluice-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let trusted = Ca::new(&dir, "trusted-ca");
            let unknown = Ca::new(&dir, "unknown-ca");
            let strict = TlsConfig::with_ca_file(&trusted.file);
            let any_name = TlsConfig {
                verify_hostname: false,
                ..strict.clone()
            };
            let anything = TlsConfig {
                verify_peer: false,
                ..strict.clone()
            };

            assert_eq!(handshake(&strict, &trusted, "127.0.0.1"), Ok(()));
            let wrong_name = handshake(&strict, &trusted, "db.example.invalid");
            assert!(
                wrong_name
                    .as_ref()
                    .is_err_and(|e| e.contains("IP address mismatch")),
                "{wrong_name:?}"
            );
            let wrong_ca = handshake(&strict, &unknown, "127.0.0.1");
            assert!(wrong_ca.is_err(), "a certificate from an unknown CA was accepted");

            assert_eq!(handshake(&any_name, &trusted, "db.example.invalid"), Ok(()));
            let wrong_ca = handshake(&any_name, &unknown, "db.example.invalid");
            assert!(
                wrong_ca.is_err(),
                "without the name check, the CA is still checked"
            );

            assert_eq!(handshake(&anything, &unknown, "db.example.invalid"), Ok(()));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
