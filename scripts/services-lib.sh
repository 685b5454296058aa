# Real Apache Kafka (KRaft, one combined broker+controller node) and Apache Cassandra (one node)
# on loopback ports, for Sluice's end-to-end tests. scripts/services.sh is the command-line front;
# this file only defines functions and can be sourced by any script (on its own or after
# scripts/lib.sh, whose log/ensure_apt_packages it then uses).
#
# The jars come from Maven Central through deploy/services/<service>/pom.xml (versions pinned
# there) and are copied once into $SLUICE_CACHE/<service>-<version>/lib. Each service keeps its
# configuration, data, pid file and log in $SLUICE_SERVICES_DIR/<service>/.
# shellcheck shell=bash

declare -F log >/dev/null || log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
SLUICE_SERVICES_DIR="${SLUICE_SERVICES_DIR:-$SLUICE_CACHE/run}"
SERVICES_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # used by scripts/services.sh
SERVICES_ALL=(kafka cassandra)
# shellcheck source=scripts/services-secure.sh
source "$SERVICES_REPO/scripts/services-secure.sh"
# shellcheck source=scripts/services-s3.sh
source "$SERVICES_REPO/scripts/services-s3.sh"

# Seconds a service may take from launch to answering; past that, start gives up.
SLUICE_KAFKA_START_TIMEOUT="${SLUICE_KAFKA_START_TIMEOUT:-120}"
SLUICE_CASSANDRA_START_TIMEOUT="${SLUICE_CASSANDRA_START_TIMEOUT:-240}"
# Heaps: small, for a 2-core, shared test machine.
SLUICE_KAFKA_HEAP="${SLUICE_KAFKA_HEAP:-512m}"
SLUICE_CASSANDRA_HEAP="${SLUICE_CASSANDRA_HEAP:-1G}"

if ! declare -F ensure_apt_packages >/dev/null; then
    apt_updated=0
    # Installs the Debian packages among "$@" that are not installed yet.
    ensure_apt_packages() {
        local missing=() pkg sudo=""
        for pkg in "$@"; do
            dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        log "installing system packages: ${missing[*]}"
        if [ "$apt_updated" -eq 0 ]; then
            $sudo apt-get update -qq
            apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    }
fi

# python3 runs the port picker and the CQL probe; both use its standard library only.
services_ensure_tools() {
    command -v python3 >/dev/null 2>&1 || ensure_apt_packages python3
    command -v setsid >/dev/null 2>&1 || ensure_apt_packages util-linux
}

# The version a pom pins: services_version kafka -> 4.4.0 (its <kafka.version>).
services_version() {
    if [ "$1" = s3 ]; then
        s3_version
        return
    fi
    sed -n "s:.*<$1.version>\(.*\)</$1.version>.*:\1:p" "$SERVICES_REPO/deploy/services/$1/pom.xml" | head -n 1
}

services_dir() { echo "$SLUICE_SERVICES_DIR/$1"; }
services_lib() { echo "$SLUICE_CACHE/$1-$(services_version "$1")/lib"; }

# The feature version of a java binary (8, 11, 17, ...), or nothing if it does not run.
services_java_major() {
    "$1" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \(1\.\)\{0,1\}\([0-9]*\).*/\2/p'
}

# Sets SERVICES_JAVA to a java binary whose feature version lies in [$1, $2] ($JAVA_HOME's, the
# one on PATH, or one under /usr/lib/jvm, in that order) and SERVICES_JAVA_MAJOR to that version.
services_find_java() {
    local min="$1" max="$2" candidate major
    for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java 2>/dev/null || true)" \
        /usr/lib/jvm/*/bin/java; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        major="$(services_java_major "$candidate")"
        if [ -n "$major" ] && [ "$major" -ge "$min" ] && [ "$major" -le "$max" ]; then
            SERVICES_JAVA="$candidate"
            SERVICES_JAVA_MAJOR="$major"
            return 0
        fi
    done
    return 1
}

# services_find_java for the service: Kafka 4 needs Java 17 or newer; Cassandra 5.0 runs on
# Java 11 or 17 only. Installs Debian's OpenJDK 17 when no suitable Java is found.
services_java() {
    local min=17 max=99
    [ "$1" = cassandra ] && min=11 && max=17
    services_find_java "$min" "$max" && return 0
    ensure_apt_packages openjdk-17-jre-headless
    services_find_java "$min" "$max" && return 0
    echo "$1 needs Java $min..$max and none was found (JAVA_HOME, PATH, /usr/lib/jvm)" >&2
    exit 1
}

