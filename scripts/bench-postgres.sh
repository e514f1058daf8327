#!/usr/bin/env bash
# The PostgreSQL store's benchmarks, side by side with the journal in one run, written to
# the "PostgreSQL" section of BENCHMARKS.md (between its markers; the rest is left alone).
#
# A throwaway PostgreSQL cluster with the production defaults that matter here (fsync and
# synchronous_commit on), reached over a Unix socket. The machine has 2 cores: the servers
# and PostgreSQL share core 0, the load tool has core 1 (taskset). Each figure is the
# median of RUNS runs with the spread. Usage: scripts/bench-postgres.sh [RUNS=3] [DURATION=5]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
SERVER_CORE=${SERVER_CORE:-0}
TOOL_CORE=${TOOL_CORE:-1}
PORT=${PORT:-18438}
PORT2=$((PORT + 1))
started=$(date -u +%H:%M)

. scripts/pg-bench-lib.sh
cargo build --release --quiet
server_bin=target/release/altair-server
tool=(taskset -c "$TOOL_CORE" target/release/altair-client --server "http://127.0.0.1:$PORT" bench)

ingest() { # name, servers (1 or 2)
  local name=$1 servers=$2
  for i in $(seq "$RUNS"); do
    local also=()
    if [ "$name" = journal ]; then
      start_server "$PORT" --data-dir "$work/journal-$i"
    else
      fresh_db
      start_server "$PORT" --database-url "$db_url"
      if [ "$servers" = 2 ]; then
        start_server "$PORT2" --database-url "$db_url"
        also=(--also "127.0.0.1:$PORT2")
      fi
      sleep 1.5
      before=$(db_counters)
    fi
    "${tool[@]}" ingest -c 64 -d "$DURATION" "${also[@]}" | tail -n 1 >"$work/run.json"
    if [ "$name" != journal ]; then
      sleep 1.5 # statistics reach pg_stat_* within a second of a backend going idle
      after=$(db_counters)
      python3 - "$work/run.json" "$before" "$after" <<'PY' >>"$out/ingest_$name.jsonl"
import json, sys
run = json.load(open(sys.argv[1]))
b, a = sys.argv[2].split("|"), sys.argv[3].split("|")
def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)
batches, commits = int(a[0]) - int(b[0]), int(a[1]) - int(b[1])
run["write_transactions_per_second"] = round(batches / run["seconds"])
run["pours_per_transaction"] = round(run["pours"] / max(batches, 1), 1)
run["commits_per_second"] = round(commits / run["seconds"])
run["wal_bytes_per_pour"] = round((lsn(a[2]) - lsn(b[2])) / max(run["pours"], 1))
print(json.dumps(run))
PY
    else
      cat "$work/run.json" >>"$out/ingest_$name.jsonl"
    fi
    stop_servers
  done
  echo "ingest $name: done" >&2
}

ingest journal 1
ingest postgres1 1
ingest postgres2 2

# Fan-out across two servers: 1,000 subscribers on each, pours posted to each in turn.
for i in $(seq "$RUNS"); do
  fresh_db
  start_server "$PORT" --database-url "$db_url"
  start_server "$PORT2" --database-url "$db_url"
  "${tool[@]}" fanout -s 1000 -r 100 -d "$DURATION" --also "127.0.0.1:$PORT2" | tail -n 1 >>"$out/fanout.jsonl"
  stop_servers
done
echo "fanout: done" >&2

# since=0 replay of 100,000 stored pours, and list pages at 1,000 and 1,000,000 pours.
fill_sql() { # pours
  sql "INSERT INTO altair_pours (id, tap_id, volume, glass, poured_at_ms, device_time)
         SELECT g, 1 + g % 50, (ARRAY[250, 500, 900])[1 + g % 3], (ARRAY['half', 'pint', 'stein'])[1 + g % 3],
                (extract(epoch FROM now()) * 1000)::bigint - ($1 - g) * 10, false
         FROM generate_series(1, $1) g;
       INSERT INTO altair_counts (tap_id, glass, pours)
         SELECT tap_id, glass, count(*) FROM altair_pours GROUP BY 1, 2;
       UPDATE altair_counters SET last_pour_id = $1;
       ANALYZE;"
}
for store in journal postgres; do
  for n in 1000 1000000; do
    for i in $(seq "$RUNS"); do
      if [ "$store" = journal ]; then
        # The first run fills the journal by posting; the next ones reopen it.
        start_server "$PORT" --data-dir "$work/query-journal-$n"
        "${tool[@]}" query -n "$n" -q 10 >/dev/null
      else
        fresh_db
        "$server_bin" --database-url "$db_url" migrate >/dev/null
        fill_sql "$n" >/dev/null
        t0=$(date +%s.%N)
        start_server "$PORT" --database-url "$db_url"
        t1=$(date +%s.%N)
        echo "{\"pours\": $n, \"start_seconds\": $(python3 -c "print(round($t1 - $t0, 2))")}" >>"$out/start_postgres_$n.jsonl"
      fi
      "${tool[@]}" query -n "$n" -q 2000 | tail -n 1 >>"$out/query_${store}_$n.jsonl"
      if [ "$n" = 1000000 ]; then
        "${tool[@]}" replay | tail -n 1 >>"$out/replay_$store.jsonl"
      fi
      stop_servers
    done
  done
