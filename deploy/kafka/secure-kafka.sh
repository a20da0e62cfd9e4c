#!/usr/bin/env bash
# A local SECURED single-node Apache Kafka (KRaft) for trying and testing poa-filter against a cluster
# like a DSP's: TLS everywhere, SCRAM-SHA-512 users, mutual TLS, ACLs enforced. The plain broker of
# kafka.sh (make kafka-up) is not affected: this one has its own ports and data dir, and reuses
# kafka.sh's jar fetching, start, probe and stop.
#
# Usage: deploy/kafka/secure-kafka.sh {up|down|status|restart|reset|acls ARGS...}
#   up       make the certificates and users (first start only), start the broker, wait until it
#            answers the admin over SASL_SSL, write the clients' properties files
#   down     stop it;  status  is it running and answering;  restart  down + up, keeping data
#   reset    down + delete broker data, certificates and passwords (cached jars kept)
#   acls     run Kafka's AclCommand as the admin, e.g.
#            secure-kafka.sh acls --list
#            secure-kafka.sh acls --add --allow-principal User:worker --operation Read --topic T
#
# Listeners (all on 127.0.0.1):
#   KAFKA_SECURE_PORT             SASL_SSL, SCRAM-SHA-512 (default 9192)
#   KAFKA_MTLS_PORT               SSL with client certificates required (default 9193)
#   KAFKA_SECURE_CONTROLLER_PORT  KRaft controller, SSL with client certificates (default 9194)
# Data: KAFKA_SECURE_DATA_DIR (default <repo>/.kafka/secure). Heap: KAFKA_HEAP_OPTS (default
# "-Xms128m -Xmx512m"). KAFKA_START_TIMEOUT, KAFKA_STOP_TIMEOUT, JAVA_HOME, MVN as for kafka.sh.
#
# Users: admin (super user), worker, loader; each with a SCRAM password and a client certificate
# whose CN is the user name, so that the same ACLs apply on both listeners. The broker itself is
# User:broker (super user, certificate only). Authorizer: StandardAuthorizer, and nothing is allowed
# without an ACL (allow.everyone.if.no.acl.found=false).
#
# Files under the data dir (private to the user running the script):
#   security/             CA, certificates, keys, broker keystore, passwords (<user>.password)
#   clients/<user>.properties       librdkafka (kcat -F, KAFKA_CLIENT_CONFIG) for SASL_SSL
#   clients/<user>-mtls.properties  the same for the mutual-TLS listener
#   clients/admin-java.properties   Java clients (kafka-acls, kafka-topics ... --command-config)
#   libs/, kraft-data/, logs/, server.properties, kafka.pid as for kafka.sh
set -euo pipefail

SECURE_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
KAFKA_PORT=${KAFKA_SECURE_PORT:-9192}
KAFKA_MTLS_PORT=${KAFKA_MTLS_PORT:-9193}
KAFKA_CONTROLLER_PORT=${KAFKA_SECURE_CONTROLLER_PORT:-9194}
KAFKA_DATA_DIR=${KAFKA_SECURE_DATA_DIR:-$(cd -- "$SECURE_DIR/../.." && pwd -P)/.kafka/secure}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
# shellcheck source=deploy/kafka/kafka.sh
source "$SECURE_DIR/kafka.sh"

readonly USERS=(admin worker loader)
readonly SECURITY_DIR=$DATA_DIR/security
readonly CLIENTS_DIR=$DATA_DIR/clients
readonly ADMIN_JAVA_CONFIG=$CLIENTS_DIR/admin-java.properties
PROBE_CONFIG=$ADMIN_JAVA_CONFIG

