#!/usr/bin/env bash
# Runs the benchmark programs, installing what is missing first. The Kafka and Cassandra
# benchmarks run against a broker and a node it starts for them with scripts/services.sh
# (unless SLUICE_KAFKA_BROKERS or SLUICE_CASSANDRA name servers of your own), scale_out also
# against moto's S3 server (SLUICE_S3_ENDPOINT), and stops them afterwards. With no
# arguments it runs every benchmark with its defaults;
# `scripts/bench.sh nexmark --query q5 --workers 2` runs one, passing the rest of the arguments
# to it. Numbers, JSON lines and charts: see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites
# The servers each benchmark measures against; the others need none, so servers only run
# (and take memory and CPU) while the benchmarks that use them do.
services_of() {
    case "$1" in
        end_to_end) echo kafka cassandra ;;
        kafka_consume) echo kafka ;;
        cassandra_sink) echo cassandra ;;
        scale_out) echo kafka cassandra s3 ;;
    esac
}
if [ $# -gt 0 ]; then
    bench="$1"
    shift
    needed="$(services_of "$bench")"
    if [ -n "$needed" ]; then
        # shellcheck disable=SC2086 # a list of names
        start_run_services $needed
    fi
    cargo bench --bench "$bench" -- "$@"
else
    started=0
    for bench in nexmark tumbling_revenue interval_join end_to_end kafka_consume cassandra_sink scale_out; do
        if [ -n "$(services_of "$bench")" ] && [ "$started" -eq 0 ]; then
            start_run_services kafka cassandra s3
            started=1
        fi
        log "benchmark $bench"
        cargo bench --bench "$bench"
    done
fi
