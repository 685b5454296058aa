//! How the e-commerce job, pipeline files and `sluice produce` reach secured clusters: TLS
//! and SASL for Kafka, credentials and TLS for Cassandra, as flags, environment variables and
//! TOML give them. Secrets come from the environment (`${VAR}` in a file, or the service's
//! `SLUICE_..._PASSWORD` variable) or from a file (`password_file`); no flag takes one, so
//! none shows in `ps`.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sluice_cassandra::{CassandraConfig, TlsConfig};
use sluice_kafka::{KafkaConfig, KafkaSecurity, KafkaTls, Sasl, SaslMechanism};

/// Sets each listed `Option` field of `$to` that `$from` has.
macro_rules! take_present {
    ($to:ident, $from:ident: $($field:ident),*) => { $(if $from.$field.is_some() { $to.$field = $from.$field; })* };
}
pub(crate) use take_present;

/// A setting that cannot be used, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting '{key}': {reason}")]
pub struct SecuritySettingError {
    /// The key, as the file spells it under its section (`kafka_security.password_file`).
    pub key: String,
    /// What is wrong; never the secret itself.
    pub reason: String,
}

/// A secret as a configuration file writes it: `"${VAR}"` (read from the environment when the
/// job starts) or the value itself. Neither `Debug` nor errors show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variable() {
            Some(var) => write!(f, "${{{var}}}"),
            None => f.write_str("<redacted>"),
        }
    }
}

impl SecretText {
    /// The environment variable a `${VAR}` reference names.
    fn variable(&self) -> Option<&str> {
        self.0.strip_prefix("${").and_then(|s| s.strip_suffix('}'))
    }

    fn resolve(&self, key: &str) -> Result<SecretString, SecuritySettingError> {
        match self.variable() {
            Some(var) => std::env::var(var)
                .map(SecretString::from)
                .map_err(|_| SecuritySettingError {
                    key: key.to_string(),
                    reason: format!("environment variable {var} is not set (or not UTF-8)"),
                }),
            None => Ok(SecretString::from(self.0.clone())),
        }
    }
}

/// A password: the file's `<name>` (value or `${VAR}`), else the contents of `<name>_file`
/// (one trailing newline dropped), else the environment variable `fallback_env`.
fn password(
    section: &str,
    name: &str,
    text: Option<&SecretText>,
    file: Option<&Path>,
    fallback_env: Option<&str>,
) -> Result<Option<SecretString>, SecuritySettingError> {
    if let Some(text) = text {
        return text.resolve(&format!("{section}.{name}")).map(Some);
    }
    if let Some(path) = file {
        let read = std::fs::read_to_string(path).map_err(|e| SecuritySettingError {
            key: format!("{section}.{name}_file"),
            reason: format!("{}: {e}", path.display()),
        })?;
        let secret = read.strip_suffix('\n').unwrap_or(&read);
        return Ok(Some(SecretString::from(
            secret.strip_suffix('\r').unwrap_or(secret).to_string(),
        )));
    }
    Ok(fallback_env
        .and_then(|var| std::env::var(var).ok())
        .map(SecretString::from))
}

/// A client certificate and key, both or neither.
fn client_cert(
    section: &str,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>, SecuritySettingError> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(SecuritySettingError {
            key: format!("{section}.key_file"),
            reason: "a client certificate needs its key".into(),
        }),
        (None, Some(_)) => Err(SecuritySettingError {
            key: format!("{section}.cert_file"),
            reason: "a client key needs its certificate".into(),
        }),
    }
}

