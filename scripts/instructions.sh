#!/usr/bin/env bash
# Instructions per POST in the server, counted by callgrind: unlike pours/s on this shared
# machine, the count does not move with the neighbours, so two commits can be compared
# from different hours. Usage: scripts/instructions.sh [SECONDS=10]
# KEGS=1 taps a 1,000 L keg on each of the load tool's 16 taps first, so that every pour
# draws from a keg that lasts the run (the tool's pours from one tap come milliseconds
# apart: each is also a burst).
#
# The server runs under valgrind on core 0 (in memory, request logs for errors only); the
# load tool posts with 16 connections from core 1. The count includes start-up and
# shutdown, a few million instructions: compare runs of the same length.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_=${1:-10}
PORT=${PORT:-18339}
command -v valgrind >/dev/null || { echo "instructions: valgrind is needed" >&2; exit 1; }
out=$(mktemp -d)
trap 'pkill -f "altair-server --bind 127.0.0.1:$PORT" 2>/dev/null || true; rm -rf "$out"' EXIT
cargo build --release --quiet
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
  target/release/altair-server --bind "127.0.0.1:$PORT" --rate-limit 0 --rate-limit-address 0 \
  --request-log errors --ephemeral 2>"$out/valgrind.log" &
server=$!
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.2
done
if [ "${KEGS:-0}" = 1 ]; then
  for tap in $(seq 16); do
    curl -fs -o /dev/null -H 'Content-Type: application/json' \
      -d "{\"tapId\": $tap, \"beverage\": \"Pils\", \"sizeMl\": 1000000}" \
      "http://127.0.0.1:$PORT/api/kegs"
  done
fi
pours=$(taskset -c 1 target/release/altair-client --server "http://127.0.0.1:$PORT" bench ingest -c 16 -d "$SECONDS_" |
  tail -n 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["pours"])')
kill -TERM "$server"
wait "$server" || true
total=$(awk '/I *refs:/ {gsub(",", "", $NF); print $NF}' "$out/valgrind.log")
echo "{\"pours\": $pours, \"instructions\": $total, \"instructions_per_pour\": $((total / pours))}"
