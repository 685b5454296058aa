# Secured variants of the test services (scripts/services.sh with SLUICE_SERVICES_SECURE=1):
# a throwaway certificate authority and certificates made with the openssl command line (and the
# JDK's keytool for the Java truststore), random passwords, and the Kafka listeners and
# Cassandra settings that use them. Sourced by scripts/services-lib.sh; defines functions only.
#
# Everything lives in $SLUICE_SERVICES_DIR/tls (mode 700), made on the first secured start:
#   ca.pem               the CA that signs the servers' and the client's certificates
#   unknown-ca.pem       a second CA that signs nothing the servers present
#   server.pem/.key      for 127.0.0.1 and localhost; server.p12 holds them for the JVMs
#   wrong-name.p12       a certificate from ca.pem for wrong-name.invalid only
#   client.pem/.key      a client certificate from ca.pem (mutual TLS)
#   truststore.p12       ca.pem for the JVMs, to check client certificates
#   store-password       the keystores' password
#   kafka-password       SASL password of Kafka user "sluice" (SCRAM-SHA-256/512 and PLAIN)
#   cassandra-password   password of Cassandra role "sluice" (PasswordAuthenticator)
# shellcheck shell=bash

# Whether the services of this state directory run secured: asked for with
# SLUICE_SERVICES_SECURE=1 on their first start, remembered after.
secure_enabled() {
    if [ "${SLUICE_SERVICES_SECURE:-0}" = 1 ]; then
        mkdir -p "$SLUICE_SERVICES_DIR"
        touch "$SLUICE_SERVICES_DIR/secure"
    fi
    [ -f "$SLUICE_SERVICES_DIR/secure" ]
}

secure_dir() { echo "$SLUICE_SERVICES_DIR/tls"; }

# The JDK's keytool beside the java binary $1.
secure_keytool() {
    local keytool
    keytool="$(dirname "$(readlink -f "$1")")/keytool"
    [ -x "$keytool" ] || keytool="$(command -v keytool || true)"
    if [ -z "$keytool" ]; then
        echo "no keytool found beside $1 or on PATH" >&2
        exit 1
    fi
    echo "$keytool"
}

# Signs a certificate for subject alternative names $3 with the CA in $1 ($1.pem, $1.key),
# written to $2.pem and $2.key; $4 is the extended key usage.
secure_sign() {
    local ca="$1" out="$2" names="$3" usage="$4"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$out.key" \
        -out "$out.csr" -subj "/CN=${out##*/}" >/dev/null 2>&1
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' \
        "$names" "$usage" >"$out.ext"
    openssl x509 -req -in "$out.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial \
        -days 30 -extfile "$out.ext" -out "$out.pem" >/dev/null 2>&1
    rm -f "$out.csr" "$out.ext"
}

# Makes the CA, certificates, stores and passwords once (java binary $1 for keytool).
secure_certificates() {
    local dir keytool password
    dir="$(secure_dir)"
    [ -f "$dir/.complete" ] && return 0
    command -v openssl >/dev/null 2>&1 || ensure_apt_packages openssl
    keytool="$(secure_keytool "$1")"
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 700 "$dir"
    local ca
    for ca in ca unknown-ca; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -keyout "$dir/$ca.key" -out "$dir/$ca.pem" -subj "/CN=sluice-test-$ca" >/dev/null 2>&1
    done
    secure_sign "$dir/ca" "$dir/server" "IP:127.0.0.1,DNS:localhost" serverAuth
    secure_sign "$dir/ca" "$dir/wrong-name" "DNS:wrong-name.invalid" serverAuth
    secure_sign "$dir/ca" "$dir/client" "DNS:sluice-client" clientAuth
    local random='import secrets; print(secrets.token_hex(16))'
    python3 -c "$random" >"$dir/store-password"
    python3 -c "$random" >"$dir/kafka-password"
    python3 -c "$random" >"$dir/cassandra-password"
    password="$(cat "$dir/store-password")"
    local name
    for name in server wrong-name; do
        openssl pkcs12 -export -in "$dir/$name.pem" -inkey "$dir/$name.key" -certfile "$dir/ca.pem" \
            -name "$name" -out "$dir/$name.p12" -passout "pass:$password"
    done
    "$keytool" -importcert -noprompt -alias ca -file "$dir/ca.pem" -keystore "$dir/truststore.p12" \
        -storetype PKCS12 -storepass "$password" >/dev/null 2>&1
    touch "$dir/.complete"
}

# Kafka: lines for server.properties, given the ports of the SASL_SSL, mutual-TLS and
# wrong-name listeners. The plaintext listener stays (first port) for the readiness probe and
# the broker's own traffic.
secure_kafka_properties() {
    local dir password kafka_password
    dir="$(secure_dir)"
    password="$(cat "$dir/store-password")"
    kafka_password="$(cat "$dir/kafka-password")"
    cat <<EOF
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL,WRONGNAME:SSL
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_sluice="$kafka_password";
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/server.p12
ssl.keystore.password=$password
ssl.key.password=$password
ssl.truststore.type=PKCS12
ssl.truststore.location=$dir/truststore.p12
ssl.truststore.password=$password
listener.name.mtls.ssl.client.auth=required
listener.name.wrongname.ssl.keystore.type=PKCS12
listener.name.wrongname.ssl.keystore.location=$dir/wrong-name.p12
listener.name.wrongname.ssl.keystore.password=$password
listener.name.wrongname.ssl.key.password=$password
EOF
}

# Kafka: the StorageTool format arguments that create user "sluice" for both SCRAM mechanisms.
secure_kafka_scram_users() {
    local kafka_password
    kafka_password="$(cat "$(secure_dir)/kafka-password")"
    printf '%s\n' --add-scram "SCRAM-SHA-256=[name=sluice,password=$kafka_password]" \
        --add-scram "SCRAM-SHA-512=[name=sluice,password=$kafka_password]"
}

# Cassandra: lines for cassandra.yaml: PasswordAuthenticator, and client connections over TLS
# only, with client certificates required.
secure_cassandra_yaml() {
    local dir password
    dir="$(secure_dir)"
    password="$(cat "$dir/store-password")"
    cat <<EOF
authenticator: PasswordAuthenticator
client_encryption_options:
  enabled: true
  optional: false
  keystore: $dir/server.p12
  keystore_password: $password
  truststore: $dir/truststore.p12
  truststore_password: $password
  store_type: PKCS12
  require_client_auth: true
EOF
}
