//! The Kafka broker and the Cassandra node a benchmark measures against: those
//! `SLUICE_KAFKA_BROKERS` and `SLUICE_CASSANDRA` name (`scripts/bench.sh` starts both), else
//! ones of the benchmark's own, started with `scripts/services.sh` in a state directory of
//! their own and stopped when the benchmark ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// A service the benchmark uses; stops it on drop if the benchmark started it.
pub struct Service {
    name: &'static str,
    /// The state directory, if this benchmark started the service.
    started: Option<PathBuf>,
    /// Where it listens.
    pub addr: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh")
}

impl Service {
    fn reach(name: &'static str, env: &str) -> anyhow::Result<Service> {
        if let Ok(addr) = std::env::var(env) {
            return Ok(Service {
                name,
                started: None,
                addr,
            });
        }
        let dir = std::env::temp_dir().join(format!("sluice-bench-{name}-{}", std::process::id()));
        let out = Command::new(script())
            .args(["start", name])
            .env("SLUICE_SERVICES_DIR", &dir)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run scripts/services.sh to start {name}"))?;
        if !out.status.success() {
            bail!("{name} did not start (scripts/services.sh start {name})");
        }
        let printed = String::from_utf8_lossy(&out.stdout);
        let addr = printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {env}=")))
            .with_context(|| format!("scripts/services.sh printed no {env}"))?
            .to_string();
        Ok(Service {
            name,
            started: Some(dir),
            addr,
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

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(dir) = self.started.take() {
            let _ = Command::new(script())
                .args(["stop", self.name])
                .env("SLUICE_SERVICES_DIR", &dir)
                .stdout(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The Kafka version `scripts/services.sh` pins, e.g. "Apache Kafka 4.4.0" (a broker does not
/// tell its version to clients).
pub fn kafka_version() -> String {
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
