#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, doc, and the end-to-end tests against
# real Apache Kafka and Apache Cassandra, and an S3-compatible store), installing what is
# missing first. It starts one Kafka broker, one Cassandra node and moto's S3 server on free
# loopback ports for the whole run (installed once into ~/.cache/sluice, see
# scripts/services.sh) and stops them afterwards; set SLUICE_KAFKA_BROKERS, SLUICE_CASSANDRA
# and/or SLUICE_S3_ENDPOINT to use servers of your own instead. The console's browser test runs
# Debian's Chromium through chromedriver (packages chromium and chromium-driver). Extra
# arguments go to the test binaries (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites
ensure_browser

# Build every test first: compiling and linking while the servers run starves them (a Kafka
# controller that stalls for half a minute fences its broker and times out the tests' writes).
log "building the tests"
cargo test --workspace --no-run
start_run_services kafka cassandra s3
log "running the test suite (Kafka at $SLUICE_KAFKA_BROKERS, Cassandra at $SLUICE_CASSANDRA, S3 at $SLUICE_S3_ENDPOINT)"
cargo test --workspace -- --include-ignored "$@"
