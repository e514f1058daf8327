#!/usr/bin/env bash
# Compares two builds of the server on one load, alternating them so that both meet the
# same hours of this shared machine: scripts/ab.sh DIR_A DIR_B RUNS TOOL_ARGS...
# DIR_A and DIR_B hold release binaries (altair-server, altair-client; e.g. a worktree's
# target/release). The server runs on core 0, the load tool (DIR_B's) on core 1, the
# server in memory with rate limits off and request logs for errors only. Prints each
# run's JSON line, prefixed with A or B.
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release)
#   scripts/ab.sh /tmp/base/target/release target/release 3 fanout -s 1000 -r 100 -d 10
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: scripts/ab.sh DIR_A DIR_B RUNS TOOL_ARGS..." >&2; exit 2; }
a=$1 b=$2 runs=$3
shift 3
PORT=${PORT:-18340}
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; true' EXIT
for i in $(seq "$runs"); do
  for side in A B; do
    dir=$a
    [ "$side" = B ] && dir=$b
    taskset -c 0 "$dir/altair-server" --bind "127.0.0.1:$PORT" --ephemeral --rate-limit 0 \
      --rate-limit-address 0 --request-log errors --max-subscribers 20000 2>/dev/null &
    server_pid=$!
    for _ in $(seq 100); do
      curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
      sleep 0.1
    done
    echo "$side $(taskset -c 1 "$b/altair-client" --server "http://127.0.0.1:$PORT" bench "$@" | tail -n 1)"
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  done
done
