#!/usr/bin/env bash
# A local three-node Apache Kafka cluster (KRaft, each node a combined broker + controller, three JVMs)
# for trying and testing poa-filter as a replicated production cluster runs it: replication factor 3,
# min.insync.replicas=2 (topics and the transaction state log), no unclean leader election. Reuses
# kafka.sh's jar fetching, start, probe and stop, one node at a time; the plain broker of kafka.sh
# (make kafka-up) is not affected.
#
# Usage: deploy/kafka/cluster.sh {up|down|status|reset} [NODE]
#        deploy/kafka/cluster.sh kill NODE
#   up [NODE]     start every node (or one: e.g. after 'kill') and wait until it is unfenced
#   down [NODE]   stop every node (or one) cleanly; SIGKILL after KAFKA_STOP_TIMEOUT s
#   kill NODE     SIGKILL one node at once (a crash: no clean shutdown, no leader hand-over)
#   status        each node's state; exit 0 when all three answer
#   reset         down + delete the cluster's data (cached jars kept)
# NODE is 1, 2 or 3 (its node.id).
#
# Environment (all optional):
#   KAFKA_CLUSTER_PORTS             client listeners of nodes 1,2,3 (default 9292,9293,9294)
#   KAFKA_CLUSTER_CONTROLLER_PORTS  controller listeners of nodes 1,2,3 (default 9392,9393,9394)
#   KAFKA_CLUSTER_DATA_DIR          jars and node-1/ node-2/ node-3/ (default <repo>/.kafka/cluster)
#   KAFKA_HEAP_OPTS                 heap of each node (default "-Xms128m -Xmx512m")
#   KAFKA_START_TIMEOUT, KAFKA_STOP_TIMEOUT, JAVA_HOME, MVN as for kafka.sh
# Clients: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9292,127.0.0.1:9293,127.0.0.1:9294
set -euo pipefail

CLUSTER_SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
KAFKA_DATA_DIR=${KAFKA_CLUSTER_DATA_DIR:-$(cd -- "$CLUSTER_SCRIPT_DIR/../.." && pwd -P)/.kafka/cluster}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
IFS=, read -r -a NODE_PORTS <<<"${KAFKA_CLUSTER_PORTS:-9292,9293,9294}"
IFS=, read -r -a NODE_CONTROLLER_PORTS <<<"${KAFKA_CLUSTER_CONTROLLER_PORTS:-9392,9393,9394}"
KAFKA_PORT=${NODE_PORTS[0]}
KAFKA_CONTROLLER_PORT=${NODE_CONTROLLER_PORTS[0]}
# shellcheck source=deploy/kafka/kafka.sh
source "$CLUSTER_SCRIPT_DIR/kafka.sh"

readonly NODES=(1 2 3)
readonly CLUSTER_DIR=$DATA_DIR
LIBS_DIR=$CLUSTER_DIR/libs # one copy of the jars for the three nodes

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
  printf 'cluster.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

