//! The `sluice status`, `savepoint` and `stop` commands' side of a job's console: its REST API
//! over HTTP, and a text summary of what it answers.

use std::fmt::Write;
use std::time::Duration;

use serde_json::Value;

/// Why the console did not answer as expected; names the address.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No answer, or not JSON.
    #[error("console at {addr}: {path}: {reason}")]
    Unreachable {
        /// The console's address.
        addr: String,
        /// The API path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The job refused the request.
    #[error("console at {addr}: {path} refused ({status}): {reason}")]
    Refused {
        /// The console's address.
        addr: String,
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The job's explanation.
        reason: String,
    },
}

/// A job's console, reached at `host:port` (or a URL), with its bearer token if it needs one.
#[derive(Debug, Clone)]
pub struct ConsoleClient {
    base: String,
    token: Option<String>,
}

impl ConsoleClient {
    /// The console at `addr` (`127.0.0.1:8080` or `http://127.0.0.1:8080`).
    pub fn new(addr: &str, token: Option<String>) -> Self {
        let base = match addr.contains("://") {
            true => addr.trim_end_matches('/').to_string(),
            false => format!("http://{addr}"),
        };
        ConsoleClient { base, token }
    }

    /// `GET /api/<path>`.
    ///
    /// # Errors
    /// No answer, an error status or an answer that is not JSON.
    pub fn get(&self, path: &str) -> Result<Value, ConsoleError> {
        let request = self.prepare(ureq::get(format!("{}/api/{path}", self.base)), 10);
        self.answer(path, request.call())
    }

    /// `POST /api/<path>`; waits up to two minutes (a savepoint waits for its checkpoint).
    ///
    /// # Errors
    /// No answer, an error status or an answer that is not JSON.
    pub fn post(&self, path: &str) -> Result<Value, ConsoleError> {
        let request = self.prepare(ureq::post(format!("{}/api/{path}", self.base)), 120);
        self.answer(path, request.send_empty())
    }

    /// `request` with the token, a timeout of `seconds`, and error statuses as answers.
    fn prepare<B>(&self, request: ureq::RequestBuilder<B>, seconds: u64) -> ureq::RequestBuilder<B> {
        let request = request
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(seconds)))
            .build();
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn answer(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ConsoleError> {
        let unreachable = |reason: String| ConsoleError::Unreachable {
            addr: self.base.clone(),
            path: path.to_string(),
            reason,
        };
        let mut response = response.map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| unreachable(format!("the answer is not JSON: {e}")))?;
        if status >= 400 {
            return Err(ConsoleError::Refused {
                addr: self.base.clone(),
                path: path.to_string(),
                status,
                reason: body["error"].as_str().unwrap_or("no reason given").to_string(),
            });
        }
        Ok(body)
    }

    /// A text summary of the job: state, watermark and what holds it back, the busiest
    /// operator, every operator's rate and busy share, partitions, the latest checkpoints and
    /// the sinks.
    ///
    /// # Errors
    /// As [`ConsoleClient::get`].
    pub fn summary(&self) -> Result<String, ConsoleError> {
        let (job, ops, parts) = (self.get("job")?, self.get("operators")?, self.get("partitions")?);
        let (cps, sinks) = (self.get("checkpoints")?, self.get("sinks")?);
        Ok(summarize(&job, &ops, &parts, &cps, &sinks))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A watermark as UTC time to the minute.
fn time(v: &Value) -> String {
    v.as_i64().map_or("-".into(), crate::shop::utc)
}

fn share(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |f| format!("{:.0}%", f * 100.0))
}

fn summarize(job: &Value, ops: &Value, parts: &Value, cps: &Value, sinks: &Value) -> String {
    let mut out = String::new();
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "{}: {}{}, up {} s, {} workers, {} restarts",
        text(&job["name"]),
        text(&job["state"]),
        job["error"]
            .as_str()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default(),
        job["uptime_ms"].as_i64().unwrap_or(0) / 1000,
        text(&job["workers"]),
        text(&job["restarts"])
    );
    let held = &parts["job"]["held_by"];
    let _ = writeln!(
        out,
        "watermark {} ({} s behind the wall clock), held by {}",
        time(&parts["job"]["watermark"]),
        parts["job"]["gap_ms"]
            .as_i64()
            .map_or("-".into(), |ms| (ms / 1000).to_string()),
        match held.is_null() {
            true => "no partition (all idle)".to_string(),
            false => format!(
                "{} partition {} on worker {}",
                text(&held["source"]),
                text(&held["partition"]),
                text(&held["worker"])
            ),
        }
    );
    let busiest = &ops["busiest"];
    if !busiest.is_null() {
        let _ = writeln!(
            out,
            "busiest operator: {} on worker {} ({} busy)",
            text(&busiest["operator"]),
            text(&busiest["worker"]),
            share(&busiest["busy"])
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:<14} {:>12} {:>12} {:>6}",
        "operator", "kind", "in/s", "out/s", "busy"
    );
    for o in list(&ops["operators"]) {
        let _ = writeln!(
            out,
            "{:<24} {:<14} {:>12} {:>12} {:>6}",
            text(&o["name"]),
            text(&o["kind"]),
            text(&o["records_in_per_sec"]),
            text(&o["records_out_per_sec"]),
            share(&o["busy"])
        );
    }
    let _ = writeln!(
        out,
        "\n{:<16} {:>9} {:>6} {:>12} {:>10} {:>20} state",
        "source", "partition", "worker", "next offset", "lag", "watermark"
    );
    for p in list(&parts["partitions"]) {
        let state = match (p["idle"].as_bool(), p["paused"].as_bool()) {
            (Some(true), _) => "idle",
            (_, Some(true)) => "paused",
            _ => "active",
        };
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>6} {:>12} {:>10} {:>20} {state}",
            text(&p["source"]),
            text(&p["partition"]),
            text(&p["worker"]),
            text(&p["next_offset"]),
            text(&p["lag"]),
            time(&p["watermark"])
        );
    }
    match cps["enabled"].as_bool() {
        Some(true) => {
            let all = list(&cps["checkpoints"]);
            let _ = writeln!(out, "\ncheckpoints (newest last):");
            for c in all.iter().rev().take(5).rev() {
                let _ = writeln!(
                    out,
                    "  {:>6} {:<12} {:>7} ms {:>12} bytes {}",
                    text(&c["id"]),
                    text(&c["state"]),
                    text(&c["duration_ms"]),
                    text(&c["bytes"]),
                    c["reason"].as_str().unwrap_or_default()
                );
            }
        }
        _ => {
            let _ = writeln!(out, "\ncheckpoints: off");
        }
    }
    for s in list(&sinks["sinks"]) {
        let store = &s["store"];
        let _ = write!(
            out,
            "\nsink {}: {} records ({} /s)",
            text(&s["name"]),
            text(&s["records_in"]),
            text(&s["records_in_per_sec"])
        );
        if !store.is_null() {
            let _ = write!(
                out,
                ", {} rows written, {} in flight, latency p50 {} us p99 {} us, {} retries, {} rejected",
                text(&store["rows_written"]),
                text(&store["requests_in_flight"]),
                text(&store["latency"]["p50_us"]),
                text(&store["latency"]["p99_us"]),
                text(&store["retries"]),
                text(&store["rejected_rows"])
            );
        }
    }
    out.push('\n');
    out
}
