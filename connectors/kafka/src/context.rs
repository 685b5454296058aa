use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::error::KafkaConnectorError;

/// Routes librdkafka's logs and global errors into `tracing`.
pub(crate) fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// Why connecting to the brokers cannot work however often it is retried. librdkafka itself
/// keeps reconnecting after each of these; a client that sees one ends instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The brokers refused the SASL credentials.
    Authentication,
    /// The TLS handshake failed: an untrusted or misnamed certificate, a client certificate
    /// the broker refused, or a listener that does not speak TLS.
    Tls,
    /// A plaintext client reached a listener that speaks TLS or SASL.
    Protocol,
}

impl Refusal {
    /// The refusal a librdkafka error stands for, if it is one.
    pub fn of(error: &KafkaError, reason: &str) -> Option<Refusal> {
        match error.rdkafka_error_code()? {
            RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
                Some(Refusal::Authentication)
            }
            RDKafkaErrorCode::SSL => Some(Refusal::Tls),
            // A handshake the peer broke off (a plaintext listener closes at once), or a TLS
            // alert from the broker (e.g. it refused the client's certificate).
            RDKafkaErrorCode::BrokerTransportFailure
                if reason.contains("SSL handshake failed") || reason.contains("SSL alert") =>
            {
                Some(Refusal::Tls)
            }
            // librdkafka's own diagnosis of a connection closed during the first request.
            RDKafkaErrorCode::BrokerTransportFailure if reason.contains("security.protocol") => {
                Some(Refusal::Protocol)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Authentication => "authentication failed",
            Refusal::Tls => "TLS handshake failed",
            Refusal::Protocol => "the listener expects another security protocol (TLS or SASL)",
        })
    }
}

/// The first refusal a client's context saw, for its owner to report, and the last error of
/// any kind, to say why a request timed out.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// Whether `first` holds one: checked without the lock on every poll.
    refused: AtomicBool,
    first: Mutex<Option<(Refusal, String)>>,
    last_error: Mutex<Option<String>>,
}

impl Refusals {
    /// Keeps `error` if it is a refusal (the first one only), and as the last error seen
    /// unless it only says that brokers are down (which follows any other).
    pub(crate) fn note(&self, error: &KafkaError, reason: &str) {
        if let Some(refusal) = Refusal::of(error, reason) {
            let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| (refusal, reason.to_string()));
            self.refused.store(true, Ordering::Release);
        }
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
        }
    }

    /// Keeps a connection failure librdkafka only logs (facility `FAIL`, e.g. a peer that
    /// closed the connection) as the last error seen.
    pub(crate) fn note_log(&self, facility: &str, message: &str) {
        if facility == "FAIL" {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_string());
        }
    }

    /// The last error seen (other than "all brokers are down").
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The refusal seen, as an error naming `brokers`.
    pub(crate) fn check(&self, brokers: &str) -> Result<(), KafkaConnectorError> {
        if !self.refused.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.first.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((refusal, reason)) => Err(KafkaConnectorError::Refused {
                brokers: brokers.to_string(),
                refusal: *refusal,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A client context that routes librdkafka's logs and errors into `tracing` and keeps the
/// first [`Refusal`] it sees.
#[derive(Debug, Default)]
pub struct LoggingContext {
    refusals: Refusals,
}

impl LoggingContext {
    /// Fails with the refusal (bad credentials, failed TLS handshake) this client met, if any,
    /// naming `brokers`.
    ///
    /// # Errors
    /// [`KafkaConnectorError::Refused`].
    pub fn refused(&self, brokers: &str) -> Result<(), KafkaConnectorError> {
        self.refusals.check(brokers)
    }

    /// The last error librdkafka reported to this client, other than "all brokers are down".
    pub fn last_error(&self) -> Option<String> {
        self.refusals.last_error()
    }
}

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.refusals.note_log(fac, log_message);
        log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.refusals.note(&error, reason);
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for LoggingContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_and_handshakes_are_kept_and_other_errors_are_not() {
        let context = LoggingContext::default();
        context.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        context.error(
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "Connection refused",
        );
        assert!(context.refused("b:9093").is_ok());
        context.error(
            KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: Authentication failed due to invalid credentials",
        );
        context.error(KafkaError::Global(RDKafkaErrorCode::SSL), "SSL handshake failed");
        let err = context.refused("b:9093").expect_err("refused").to_string();
        assert!(
            err.starts_with("Kafka at b:9093: authentication failed: SASL authentication error"),
            "{err}"
        );
        let mismatch = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        let reason = "Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration";
        assert_eq!(Refusal::of(&mismatch, reason), Some(Refusal::Protocol));
    }
}
