#!/usr/bin/env bash
# Two builds' ingest, alternating run by run so that both meet the same minutes of this
# shared machine: the journal, one server on PostgreSQL and two servers on one PostgreSQL
# (64 connections, the load spread over both), and with FANOUT=1 the delivery across two
# servers (1,000 subscribers on each). KINDS picks the runs; `follower` is one server
# loaded while a second on the same database only follows the log: what any two-server
# design must pay here, since each server reads every pour. Same cluster and cores as
# scripts/bench-postgres.sh.
# Prints each run's JSON line, then medians with the spread.
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release)
#   scripts/bench-postgres-ab.sh /tmp/base/target/release target/release [RUNS=3] [DURATION=5]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/bench-postgres-ab.sh DIR_A DIR_B [RUNS] [DURATION]" >&2; exit 2; }
cd "$(dirname "$0")/.."
dir_a=$(realpath "$1") dir_b=$(realpath "$2")
RUNS=${3:-3}
DURATION=${4:-5}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
PORT=${PORT:-18438}
PORT2=$((PORT + 1))
. scripts/pg-bench-lib.sh
tool=(taskset -c "$TOOL_CORE" "$dir_b/altair-client" --server "http://127.0.0.1:$PORT" bench)

run() { # side, kind
  local side=$1 kind=$2 also=()
  fresh_db
  case $kind in
    journal) start_server "$PORT" --data-dir "$work/journal-$side-$i" ;;
    *)
      start_server "$PORT" --database-url "$db_url"
      if [ "$kind" != postgres1 ]; then
        start_server "$PORT2" --database-url "$db_url"
        [ "$kind" = follower ] || also=(--also "127.0.0.1:$PORT2")
      fi
      sleep 1
      ;;
  esac
  local before after
  before=$(db_counters)
  if [ "$kind" = fanout ]; then
    "${tool[@]}" fanout -s 1000 -r 100 -d "$DURATION" "${also[@]}" | tail -n 1 >"$work/run.json"
  else
    "${tool[@]}" ingest -c 64 -d "$DURATION" "${also[@]}" | tail -n 1 >"$work/run.json"
  fi
  sleep 1 # statistics reach pg_stat_* within a second of a backend going idle
  after=$(db_counters)
  stop_servers
  python3 - "$work/run.json" "$before" "$after" "$side" "$kind" <<'PY' | tee -a "$out/runs.jsonl"
import json, sys
run = json.load(open(sys.argv[1]))
b, a = sys.argv[2].split("|"), sys.argv[3].split("|")
run["side"], run["kind"] = sys.argv[4], sys.argv[5]
if run["kind"] in ("postgres1", "postgres2", "follower"):
    batches = int(a[0]) - int(b[0])
    run["pours_per_transaction"] = round(run["pours"] / max(batches, 1), 1)
print(json.dumps(run))
PY
}

read -ra kinds <<<"${KINDS:-journal postgres1 postgres2}"
[ "${FANOUT:-0}" = 1 ] && kinds+=(fanout)
for i in $(seq "$RUNS"); do
  for kind in "${kinds[@]}"; do
    server_bin=$dir_a/altair-server run A "$kind"
    server_bin=$dir_b/altair-server run B "$kind"
  done
done

python3 - "$out/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def fmt(vals, digits=0):
    f = f"{{:,.{digits}f}}"
    return f"{f.format(statistics.median(vals))} ({f.format(min(vals))} to {f.format(max(vals))})"
print("\n| kind | side | pours/s | p99 ms | pours a transaction | delivery p99 ms | lost |")
print("|---|---|---:|---:|---:|---:|---:|")
for kind in dict.fromkeys(r["kind"] for r in runs):
    for side in "AB":
        rs = [r for r in runs if r["kind"] == kind and r["side"] == side]
        if kind == "fanout":
            print(f"| {kind} | {side} | | | | {fmt([r['delivery_latency']['p99_ms'] for r in rs], 1)} | {max(r['lost'] for r in rs)} |")
            continue
        per = fmt([r["pours_per_transaction"] for r in rs], 1) if "pours_per_transaction" in rs[0] else ""
        print(f"| {kind} | {side} | {fmt([r['pours_per_second'] for r in rs])} | {fmt([r['latency']['p99_ms'] for r in rs], 1)} | {per} | | |")
PY
