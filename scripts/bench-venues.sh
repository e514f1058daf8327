#!/usr/bin/env bash
# The chain's benchmarks (#25): a bar's page load and `GET /api/report?venue=` with 50
# venues of 20 taps and 1,000,000 stored pours (journal, then PostgreSQL), and fan-out to
# 10 venues x 100 subscribers beside 1,000 unfiltered ones. Server (and PostgreSQL) on
# core 0, the load tool on core 1; RUNS runs of each, each a JSON line in $OUT.
# Usage: scripts/bench-venues.sh [RUNS=3] [POURS=1000000] [DURATION=10] [OUT=dir]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
POURS=${POURS:-1000000}
DURATION=${DURATION:-10}
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

# A bar's page on the journal: filled once, timed RUNS times.
start_server 18501 --data-dir "$work/journal"
for _ in $(seq "$RUNS"); do tool 18501 venue-page -n "$POURS" -q 1000 >>"$OUT/page_journal.jsonl"; done
stop_servers
echo "venue page, journal: done" >&2

# The same on PostgreSQL.
fresh_db
start_server 18502 --database-url "$db_url"
for _ in $(seq "$RUNS"); do tool 18502 venue-page -n "$POURS" -q 1000 >>"$OUT/page_postgres.jsonl"; done
stop_servers
echo "venue page, postgres: done" >&2

# Fan-out: 1,000 subscribers of everything, then 10 venues x 100, at 100 pours/s.
for i in $(seq "$RUNS"); do
  start_server 18503 --ephemeral
  tool 18503 fanout -s 1000 -r 100 -d "$DURATION" >>"$OUT/fanout_all.jsonl"
  stop_servers
  start_server 18503 --ephemeral
  tool 18503 fanout -s 1000 -r 100 -d "$DURATION" --venues 10 >>"$OUT/fanout_venues.jsonl"
  stop_servers
done
echo "fanout: done" >&2
python3 - "$OUT" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
def rows(name):
    return [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines() if l.strip()]
def cell(values, digits=2):
    m = statistics.median(values)
    return f"{m:,.{digits}f} ({min(values):,.{digits}f} to {max(values):,.{digits}f})"
print("| store | stored pours | page load p50 ms | p99 ms | max ms | report?venue p50 ms | p99 ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, label in (("page_journal", "journal"), ("page_postgres", "PostgreSQL")):
    r = rows(name)
    print(f"| {label} | {r[0]['stored']:,} | {cell([x['page_load']['p50_ms'] for x in r])} | {cell([x['page_load']['p99_ms'] for x in r])} | "
          f"{cell([x['page_load']['max_ms'] for x in r])} | {cell([x['report']['p50_ms'] for x in r], 3)} | {cell([x['report']['p99_ms'] for x in r], 3)} |")
print()
print("| subscribers | pours/s | deliveries/s | lost | dup | disorder | another venue's | delivery p50 ms | p99 ms | max ms | tool CPU % |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, label in (("fanout_all", "1,000, every pour to each"), ("fanout_venues", "10 venues x 100, each pour to its venue's 100")):
    r = rows(name)
    print(f"| {label} | {r[0]['rate']:.0f} | {cell([x['deliveries_per_second'] for x in r], 0)} | {max(x['lost'] for x in r)} | "
          f"{max(x['duplicated'] for x in r)} | {max(x['out_of_order'] for x in r)} | {max(x.get('foreign', 0) for x in r)} | {cell([x['delivery_latency']['p50_ms'] for x in r], 1)} | "
          f"{cell([x['delivery_latency']['p99_ms'] for x in r], 1)} | {cell([x['delivery_latency']['max_ms'] for x in r], 1)} | {cell([x['tool_cpu_percent'] for x in r], 0)} |")
PY
