//! A job's metrics in the Prometheus text format, served over HTTP.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{EngineError, Result};
use crate::metrics::JobMetrics;

/// Renders every counter and gauge as `sluice_<name>{operator="…",worker="…"} value`.
/// Gauges never set are left out.
pub fn render_prometheus(metrics: &JobMetrics) -> String {
    let mut out = String::new();
    section(&mut out, "counter", metrics.counters());
    section(&mut out, "gauge", metrics.gauges());
    out
}

fn section<V: std::fmt::Display>(out: &mut String, kind: &str, rows: Vec<(String, &'static str, usize, V)>) {
    let mut last = "";
    for (operator, name, worker, value) in rows {
        if name != last {
            let _ = writeln!(out, "# TYPE sluice_{name} {kind}");
            last = name;
        }
        let _ = writeln!(
            out,
            "sluice_{name}{{operator=\"{}\",worker=\"{worker}\"}} {value}",
            escape(&operator)
        );
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// An HTTP server answering `GET /metrics`; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves the text `render` returns (e.g. [`render_prometheus`] of a job's metrics, plus
/// whatever else the caller appends) on `addr` (port 0 picks a free one) from a background
/// thread.
///
/// # Errors
/// When `addr` cannot be bound.
pub fn serve_prometheus(
    addr: SocketAddr,
    render: impl Fn() -> String + Send + 'static,
) -> Result<MetricsServer> {
    let server = tiny_http::Server::http(addr).map_err(|e| EngineError::InvalidConfig {
        key: "metrics_addr",
        reason: format!("cannot listen on {addr}: {e}"),
    })?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| EngineError::InvalidConfig {
            key: "metrics_addr",
            reason: format!("{addr} is not an IP address"),
        })?;
    let server = Arc::new(server);
    let serving = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("sluice-metrics".into())
        .spawn(move || {
            for request in serving.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4"[..],
                    )
                    .expect("a valid static header");
                    tiny_http::Response::from_string(render()).with_header(header)
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                if let Err(e) = request.respond(response) {
                    tracing::debug!(error = %e, "metrics response not sent");
                }
            }
        })
        .map_err(|e| EngineError::InvalidConfig {
            key: "metrics_addr",
            reason: format!("cannot start the metrics thread: {e}"),
        })?;
    Ok(MetricsServer {
        addr,
        server,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write as _};

    use super::*;

    #[test]
    fn serves_counters_and_gauges() {
        let metrics = JobMetrics::default();
        metrics.counter("orders", "records_out", 0).add(7);
        metrics.counter("orders", "records_out", 1).add(3);
        metrics.gauge("orders", "watermark", 0).set(42);
        metrics.gauge("orders", "watermark", 1);
        let text = render_prometheus(&metrics);
        assert!(text.contains("# TYPE sluice_records_out counter"), "{text}");
        assert!(
            text.contains("sluice_records_out{operator=\"orders\",worker=\"0\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("sluice_records_out{operator=\"orders\",worker=\"1\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("sluice_watermark{operator=\"orders\",worker=\"0\"} 42"),
            "{text}"
        );
        assert!(
            !text.contains("worker=\"1\"} -"),
            "unset gauges are left out: {text}"
        );

        let server = serve_prometheus(SocketAddr::from(([127, 0, 0, 1], 0)), move || {
            render_prometheus(&metrics)
        })
        .expect("bind");
        let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut body = String::new();
        stream.read_to_string(&mut body).expect("response");
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains("sluice_records_out{operator=\"orders\",worker=\"0\"} 7"),
            "{body}"
        );
    }
}
