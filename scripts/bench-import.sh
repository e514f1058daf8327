#!/usr/bin/env bash
# Import and export speed (#26): a stream of POURS pours (and a deletion every 100th,
# a keyed pour every 10th) made by scripts/make-export.py, imported into an empty
# journal and into an empty PostgreSQL database, then exported from each; RUNS times
# each, the server binary on core 0 (with PostgreSQL), the stream read from a file.
# Usage: scripts/bench-import.sh [RUNS=3] [POURS=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
POURS=${POURS:-1000000}
SERVER_CORE=${SERVER_CORE:-0}
cargo build --release --quiet
server_bin=target/release/altair-server
# shellcheck source=scripts/pg-bench-lib.sh
source scripts/pg-bench-lib.sh
python3 scripts/make-export.py "$POURS" >"$work/stream.ndjson"
records=$(($(wc -l <"$work/stream.ndjson") - 2))
echo "stream: $records records, $(du -m "$work/stream.ndjson" | cut -f1) MB" >&2
timed() { # label, command...
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  taskset -c "$SERVER_CORE" "$@" >/dev/null 2>"$work/last.log" || { cat "$work/last.log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c 'import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f"{sys.argv[3]} {s:.2f} {int(sys.argv[4])/s:.0f}")' "$start" "$end" "$label" "$records"
}
for _ in $(seq "$RUNS"); do
  rm -rf "$work/journal"
  timed "import-journal" "$server_bin" --data-dir "$work/journal" import --input "$work/stream.ndjson"
  timed "export-journal" "$server_bin" --data-dir "$work/journal" export --output "$work/out.ndjson"
  cmp <(tail -n +2 "$work/stream.ndjson") <(tail -n +2 "$work/out.ndjson") || { echo "the journal's export differs" >&2; exit 1; }
  fresh_db
  timed "import-postgres" "$server_bin" --database-url "$db_url" import --input "$work/stream.ndjson"
  timed "export-postgres" "$server_bin" --database-url "$db_url" export --output "$work/out.ndjson"
  cmp <(tail -n +2 "$work/stream.ndjson") <(tail -n +2 "$work/out.ndjson") || { echo "PostgreSQL's export differs" >&2; exit 1; }
done | python3 -c '
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in sys.stdin:
    label, seconds, rate = line.split()
    runs[label].append((float(seconds), float(rate)))
print("| step | seconds | records/s |")
print("|---|---:|---:|")
for label, values in runs.items():
    s = [v[0] for v in values]; r = [v[1] for v in values]
    print(f"| {label} | {statistics.median(s):.2f} ({min(s):.2f} to {max(s):.2f}) | {statistics.median(r):,.0f} ({min(r):,.0f} to {max(r):,.0f}) |")
'
