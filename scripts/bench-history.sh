#!/usr/bin/env bash
# History and export benchmarks (#26): with 1,000,000 pours spread over 400 days on 20
# taps, `GET /api/history` for a year (by day by beverage, by day by tap, by month by
# glass), then, on a freshly restarted server, `GET /api/beers/export` as CSV and NDJSON
# with the server's RSS sampled before and every 20 ms during the stream. Journal, then
# PostgreSQL. Server (and PostgreSQL) on core 0, the tool on core 1; RUNS timings of each
# on one filled store.
# Usage: scripts/bench-history.sh [RUNS=3] [POURS=1000000] [OUT=dir]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
POURS=${POURS:-1000000}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
cargo build --release --quiet
server_bin=target/release/altair-server
# shellcheck source=scripts/pg-bench-lib.sh
source scripts/pg-bench-lib.sh
OUT=${OUT:-$out}
mkdir -p "$OUT"
tool() { # port, args...
  local port=$1; shift
  taskset -c "$TOOL_CORE" target/release/altair-client --server "http://127.0.0.1:$port" bench "$@" | tail -n 1
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# One export with the server's RSS before and its peak during; one JSON line.
export_run() { # port, format
  local pid=${pids[-1]} before peak=0 sampler result
  before=$(rss_kb "$pid")
  ( while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid"; sleep 0.02; done ) >"$work/rss" &
  sampler=$!
  result=$(tool "$1" export --format "$2")
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  peak=$(sort -n "$work/rss" | tail -n 1)
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["rss_before_kb"]=int(sys.argv[2]); r["rss_peak_kb"]=int(sys.argv[3]); print(json.dumps(r))' \
    "$result" "$before" "${peak:-$before}"
}
measure() { # port, label, store flags...
  local port=$1 label=$2; shift 2
  start_server "$port" "$@"
  tool "$port" history -n "$POURS" -q 1 >/dev/null # fills the store once
  for _ in $(seq "$RUNS"); do tool "$port" history -n "$POURS" -q 300 >>"$OUT/history_$label.jsonl"; done
  # A fresh start on the same store: the exports' RSS is not hidden in a heap that the
  # filling and the history already grew.
  stop_servers
  start_server "$port" "$@"
  for _ in $(seq "$RUNS"); do
    export_run "$port" csv >>"$OUT/export_csv_$label.jsonl"
    export_run "$port" ndjson >>"$OUT/export_ndjson_$label.jsonl"
  done
  stop_servers
}

measure 18601 journal --data-dir "$work/journal"
echo "journal: done" >&2

fresh_db
measure 18602 postgres --database-url "$db_url"
echo "postgres: done" >&2

python3 - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def rows(name):
    return [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines() if l.strip()]
def cell(values, digits=2):
    m = statistics.median(values)
    return f"{m:,.{digits}f} ({min(values):,.{digits}f} to {max(values):,.{digits}f})"
print("| store | stored pours | a year by day by beverage p50 ms | p99 ms | by day by tap p50 ms | p99 ms | by month by glass p50 ms | p99 ms |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for store, label in (("journal", "journal"), ("postgres", "PostgreSQL")):
    r = rows(f"history_{store}")
    print(f"| {label} | {r[0]['stored']:,} | " + " | ".join(
        f"{cell([x[k]['p50_ms'] for x in r])} | {cell([x[k]['p99_ms'] for x in r])}" for k in ("by_beverage", "by_tap", "by_month")) + " |")
print()
print("| store | format | rows | MB | rows/s | first byte ms | server RSS growth MB |")
print("|---|---|---:|---:|---:|---:|---:|")
for store, label in (("journal", "journal"), ("postgres", "PostgreSQL")):
    for fmt in ("csv", "ndjson"):
        r = rows(f"export_{fmt}_{store}")
        growth = [(x["rss_peak_kb"] - x["rss_before_kb"]) / 1024 for x in r]
        print(f"| {label} | {fmt} | {r[0]['rows']:,} | {r[0]['bytes'] / 1e6:,.0f} | {cell([x['rows_per_second'] for x in r], 0)} | "
              f"{cell([x['first_byte_ms'] for x in r], 1)} | {cell(growth, 1)} |")
PY
