# An S3-compatible object store on a loopback port for the tests: moto's standalone server,
# from PyPI (deploy/services/s3/requirements.txt pins it) in a virtual environment under
# $SLUICE_CACHE/s3-<version>. It keeps objects in memory and supports conditional writes
# (If-Match, If-None-Match), which checkpoint fencing relies on. Sourced by
# scripts/services-lib.sh; defines functions only.
# shellcheck shell=bash

s3_requirements() { echo "$SERVICES_REPO/deploy/services/s3/requirements.txt"; }

s3_version() { sed -n 's/^moto\[server\]==//p' "$(s3_requirements)" | head -n 1; }

s3_venv() { echo "$SLUICE_CACHE/s3-$(s3_version)"; }

# Creates the virtual environment with the pinned server, once (`.complete` marks one that
# finished installing).
s3_install() {
    local venv
    venv="$(s3_venv)"
    [ -f "$venv/.complete" ] && return 0
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || ensure_apt_packages python3-venv
    log "installing moto $(s3_version) into $venv (once)"
    rm -rf "$venv"
    python3 -m venv "$venv" >/dev/null
    if ! "$venv/bin/pip" install -q --disable-pip-version-check -r "$(s3_requirements)" >"$venv.log" 2>&1; then
        echo "could not install moto from PyPI; last lines of pip's output:" >&2
        tail -n 20 "$venv.log" >&2
        rm -rf "$venv" "$venv.log"
        exit 1
    fi
    rm -f "$venv.log"
    touch "$venv/.complete"
}

s3_configure() {
    local dir port
    dir="$(services_dir s3)"
    mkdir -p "$dir"
    port="$(services_ports 1 "$dir/ports")"
    echo "SLUICE_S3_ENDPOINT=http://127.0.0.1:$port" >"$dir/env"
}

s3_launch() {
    local dir port
    dir="$(services_dir s3)"
    port="$(head -n 1 "$dir/ports")"
    # The directory in its environment tells scripts/services.sh the process is this one.
    SLUICE_SERVICE_DIR="$dir/" services_spawn "$dir" "$(s3_venv)/bin/moto_server" -H 127.0.0.1 -p "$port"
}

# Ready when the server answers an S3 request (listing the buckets).
s3_probe() {
    local dir port
    dir="$(services_dir s3)"
    port="$(head -n 1 "$dir/ports")"
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5).read()' \
        "http://127.0.0.1:$port/"
}