# Copies the service's runtime jars (with their dependencies) into the cache, once.
services_install() {
    local service="$1" lib tmp
    lib="$(services_lib "$service")"
    [ -f "$lib/.complete" ] && return 0
    command -v mvn >/dev/null 2>&1 || ensure_apt_packages maven
    log "installing $service $(services_version "$service") into $lib (once)"
    tmp="$lib.partial.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! mvn -B -q -f "$SERVICES_REPO/deploy/services/$service/pom.xml" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
        >"$tmp.log" 2>&1; then
        echo "could not fetch the $service jars with Maven; last lines of its output:" >&2
        tail -n 30 "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        exit 1
    fi
    rm -f "$tmp.log"
    touch "$tmp/.complete"
    rm -rf "$lib"
    mv "$tmp" "$lib"
}

# Prints $1 loopback ports that are free now, one a line: the ports listed in file $2 if it
# exists and all of them can be bound (so a restarted service keeps its addresses), else new
# ones (also written to $2).
services_ports() {
    local count="$1" file="$2" previous=""
    [ -f "$file" ] && previous="$(cat "$file")"
    # shellcheck disable=SC2086 # the previous ports are words on purpose
    python3 - "$count" $previous <<'EOF' | tee "$file.new"
import socket, sys
count, previous = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
def bind_all(ports):
    sockets = []
    try:
        for port in ports:
            s = socket.socket()
            # A port the service held until just now may linger in TIME_WAIT; the JVMs bind
            # with SO_REUSEADDR, so it is free for them.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError:
        return None
    finally:
        for s in sockets:
            s.close()
ports = (len(previous) == count and bind_all(previous)) or bind_all([0] * count)
print("\n".join(map(str, ports)))
EOF
    mv "$file.new" "$file"
}

# The pid of the service if it runs (from its pid file, and only if that process is still the
# one started with this state directory), else nothing and status 1.
services_pid() {
    local dir pid
    dir="$(services_dir "$1")"
    [ -f "$dir/pid" ] || return 1
    pid="$(cat "$dir/pid")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    # The JVMs name the directory in their arguments; others carry it in SLUICE_SERVICE_DIR.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" ||
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF -- "SLUICE_SERVICE_DIR=$dir/" ||
        return 1
    echo "$pid"
}

# Resident memory of a process, in MiB.
services_rss_mib() {
    awk '/^VmRSS:/ { printf "%d\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || true
}

# Starts the service's JVM in the background in its own session (so the caller's Ctrl-C or
# hang-up does not reach it), output to $dir/log, pid to $dir/pid. The JVM is exec'ed by the
# shell that wrote the pid, so the pid is the JVM's. Descriptors above 2 (the caller's pipes,
# services.sh's lock) are closed first: a server holding them would keep its caller waiting.
services_spawn() {
    local dir="$1"
    shift
    : >"$dir/log"
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid bash -c '
        for fd in /proc/$$/fd/*; do
            fd="${fd##*/}"
            [ "$fd" -gt 2 ] && eval "exec $fd>&-"
        done 2>/dev/null
        echo $$ >"$0/pid"
        exec "$@"' "$dir" "$@" </dev/null >>"$dir/log" 2>&1 &
    local i
    for i in $(seq 1 100); do
        [ -s "$dir/pid" ] && return 0
        sleep 0.1
    done
    echo "could not start a server in $dir: no pid file after 10 s" >&2
    exit 1
}

# Ends the start with one line saying why and the tail of the service's log, after stopping it.
services_fail() {
    local service="$1" why="$2" dir
    dir="$(services_dir "$service")"
    echo "$service $why; last 30 lines of $dir/log:" >&2
    tail -n 30 "$dir/log" | cut -c1-400 >&2
    services_stop "$service" >/dev/null 2>&1 || true
    exit 1
}

