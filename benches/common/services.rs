//! The Kafka broker and the Cassandra node a benchmark measures against: those
//! `SLUICE_KAFKA_BROKERS` and `SLUICE_CASSANDRA` name (`scripts/bench.sh` starts both), else
//! ones of the benchmark's own, started with `scripts/services.sh` and stopped when the
//! benchmark ends (interrupted with Ctrl-C, it leaves them running: `scripts/services.sh
//! stop` in the state directory it printed stops them).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

#[path = "../../tests/common/services.rs"]
mod own;

/// A service the benchmark uses; stopped on drop if the benchmark started it.
pub struct Service {
    _own: Option<own::OwnService>,
    /// Where it listens.
    pub addr: String,
    /// Whether `scripts/services.sh` started it (this benchmark or `scripts/bench.sh`): then its
    /// version is the one the script pins.
    pub from_script: bool,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh")
}

impl Service {
    fn reach(name: &'static str, env: &str) -> anyhow::Result<Service> {
        if let Ok(addr) = std::env::var(env) {
            let from_script = std::env::var_os("SLUICE_SERVICES_DIR")
                .is_some_and(|dir| Path::new(&dir).join(name).join("pid").exists());
            return Ok(Service {
                _own: None,
                addr,
                from_script,
            });
        }
        let own = own::OwnService::start(name)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{env} is not set and {name} did not start"))?;
        Ok(Service {
            addr: own.addr.clone(),
            _own: Some(own),
            from_script: true,
        })
    }

    /// The Kafka broker.
    pub fn kafka() -> anyhow::Result<Service> {
        Self::reach("kafka", "SLUICE_KAFKA_BROKERS")
    }

    /// The Cassandra node.
    pub fn cassandra() -> anyhow::Result<Service> {
        Self::reach("cassandra", "SLUICE_CASSANDRA")
    }
}

/// The broker's version, e.g. "Apache Kafka 4.4.0": the one `scripts/services.sh` pins if it
/// started the broker (a broker does not tell clients its version), else unknown.
pub fn kafka_version(broker: &Service) -> String {
    if !broker.from_script {
        return "Kafka, version unknown".into();
    }
    let version = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && services_version kafka",
            script().with_file_name("services-lib.sh").display()
        ))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".into());
    format!("Apache Kafka {version}")
}
