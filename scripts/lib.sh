# Shared set-up for the scripts: installs what a fresh machine lacks, once.
# shellcheck shell=bash

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"

apt_updated=0
# Installs the Debian packages among "$@" that are not installed yet.
ensure_apt_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing system packages: ${missing[*]}"
    if [ "$apt_updated" -eq 0 ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The Rust toolchain, and what librdkafka, RocksDB (bindgen needs libclang), the CQL driver's TLS
# (OpenSSL) and mimalloc build with.
ensure_build_prerequisites() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install Rust with rustup (https://rustup.rs) and retry" >&2
        exit 1
    fi
    ensure_apt_packages build-essential pkg-config zlib1g-dev libclang-dev libssl-dev python3
}

# Headless Chromium and its WebDriver server, for the console's browser test.
ensure_browser() {
    ensure_apt_packages chromium chromium-driver
}

# Starts the services a run needs ("$@": kafka, cassandra, s3; default Kafka and Cassandra;
# those SLUICE_KAFKA_BROKERS, SLUICE_CASSANDRA and SLUICE_S3_ENDPOINT already name are not
# started) with
# scripts/services.sh, in a state directory of the run's own, and exports their addresses. When the calling script exits they are stopped, and
# so is every server a test or benchmark started there for itself (own-*), even one whose
# process died; then the directory is removed. Sets the EXIT trap.
RUN_SERVICES=()
start_run_services() {
    SLUICE_SERVICES_DIR="$(mktemp -d -t sluice-services.XXXXXX)"
    export SLUICE_SERVICES_DIR
    local wanted=" ${*:-kafka cassandra} "
    [[ "$wanted" == *" kafka "* && -z "${SLUICE_KAFKA_BROKERS:-}" ]] && RUN_SERVICES+=(kafka)
    [[ "$wanted" == *" cassandra "* && -z "${SLUICE_CASSANDRA:-}" ]] && RUN_SERVICES+=(cassandra)
    [[ "$wanted" == *" s3 "* && -z "${SLUICE_S3_ENDPOINT:-}" ]] && RUN_SERVICES+=(s3)
    trap stop_run_services EXIT
    if [ ${#RUN_SERVICES[@]} -gt 0 ]; then
        local exports
        exports="$(scripts/services.sh start "${RUN_SERVICES[@]}")"
        eval "$exports"
    fi
}

stop_run_services() {
    local own
    for own in "$SLUICE_SERVICES_DIR"/own-*; do
        [ -d "$own" ] && SLUICE_SERVICES_DIR="$own" scripts/services.sh stop >/dev/null 2>&1 || true
    done
    if [ ${#RUN_SERVICES[@]} -gt 0 ]; then
        scripts/services.sh stop "${RUN_SERVICES[@]}" || true
    fi
    rm -rf "$SLUICE_SERVICES_DIR"
}