validate_cluster_settings() {
  ((${#NODE_PORTS[@]} == 3 && ${#NODE_CONTROLLER_PORTS[@]} == 3)) ||
    die "KAFKA_CLUSTER_PORTS and KAFKA_CLUSTER_CONTROLLER_PORTS must each list three ports"
  local port
  for port in "${NODE_PORTS[@]}" "${NODE_CONTROLLER_PORTS[@]}"; do
    [[ $port =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) || die "$port is not a valid TCP port"
  done
  (($(printf '%s\n' "${NODE_PORTS[@]}" "${NODE_CONTROLLER_PORTS[@]}" | sort -u | wc -l) == 6)) ||
    die "the six cluster ports must all differ"
}

# The cluster id and each node's metadata directory id, chosen once: every node is formatted with the
# same three initial controllers (a dynamic KRaft quorum, KIP-853).
CLUSTER_ENV=$CLUSTER_DIR/cluster.env
INITIAL_CONTROLLERS=
cluster_identity() {
  if [[ ! -f $CLUSTER_ENV ]]; then
    mkdir -p -- "$CLUSTER_DIR/logs"
    local n ids=()
    for n in 0 "${NODES[@]}"; do
      ids+=("$(run_tool kafka.tools.StorageTool random-uuid 2>>"$CLUSTER_DIR/logs/storage-format.log" |
        tr -d '[:space:]')")
    done
    printf 'CLUSTER_ID=%s\nDIRECTORY_IDS=(%s %s %s)\n' "${ids[@]}" >"$CLUSTER_ENV.partial"
    mv -- "$CLUSTER_ENV.partial" "$CLUSTER_ENV"
  fi
  local CLUSTER_ID DIRECTORY_IDS
  # shellcheck disable=SC1090 # written just above
  source "$CLUSTER_ENV"
  KRAFT_CLUSTER_ID=$CLUSTER_ID
  local n entries=()
  for n in "${NODES[@]}"; do
    entries+=("$n@$HOST:${NODE_CONTROLLER_PORTS[n - 1]}:${DIRECTORY_IDS[n - 1]}")
  done
  INITIAL_CONTROLLERS=$(IFS=,; echo "${entries[*]}")
}

# Run a kafka.sh function for node $1: bash's dynamic scoping hands it this node's paths and ports.
as_node() {
  local n=$1
  shift
  [[ $n =~ ^[123]$ ]] || die "no node '$n': nodes are 1, 2 and 3"
  local DATA_DIR=$CLUSTER_DIR/node-$n
  local LOG_DIR=$DATA_DIR/logs KRAFT_DIR=$DATA_DIR/kraft-data PID_FILE=$DATA_DIR/kafka.pid
  local CONFIG_FILE=$DATA_DIR/server.properties
  local KAFKA_PORT=${NODE_PORTS[n - 1]} KAFKA_CONTROLLER_PORT=${NODE_CONTROLLER_PORTS[n - 1]}
  local BOOTSTRAP=$HOST:${NODE_PORTS[n - 1]} PROBE_NODE_ID=$n NODE_ID=$n
  local FORMAT_ARGS=(--initial-controllers "$INITIAL_CONTROLLERS")
  "$@"
}

# The plain broker's configuration, then what makes it node NODE_ID of a replicated cluster.
eval "plain_$(declare -f render_config)"
render_config() {
  plain_render_config
  local n voters=()
  for n in "${NODES[@]}"; do voters+=("$HOST:${NODE_CONTROLLER_PORTS[n - 1]}"); done
  cat >>"$CONFIG_FILE" <<EOF

############################# Three-node cluster (cluster.sh) #############################
node.id=$NODE_ID
controller.quorum.bootstrap.servers=$(IFS=,; echo "${voters[*]}")
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
EOF
}

node_args() {
  if [[ $# -eq 0 ]]; then printf '%s\n' "${NODES[@]}"; else printf '%s\n' "$1"; fi
}

cluster_up() {
  require_java
  mkdir -p -- "$CLUSTER_DIR/logs"
  DATA_DIR=$CLUSTER_DIR LOG_DIR=$CLUSTER_DIR/logs fetch_jars
  cluster_identity
  # In parallel: a node cannot finish starting before a majority of the controllers runs.
  local n pids=() failed=0
  for n in $(node_args "$@"); do
    as_node "$n" cmd_up &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || failed=1; done
  ((failed == 0)) || die "a node did not start (see its log above)"
  log "up: KAFKA_BOOTSTRAP_SERVERS=$(bootstrap_servers)"
}

bootstrap_servers() {
  local n servers=()
  for n in "${NODES[@]}"; do servers+=("$HOST:${NODE_PORTS[n - 1]}"); done
  (IFS=,; echo "${servers[*]}")
}

# In parallel: a node stopped after the others has no controller quorum left to shut down cleanly with.
cluster_down() {
  local n pids=() failed=0
  for n in $(node_args "$@"); do
    as_node "$n" cmd_down &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || failed=1; done
  ((failed == 0)) || die "a node did not stop"
}

node_kill() {
  local pid
  if ! pid=$(broker_pid); then
    log "node $NODE_ID is not running"
    return 0
  fi
  kill -KILL "$pid"
  local tries=0
  while kill -0 "$pid" 2>/dev/null && ((tries++ < 50)); do sleep 0.1; done
  rm -f -- "$PID_FILE"
  log "node $NODE_ID (pid $pid) killed"
}

cluster_status() {
  local n status=0
  for n in "${NODES[@]}"; do
    printf 'node %s: ' "$n"
    as_node "$n" cmd_status || status=1
  done
  return $status
}

cluster_main() {
  [[ $# -ge 1 && $# -le 2 ]] || usage
  validate_settings
  validate_cluster_settings
  local command=$1
  shift
  case $command in
    up)
      take_lock
      cluster_up "$@"
      ;;
    down)
      take_lock
      cluster_down "$@"
      ;;
    kill)
      [[ $# -eq 1 ]] || usage
      as_node "$1" node_kill
      ;;
    status) cluster_status ;;
    reset)
      take_lock
      cluster_down
      rm -rf -- "${NODES[@]/#/$CLUSTER_DIR/node-}" "$CLUSTER_ENV" "$CLUSTER_DIR/logs" "$CLUSTER_DIR/libs.partial"
      log "cluster data deleted from $CLUSTER_DIR (cached jars kept in $LIBS_DIR)"
      ;;
    *) usage ;;
  esac
}

cluster_main "$@"
