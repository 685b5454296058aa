#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, doc, and the end-to-end tests against a
# real Kafka-protocol broker), installing what is missing first. It starts one Tansu broker on
# a free loopback port for the whole run and stops it afterwards; set SLUICE_KAFKA_BROKERS to
# run the end-to-end tests against another Kafka cluster instead. Extra arguments go to the
# test binaries (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites
ensure_tansu
export SLUICE_TANSU_BIN="$TANSU_BIN"
trap stop_tansu EXIT
if [ -z "${SLUICE_KAFKA_BROKERS:-}" ]; then
    start_tansu
fi
log "running the test suite (end-to-end tests against $SLUICE_KAFKA_BROKERS)"
cargo test --workspace -- --include-ignored "$@"
