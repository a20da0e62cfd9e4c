#!/usr/bin/env bash
# `make demo`: a simulated firmware campaign through a real poa-filter worker on the local broker.
# Loads a simulated estate with the bulk loaders, plays the scenario (and a small one written as DUIS documents),
# starts the worker on it, prints the summary, then stops the worker and the broker (KEEP_RUNNING=1 leaves both
# running).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
RUN="demo-$(date +%Y%m%d-%H%M%S)"
OUT="demo-output/$RUN"
PORT="${POA_METRICS_PORT:-9108}"
HOMES=500  # two postcode sectors of about 250 homes
DUIS_HOMES=40  # the smallest estate that holds every case, written as DUIS
mkdir -p "$OUT"

# Each run gets its own topics and consumer group, so a second demo never re-reads the first one.
export POA_APP_ID="poa-filter-$RUN"
export POA_DATA_DIR=".state/$RUN"
export POA_METRICS_PORT="$PORT"
for pair in SERVICE_REQUESTS:dsp.service-requests ACTIVATION_OUTCOMES:dsp.activation-outcomes \
            ALERTS:dsp.alerts INVENTORY:dsp.inventory TRACKED_DEVICES:dsp.tracked-devices \
            DNO_ALERTS:dno.alerts SUPPRESSED:dsp.alerts.suppressed DEAD_LETTER:poa-filter.dead-letter \
            CONTROL:poa-filter.control SHADOW:dsp.alerts.shadow RELEASED:dsp.alerts.released; do
  export "POA_TOPIC_${pair%%:*}=$RUN.${pair#*:}"
done

worker_pid=""
finish() {
  status=$?
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    if [ "${KEEP_RUNNING:-0}" = 1 ]; then
      echo "worker still running (pid $worker_pid), metrics on http://127.0.0.1:$PORT/metrics"
    else
      kill -TERM "$worker_pid"; wait "$worker_pid" 2>/dev/null || true
    fi
  fi
  if [ "${KEEP_RUNNING:-0}" != 1 ]; then
    bash deploy/kafka/kafka.sh down >/dev/null || true
    echo "worker and broker stopped (KEEP_RUNNING=1 make demo leaves them running)"
  fi
  exit "$status"
}
trap finish EXIT

echo "== 1. simulated estate: $HOMES homes in postcode sectors, CSVs in $OUT, bulk-loaded as the tracked list and inventory"
echo "== 2. a firmware campaign day played onto the DSP topics: activations, cancellations, failures, OTA-caused AD1s,"
echo "      genuine outages inside activation windows (with the ESMEs' 8F35/8F36) and a storm across a postcode sector"
# Played before the worker starts: the campaign is dated in the past, and played live its evidence would reach
# Kafka long after its event time, later than the DSP promises (contract rule 7); on a backlog the worker
# reads every partition past each AD1's t + A first, and decides as it would have live.
"$BIN/poa-filter" simulate --homes "$HOMES" --seed 1 --out "$OUT"

echo "== 2b. the same kind of campaign for $DUIS_HOMES more homes, written as DUIS: the DSP's own XML on the same topics"
echo "      (SR 11.3 of variants 4, 5 and 7 with signed GBCS pre-commands, device responses and 8F66/8F67 on the outcome"
echo "      topic, DCC's AD1s and the ESMEs' 8F35/8F36 device alerts), each stamped with its received_at"
# Dated three days ago, so that its Kafka timestamps (a DUIS record's received_at) are recent: the worker's
# housekeeping purges what the topics' 31-day retention would have removed.
DUIS_BASE=$("$BIN/python" -c 'import datetime as d; print(f"{d.datetime.now(d.UTC).date() - d.timedelta(days=3)}T08:00:00Z")')
"$BIN/poa-filter" simulate --format duis --homes "$DUIS_HOMES" --seed 2 --base-time "$DUIS_BASE" --out "$OUT/duis"
echo "      poa-filter publish-duis puts DUIS files on the topic each belongs on, and refuses what the filter would"
echo "      dead-letter, e.g. a document with a DOCTYPE:"
printf '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>' >"$OUT/hostile.xml"
"$BIN/poa-filter" publish-duis "$OUT/hostile.xml" 2>&1 | sed 's/^/      /' || true

echo "== 3. starting the worker on that backlog (log: $OUT/worker.log)"
"$BIN/poa-filter" worker >"$OUT/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$worker_pid" 2>/dev/null; then echo "the worker exited; its log:"; tail -30 "$OUT/worker.log"; exit 1; fi
  sleep 0.5
done
curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null || { echo "worker not ready after 60 s; log:"; tail -30 "$OUT/worker.log"; exit 1; }

echo "== 4. what the filter did"
"$BIN/poa-filter" demo-summary --expected "$OUT/expected.json" --expected "$OUT/duis/expected.json" --timeout 120
echo
echo "metrics: http://127.0.0.1:$PORT/metrics (poa_alerts_total, poa_dead_letters_total, poa_held_alerts, ...):"
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^poa_(alerts_total|dead_letters_total|tracked_devices|activation_windows)' \
  | grep -v ' 0\.0$' || true

# One suppressed alert of the campaign, and its HAN, to show the operators' tools on.
read -r ALERT_ID CHF < <("$BIN/python" - "$OUT/expected.json" <<'PY'
import json, sys
alerts = json.load(open(sys.argv[1]))["alerts"]
first = next(a for a in alerts if a["expected"] == "suppress")
print(first["alert_id"], first["key"])
PY
)
echo
echo "== 5. why was alert $ALERT_ID not sent to the DNO? (poa-filter audit, then poa-filter explain)"
"$BIN/poa-filter" audit "$ALERT_ID" || true
AT=$("$BIN/poa-filter" audit "$ALERT_ID" --json | "$BIN/python" -c '
import json, sys
def received_at(node):
    if isinstance(node, dict):
        return node.get("received_at") or next(filter(None, map(received_at, node.values())), None)
    if isinstance(node, list):
        return next(filter(None, map(received_at, node)), None)
    return None
print(received_at(json.load(sys.stdin)) or "")')
echo
"$BIN/poa-filter" explain "$CHF" ${AT:+--at "$AT"} || true

echo
echo "== 6. rollout: the operator's mode switch (every worker, from a time on; see README 'Rollout and recovery')"
"$BIN/poa-filter" mode show || true
cat <<TXT
A new deployment would run in shadow first, forwarding everything and recording on $POA_TOPIC_SHADOW
what it would have suppressed:
  $BIN/poa-filter mode shadow --reason "first weeks: compare with what DNOs find on site"
and filter once trusted (the kill switch is 'mode pass-through'):
  $BIN/poa-filter mode filter --reason "shadow results reviewed"
Alerts wrongly suppressed can be sent after the fact, each at most once:
  $BIN/poa-filter release --from TIME --to TIME --esme ID --reason "..." --dry-run
(these commands use this run's topics when run with the variables exported above; KEEP_RUNNING=1 make demo
keeps the worker up to try them).
TXT
