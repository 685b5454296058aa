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

# A state directory of this run's own: the servers start empty and are removed afterwards.
SLUICE_SERVICES_DIR="$(mktemp -d -t sluice-services.XXXXXX)"
export SLUICE_SERVICES_DIR
services=()
[ -z "${SLUICE_KAFKA_BROKERS:-}" ] && services+=(kafka)
[ -z "${SLUICE_CASSANDRA:-}" ] && services+=(cassandra)
cleanup() {
    if [ ${#services[@]} -gt 0 ]; then
        scripts/services.sh stop "${services[@]}" || true
    fi
    rm -rf "$SLUICE_SERVICES_DIR"
}
trap cleanup EXIT
if [ ${#services[@]} -gt 0 ]; then
    eval "$(scripts/services.sh start "${services[@]}")"
fi
log "running the test suite (Kafka at $SLUICE_KAFKA_BROKERS, Cassandra at $SLUICE_CASSANDRA)"
cargo test --workspace -- --include-ignored "$@"
