#!/usr/bin/env bash
# MQTT benchmarks (#28): pours published to a Mosquitto that the server reads
# (--mqtt-url), each matched with its delivery to a WebSocket subscriber of the server.
# Throughput: N messages as fast as the broker takes them (QoS 1, up to 1,000 in flight),
# pours/s from the first publish to the last delivery. Latency: 1,000 messages at 100/s,
# publish to delivery. Journal, then PostgreSQL; a fresh store and broker for each run.
# Server, broker (and PostgreSQL) on core 0, the tool on core 1.
# Usage: scripts/bench-mqtt.sh [RUNS=3] [N=100000] [OUT=dir]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
N=${N:-100000}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "bench: mosquitto is needed (apt-get install mosquitto)" >&2; exit 1; }
cargo build --release --quiet
server_bin=target/release/altair-server
# shellcheck source=scripts/pg-bench-lib.sh
source scripts/pg-bench-lib.sh
OUT=${OUT:-$out}
mkdir -p "$OUT"
broker_port=18831
start_broker() {
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\nmax_queued_messages 100000\n%s' \
    "$broker_port" "$([ "$(id -u)" = 0 ] && echo 'user root')" >"$work/mosquitto.conf"
  taskset -c "$SERVER_CORE" "$mosquitto" -c "$work/mosquitto.conf" 2>>"$work/mosquitto.log" &
  pids+=($!)
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$broker_port) 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: mosquitto did not start" >&2; exit 1
}
tool() { # port, args...
  local port=$1; shift
  taskset -c "$TOOL_CORE" target/release/altair-client --server "http://127.0.0.1:$port" bench "$@" | tail -n 1
}
connected() { # port
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$1/health" | grep -q '"connected":true' && return 0
    sleep 0.05
  done
  echo "bench: the server did not connect to the broker" >&2; exit 1
}
measure() { # port, label, store flags (a fresh store each run)...
  local port=$1 label=$2; shift 2
  for run in $(seq "$RUNS"); do
    for mode in throughput latency; do
      start_broker
      [ "$label" = postgres ] && fresh_db
      local flags=("$@")
      [ "$label" = journal ] && flags=(--data-dir "$work/journal-$run-$mode")
      start_server "$port" "${flags[@]}" --mqtt-url "mqtt://127.0.0.1:$broker_port" --mqtt-client-id bench
      connected "$port"
      if [ "$mode" = throughput ]; then
        tool "$port" mqtt --broker "127.0.0.1:$broker_port" -n "$N" >>"$OUT/mqtt_${label}_throughput.jsonl"
      else
        tool "$port" mqtt --broker "127.0.0.1:$broker_port" -n 1000 -r 100 >>"$OUT/mqtt_${label}_latency.jsonl"
      fi
      stop_servers
    done
  done
}

measure 18611 journal
echo "journal: done" >&2
measure 18612 postgres --database-url "$db_url"
echo "postgres: done" >&2

python3 - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def rows(name):
    return [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines() if l.strip()]
def cell(values, digits=1):
    m = statistics.median(values)
    return f"{m:,.{digits}f} ({min(values):,.{digits}f} to {max(values):,.{digits}f})"
print("| store | messages | pours/s end to end | delivered | at 100/s: delivery p50 ms | p99 ms | max ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
for store, label in (("journal", "journal"), ("postgres", "PostgreSQL")):
    t, l = rows(f"mqtt_{store}_throughput"), rows(f"mqtt_{store}_latency")
    print(f"| {label} | {t[0]['messages']:,} | {cell([x['pours_per_second'] for x in t], 0)} | "
          f"{min(x['delivered'] for x in t):,} | {cell([x['delivery_latency']['p50_ms'] for x in l], 2)} | "
          f"{cell([x['delivery_latency']['p99_ms'] for x in l], 2)} | {cell([x['delivery_latency']['max_ms'] for x in l], 2)} |")
PY
