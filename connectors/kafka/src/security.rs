//! How a Kafka client authenticates and protects its connections: TLS (server verification,
//! mutual TLS) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), as librdkafka properties.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// A SASL mechanism librdkafka speaks without extra system libraries. Kerberos (GSSAPI) is
/// not supported: it needs librdkafka built against Cyrus SASL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum SaslMechanism {
    /// User name and password in clear inside the (TLS) connection.
    Plain,
    /// Salted challenge-response with SHA-256 (the password never crosses the wire).
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    ScramSha512,
}

impl TryFrom<String> for SaslMechanism {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        name.parse()
    }
}

impl SaslMechanism {
    /// The name librdkafka and the brokers use.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().replace('_', "-").as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "GSSAPI" => {
                Err("GSSAPI (Kerberos) is not supported; use SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN".into())
            }
            _ => Err(format!(
                "'{s}' is not a SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
            )),
        }
    }
}

/// SASL credentials. The password is kept as a [`SecretString`]: it never shows in `Debug`.
#[derive(Debug, Clone)]
pub struct Sasl {
    /// The mechanism the brokers' listener accepts.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: SecretString,
}

impl Sasl {
    /// `mechanism` with `username` and `password`.
    pub fn new(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        Sasl {
            mechanism,
            username: username.into(),
            password: password.into(),
        }
    }
}

/// TLS to the brokers (OpenSSL).
///
/// By default the broker's certificate must chain to a trusted CA and name the host the
/// client connects to (`verify_hostname`). Turning the name check off has to be explicit and
/// is logged at `warn` when the configuration is applied.
///
/// ```
/// use sluice_kafka::KafkaTls;
/// let tls = KafkaTls::with_ca_file("/etc/kafka/ca.pem");
/// assert!(tls.verify_hostname);
/// ```
#[derive(Debug, Clone)]
pub struct KafkaTls {
    /// PEM file of the certificate authorities to trust; the system's when `None`.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Password of an encrypted client key.
    pub key_password: Option<SecretString>,
    /// Check that the broker's certificate names the host connected to (default true).
    pub verify_hostname: bool,
}

impl Default for KafkaTls {
    fn default() -> Self {
        KafkaTls {
            ca_file: None,
            client_cert: None,
            key_password: None,
            verify_hostname: true,
        }
    }
}

impl KafkaTls {
    /// TLS verifying the brokers against the CAs in `ca_file`.
    pub fn with_ca_file(ca_file: impl Into<PathBuf>) -> Self {
        KafkaTls {
            ca_file: Some(ca_file.into()),
            ..KafkaTls::default()
        }
    }
}

/// TLS and SASL together; what the `security.protocol` follows from: both `SASL_SSL`, TLS only
/// `SSL`, SASL only `SASL_PLAINTEXT`, neither `PLAINTEXT`.
#[derive(Debug, Clone, Default)]
pub struct KafkaSecurity {
    /// TLS, if the listener speaks it.
    pub tls: Option<KafkaTls>,
    /// SASL, if the listener asks for it.
    pub sasl: Option<Sasl>,
}

impl KafkaSecurity {
    /// The librdkafka `security.protocol`.
    pub fn protocol(&self) -> &'static str {
        match (&self.tls, &self.sasl) {
            (Some(_), Some(_)) => "SASL_SSL",
            (Some(_), None) => "SSL",
            (None, Some(_)) => "SASL_PLAINTEXT",
            (None, None) => "PLAINTEXT",
        }
    }

    /// The librdkafka properties, secrets included; logs at `warn` what is left unprotected.
    pub(crate) fn properties(&self, brokers: &str) -> Vec<(&'static str, String)> {
        let mut out = vec![("security.protocol", self.protocol().to_string())];
        if let Some(sasl) = &self.sasl {
            if self.tls.is_none() {
                tracing::warn!(
                    brokers,
                    "SASL without TLS: credentials and data cross the network unencrypted"
                );
            }
            out.push(("sasl.mechanism", sasl.mechanism.name().to_string()));
            out.push(("sasl.username", sasl.username.clone()));
            out.push(("sasl.password", sasl.password.expose_secret().to_string()));
        }
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca_file {
                out.push(("ssl.ca.location", ca.display().to_string()));
            }
            if let Some((cert, key)) = &tls.client_cert {
                out.push(("ssl.certificate.location", cert.display().to_string()));
                out.push(("ssl.key.location", key.display().to_string()));
            }
            if let Some(password) = &tls.key_password {
                out.push(("ssl.key.password", password.expose_secret().to_string()));
            }
            out.push(("enable.ssl.certificate.verification", "true".into()));
            if tls.verify_hostname {
                out.push(("ssl.endpoint.identification.algorithm", "https".into()));
            } else {
                tracing::warn!(
                    brokers,
                    "TLS hostname verification is off: a certificate from a trusted CA is accepted whatever broker it names"
                );
                out.push(("ssl.endpoint.identification.algorithm", "none".into()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_follows_from_tls_and_sasl_and_the_name_check_is_on_by_default() {
        let sasl = Sasl::new(SaslMechanism::ScramSha512, "app", "s3cr3t-value");
        let both = KafkaSecurity {
            tls: Some(KafkaTls::with_ca_file("/ca.pem")),
            sasl: Some(sasl.clone()),
        };
        let props = both.properties("b:9093");
        let get = |k: &str| props.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get("ssl.endpoint.identification.algorithm"), Some("https"));
        assert_eq!(get("ssl.ca.location"), Some("/ca.pem"));
        assert!(!format!("{both:?}").contains("s3cr3t-value"));
        let tls_only = KafkaSecurity {
            tls: Some(KafkaTls::default()),
            sasl: None,
        };
        assert_eq!(tls_only.protocol(), "SSL");
        let sasl_only = KafkaSecurity {
            tls: None,
            sasl: Some(sasl),
        };
        assert_eq!(sasl_only.protocol(), "SASL_PLAINTEXT");
    }

    #[test]
    fn mechanisms_parse_by_their_broker_names() {
        assert_eq!("scram-sha-256".parse(), Ok(SaslMechanism::ScramSha256));
        assert_eq!("SCRAM_SHA_512".parse(), Ok(SaslMechanism::ScramSha512));
        assert_eq!("PLAIN".parse(), Ok(SaslMechanism::Plain));
        let gssapi = "GSSAPI".parse::<SaslMechanism>().expect_err("not supported");
        assert!(gssapi.contains("not supported"), "{gssapi}");
    }
}