done
echo "replay and query: done" >&2

python3 - "$out" "$RUNS" "$DURATION" "$started" "$("$pgbin/postgres" --version)" <<'PY' >"$work/section.md"
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
pg = sys.argv[5]
now = datetime.datetime.now(datetime.timezone.utc)
print("<!-- postgres:begin (written by scripts/bench-postgres.sh) -->")
print("## PostgreSQL\n")
print(f"{now:%Y-%m-%d}, {started} to {now:%H:%M} UTC, commit `{commit}`, `RUNS={runs} DURATION={duration} scripts/bench-postgres.sh`,")
print(f"{pg}, a throwaway cluster with fsync and synchronous_commit on, over a Unix socket.")
print("The servers and PostgreSQL share core 0, the load tool has core 1; medians of the runs,")
print("lowest and highest in brackets.\n")
print("### Ingest, 64 connections\n")
print("| store | pours/s | p50 ms | p99 ms | writing transactions/s | pours a transaction | commits/s (all) | WAL bytes a pour |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
r = load("ingest_journal")
print(f"| journal (one server) | {fmt(med(r,'pours_per_second'))} | {fmt(med(r,'latency','p50_ms'),2)} | {fmt(med(r,'latency','p99_ms'),2)} | | | | |")
for name, label in [("ingest_postgres1", "PostgreSQL, one server"), ("ingest_postgres2", "PostgreSQL, two servers")]:
    r = load(name)
    print(f"| {label} | {fmt(med(r,'pours_per_second'))} | {fmt(med(r,'latency','p50_ms'),2)} | {fmt(med(r,'latency','p99_ms'),2)} | "
          f"{fmt(med(r,'write_transactions_per_second'))} | {fmt(med(r,'pours_per_transaction'),1)} | {fmt(med(r,'commits_per_second'))} | {fmt(med(r,'wal_bytes_per_pour'))} |")
print("\n(commits/s counts every transaction: the writing ones and reads.)\n")
print("### Delivery across two servers: 1,000 subscribers on each, 100 pours/s posted to each in turn\n")
print("| deliveries/s | lost | dup | disorder | delivery p50 ms | p99 ms | max ms | POST p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
r = load("fanout")
print(f"| {fmt(med(r,'deliveries_per_second'))} | {max(x['lost'] for x in r)} | {max(x['duplicated'] for x in r)} | {max(x['out_of_order'] for x in r)} | "
      f"{fmt(med(r,'delivery_latency','p50_ms'),1)} | {fmt(med(r,'delivery_latency','p99_ms'),1)} | {fmt(med(r,'delivery_latency','max_ms'),1)} | {fmt(med(r,'post_latency','p99_ms'),2)} |")
print("\n### `since=0` replay of 1,000,000 stored pours to one subscriber\n")
print("| store | pours/s | seconds |\n|---|---:|---:|")
for store in ["journal", "postgres"]:
    r = load(f"replay_{store}")
    print(f"| {store} | {fmt(med(r,'pours_per_second'))} | {fmt(med(r,'seconds'),2)} |")
print("\n### A list page of 50, with `total`\n")
print("| store | stored pours | offset page p50 ms | p99 ms | cursor page p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|")
for store in ["journal", "postgres"]:
    for n in [1000, 1000000]:
        r = load(f"query_{store}_{n}")
        print(f"| {store} | {r[0]['stored']:,} | {fmt(med(r,'page','p50_ms'),3)} | {fmt(med(r,'page','p99_ms'),3)} | {fmt(med(r,'cursor','p50_ms'),3)} | {fmt(med(r,'cursor','p99_ms'),3)} |")
r = load("start_postgres_1000000")
print(f"\nA server starting on 1,000,000 stored pours (it counts them all into its report): {fmt(med(r,'start_seconds'),2)} s to its first `/health`.")
print("<!-- postgres:end -->")
PY

python3 - "$work/section.md" <<'PY'
import pathlib, re, sys
section = pathlib.Path(sys.argv[1]).read_text().rstrip() + "\n"
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
pattern = re.compile(r"<!-- postgres:begin.*?<!-- postgres:end -->\n", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
path.write_text(text)
PY
echo "wrote the PostgreSQL section of BENCHMARKS.md" >&2
