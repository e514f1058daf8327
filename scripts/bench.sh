#!/usr/bin/env bash
# Runs every benchmark of the README's performance section and writes BENCHMARKS.md.
#
# The machine has 2 cores and is shared: the server runs pinned to core 0 and the load
# tool to core 1 (taskset); each figure is run RUNS times and reported as the median with
# the spread. Usage: scripts/bench.sh [RUNS=3] [DURATION=10]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
PORT=${PORT:-18338}
out=$(mktemp -d)
started=$(date -u +%H:%M)
trap 'pkill -f "altair-server --bind 127.0.0.1:$PORT" 2>/dev/null || true; [ -n "${hog:-}" ] && kill "$hog" 2>/dev/null; rm -rf "$out"' EXIT

command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is needed" >&2; exit 1; }
cargo build --release --quiet
server_bin=target/release/altair-server
tool=(taskset -c "$TOOL_CORE" target/release/altair-client --server "http://127.0.0.1:$PORT" bench)

start_server() { # extra server flags...
  taskset -c "$SERVER_CORE" "$server_bin" --bind "127.0.0.1:$PORT" --rate-limit 0 --rate-limit-address 0 \
    --request-log errors --max-subscribers 20000 "$@" 2>"$out/server.log" &
  server_pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: the server did not start" >&2; cat "$out/server.log" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }

run() { # name, server flags (one string), tool args...
  local name=$1 flags=$2; shift 2
  for i in $(seq "$RUNS"); do
    local data="$out/data-$name-$i"
    # shellcheck disable=SC2086
    start_server --data-dir "$data" $flags
    "${tool[@]}" "$@" | tail -n 1 >>"$out/$name.jsonl"
    stop_server
  done
  echo "$name: done" >&2
}

run ingest_memory "--ephemeral" ingest -c 64 -d "$DURATION"
run ingest_durable "" ingest -c 64 -d "$DURATION"
run fanout_1000 "--ephemeral" fanout -s 1000 -r 100 -d "$DURATION"
run fanout_1000_quick "--ephemeral" fanout -s 1000 -r 100 -d "$DURATION" --quick-acks
run fanout_5000 "--ephemeral" fanout -s 5000 -r 100 -d "$DURATION"
# The same with a busy loop sharing the server's core: what a slow hour looks like to it.
taskset -c "$SERVER_CORE" sh -c 'while :; do :; done' &
hog=$!
run fanout_5000_hog "--ephemeral" fanout -s 5000 -r 100 -d "$DURATION"
kill "$hog"
wait "$hog" 2>/dev/null || true
hog=
for rate in 25 50 100; do
  run "fanout_10000_r$rate" "--ephemeral" fanout -s 10000 -r "$rate" -d "$DURATION"
done
run query_1k "--ephemeral" query -n 1000 -q 4000
run query_1m "--ephemeral" query -n 1000000 -q 4000

# Memory: resident size with 10,000 idle subscribers, less the same server without them.
for i in $(seq "$RUNS"); do
  start_server --ephemeral
  before=$(rss_kib)
  "${tool[@]}" fanout -s 10000 -r 0.2 -d 6 >/dev/null &
  tool_pid=$!
  # Read once all 10,000 are connected (the tool then idles for 6 s).
  for _ in $(seq 200); do
    [ "$(curl -fs "http://127.0.0.1:$PORT/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["subscribers"])')" = 10000 ] && break
    sleep 0.1
  done
  sleep 1
  during=$(rss_kib)
  wait "$tool_pid"
  stop_server
  per=$(awk -v a="$before" -v b="$during" 'BEGIN { printf "%.2f", (b - a) / 10000 }')
  echo "{\"idle_subscriber_kib\": $per, \"server_rss_before_kib\": $before, \"server_rss_10k_kib\": $during}" >>"$out/memory.jsonl"
done

python3 - "$out" "$RUNS" "$DURATION" "$started" <<'PY' >BENCHMARKS.md
import json, statistics, subprocess, sys, datetime, pathlib
out, runs, duration, started = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def load(name):
    return [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines() if l.strip()]
def med(rows, *path):
    vals = []
    for r in rows:
        v = r
        for p in path: v = v[p]
        vals.append(v)
    return statistics.median(vals), min(vals), max(vals)
def fmt(t, digits=0):
    m, lo, hi = t
    f = f"{{:,.{digits}f}}"
    return f"{f.format(m)} ({f.format(lo)} to {f.format(hi)})"
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md"], capture_output=True, text=True).stdout.strip():
    commit += " with uncommitted changes"
print("# Benchmarks\n")
now = datetime.datetime.now(datetime.timezone.utc)
print(f"{now:%Y-%m-%d}, {started} to {now:%H:%M} UTC, commit `{commit}`, `RUNS={runs} DURATION={duration} scripts/bench.sh`.")
print("Server on core 0, load tool on core 1 (taskset), this 2-core shared machine; each cell is the")
print(f"median of {runs} runs with the lowest and highest in brackets. Request logs: errors only")
print("(`--request-log errors`); rate limits off. The machine is shared: the same binary has")
print("measured up to twice as fast or slow in another hour, so compare only runs of one session.\n")
print("## Ingest, 64 connections\n")
print("| store | pours/s | p50 ms | p99 ms | max ms | tool CPU % |\n|---|---:|---:|---:|---:|---:|")
for name, label in [("ingest_memory", "in memory"), ("ingest_durable", "durable (group commit)")]:
    r = load(name)
    print(f"| {label} | {fmt(med(r,'pours_per_second'))} | {fmt(med(r,'latency','p50_ms'),2)} | {fmt(med(r,'latency','p99_ms'),2)} | {fmt(med(r,'latency','max_ms'),1)} | {fmt(med(r,'tool_cpu_percent'))} |")
print("\n## Fan-out\n")
print("| subscribers | pours/s | deliveries/s | lost | dup | disorder | delivery p50 ms | p99 ms | max ms | POST p99 ms | connect s | tool CPU % |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
names = {"fanout_1000": "", "fanout_1000_quick": " (tool: `--quick-acks`)", "fanout_5000": "",
         "fanout_5000_hog": " (busy loop on the server's core)"}
names.update({f"fanout_10000_r{r}": "" for r in (25, 50, 100)})
for name, note in names.items():
    r = load(name)
    print(f"| {r[0]['subscribers']:,}{note} | {r[0]['rate']:g} | {fmt(med(r,'deliveries_per_second'))} | {max(x['lost'] for x in r)} | {max(x['duplicated'] for x in r)} | {max(x['out_of_order'] for x in r)} | "
          f"{fmt(med(r,'delivery_latency','p50_ms'),1)} | {fmt(med(r,'delivery_latency','p99_ms'),1)} | {fmt(med(r,'delivery_latency','max_ms'),1)} | {fmt(med(r,'post_latency','p99_ms'),2)} | {fmt(med(r,'connect_seconds'),2)} | {fmt(med(r,'tool_cpu_percent'))} |")
print("\n(lost, dup and disorder: the worst of the runs. The tool's subscribers delay their ACKs")
print("unless `--quick-acks`; the busy-loop row shares the server's core with `sh -c 'while :; do :; done'`.)\n")
print("## Query, page of 50\n")
print("| stored pours | offset page p50 ms | p99 ms | cursor page p50 ms | p99 ms | pages/s |\n|---:|---:|---:|---:|---:|---:|")
for name in ["query_1k", "query_1m"]:
    r = load(name)
    print(f"| {r[0]['stored']:,} | {fmt(med(r,'page','p50_ms'),3)} | {fmt(med(r,'page','p99_ms'),3)} | {fmt(med(r,'cursor','p50_ms'),3)} | {fmt(med(r,'cursor','p99_ms'),3)} | {fmt(med(r,'pages_per_second'))} |")
print("\n## Memory\n")
r = load("memory")
print("| resident KiB per idle subscriber (10,000 connected) | server RSS before, KiB | with 10,000, KiB |\n|---:|---:|---:|")
print(f"| {fmt(med(r,'idle_subscriber_kib'),1)} | {fmt(med(r,'server_rss_before_kib'))} | {fmt(med(r,'server_rss_10k_kib'))} |")
PY
echo "wrote BENCHMARKS.md" >&2