/// Kafka TLS and SASL. Flags `--kafka-…`, environment `SLUICE_KAFKA_…`, in a settings file the
/// section `[kafka_security]` and in a pipeline file `[source.security]`. The password: the
/// file's `password = "${VAR}"`, `password_file`, or `SLUICE_KAFKA_PASSWORD`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Kafka security")]
pub struct KafkaSecuritySettings {
    /// Connect to Kafka over TLS (implied by the CA, certificate and key options)
    /// [default: plaintext].
    #[arg(id = "kafka-tls", long = "kafka-tls", env = "SLUICE_KAFKA_TLS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tls: Option<bool>,
    /// PEM file of the CAs that sign the brokers' certificates [default: the system's].
    #[arg(
        id = "kafka-ca-file",
        long = "kafka-ca-file",
        env = "SLUICE_KAFKA_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for brokers that require mutual TLS.
    #[arg(
        id = "kafka-cert-file",
        long = "kafka-cert-file",
        env = "SLUICE_KAFKA_CERT_FILE",
        value_name = "FILE"
    )]
    pub cert_file: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(
        id = "kafka-key-file",
        long = "kafka-key-file",
        env = "SLUICE_KAFKA_KEY_FILE",
        value_name = "FILE"
    )]
    pub key_file: Option<PathBuf>,
    /// File holding the password of an encrypted client key (or SLUICE_KAFKA_KEY_PASSWORD).
    #[arg(
        id = "kafka-key-password-file",
        long = "kafka-key-password-file",
        env = "SLUICE_KAFKA_KEY_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub key_password_file: Option<PathBuf>,
    /// Password of an encrypted client key (files only: `"${VAR}"` or the value).
    #[arg(skip)]
    pub key_password: Option<SecretText>,
    /// Check that each broker's certificate names the broker (turning it off is logged)
    /// [default: true].
    #[arg(
        id = "kafka-verify-hostname",
        long = "kafka-verify-hostname",
        env = "SLUICE_KAFKA_VERIFY_HOSTNAME",
        value_name = "BOOL"
    )]
    pub verify_hostname: Option<bool>,
    /// SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN [default: no SASL; with a
    /// username: SCRAM-SHA-512].
    #[arg(
        id = "kafka-sasl-mechanism",
        long = "kafka-sasl-mechanism",
        env = "SLUICE_KAFKA_SASL_MECHANISM",
        value_name = "MECHANISM"
    )]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    #[arg(
        id = "kafka-username",
        long = "kafka-username",
        env = "SLUICE_KAFKA_USERNAME",
        value_name = "USER"
    )]
    pub username: Option<String>,
    /// File holding the SASL password (or SLUICE_KAFKA_PASSWORD).
    #[arg(
        id = "kafka-password-file",
        long = "kafka-password-file",
        env = "SLUICE_KAFKA_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// SASL password (files only: `"${VAR}"` or the value).
    #[arg(skip)]
    pub password: Option<SecretText>,
}

impl KafkaSecuritySettings {
    /// Takes every setting `other` has.
    pub fn apply(&mut self, other: KafkaSecuritySettings) {
        take_present!(self, other: tls,
            ca_file,
            cert_file,
            key_file,
            key_password_file,
            key_password,
            verify_hostname,
            sasl_mechanism,
            username,
            password_file,
            password
        );
    }

    /// The security these settings describe, secrets read (from the environment or files);
    /// `section` names the settings in errors, `env` is the prefix of the fallback variables
    /// (`SLUICE_KAFKA` reads `SLUICE_KAFKA_PASSWORD`), `None` for none.
    pub fn resolve(&self, section: &str, env: Option<&str>) -> Result<KafkaSecurity, SecuritySettingError> {
        let var = |name: &str| env.map(|prefix| format!("{prefix}_{name}"));
        let client_cert = client_cert(section, &self.cert_file, &self.key_file)?;
        let key_password = password(
            section,
            "key_password",
            self.key_password.as_ref(),
            self.key_password_file.as_deref(),
            var("KEY_PASSWORD").as_deref(),
        )?;
        let tls = self
            .tls
            .unwrap_or(self.ca_file.is_some() || client_cert.is_some())
            .then(|| KafkaTls {
                ca_file: self.ca_file.clone(),
                client_cert,
                key_password,
                verify_hostname: self.verify_hostname.unwrap_or(true),
            });
        let sasl = match (&self.username, self.sasl_mechanism) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(SecuritySettingError {
                    key: format!("{section}.username"),
                    reason: "SASL needs a user name".into(),
                });
            }
            (Some(user), mechanism) => {
                let password = password(
                    section,
                    "password",
                    self.password.as_ref(),
                    self.password_file.as_deref(),
                    var("PASSWORD").as_deref(),
                )?
                .ok_or_else(|| SecuritySettingError {
                    key: format!("{section}.password"),
                    reason: format!(
                        "user '{user}' needs a password: password_file{}, or password = \"${{VAR}}\" in a file",
                        var("PASSWORD").map(|v| format!(", {v}")).unwrap_or_default()
                    ),
                })?;
                Some(Sasl::new(
                    mechanism.unwrap_or(SaslMechanism::ScramSha512),
                    user.clone(),
                    password,
                ))
            }
        };
        Ok(KafkaSecurity { tls, sasl })
    }

    /// `config` with this security applied (unchanged when nothing is set).
    pub fn apply_to(
        &self,
        config: KafkaConfig,
        section: &str,
        env: Option<&str>,
    ) -> Result<KafkaConfig, SecuritySettingError> {
        let security = self.resolve(section, env)?;
        if security.tls.is_none() && security.sasl.is_none() {
            return Ok(config);
        }
        Ok(config.security(&security))
    }
}

