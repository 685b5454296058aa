#!/usr/bin/env bash
# Runs the benchmark programs, installing what is missing first (build prerequisites, and the
# Tansu broker the Kafka benchmarks start themselves). With no arguments it runs every
# benchmark with its defaults; `scripts/bench.sh nexmark --query q5 --workers 2` runs one,
# passing the rest of the arguments to it. Numbers, JSON lines and charts: see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites
ensure_tansu
export SLUICE_TANSU_BIN="$TANSU_BIN"
if [ $# -gt 0 ]; then
    bench="$1"
    shift
    cargo bench --bench "$bench" -- "$@"
else
    for bench in nexmark end_to_end tumbling_revenue kafka_consume cassandra_sink interval_join; do
        log "benchmark $bench"
        cargo bench --bench "$bench"
    done
fi
