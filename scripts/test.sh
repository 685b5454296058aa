#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, doc), installing what is missing
# first. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites
log "running the test suite"
cargo test --workspace "$@"
