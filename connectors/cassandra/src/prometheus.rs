//! Sink statistics in the Prometheus text format.

use std::fmt::Write;

use super::writer::SinkStats;

/// Appends the counters and the write-latency summary (p50, p99, p99.9 in microseconds) of
/// each `(table, stats)` to `out`, one metric family at a time.
pub fn render_sink_stats(out: &mut String, sinks: &[(&str, &SinkStats)]) {
    let counters: [(&str, fn(&SinkStats) -> u64); 4] = [
        ("sluice_sink_rows_written", SinkStats::rows_written),
        ("sluice_sink_requests", SinkStats::requests),
        ("sluice_sink_retries", SinkStats::retries),
        ("sluice_sink_rejected_rows", SinkStats::rejected_rows),
    ];
    for (name, value) in counters {
        let _ = writeln!(out, "# TYPE {name} counter");
        for (table, stats) in sinks {
            let _ = writeln!(out, "{name}{{table=\"{table}\"}} {}", value(stats));
        }
    }
    let name = "sluice_sink_write_latency_us";
    let _ = writeln!(out, "# TYPE {name} summary");
    for (table, stats) in sinks {
        let latency = stats.write_latency();
        for q in [0.5, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "{name}{{table=\"{table}\",quantile=\"{q}\"}} {}",
                latency.value_at_quantile(q)
            );
        }
        let sum: u64 = latency
            .iter_recorded()
            .map(|v| v.value_iterated_to() * v.count_at_value())
            .sum();
        let _ = writeln!(out, "{name}_sum{{table=\"{table}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{table=\"{table}\"}} {}", latency.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_family_at_a_time() {
        let (a, b) = (SinkStats::default(), SinkStats::default());
        let mut out = String::new();
        render_sink_stats(&mut out, &[("t1", &a), ("t2", &b)]);
        assert_eq!(out.matches("# TYPE sluice_sink_retries counter").count(), 1);
        assert!(out.contains("sluice_sink_rows_written{table=\"t2\"} 0"), "{out}");
        assert!(
            out.contains("sluice_sink_write_latency_us{table=\"t1\",quantile=\"0.99\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("sluice_sink_write_latency_us_count{table=\"t1\"} 0"),
            "{out}"
        );
    }
}
