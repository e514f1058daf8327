#!/usr/bin/env bash
# Poured versus sold (#27): 1,000,000 pours and 1,000,000 sold lines over a year on 20
# taps (8 beverages), then `GET /api/variance` for the year by hour and by day. Each run
# starts from an empty store: the import is timed (`POST /api/sales`, files of 100,000
# lines) with the variance. Journal, then PostgreSQL. Server (and PostgreSQL) on core 0,
# the tool on core 1.
# Usage: scripts/bench-variance.sh [RUNS=3] [POURS=1000000] [LINES=1000000] [Q=100]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
POURS=${POURS:-1000000}
LINES=${LINES:-1000000}
Q=${Q:-100}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
cargo build --release --quiet --bin altair-server -p altair -p altair-client
server_bin=target/release/altair-server
# shellcheck source=scripts/pg-bench-lib.sh
source scripts/pg-bench-lib.sh
OUT=${OUT:-$out}
mkdir -p "$OUT"
tool() { # port, args...
  local port=$1; shift
  taskset -c "$TOOL_CORE" target/release/altair-client --server "http://127.0.0.1:$port" bench "$@" | tail -n 1
}
for run in $(seq "$RUNS"); do
  rm -rf "$work/journal"
  start_server 18701 --data-dir "$work/journal"
  tool 18701 variance -n "$POURS" -l "$LINES" -q "$Q" >>"$OUT/variance_journal.jsonl"
  stop_servers
  fresh_db
  start_server 18702 --database-url "$db_url"
  tool 18702 variance -n "$POURS" -l "$LINES" -q "$Q" >>"$OUT/variance_postgres.jsonl"
  stop_servers
  echo "run $run: done" >&2
done

python3 - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def rows(name):
    return [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines() if l.strip()]
def cell(values, digits=1):
    m = statistics.median(values)
    return f"{m:,.{digits}f} ({min(values):,.{digits}f} to {max(values):,.{digits}f})"
print("| store | pours | sold lines | import lines/s | a year by hour p50 ms | p99 ms | answer MB | by day p50 ms | p99 ms |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for store, label in (("journal", "journal"), ("postgres", "PostgreSQL")):
    r = rows(f"variance_{store}")
    print(f"| {label} | {r[0]['stored']:,} | {r[0]['imported']:,} | {cell([x['import_lines_per_second'] for x in r], 0)} | "
          f"{cell([x['by_hour']['p50_ms'] for x in r])} | {cell([x['by_hour']['p99_ms'] for x in r])} | "
          f"{r[0]['by_hour_bytes'] / 1e6:.1f} | {cell([x['by_day']['p50_ms'] for x in r])} | {cell([x['by_day']['p99_ms'] for x in r])} |")
PY
