//! The examples as a user runs them, with their embedded defaults and smaller inputs: each
//! must finish, and the transactions example must find every balance equal to the payments
//! after it killed and restarted its job.
//!
//! `cargo test` builds the examples next to the test binaries (`target/<profile>/examples`).

mod common;

use std::process::Command;

use common::example;

/// Runs an example; returns its standard output, failing the test on a non-zero exit.
fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run example {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn ecommerce_runs_to_a_report_without_servers() {
    let out = run("ecommerce", &["--events", "20000", "--quiet"]);
    assert!(out.contains("in-process broker"), "{out}");
    assert!(out.contains("Processed 60,000 records"), "{out}");
    assert!(out.contains("10 bad records dead-lettered"), "{out}");
    // "Rows written: product_revenue_1m N, category_revenue_5m N, user_sessions N, conversions N"
    let written = out
        .lines()
        .find_map(|l| l.strip_prefix("Rows written: "))
        .unwrap_or_else(|| panic!("no row counts in:\n{out}"));
    for table in written.split(", ") {
        let (name, rows) = table.rsplit_once(' ').expect("table and count");
        let rows: u64 = rows.replace(',', "").parse().expect("a count");
        assert!(rows > 0, "no rows in {name}:\n{out}");
    }
    for part in [
        "Top products in the minute",
        "Sessions (user_sessions",
        "Conversions (orders",
    ] {
        assert!(out.contains(part), "{part} missing:\n{out}");
    }
}

#[test]
fn ecommerce_serves_prometheus_metrics_while_it_runs() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(example("ecommerce"))
        .args(["--events", "40000", "--quiet", "--metrics-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ecommerce");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url_line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("Metrics: http://"))
        .expect("the example prints the metrics address");
    let addr = url_line
        .trim_start_matches("Metrics: http://")
        .trim_end_matches("/metrics")
        .to_string();
    let wanted = [
        "sluice_records_out{operator=\"orders\"",
        "sluice_watermark{operator=\"page_views\"",
        "sluice_sink_rows_written{table=\"product_revenue_1m\"}",
        "sluice_sink_write_latency_us{table=\"conversions\",quantile=\"0.99\"}",
    ];
    // Operators register their metrics as the workers start: ask until all are there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut page = String::new();
    while std::time::Instant::now() < deadline && !wanted.iter().all(|m| page.contains(m)) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        page.clear();
        let Ok(mut stream) = std::net::TcpStream::connect(&addr) else {
            break;
        };
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n")
            .expect("request");
        stream.read_to_string(&mut page).expect("response");
    }
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    for metric in wanted {
        assert!(page.contains(metric), "{metric} missing from:\n{page}");
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().expect("exit").success(), "{rest:?}");
}

#[test]
fn ecommerce_refuses_bad_flags_in_one_line() {
    let out = Command::new(example("ecommerce"))
        .args(["--checkpoint-interval", "often"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("often"), "{err}");
    let out = Command::new(example("ecommerce"))
        .args(["--workers", "0"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(err.contains("workers"), "{err}");
}

#[test]
fn iot_and_monitoring_write_their_tables() {
    let out = run("iot", &["--events", "20000"]);
    assert!(out.contains("Processed 20,000 readings"), "{out}");
    assert!(out.contains("rows in iot.device_stats_1m"), "{out}");
    let out = run("monitoring", &["--events", "20000"]);
    assert!(out.contains("Processed 20,000 measurements"), "{out}");
    assert!(out.contains("rows in monitoring.host_latency_1m"), "{out}");
}

#[test]
fn transactions_count_every_payment_once_across_a_kill() {
    let out = run("transactions", &["--events", "60000"]);
    assert!(out.contains("Killed the job (SIGKILL)"), "{out}");
    assert!(out.contains("0 differ from the payments"), "{out}");
    assert!(out.contains("Every payment counted exactly once."), "{out}");
}
