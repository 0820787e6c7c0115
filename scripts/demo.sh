#!/usr/bin/env bash
# The demo: the whole system with a simulated fleet; one device falls silent and is alerted.
set -euo pipefail
cd "$(dirname "$0")/.."

export TELECARE_DATABASE_URL="${TELECARE_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/telecare}"
export TELECARE_MQTT_URL="${TELECARE_MQTT_URL:-mqtt://127.0.0.1:1883}"
export TELECARE_API_PORT="${TELECARE_API_PORT:-8000}"
API="http://127.0.0.1:${TELECARE_API_PORT}"
DEVICES="${DEMO_DEVICES:-20}"
INTERVAL="${DEMO_INTERVAL:-10}"
tc=.venv/bin/telecare

say() { printf '==> [demo] %s\n' "$*"; }

db_name="${TELECARE_DATABASE_URL##*/}"
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '${db_name}'" | grep -q 1; then
  say "creating database ${db_name}"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE \"${db_name}\""
fi
say "schema"
$tc db upgrade

log=$(mktemp /tmp/telecare-demo.XXXXXX.log)
say "starting telecare run (ingest, alert engine, API); log: $log"
$tc run >"$log" 2>&1 &
service_pid=$!
trap 'say "stopping"; kill "$service_pid" 2>/dev/null; wait "$service_pid" 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 150); do
  curl -fs "$API/healthz" >/dev/null 2>&1 && break
  kill -0 "$service_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
curl -fs "$API/healthz" >/dev/null || { say "service did not become ready"; cat "$log"; exit 1; }

technician=$($tc token create --role technician --name demo-simulator 2>/dev/null | tail -n 1)
operator=$($tc token create --role operator --name demo-operator 2>/dev/null | tail -n 1)
silent_after=$((INTERVAL * 2))
window=$((INTERVAL * 2))

cat <<MSG

  Telecare demo is running.

    Operator console:  $API/
    sign in with:      $operator
    (keys: j/k move, a acknowledge, r resolve, Enter device, ? all keys; docs/CONSOLE.md)

    API:            $API/api/v1   (OpenAPI docs: $API/docs)
    event stream:   curl -N -H "Authorization: Bearer $operator" $API/api/v1/events
    metrics:        $API/metrics

  $DEVICES simulated hubs heartbeat every ${INTERVAL}s, each with a pendant and a smoke
  detector, and now and then raise an alarm (re-sent until the backend acknowledges it). The
  last hub's firmware hangs after ${silent_after}s; about ${window}s later (interval + grace) its
  heartbeat_missed alert appears in the console's queue, live, and here:

    curl -s -H "Authorization: Bearer $operator" "$API/api/v1/alerts?state=open"
    curl -s -H "Authorization: Bearer $operator" "$API/api/v1/alarms?limit=5"
    curl -s -H "Authorization: Bearer $operator" "$API/api/v1/devices?status=overdue"

  Scripted scenarios with a ground truth to check the backend against (docs/SIMULATOR.md):
    $tc simulate --list
    $tc simulate mass-outage --time-scale 6 --api-url $API --token $technician --report /tmp/outage.json
    $tc simulate --check /tmp/outage.json --api-url $API --token $technician

  Press Ctrl-C to stop.

MSG

# Print every alert as it is raised, so the silent device's alert shows up right here.
watch_alerts() {
  local seen="$log.alerts-seen"
  : >"$seen"
  while sleep 2; do
    curl -fs -H "Authorization: Bearer $operator" "$API/api/v1/alerts?state=open" 2>/dev/null |
      .venv/bin/python -c 'import json,sys
for a in json.load(sys.stdin)["items"]:
    print(a["id"], "ALERT", a["severity"].upper(), a["type"], "device", a["device_id"], "raised", a["raised_at"])' |
      while read -r id rest; do
        grep -qx "$id" "$seen" || { say "$rest"; echo "$id" >>"$seen"; }
      done
  done
}
watch_alerts &
watcher_pid=$!
trap 'say "stopping"; kill "$watcher_pid" "$service_pid" 2>/dev/null; wait "$service_pid" 2>/dev/null || true' EXIT INT TERM

$tc simulate --api-url "$API" --token "$technician" --devices "$DEVICES" \
  --interval "$INTERVAL" --silent 1 --silent-after "$silent_after" --prefix "demo" \
  --alarm-every "${DEMO_ALARM_EVERY:-600}" \
  ${DEMO_DURATION:+--duration "$DEMO_DURATION"}
