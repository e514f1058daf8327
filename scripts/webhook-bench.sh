#!/usr/bin/env bash
# Ingest with a webhook whose receiver never answers, against the same server without one,
# alternated so that both meet the same hours of this shared machine. The server (release,
# durable in a fresh directory, rate limits off, request logs for errors only) runs on core
# 0, the load tool on core 1. With a webhook, every tap has a keg that the load runs low
# and empty, and every burst-flagged pour joins an alert: messages that wait on the dead
# receiver (one attempt at a time, each cut at --webhook-timeout).
#
#   cargo build --release && scripts/webhook-bench.sh [RUNS=3] [DURATION=5]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3} duration=${2:-5}
PORT=${PORT:-18350}
DEAD=${DEAD:-18351}
work=$(mktemp -d)
server_pid= dead_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  [ -n "$dead_pid" ] && kill "$dead_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Accepts connections and never answers.
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $DEAD)); s.listen(1024); held = []
while True: held.append(s.accept()[0])
" &
dead_pid=$!

for i in $(seq "$runs"); do
  for side in none dead; do
    rm -rf "$work/data"
    taskset -c 0 target/release/altair-server --bind "127.0.0.1:$PORT" --data-dir "$work/data" \
      --rate-limit 0 --rate-limit-address 0 --request-log errors 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 100); do
      curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
      sleep 0.1
    done
    for tap in $(seq 1 64); do
      curl -fs -o /dev/null -X POST "http://127.0.0.1:$PORT/api/kegs" -H 'Content-Type: application/json' \
        -d "{\"tapId\": $tap, \"beverage\": \"Pils\", \"size\": \"euro-50\"}"
    done
    if [ "$side" = dead ]; then
      curl -fs -o /dev/null -X POST "http://127.0.0.1:$PORT/api/webhooks" -H 'Content-Type: application/json' \
        -d "{\"url\": \"http://127.0.0.1:$DEAD/\", \"events\": [\"alert.opened\", \"alert.acknowledged\", \"alert.resolved\", \"keg.tapped\", \"keg.finished\"]}"
      curl -fs -o /dev/null -X POST "http://127.0.0.1:$PORT/api/webhooks/1/test"
    fi
    echo "$side $(taskset -c 1 target/release/altair-client --server "http://127.0.0.1:$PORT" bench ingest -c 64 -d "$duration" | tail -n 1)"
    if [ "$side" = dead ]; then
      echo "   waiting: $(curl -fs "http://127.0.0.1:$PORT/api/webhooks/1/deliveries?page_size=1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pending"], "messages,", d["total"], "attempts")')"
    fi
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  done
done
