# Shared set-up for the scripts: installs what a fresh machine lacks, once.
# shellcheck shell=bash

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
TANSU_VERSION=0.6.0
TANSU_BIN="$SLUICE_CACHE/tansu-$TANSU_VERSION/bin/tansu"

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

# The Tansu broker (a Kafka-compatible broker published as a Rust crate), built once.
ensure_tansu() {
    if [ ! -x "$TANSU_BIN" ]; then
        log "installing the Tansu broker $TANSU_VERSION (once; about 8 minutes on 2 cores)"
        cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
            --root "$SLUICE_CACHE/tansu-$TANSU_VERSION"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts Tansu in memory on a free loopback port; exports SLUICE_KAFKA_BROKERS.
# The caller stops it with stop_tansu (trap).
TANSU_PID=""
start_tansu() {
    local port log_file
    port="$(free_port)"
    log_file="$(mktemp -t sluice-tansu.XXXXXX.log)"
    "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$log_file" 2>&1 &
    TANSU_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            export SLUICE_KAFKA_BROKERS="127.0.0.1:$port"
            log "Tansu broker on 127.0.0.1:$port (log: $log_file)"
            return 0
        fi
        sleep 0.1
    done
    echo "the Tansu broker did not start; its log:" >&2
    cat "$log_file" >&2
    exit 1
}

stop_tansu() {
    if [ -n "$TANSU_PID" ]; then
        kill "$TANSU_PID" 2>/dev/null || true
        wait "$TANSU_PID" 2>/dev/null || true
        TANSU_PID=""
    fi
}