log() { printf 'secure-kafka.sh: %s\n' "$*" >&2; }
die() {
  printf 'secure-kafka.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

validate_secure_settings() {
  [[ $KAFKA_MTLS_PORT =~ ^[0-9]+$ ]] && ((KAFKA_MTLS_PORT >= 1 && KAFKA_MTLS_PORT <= 65535)) ||
    die "KAFKA_MTLS_PORT=$KAFKA_MTLS_PORT is not a valid TCP port"
  [[ $KAFKA_MTLS_PORT != "$KAFKA_PORT" && $KAFKA_MTLS_PORT != "$KAFKA_CONTROLLER_PORT" ]] ||
    die "KAFKA_MTLS_PORT ($KAFKA_MTLS_PORT) must differ from the SASL_SSL and controller ports"
}

check_ports_free() {
  local port
  for port in "$KAFKA_PORT" "$KAFKA_MTLS_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then
      port_owner "$port" >&2
      die "port $port on $HOST is already in use: choose other ports with KAFKA_SECURE_PORT," \
        "KAFKA_MTLS_PORT, KAFKA_SECURE_CONTROLLER_PORT"
    fi
  done
}

password_of() { cat -- "$SECURITY_DIR/$1.password"; }

# One CA; a certificate per user (CN = user) and for the broker (CN=broker, valid for 127.0.0.1 and
# localhost). Made once: a restart keeps them, 'reset' deletes them.
make_certificates() {
  [[ -f $SECURITY_DIR/.complete ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "no 'openssl' on PATH: it makes the local certificates"
  rm -rf -- "$SECURITY_DIR"
  mkdir -p -- "$SECURITY_DIR"
  chmod 700 "$SECURITY_DIR"
  log "making a local CA, certificates and passwords in $SECURITY_DIR ..."
  (
    cd -- "$SECURITY_DIR"
    umask 077
    local name ssl_log=openssl.log
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=poa-filter local CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout ca.key -out ca.pem >"$ssl_log" 2>&1
    for name in broker "${USERS[@]}"; do
      openssl rand -hex 24 >"$name.password"
      if [[ $name == broker ]]; then
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$name.ext"
      else
        printf 'extendedKeyUsage=clientAuth\n' >"$name.ext"
      fi
      openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$name" -keyout "$name.key" -out "$name.csr" \
        >>"$ssl_log" 2>&1
      openssl x509 -req -sha256 -days 825 -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -extfile "$name.ext" -out "$name.pem" >>"$ssl_log" 2>&1
    done
    openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key -certfile ca.pem \
      -passout file:broker.password -out broker.p12 >>"$ssl_log" 2>&1
    touch .complete
  ) || die "making the certificates failed (see $SECURITY_DIR/openssl.log)"
}

# The plain broker's configuration, then the security settings (a later key wins in a properties file).
eval "plain_$(declare -f render_config)"
render_config() {
  make_certificates
  plain_render_config
  local broker_password
  broker_password=$(password_of broker)
  (
    umask 077
    cat >>"$CONFIG_FILE" <<EOF

############################# Security (secure-kafka.sh) #############################
listeners=SASL_SSL://$HOST:$KAFKA_PORT,MTLS://$HOST:$KAFKA_MTLS_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$HOST:$KAFKA_PORT,MTLS://$HOST:$KAFKA_MTLS_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:SSL
inter.broker.listener.name=MTLS
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.mtls.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
ssl.keystore.type=PKCS12
ssl.keystore.location=$SECURITY_DIR/broker.p12
ssl.keystore.password=$broker_password
ssl.key.password=$broker_password
ssl.truststore.type=PEM
ssl.truststore.location=$SECURITY_DIR/ca.pem
# A certificate's CN is the principal: CN=worker is User:worker, on either listener.
ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:broker
EOF
  )
  chmod 600 "$CONFIG_FILE"
  write_client_configs
}

write_client_configs() {
  mkdir -p -- "$CLIENTS_DIR"
  chmod 700 "$CLIENTS_DIR"
  local user
  (
    umask 077
    for user in "${USERS[@]}"; do
      cat >"$CLIENTS_DIR/$user.properties" <<EOF
# librdkafka client configuration of User:$user (KAFKA_CLIENT_CONFIG, kcat -F).
# Brokers: KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=$user
sasl.password=$(password_of "$user")
ssl.ca.location=$SECURITY_DIR/ca.pem
EOF
      cat >"$CLIENTS_DIR/$user-mtls.properties" <<EOF
# librdkafka client configuration of User:$user over mutual TLS (KAFKA_CLIENT_CONFIG, kcat -F).
# Brokers: KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_MTLS_PORT
security.protocol=SSL
ssl.ca.location=$SECURITY_DIR/ca.pem
ssl.certificate.location=$SECURITY_DIR/$user.pem
ssl.key.location=$SECURITY_DIR/$user.key
EOF
    done
    {
      echo "# Java clients (kafka-acls, kafka-topics, ... --command-config) as User:admin over SASL_SSL."
      echo "security.protocol=SASL_SSL"
      echo "sasl.mechanism=SCRAM-SHA-512"
      echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required" \
        "username=\"admin\" password=\"$(password_of admin)\";"
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.location=$SECURITY_DIR/ca.pem"
      grep -v '^#' "$SCRIPT_DIR/admin-probe.properties"
    } >"$ADMIN_JAVA_CONFIG"
  )
}

# The SCRAM users exist from the first start (stored in the cluster metadata when it is formatted).
eval "plain_$(declare -f format_storage)"
format_storage() {
  local user
  FORMAT_ARGS=(--standalone)
  for user in "${USERS[@]}"; do
    FORMAT_ARGS+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(password_of "$user")]")
  done
  plain_format_storage
}

cmd_acls() {
  [[ -f $ADMIN_JAVA_CONFIG ]] || die "no $ADMIN_JAVA_CONFIG: start the broker with '$0 up' first"
  require_java
  run_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$ADMIN_JAVA_CONFIG" "$@"
}

secure_reset() {
  cmd_reset
  rm -rf -- "$SECURITY_DIR" "$CLIENTS_DIR"
  log "certificates, passwords and client configurations deleted"
}

secure_main() {
  [[ $# -ge 1 ]] || usage
  validate_settings
  validate_secure_settings
  case $1 in
    up)
      take_lock
      cmd_up
      log "clients: KAFKA_CLIENT_CONFIG=$CLIENTS_DIR/<admin|worker|loader>.properties" \
        "KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT (or <user>-mtls.properties with $HOST:$KAFKA_MTLS_PORT)"
      ;;
    down)
      take_lock
      cmd_down
      ;;
    status) cmd_status ;;
    restart)
      take_lock
      cmd_down
      cmd_up
      ;;
    reset)
      take_lock
      secure_reset
      ;;
    acls)
      shift
      cmd_acls "$@"
      ;;
    *) usage ;;
  esac
}

secure_main "$@"