# Waits until the service answers, calling its probe every second; fails the start when the
# process exits or the time limit passes.
services_wait_ready() {
    local service="$1" timeout="$2" probe="$3" dir pid port deadline
    dir="$(services_dir "$service")"
    pid="$(cat "$dir/pid" 2>/dev/null || true)"
    port="$(head -n 1 "$dir/ports")"
    deadline=$((SECONDS + timeout))
    while :; do
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
            services_fail "$service" "exited while starting"
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && "$probe" >>"$dir/probe.log" 2>&1; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            services_fail "$service" "did not answer on 127.0.0.1:$port within $timeout s"
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------------------------------------
# Kafka

# Writes the broker's configuration and formats its storage on first use.
kafka_configure() {
    local dir port controller_port cluster_id
    dir="$(services_dir kafka)"
    mkdir -p "$dir/data"
    local ports secure=0 listeners advertised
    secure_enabled && secure=1
    ports="$(services_ports $((secure ? 5 : 2)) "$dir/ports")"
    port="$(sed -n 1p <<<"$ports")"
    controller_port="$(sed -n 2p <<<"$ports")"
    listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
    advertised="PLAINTEXT://127.0.0.1:$port"
    if [ "$secure" = 1 ]; then
        secure_certificates "$KAFKA_JAVA"
        local sasl_ssl mtls wrong_name
        sasl_ssl="127.0.0.1:$(sed -n 3p <<<"$ports")"
        mtls="127.0.0.1:$(sed -n 4p <<<"$ports")"
        wrong_name="127.0.0.1:$(sed -n 5p <<<"$ports")"
        listeners+=",SASL_SSL://$sasl_ssl,MTLS://$mtls,WRONGNAME://$wrong_name"
        advertised+=",SASL_SSL://$sasl_ssl,MTLS://$mtls,WRONGNAME://$wrong_name"
    fi
    cat >"$dir/server.properties" <<EOF
# Written by scripts/services.sh on each start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
# One broker on a shared machine: a pause of some seconds (a busy disk, a starved CPU) must
# not fence it, which would take the leaders of all its partitions away mid-test.
broker.session.timeout.ms=60000
EOF
    cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
    printf 'default.api.timeout.ms=10000\nrequest.timeout.ms=5000\n' >"$dir/admin.properties"
    echo "SLUICE_KAFKA_BROKERS=127.0.0.1:$port" >"$dir/env"
    local users=()
    if [ "$secure" = 1 ]; then
        # Later lines win over the plaintext listener map above.
        secure_kafka_properties >>"$dir/server.properties"
        chmod 600 "$dir/server.properties"
        printf '%s\n' "SLUICE_KAFKA_SASL_SSL=$sasl_ssl" "SLUICE_KAFKA_MTLS=$mtls" \
            "SLUICE_KAFKA_WRONG_NAME=$wrong_name" "SLUICE_TLS_DIR=$(secure_dir)" >>"$dir/env"
        mapfile -t users < <(secure_kafka_scram_users)
    fi
    if [ ! -f "$dir/data/meta.properties" ]; then
        # A Kafka cluster id: 16 random bytes in URL-safe base64 without padding, not starting
        # with '-' (as Kafka's own Uuid.randomUuid).
        cluster_id="$(python3 -c 'import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if not s.startswith("-"): print(s); break')"
        "$KAFKA_JAVA" -cp "$(services_lib kafka)/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
            kafka.tools.StorageTool format --config "$dir/server.properties" \
            --cluster-id "$cluster_id" "${users[@]}" >"$dir/format.log" 2>&1 || {
            echo "formatting Kafka's storage failed:" >&2
            cat "$dir/format.log" >&2
            exit 1
        }
    fi
}

kafka_launch() {
    local dir
    dir="$(services_dir kafka)"
    MALLOC_ARENA_MAX=4 services_spawn "$dir" "$KAFKA_JAVA" \
        "-Xms$SLUICE_KAFKA_HEAP" "-Xmx$SLUICE_KAFKA_HEAP" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$(services_lib kafka)/*" kafka.Kafka "$dir/server.properties"
}

# Ready when a topic can be created and its partition has a leader (TopicCommand, the class
# behind kafka-topics.sh). The topic sluice-services-ready stays.
kafka_probe() {
    local dir brokers
    dir="$(services_dir kafka)"
    brokers="$(sed -n 's/^SLUICE_KAFKA_BROKERS=//p' "$dir/env")"
    local topics=("$KAFKA_JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
        -cp "$(services_lib kafka)/*" org.apache.kafka.tools.TopicCommand
        --bootstrap-server "$brokers" --command-config "$dir/admin.properties")
    "${topics[@]}" --create --if-not-exists --topic sluice-services-ready \
        --partitions 1 --replication-factor 1 &&
        "${topics[@]}" --describe --topic sluice-services-ready | grep 'Leader: 1'
}

# ---------------------------------------------------------------------------------------------
# Cassandra

# The JVM options, one a line: Cassandra 5.0's conf/jvm17-server.options (the JPMS and Netty
# lines; without the --add-opens the node dies at once on Java 17, e.g. on sun.nio.ch), the parts
# of conf/jvm-server.options and cassandra-env.sh that a node needs, and settings for tests.
cassandra_jvm_options() {
    local dir="$1" lib="$2" jmx_port="$3" major="$4"
    printf '%s\n' "-Xms$SLUICE_CASSANDRA_HEAP" "-Xmx$SLUICE_CASSANDRA_HEAP" -Xss256k \
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 \
        -XX:MaxGCPauseMillis=300 -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem \
        -XX:StringTableSize=1000003 -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$dir" \
        -XX:+ExitOnOutOfMemoryError -Djava.net.preferIPv4Stack=true -Djava.awt.headless=true -ea \
        "-javaagent:$(find "$lib" -name 'jamm-*.jar' | head -n 1)"
    if [ "$major" -ge 17 ]; then
        cat <<'EOF'
-Djdk.attach.allowAttachSelf=true
--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED
--add-exports=java.sql/java.sql=ALL-UNNAMED
--add-exports=java.base/java.lang.ref=ALL-UNNAMED
--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED
--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED
--add-opens=java.base/java.lang.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED
--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED
--add-opens=java.base/jdk.internal.math=ALL-UNNAMED
--add-opens=java.base/jdk.internal.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED
--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED
--add-opens=java.base/java.io=ALL-UNNAMED
--add-opens=java.base/java.lang.reflect=ALL-UNNAMED
--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
--add-opens=java.base/java.lang=ALL-UNNAMED
--add-opens=java.base/java.util=ALL-UNNAMED
-Dio.netty.tryReflectionSetAccessible=true
-Dio.netty.allocator.useCacheForAllThreads=true
-Dio.netty.allocator.maxOrder=11
EOF
    fi
    # The node's files and ports; it keeps its stdout (the log) open.
    printf '%s\n' "-Dcassandra.config=file://$dir/cassandra.yaml" "-Dcassandra.storagedir=$dir" \
        "-Dcassandra.logdir=$dir/logs" "-Dlogback.configurationFile=$dir/logback.xml" \
        "-Dcassandra.jmx.local.port=$jmx_port" "-Dcom.sun.management.jmxremote.rmi.port=$jmx_port" \
        -Dcassandra-foreground=yes
    # A single test node: no waiting for gossip or a ring to settle, no delay before the
    # default roles are set up or after announcing the shutdown.
    printf '%s\n' -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=0 \
        -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.shutdown_announce_in_ms=0
}

cassandra_configure() {
    local dir native_port storage_port jmx_port
    dir="$(services_dir cassandra)"
    mkdir -p "$dir"/{data,commitlog,hints,saved_caches,cdc_raw,logs}
    local ports
    ports="$(services_ports 3 "$dir/ports")"
    native_port="$(sed -n 1p <<<"$ports")"
    storage_port="$(sed -n 2p <<<"$ports")"
    jmx_port="$(sed -n 3p <<<"$ports")"
    cat >"$dir/cassandra.yaml" <<EOF
# Written by scripts/services.sh on each start; edits are lost.
cluster_name: sluice
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$storage_port"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $storage_port
native_transport_port: $native_port
start_native_transport: true
auto_bootstrap: false
data_file_directories:
  - $dir/data
commitlog_directory: $dir/commitlog
hints_directory: $dir/hints
saved_caches_directory: $dir/saved_caches
cdc_raw_directory: $dir/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
# Tests drop and truncate tables often: no snapshot each time.
auto_snapshot: false
snapshot_before_compaction: false
EOF
    cat >"$dir/logback.xml" <<'EOF'
<configuration scan="false">
  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="OUT"/></root>
</configuration>
EOF
    echo "SLUICE_CASSANDRA=127.0.0.1:$native_port" >"$dir/env"
    if secure_enabled; then
        secure_certificates "$CASSANDRA_JAVA"
        secure_cassandra_yaml >>"$dir/cassandra.yaml"
        chmod 600 "$dir/cassandra.yaml"
        echo "SLUICE_TLS_DIR=$(secure_dir)" >>"$dir/env"
    fi
}

cassandra_launch() {
    local dir lib jmx_port
    dir="$(services_dir cassandra)"
    lib="$(services_lib cassandra)"
    jmx_port="$(sed -n 3p "$dir/ports")"
    local options
    mapfile -t options < <(cassandra_jvm_options "$dir" "$lib" "$jmx_port" "$CASSANDRA_JAVA_MAJOR")
    # As root (which may lock any amount of memory) Cassandra's mlockall would pin the whole
    # heap in RAM; without the capability it only logs that it could not.
    local no_mlock=()
    # (Dropping it needs CAP_SETPCAP, which a locked-down container may lack: then skip.)
    if [ "$(id -u)" -eq 0 ] && setpriv --bounding-set=-ipc_lock -- true >/dev/null 2>&1; then
        no_mlock=(setpriv --bounding-set=-ipc_lock --)
    fi
    MALLOC_ARENA_MAX=4 services_spawn "$dir" "${no_mlock[@]}" "$CASSANDRA_JAVA" "${options[@]}" \
        -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
}

# Ready when CQL answers SELECT release_version FROM system.local. A minimal client of the native
# protocol (v4) in Python's standard library: no driver, no cqlsh to install.
cassandra_probe() {
    local dir address
    dir="$(services_dir cassandra)"
    address="$(sed -n 's/^SLUICE_CASSANDRA=//p' "$dir/env")"
    local tls=""
    secure_enabled && tls="$(secure_dir)"
    python3 - "${address%:*}" "${address##*:}" "$tls" <<'EOF'
import os, socket, ssl, struct, sys

def frame(opcode, body, stream):
    return struct.pack(">BBhBi", 4, 0, stream, opcode, len(body)) + body

def short_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b

def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("connection closed")
        data += chunk
    return data

class Reader:
    def __init__(self, body): self.body, self.pos = body, 0
    def take(self, fmt):
        values = struct.unpack_from(fmt, self.body, self.pos)
        self.pos += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]
    def string(self):
        n = self.take(">H"); s = self.body[self.pos:self.pos + n]; self.pos += n
        return s.decode(errors="replace")
    def bytes(self):
        n = self.take(">i")
        if n < 0: return None
        b = self.body[self.pos:self.pos + n]; self.pos += n
        return b

def response(sock):
    _version, flags, _stream, opcode, length = struct.unpack(">BBhBi", read_exact(sock, 9))
    r = Reader(read_exact(sock, length))
    if flags & 0x02: r.pos += 16                                   # tracing id
    if flags & 0x08: [r.string() for _ in range(r.take(">H"))]     # warnings
    if flags & 0x04:                                               # custom payload
        for _ in range(r.take(">H")): r.string(); r.bytes()
    if opcode == 0x00:
        code = r.take(">i")
        sys.exit("error 0x%04x: %s" % (code, r.string()))
    return opcode, r

def query(sock, text, stream):
    q = text.encode()
    sock.sendall(frame(0x07, struct.pack(">i", len(q)) + q + struct.pack(">HB", 0x0001, 0), stream))
    return response(sock)

sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
tls = sys.argv[3]
if tls:
    # The secured node: TLS with a client certificate, then the default superuser's login.
    context = ssl.create_default_context(cafile=os.path.join(tls, "ca.pem"))
    context.load_cert_chain(os.path.join(tls, "client.pem"), os.path.join(tls, "client.key"))
    sock = context.wrap_socket(sock, server_hostname=sys.argv[1])
sock.sendall(frame(0x01, struct.pack(">H", 1) + short_string("CQL_VERSION") + short_string("3.0.0"), 0))
opcode, _ = response(sock)
if opcode == 0x03 and tls:                                         # AUTHENTICATE
    token = b"\0cassandra\0cassandra"
    sock.sendall(frame(0x0F, struct.pack(">i", len(token)) + token, 0))
    opcode, _ = response(sock)
    if opcode != 0x10:
        sys.exit("expected AUTH_SUCCESS, got opcode %d" % opcode)
    with open(os.path.join(tls, "cassandra-password")) as f:
        password = f.read().strip()
    query(sock, "CREATE ROLE IF NOT EXISTS sluice WITH PASSWORD = '%s' AND LOGIN = true AND SUPERUSER = true" % password, 2)
elif opcode != 0x02:
    sys.exit("expected READY, got opcode %d" % opcode)
opcode, r = query(sock, "SELECT release_version FROM system.local", 1)
if opcode != 0x08 or r.take(">i") != 2:
    sys.exit("expected ROWS, got opcode %d" % opcode)
flags, columns = r.take(">ii")
if flags & 0x02: r.bytes()                                         # paging state
if not flags & 0x04:                                               # column specs
    if flags & 0x01: r.string(); r.string()
    for _ in range(columns):
        if not flags & 0x01: r.string(); r.string()
        r.string(); r.take(">H")                                   # name, type (varchar)
if r.take(">i") < 1:
    sys.exit("system.local is empty")
print("release_version", r.bytes().decode())
EOF
}

# ---------------------------------------------------------------------------------------------
# Commands

# Launches the service unless it already runs; services_wait_ready then waits for it.
services_launch() {
    local service="$1" dir
    dir="$(services_dir "$service")"
    if services_pid "$service" >/dev/null; then
        log "$service already runs (pid $(services_pid "$service"))"
        return 0
    fi
    rm -f "$dir/pid" "$dir/ready"
    if [ "$service" = s3 ]; then
        s3_install
    else
        services_install "$service"
    fi
    mkdir -p "$dir"
    case "$service" in
        s3)
            s3_configure
            s3_launch
            ;;
        kafka)
            services_java kafka
            KAFKA_JAVA="$SERVICES_JAVA"
            kafka_configure
            kafka_launch
            ;;
        cassandra)
            services_java cassandra
            CASSANDRA_JAVA="$SERVICES_JAVA"
            CASSANDRA_JAVA_MAJOR="$SERVICES_JAVA_MAJOR"
            cassandra_configure
            cassandra_launch
            ;;
    esac
    : >"$dir/probe.log"
    date +%s.%N >"$dir/started"
    log "$service $(services_version "$service") launched (pid $(cat "$dir/pid"), log $dir/log)"
}

services_ready() {
    local service="$1" dir start elapsed
    dir="$(services_dir "$service")"
    # Already answered (it was running before this start).
    [ -f "$dir/ready" ] && return 0
    case "$service" in
        kafka)
            if [ -z "${KAFKA_JAVA:-}" ]; then
                services_java kafka
                KAFKA_JAVA="$SERVICES_JAVA"
            fi
            services_wait_ready kafka "$SLUICE_KAFKA_START_TIMEOUT" kafka_probe
            ;;
        cassandra)
            services_wait_ready cassandra "$SLUICE_CASSANDRA_START_TIMEOUT" cassandra_probe
            ;;
        s3)
            services_wait_ready s3 60 s3_probe
            ;;
    esac
    date +%s.%N >"$dir/ready"
    start="$(cat "$dir/started")"
    elapsed="$(awk -v a="$start" -v b="$(cat "$dir/ready")" 'BEGIN { printf "%.1f", b - a }')"
    log "$service answers at $(head -n 1 "$dir/env" | cut -d= -f2) ($elapsed s after launch, RSS $(services_rss_mib "$(services_pid "$service")") MiB)"
}

# Prints the service's address (and, secured, its other listeners and the certificates'
# directory) as shell lines to eval: export SLUICE_...=127.0.0.1:PORT
services_print_env() {
    sed 's/^/export /' "$(services_dir "$1")/env"
}

# Stops the services started by services_launch: SIGTERM to all, then SIGKILL to those still
# running after 60 s (Kafka and Cassandra both shut down cleanly on SIGTERM).
services_stop() {
    local service pid i stopping=() pids=()
    for service in "$@"; do
        if pid="$(services_pid "$service")"; then
            kill -TERM "$pid" 2>/dev/null || true
            stopping+=("$service")
            pids+=("$pid")
        else
            rm -f "$(services_dir "$service")/pid"
            log "$service is not running"
        fi
    done
    for i in "${!stopping[@]}"; do
        service="${stopping[$i]}"
        pid="${pids[$i]}"
        local deadline=$((SECONDS + 60))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$service (pid $pid) did not stop within 60 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        rm -f "$(services_dir "$service")/pid" "$(services_dir "$service")/ready"
        log "$service stopped (pid $pid)"
    done
}

# One line per service: what runs where. Status 3 if one of them does not run.
services_status() {
    local service dir pid status=0
    for service in "$@"; do
        dir="$(services_dir "$service")"
        if pid="$(services_pid "$service")"; then
            printf '%s: running, pid %s, %s, RSS %s MiB, log %s\n' "$service" "$pid" \
                "$(head -n 1 "$dir/env")" "$(services_rss_mib "$pid")" "$dir/log" >&2
            services_print_env "$service"
        else
            printf '%s: not running\n' "$service" >&2
            status=3
        fi
    done
    return "$status"
}
