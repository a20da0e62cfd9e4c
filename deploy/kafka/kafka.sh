#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft, combined broker + controller) for development,
# tests and demos of poa-filter. Needs only Java 17+ and Maven: the Kafka jars are fetched from
# Maven Central on first use (deploy/kafka/pom.xml) and cached under the data dir.
#
# Usage: deploy/kafka/kafka.sh {up|down|status|restart|reset}
#   up       start the broker and wait until it answers requests (no-op if already running)
#   down     stop it (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT s); no-op if not running
#   status   print whether it is running and answering; exit 0 if so, 1 otherwise
#   restart  down + up, keeping all data (for fault-tolerance tests)
#   reset    down + delete all broker data (topics, offsets, logs); the cached jars are kept
#
# Environment (all optional):
#   KAFKA_PORT             client listener on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default 9093)
#   KAFKA_DATA_DIR         jars, data, logs, pid file (default <repo>/.kafka)
#   KAFKA_HEAP_OPTS        broker JVM heap (default "-Xms256m -Xmx1g")
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 120)
#   KAFKA_STOP_TIMEOUT     seconds to wait for a clean shutdown before SIGKILL (default 30)
#   JAVA_HOME / MVN        Java installation / Maven command to use (default: java, mvn on PATH)
#
# Layout of the data dir:
#   libs/               jars (+ .complete marker naming the Kafka version and the pom checksum)
#   kraft-data/         log.dirs: topic partitions and the __cluster_metadata log
#   logs/server.log     broker log (log4j2, deploy/kafka/log4j2.xml); logs/stdout.log JVM console
#   server.properties   rendered from deploy/kafka/server.properties
#   kafka.pid           pid of the running broker
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)

readonly HOST=127.0.0.1
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
MVN=${MVN:-mvn}

# JVM options for the short-lived tools (StorageTool, probe): start fast, use little memory.
readonly TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
  printf 'kafka.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

# Absolute path without requiring the directory to exist (status/down must not create it).
abs_path() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

DATA_DIR=$(abs_path "${KAFKA_DATA_DIR:-$REPO_ROOT/.kafka}")
DATA_DIR=${DATA_DIR%/}
LIBS_DIR=$DATA_DIR/libs
LOG_DIR=$DATA_DIR/logs
KRAFT_DIR=$DATA_DIR/kraft-data # must match log.dirs in server.properties (relative to DATA_DIR)
PID_FILE=$DATA_DIR/kafka.pid
CONFIG_FILE=$DATA_DIR/server.properties
BOOTSTRAP=$HOST:$KAFKA_PORT

# What secure-kafka.sh and cluster.sh (which source this file) change for their brokers.
FORMAT_ARGS=(--standalone)                          # how format_storage joins the KRaft quorum
PROBE_CONFIG=$SCRIPT_DIR/admin-probe.properties     # admin client settings of the readiness probe
PROBE_NODE_ID=1                                     # the node.id the probe expects to see unfenced
KRAFT_CLUSTER_ID=                                   # the cluster id to format with (default: a new one)

KAFKA_VERSION=$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$SCRIPT_DIR/pom.xml")
[[ -n $KAFKA_VERSION ]] || die "cannot read <kafka.version> from $SCRIPT_DIR/pom.xml"

validate_settings() {
  local name value
  for name in KAFKA_PORT KAFKA_CONTROLLER_PORT; do
    value=${!name}
    if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
      die "$name=$value is not a valid TCP port"
    fi
  done
  [[ $KAFKA_PORT != "$KAFKA_CONTROLLER_PORT" ]] ||
    die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ (both are $KAFKA_PORT)"
  for name in KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT; do
    [[ ${!name} =~ ^[0-9]+$ ]] || die "$name=${!name} is not a number of seconds"
  done
}

# ---------------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------------

