#!/usr/bin/env bash
# Starts, stops or shows real Apache Kafka (KRaft) and Apache Cassandra on loopback ports, for
# Sluice's end-to-end tests, and an S3-compatible object store (`s3`: moto's server, for
# checkpoints in object storage; started only when named):
#
#   eval "$(scripts/services.sh start)"       # both; or: start kafka, start cassandra
#   cargo test ... (sees SLUICE_KAFKA_BROKERS and SLUICE_CASSANDRA)
#   scripts/services.sh stop
#
#   start [SERVICE...]   install the jars once, launch, wait until each answers (Kafka: a topic
#                        is created and has a leader; Cassandra: CQL answers a query), then print
#                        one `export NAME=127.0.0.1:PORT` line per service on stdout
#                        (s3: SLUICE_S3_ENDPOINT=http://127.0.0.1:PORT)
#   stop [SERVICE...]    stop what start launched (by pid file)
#   status [SERVICE...]  one line per service on stderr, the export lines of those running on
#                        stdout; exit status 3 if one of them is not running
#   reset [SERVICE...]   stop and delete the state (configuration, data, logs)
#
# Everything listens on 127.0.0.1 only, on ports free when first started (kept across restarts
# while they stay free). State: ${SLUICE_SERVICES_DIR:-~/.cache/sluice/run}/<service>/ (log in
# log); jars: ~/.cache/sluice/<service>-<version>/lib (moto: a Python environment in
# ~/.cache/sluice/s3-<version>). Time limits: SLUICE_KAFKA_START_TIMEOUT
# (120 s) and SLUICE_CASSANDRA_START_TIMEOUT (240 s); heaps: SLUICE_KAFKA_HEAP (512m) and
# SLUICE_CASSANDRA_HEAP (1G).
set -euo pipefail
source "$(dirname "$0")/services-lib.sh"

usage() {
    echo "usage: $0 start|stop|status|reset [kafka|cassandra|s3]..." >&2
    exit 2
}

[ $# -ge 1 ] || usage
command="$1"
shift
services=("$@")
[ ${#services[@]} -gt 0 ] || services=("${SERVICES_ALL[@]}")
for service in "${services[@]}"; do
    case "$service" in
        kafka | cassandra | s3) ;;
        *) usage ;;
    esac
done

mkdir -p "$SLUICE_SERVICES_DIR"
# One start, stop or reset at a time (the lock is fd 9; services_spawn keeps it from the JVMs).
if [ "$command" != status ]; then
    exec 9>"$SLUICE_SERVICES_DIR/.lock"
    flock 9
fi

case "$command" in
    start)
        services_ensure_tools
        launched=()
        # A failed start leaves nothing running that it launched.
        stop_launched() {
            local status=$? service
            if [ "$status" -ne 0 ] && [ ${#launched[@]} -gt 0 ]; then
                services_stop "${launched[@]}" >/dev/null 2>&1 || true
            fi
        }
        trap stop_launched EXIT
        # Launch all first, then wait: the JVMs start side by side.
        for service in "${services[@]}"; do
            if ! services_pid "$service" >/dev/null; then
                launched+=("$service")
            fi
            services_launch "$service"
        done
        for service in "${services[@]}"; do
            services_ready "$service"
        done
        for service in "${services[@]}"; do
            services_print_env "$service"
        done
        ;;
    stop)
        services_stop "${services[@]}"
        ;;
    status)
        services_status "${services[@]}"
        ;;
    reset)
        services_stop "${services[@]}"
        for service in "${services[@]}"; do
            rm -rf "$(services_dir "$service")"
            log "$service: state deleted"
        done
        ;;
    *) usage ;;
esac
