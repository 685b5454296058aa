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
/// thread, to anyone who can reach `addr`.
///
/// # Errors
/// When `addr` cannot be bound.
pub fn serve_prometheus(
    addr: SocketAddr,
    render: impl Fn() -> String + Send + 'static,
) -> Result<MetricsServer> {
    serve_prometheus_with_token(addr, None, render)
}

/// [`serve_prometheus`], answering only requests that carry `Authorization: Bearer <token>`
/// when `token` is given (others get 401). A non-loopback `addr` without a token is logged
/// at `warn`.
///
/// # Errors
/// When `addr` cannot be bound.
pub fn serve_prometheus_with_token(
    addr: SocketAddr,
    token: Option<String>,
    render: impl Fn() -> String + Send + 'static,
) -> Result<MetricsServer> {
    if token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the metrics endpoint is open to the network without a bearer token");
    }
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
                let response = if !authorized(&request, token.as_deref()) {
                    let challenge = tiny_http::Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..])
                        .expect("a valid static header");
                    tiny_http::Response::from_string("a bearer token is required\n")
                        .with_status_code(401)
                        .with_header(challenge)
                } else if request.url() == "/metrics" {
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

/// Whether `request` carries the bearer `token` (always, without a token). The comparison
/// takes as long whatever prefix matches.
fn authorized(request: &tiny_http::Request, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    request.headers().iter().any(|h| {
        h.field.equiv("Authorization")
            && h.value.as_str().strip_prefix("Bearer ").is_some_and(|given| {
                given.len() == token.len()
                    && given
                        .bytes()
                        .zip(token.bytes())
                        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                        == 0
            })
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

    fn get(addr: SocketAddr, authorization: Option<&str>) -> String {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        let header = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n"
        )
        .expect("request");
        let mut body = String::new();
        stream.read_to_string(&mut body).expect("response");
        body
    }

    #[test]
    fn a_token_keeps_out_requests_without_it() {
        let server = serve_prometheus_with_token(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Some("t0ken-value".into()),
            || "sluice_up 1\n".to_string(),
        )
        .expect("bind");
        for refused in [
            None,
            Some("Bearer wrong-value"),
            Some("Bearer t0ken-valuE"),
            Some("t0ken-value"),
        ] {
            let body = get(server.addr(), refused);
            assert!(body.starts_with("HTTP/1.1 401"), "{refused:?}: {body}");
            assert!(!body.contains("sluice_up"), "{body}");
        }
        let body = get(server.addr(), Some("Bearer t0ken-value"));
        assert!(
            body.starts_with("HTTP/1.1 200") && body.contains("sluice_up 1"),
            "{body}"
        );
    }
}