JAVA=
require_java() {
  # Same rule as Kafka's own scripts: JAVA_HOME wins, else java on PATH.
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    JAVA=$JAVA_HOME/bin/java
  elif command -v java >/dev/null 2>&1; then
    JAVA=java
  else
    die "no 'java' on PATH (and JAVA_HOME not set): Kafka $KAFKA_VERSION needs Java 17 or newer" \
      "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
  fi
  local spec major
  spec=$("$JAVA" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = //p') || true
  major=${spec#1.}  # "1.8" -> "8"
  major=${major%%.*}
  [[ $major =~ ^[0-9]+$ ]] || die "cannot determine the Java version of '$JAVA'"
  ((major >= 17)) ||
    die "'$JAVA' is Java $spec; Kafka $KAFKA_VERSION brokers need Java 17 or newer" \
      "(set JAVA_HOME or put a newer java first on PATH)"
}

require_mvn() {
  command -v "$MVN" >/dev/null 2>&1 ||
    die "no '$MVN' on PATH: Maven is needed once to download the Kafka jars" \
      "(Debian/Ubuntu: apt-get install maven; or set MVN=/path/to/mvn)"
}

# ---------------------------------------------------------------------------------------------
# Jars, configuration, storage
# ---------------------------------------------------------------------------------------------

# The marker names the version and the pom's checksum, so that a half-finished download is never
# used and any change to pom.xml (e.g. a version bump) triggers a fresh download.
libs_marker() {
  printf 'kafka=%s pom-cksum=%s\n' "$KAFKA_VERSION" "$(cksum <"$SCRIPT_DIR/pom.xml" | cut -d' ' -f1)"
}

fetch_jars() {
  local want
  want=$(libs_marker)
  if [[ -f $LIBS_DIR/.complete && $(<"$LIBS_DIR/.complete") == "$want" ]]; then
    return 0
  fi
  require_mvn
  local partial=$DATA_DIR/libs.partial mvn_log=$LOG_DIR/maven-fetch.log
  rm -rf -- "$partial"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS_DIR (first run only) ..."
  # The plugin is named groupId:artifactId:goal (version from the pom's pluginManagement), not by
  # the 'dependency:' prefix: prefix lookup needs the network too and, offline, fails with a
  # misleading "No plugin found for prefix". -U retries downloads that failed before (Maven
  # caches failures in ~/.m2).
  if ! "$MVN" -B -q -U -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$partial" >"$mvn_log" 2>&1; then
    log "Maven output (last 20 lines of $mvn_log):"
    sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | tail -n 20 >&2
    if grep -Eqi 'UnknownHost|Connection refused|Connect to .* failed|timed out|No route to host|Network is unreachable|Could not transfer|PKIX|SSLHandshake|status code: 5[0-9][0-9]' "$mvn_log"; then
      die "cannot download from Maven Central (https://repo.maven.apache.org): check the network," \
        "proxy settings or mirror (~/.m2/settings.xml); then run 'up' again"
    fi
    die "downloading the Kafka $KAFKA_VERSION jars with Maven failed (see $mvn_log)"
  fi
  [[ -f $partial/kafka_2.13-$KAFKA_VERSION.jar && -f $partial/kafka-tools-$KAFKA_VERSION.jar ]] ||
    die "Maven finished but the Kafka $KAFKA_VERSION jars are not in $partial (see $mvn_log)"
  printf '%s\n' "$want" >"$partial/.complete"
  rm -rf -- "$LIBS_DIR"
  mv -- "$partial" "$LIBS_DIR"
  log "jars ready ($(find "$LIBS_DIR" -name '*.jar' | wc -l | tr -d ' ') files)"
}

# Run a Kafka command-line class with the cached jars, quiet logging, in the data dir
# (server.properties uses paths relative to it).
run_tool() {
  (cd -- "$DATA_DIR" &&
    "$JAVA" "${TOOL_JVM_OPTS[@]}" -Dlog4j2.configurationFile="$SCRIPT_DIR/tools-log4j2.xml" \
      -cp "$LIBS_DIR/*" "$@")
}

# Render the template every time, so edits to deploy/kafka/server.properties take effect on the
# next start. Plain bash substitution: no sed escaping issues.
render_config() {
  local text
  text=$(<"$SCRIPT_DIR/server.properties")
  text=${text//@KAFKA_PORT@/"$KAFKA_PORT"}
  text=${text//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}
  [[ $text != *@*@* ]] || die "unreplaced @PLACEHOLDER@ in $SCRIPT_DIR/server.properties"
  printf '# GENERATED by deploy/kafka/kafka.sh from deploy/kafka/server.properties: edit that.\n%s\n' \
    "$text" >"$CONFIG_FILE"
}

# Format the KRaft storage once: --standalone makes this node the single voter of a dynamic
# quorum (KIP-853). The ports may change later (tested: the voter updates its own endpoint).
format_storage() {
  if [[ -f $KRAFT_DIR/meta.properties ]]; then return 0; fi
  local cluster_id=$KRAFT_CLUSTER_ID format_log=$LOG_DIR/storage-format.log
  if [[ -z $cluster_id ]]; then
    cluster_id=$(run_tool kafka.tools.StorageTool random-uuid 2>"$format_log") ||
      { cat "$format_log" >&2; die "kafka.tools.StorageTool random-uuid failed"; }
  fi
  cluster_id=${cluster_id//[[:space:]]/}
  log "formatting KRaft storage in $KRAFT_DIR (cluster id $cluster_id) ..."
  if ! run_tool kafka.tools.StorageTool format "${FORMAT_ARGS[@]}" -t "$cluster_id" \
    -c "$CONFIG_FILE" >>"$format_log" 2>&1; then
    tail -n 30 "$format_log" >&2
    die "formatting the KRaft storage failed (see $format_log)"
  fi
}

# ---------------------------------------------------------------------------------------------
# Process and port checks
# ---------------------------------------------------------------------------------------------

# Print the pid of OUR broker if it is running. The pid must be alive AND be a kafka.Kafka JVM
# started for this data dir (tagged with -Dpoa.kafka.dir), so a stale pid file whose pid was
# reused by another process is never mistaken for the broker (nor killed by 'down').
broker_pid() {
  local pid args
  [[ -f $PID_FILE ]] || return 1
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/cmdline ]]; then
    args=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  else
    args=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
  fi
  [[ $args == *"-Dpoa.kafka.dir=$DATA_DIR "* && $args == *kafka.Kafka* ]] || return 1
  printf '%s\n' "$pid"
}

# Is something accepting TCP connections on 127.0.0.1:$1? (bash's /dev/tcp; no nc needed)
# shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash, on purpose
port_open() {
  if command -v timeout >/dev/null 2>&1; then
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
  else
    bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
  fi
}

# Who listens on port $1 (best effort, for the error message).
port_owner() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' || true
}

check_ports_free() {
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then
      log "listener on $HOST:$port:"
      port_owner "$port" >&2
      die "port $port on $HOST is already in use by another process (not the broker of" \
        "$DATA_DIR): stop it, or choose other ports with KAFKA_PORT / KAFKA_CONTROLLER_PORT"
    fi
  done
}

# A REAL request, not just an open port: DescribeCluster via the Admin client. The broker only
# appears in the answer once it is registered with the controller and unfenced, i.e. ready for
# produce/consume/transactions.
probe() {
  local out
  out=$(run_tool org.apache.kafka.tools.ClusterTool list-endpoints \
    --bootstrap-server "$BOOTSTRAP" --command-config "$PROBE_CONFIG" \
    2>/dev/null) || return 1
  # Expected line: "1  127.0.0.1  9092  null  unfenced  broker" (node.id 1 = this broker).
  grep -Eq "^${PROBE_NODE_ID}[[:space:]]+${HOST}[[:space:]]+${KAFKA_PORT}[[:space:]].*[[:space:]]unfenced[[:space:]]" <<<"$out"
}

# server.log is appended to across runs: remember where this start began, so that a failure
# shows the lines of THIS start only (stdout.log is truncated at every start).
SERVER_LOG_MARK=0
mark_server_log() {
  SERVER_LOG_MARK=0
  if [[ -f $LOG_DIR/server.log ]]; then
    SERVER_LOG_MARK=$(wc -c <"$LOG_DIR/server.log" | tr -d ' ')
  fi
}

show_logs() {
  if [[ -s $LOG_DIR/stdout.log ]]; then
    log "last 30 lines of $LOG_DIR/stdout.log:"
    tail -n 30 "$LOG_DIR/stdout.log" >&2
  fi
  local size=0
  [[ -f $LOG_DIR/server.log ]] && size=$(wc -c <"$LOG_DIR/server.log" | tr -d ' ')
  # A smaller file means log4j2 rolled it over: then show its current tail.
  ((size >= SERVER_LOG_MARK)) || SERVER_LOG_MARK=0
  if ((size > SERVER_LOG_MARK)); then
    log "last 30 lines of $LOG_DIR/server.log (this start):"
    tail -c +"$((SERVER_LOG_MARK + 1))" "$LOG_DIR/server.log" | tail -n 30 >&2
  fi
}

# Has the broker logged the end of its start-up (since this start began)?
logged_started() {
  [[ -f $LOG_DIR/server.log ]] &&
    tail -c +"$((SERVER_LOG_MARK + 1))" "$LOG_DIR/server.log" |
    grep -F 'Kafka Server started' >/dev/null # not grep -q: its early exit + pipefail = SIGPIPE
}

# Wait until the broker answers a real request; fail fast if its process dies meanwhile.
# Each probe is a JVM (~1.5 CPU-seconds), which on a small, busy machine slows the broker's own
# start-up: so probe only once the port is open AND the broker has logged that it started, or,
# in case the log says nothing (custom logging), after 15 s.
wait_ready() {
  local pid=$1 begin=$SECONDS
  local deadline=$((begin + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f -- "$PID_FILE"
      show_logs
      die "the broker (pid $pid) exited during start-up; see the log above"
    fi
    if port_open "$KAFKA_PORT" && { logged_started || ((SECONDS - begin >= 15)); } && probe; then
      return 0
    fi
    sleep 0.5
  done
  show_logs
  die "the broker (pid $pid) did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s;" \
    "it is still running: check the log, or stop it with '$0 down'"
}

# Serialise concurrent invocations on the same data dir (e.g. parallel test jobs running
# 'make kafka-up'). flock is optional (util-linux); without it we simply do not lock.
take_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  mkdir -p -- "$DATA_DIR"
  exec 9>"$DATA_DIR/.lock"
  flock -w 180 9 || die "another kafka.sh is busy with $DATA_DIR (lock $DATA_DIR/.lock)"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

cmd_up() {
  local pid started=$SECONDS
  require_java
  if pid=$(broker_pid); then
    # Already started (possibly still starting, by a concurrent 'up'): just wait for it.
    wait_ready "$pid"
    log "already running (pid $pid) on $BOOTSTRAP"
    return 0
  fi
  rm -f -- "$PID_FILE"
  check_ports_free
  mkdir -p -- "$DATA_DIR" "$LOG_DIR"
  fetch_jars
  render_config
  format_storage

  # setsid (when available): own session, so Ctrl-C in the terminal or a dying make/pytest parent
  # does not take the broker down. The child writes its own pid before exec'ing java, so the pid
  # file is right even if setsid has to fork. fd 9 (our lock) is closed for the broker.
  local -a detach=(nohup)
  if command -v setsid >/dev/null 2>&1; then detach+=(setsid); fi
  local -a heap
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  mark_server_log
  (
    cd -- "$DATA_DIR"
    # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner sh
    "${detach[@]}" sh -c 'echo $$ >"$0" && exec "$@"' "$PID_FILE" \
      "$JAVA" "-Dpoa.kafka.dir=$DATA_DIR" "${heap[@]}" -server \
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
      "-Dkafka.logs.dir=$LOG_DIR" "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2.xml" \
      -cp "$LIBS_DIR/*" kafka.Kafka server.properties \
      </dev/null >"$LOG_DIR/stdout.log" 2>&1 9>&- &
  )
  # The pid file is written by the child; give it a moment.
  local tries=0
  while [[ ! -s $PID_FILE ]] && ((tries++ < 25)); do sleep 0.2; done
  [[ -s $PID_FILE ]] || { show_logs; die "the broker process did not start (no pid file)"; }
  pid=$(<"$PID_FILE")
  log "starting Kafka $KAFKA_VERSION (pid $pid), waiting up to ${KAFKA_START_TIMEOUT}s for $BOOTSTRAP ..."
  wait_ready "$pid"
  log "Kafka $KAFKA_VERSION is up on $BOOTSTRAP (pid $pid, data $DATA_DIR, $((SECONDS - started))s)"
}

cmd_down() {
  local pid
  if ! pid=$(broker_pid); then
    rm -f -- "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping Kafka (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "no clean shutdown within ${KAFKA_STOP_TIMEOUT}s: sending SIGKILL" \
      "(the next start will recover the logs)"
    kill -KILL "$pid" 2>/dev/null || true
    local tries=0
    while kill -0 "$pid" 2>/dev/null && ((tries++ < 50)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then die "pid $pid survived SIGKILL (stuck in the kernel?)"; fi
  fi
  rm -f -- "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if ! pid=$(broker_pid); then
    echo "not running"
    return 1
  fi
  require_java
  if port_open "$KAFKA_PORT" && probe; then
    echo "running (pid $pid) on $BOOTSTRAP, Kafka $KAFKA_VERSION, data $DATA_DIR"
    return 0
  fi
  echo "process $pid is alive but not answering on $BOOTSTRAP (starting or unhealthy; see $LOG_DIR/server.log)"
  return 1
}

# Delete only what kafka.sh itself creates (never 'rm -rf $DATA_DIR': KAFKA_DATA_DIR could point
# anywhere). The jars in libs/ are kept: they are a download cache, not broker state.
cmd_reset() {
  cmd_down
  rm -rf -- "$KRAFT_DIR" "$LOG_DIR" "$CONFIG_FILE" "$PID_FILE" \
    "$DATA_DIR/libs.partial"
  log "broker data deleted from $DATA_DIR (cached jars kept in $LIBS_DIR)"
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0" >&2
  exit 2
}

main() {
  [[ $# -eq 1 ]] || usage
  validate_settings
  case $1 in
    # Separate statements, not '&&' chains: set -e is suspended inside functions called on the
    # left of '&&', and every step must abort on error.
    up)
      take_lock
      cmd_up
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
      cmd_reset
      ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

# Sourced (by secure-kafka.sh, cluster.sh), it only defines its functions for them to reuse.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