/// Cassandra credentials and TLS. Flags `--cassandra-…`, environment `SLUICE_CASSANDRA_…`, in a
/// settings file the section `[cassandra_security]` and in a pipeline file `[sink.security]`.
/// The password: the file's `password = "${VAR}"`, `password_file`, or
/// `SLUICE_CASSANDRA_PASSWORD`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Cassandra security")]
pub struct CassandraSecuritySettings {
    /// User name (PasswordAuthenticator).
    #[arg(
        id = "cassandra-username",
        long = "cassandra-username",
        env = "SLUICE_CASSANDRA_USERNAME",
        value_name = "USER"
    )]
    pub username: Option<String>,
    /// File holding the password (or SLUICE_CASSANDRA_PASSWORD).
    #[arg(
        id = "cassandra-password-file",
        long = "cassandra-password-file",
        env = "SLUICE_CASSANDRA_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// Password (files only: `"${VAR}"` or the value).
    #[arg(skip)]
    pub password: Option<SecretText>,
    /// Connect to Cassandra over TLS (implied by the CA, certificate and key options)
    /// [default: plaintext].
    #[arg(id = "cassandra-tls", long = "cassandra-tls", env = "SLUICE_CASSANDRA_TLS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tls: Option<bool>,
    /// PEM file of the CAs that sign the nodes' certificates [default: the system's].
    #[arg(
        id = "cassandra-ca-file",
        long = "cassandra-ca-file",
        env = "SLUICE_CASSANDRA_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for nodes that require mutual TLS.
    #[arg(
        id = "cassandra-cert-file",
        long = "cassandra-cert-file",
        env = "SLUICE_CASSANDRA_CERT_FILE",
        value_name = "FILE"
    )]
    pub cert_file: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(
        id = "cassandra-key-file",
        long = "cassandra-key-file",
        env = "SLUICE_CASSANDRA_KEY_FILE",
        value_name = "FILE"
    )]
    pub key_file: Option<PathBuf>,
    /// Check that each node's certificate names the node's address (turning it off is
    /// logged) [default: true].
    #[arg(
        id = "cassandra-verify-hostname",
        long = "cassandra-verify-hostname",
        env = "SLUICE_CASSANDRA_VERIFY_HOSTNAME",
        value_name = "BOOL"
    )]
    pub verify_hostname: Option<bool>,
}

impl CassandraSecuritySettings {
    /// Takes every setting `other` has.
    pub fn apply(&mut self, other: CassandraSecuritySettings) {
        take_present!(self, other: username,
            password_file,
            password,
            tls,
            ca_file,
            cert_file,
            key_file,
            verify_hostname
        );
    }

