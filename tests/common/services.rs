//! A Kafka broker or a Cassandra node of a test's (or a benchmark's) own, started and stopped
//! with `scripts/services.sh` in a state directory of its own: under `SLUICE_SERVICES_DIR`
//! when the run has one (`scripts/test.sh` and `scripts/bench.sh` stop whatever is left there
//! when they end, even if the process that started it died), else under the temporary
//! directory. Its data and ports survive a stop, so it can be restarted in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// A service this process started; stopped (and its state deleted) when dropped.
pub struct OwnService {
    name: &'static str,
    dir: PathBuf,
    /// Where it listens, `127.0.0.1:PORT`.
    pub addr: String,
}

/// The variable `scripts/services.sh` prints a service's address in.
fn address_variable(name: &str) -> &'static str {
    if name == "kafka" {
        "SLUICE_KAFKA_BROKERS"
    } else {
        "SLUICE_CASSANDRA"
    }
}

/// Runs `scripts/services.sh COMMAND NAME` on `dir`; returns what it printed on stdout.
fn services(dir: &Path, command: &str, name: &str) -> Result<String, String> {
    services_with(dir, command, &[name], false)
}

/// Runs `scripts/services.sh COMMAND NAMES...` on `dir`, secured or not; returns what it
/// printed on stdout.
fn services_with(dir: &Path, command: &str, names: &[&str], secure: bool) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh");
    let out = Command::new(&script)
        .arg(command)
        .args(names)
        .env("SLUICE_SERVICES_DIR", dir)
        .env("SLUICE_SERVICES_SECURE", if secure { "1" } else { "0" })
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("scripts/services.sh {command} {names:?} failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A state directory of this process's own, under the run's when it has one.
fn own_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("SLUICE_SERVICES_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    base.join(format!(
        "own-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Kafka and Cassandra secured with one throwaway CA (`SLUICE_SERVICES_SECURE=1`, see
/// scripts/services-secure.sh): Kafka's SASL_SSL, mutual-TLS and wrong-name listeners beside
/// its plaintext one, Cassandra with TLS only (client certificates required) and
/// PasswordAuthenticator. Stopped and deleted when dropped.
pub struct SecureServices {
    dir: PathBuf,
    vars: BTreeMap<String, String>,
}

impl SecureServices {
    /// Starts both in a new state directory.
    pub fn start() -> Result<Self, String> {
        let dir = own_dir("secure");
        let printed = services_with(&dir, "start", &["kafka", "cassandra"], true)?;
        let vars = printed
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(SecureServices { dir, vars })
    }

    /// A variable `scripts/services.sh` printed, e.g. `SLUICE_KAFKA_SASL_SSL`.
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("scripts/services.sh printed no {name}: {:?}", self.vars))
    }

    /// A file of the certificates' directory, e.g. `ca.pem`.
    pub fn tls(&self, file: &str) -> PathBuf {
        Path::new(self.var("SLUICE_TLS_DIR")).join(file)
    }

    /// A generated password: `kafka-password` or `cassandra-password`.
    pub fn secret(&self, name: &str) -> String {
        std::fs::read_to_string(self.tls(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .to_string()
    }
}

impl Drop for SecureServices {
    fn drop(&mut self) {
        if let Err(e) = services_with(&self.dir, "stop", &["kafka", "cassandra"], false) {
            eprintln!("{e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl OwnService {
    /// Starts `name` (`kafka` or `cassandra`) in a new state directory.
    pub fn start(name: &'static str) -> Result<Self, String> {
        let dir = own_dir(name);
        let printed = services(&dir, "start", name)?;
        let prefix = format!("export {}=", address_variable(name));
        let addr = printed
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .ok_or_else(|| format!("scripts/services.sh printed no address for {name}: {printed}"))?
            .to_string();
        Ok(OwnService { name, dir, addr })
    }

    /// Stops it; its data and port stay for [`OwnService::restart`].
    pub fn stop(&self) -> Result<(), String> {
        services(&self.dir, "stop", self.name).map(|_| ())
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&self) -> Result<(), String> {
        let printed = services(&self.dir, "start", self.name)?;
        if printed.contains(&self.addr) {
            Ok(())
        } else {
            Err(format!(
                "{} came back elsewhere than {}: {printed}",
                self.name, self.addr
            ))
        }
    }
}

impl Drop for OwnService {
    fn drop(&mut self) {
        // No panic here: a test may already be unwinding.
        if let Err(e) = self.stop() {
            eprintln!("{e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
