#!/usr/bin/env bash
# Runs the benchmark programs, installing what is missing first. Like scripts/test.sh it starts
# one Kafka broker and one Cassandra node for the whole run (unless SLUICE_KAFKA_BROKERS or
# SLUICE_CASSANDRA name servers of your own) and stops them afterwards. With no arguments it runs every
# benchmark with its defaults; `scripts/bench.sh nexmark --query q5 --workers 2` runs one,
# passing the rest of the arguments to it. Numbers, JSON lines and charts: see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites
# The benchmarks that measure against Kafka and Cassandra; the others need no server, so the
# servers only run (and take memory and CPU) while these do.
with_services=" end_to_end kafka_consume cassandra_sink "
if [ $# -gt 0 ]; then
    bench="$1"
    shift
    if [[ "$with_services" == *" $bench "* ]]; then
        start_run_services
    fi
    cargo bench --bench "$bench" -- "$@"
else
    started=0
    for bench in nexmark tumbling_revenue interval_join end_to_end kafka_consume cassandra_sink; do
        if [[ "$with_services" == *" $bench "* && $started -eq 0 ]]; then
            start_run_services
            started=1
        fi
        log "benchmark $bench"
        cargo bench --bench "$bench"
    done
fi