    /// `config` with these credentials and TLS; `section` names the settings in errors, `env`
    /// is the prefix of the fallback variable (`SLUICE_CASSANDRA` reads
    /// `SLUICE_CASSANDRA_PASSWORD`), `None` for none.
    pub fn apply_to(
        &self,
        mut config: CassandraConfig,
        section: &str,
        env: Option<&str>,
    ) -> Result<CassandraConfig, SecuritySettingError> {
        let fallback = env.map(|prefix| format!("{prefix}_PASSWORD"));
        if let Some(user) = &self.username {
            let password = password(
                section,
                "password",
                self.password.as_ref(),
                self.password_file.as_deref(),
                fallback.as_deref(),
            )?
            .ok_or_else(|| SecuritySettingError {
                key: format!("{section}.password"),
                reason: format!(
                    "user '{user}' needs a password: password_file{}, or password = \"${{VAR}}\" in a file",
                    fallback.as_ref().map(|v| format!(", {v}")).unwrap_or_default()
                ),
            })?;
            config = config.credentials(user.clone(), password.expose_secret());
        } else if self.password.is_some() || self.password_file.is_some() {
            return Err(SecuritySettingError {
                key: format!("{section}.username"),
                reason: "a password needs a user name".into(),
            });
        }
        let client_cert = client_cert(section, &self.cert_file, &self.key_file)?;
        if self
            .tls
            .unwrap_or(self.ca_file.is_some() || client_cert.is_some())
        {
            config = config.tls(TlsConfig {
                ca_file: self.ca_file.clone(),
                client_cert,
                verify_peer: true,
                verify_hostname: self.verify_hostname.unwrap_or(true),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_come_from_a_variable_or_a_file_and_never_show() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("kafka.password");
        std::fs::write(&file, "from-the-file\n").expect("write");
        let settings: KafkaSecuritySettings = toml::from_str(&format!(
            "username = \"app\"\nsasl_mechanism = \"SCRAM-SHA-256\"\npassword_file = \"{}\"\nca_file = \"/ca.pem\"\n",
            file.display()
        ))
        .expect("valid section");
        let security = settings.resolve("source.security", None).expect("resolves");
        let sasl = security.sasl.as_ref().expect("sasl");
        assert_eq!(sasl.password.expose_secret(), "from-the-file");
        assert_eq!(sasl.mechanism, SaslMechanism::ScramSha256);
        assert_eq!(security.protocol(), "SASL_SSL");

        let settings: KafkaSecuritySettings =
            toml::from_str("username = \"app\"\npassword = \"${SLUICE_TEST_UNSET_VARIABLE}\"\n")
                .expect("valid");
        let err = settings
            .resolve("kafka_security", None)
            .expect_err("unset")
            .to_string();
        assert!(
            err.contains("kafka_security.password") && err.contains("SLUICE_TEST_UNSET_VARIABLE"),
            "{err}"
        );
        let literal: CassandraSecuritySettings =
            toml::from_str("username = \"app\"\npassword = \"literal-secret\"\n").expect("valid");
        assert!(!format!("{literal:?}").contains("literal-secret"));
        let missing = CassandraSecuritySettings {
            username: Some("app".into()),
            ..Default::default()
        };
        let err = missing
            .apply_to(CassandraConfig::new(["h:1"], "ks"), "sink.security", None)
            .expect_err("no password")
            .to_string();
        assert!(err.contains("sink.security.password"), "{err}");
    }

    #[test]
    fn a_certificate_needs_its_key_and_sasl_needs_a_user() {
        let half = KafkaSecuritySettings {
            cert_file: Some("/c.pem".into()),
            ..Default::default()
        };
        let err = half
            .resolve("kafka_security", None)
            .expect_err("no key")
            .to_string();
        assert!(err.contains("kafka_security.key_file"), "{err}");
        let anonymous = KafkaSecuritySettings {
            sasl_mechanism: Some(SaslMechanism::Plain),
            ..Default::default()
        };
        assert!(anonymous.resolve("kafka_security", None).is_err());
        let gssapi = toml::from_str::<KafkaSecuritySettings>("sasl_mechanism = \"GSSAPI\"\n");
        assert!(gssapi.is_err());
    }

    #[test]
    fn the_secured_deployment_examples_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/secured");
        let shop = crate::shop::PartialSettings::from_file(&dir.join("shop.toml")).expect("shop.toml");
        assert_eq!(
            shop.kafka_security.sasl_mechanism,
            Some(SaslMechanism::ScramSha512)
        );
        assert!(shop.cassandra_security.cert_file.is_some());
        let pipeline =
            crate::pipeline::PipelineSpec::from_file(&dir.join("pipeline.toml")).expect("pipeline.toml");
        assert_eq!(
            pipeline.source.get_ref().security.username.as_deref(),
            Some("sluice-revenue")
        );
        assert!(pipeline.sink.get_ref().security.password_file.is_some());
    }
}
