//! Where a job serves its console, and who may use it.

use std::net::SocketAddr;

/// Settings of a job's web console and REST API ([`JobConfig::console`](crate::JobConfig::console)).
///
/// ```
/// use sluice_engine::{ConsoleConfig, JobConfig};
/// let config = JobConfig::new("revenue")
///     .console(ConsoleConfig::new("127.0.0.1:8080".parse().unwrap()).token("s3cret"));
/// assert!(config.console_config().is_some());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) token: Option<String>,
}

impl ConsoleConfig {
    /// Serves on `addr` (port 0 picks a free port; [`JobHandle::console_addr`] says which).
    /// Use a loopback address unless a token is set.
    ///
    /// [`JobHandle::console_addr`]: crate::JobHandle::console_addr
    pub fn new(addr: SocketAddr) -> Self {
        ConsoleConfig { addr, token: None }
    }

    /// Answers API requests only when they carry `Authorization: Bearer <token>`; the page
    /// takes the token from its address (`/#token=<token>`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The address asked for.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
