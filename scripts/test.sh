#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, doc, and the end-to-end tests against
# real Apache Kafka and Apache Cassandra), installing what is missing first. It starts one
# Kafka broker and one Cassandra node on free loopback ports for the whole run (from jars it
# installs once into ~/.cache/sluice, see scripts/services.sh) and stops them afterwards; set
# SLUICE_KAFKA_BROKERS and/or SLUICE_CASSANDRA to use servers of your own instead. Extra
# arguments go to the test binaries (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites

# Build every test first: compiling and linking while the servers run starves them (a Kafka
# controller that stalls for half a minute fences its broker and times out the tests' writes).
log "building the tests"
cargo test --workspace --no-run
start_run_services
log "running the test suite (Kafka at $SLUICE_KAFKA_BROKERS, Cassandra at $SLUICE_CASSANDRA)"
cargo test --workspace -- --include-ignored "$@"
