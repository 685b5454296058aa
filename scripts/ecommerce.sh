#!/usr/bin/env bash
# Runs the main e-commerce job, installing what is missing first. Arguments go to the job:
#   scripts/ecommerce.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_build_prerequisites
exec cargo run --release --example ecommerce -- "$@"
