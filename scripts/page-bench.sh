#!/usr/bin/env bash
# The operations page under a steady stream of pours, in Debian's Chromium: frames per
# second, the longest main-thread task, and the delay from 201 to the pour's row on the
# page. The browser has core 1 to itself; the release server and the load share core 0.
#   scripts/page-bench.sh [RATE] [SECONDS] [RUNS]     (default 100 pours/s, 20 s, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-100} seconds=${2:-20} runs=${3:-3}
cargo build --release --quiet --bin altair-server
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
mkdir -p target/page-bench
browser=target/page-bench/chromium-on-core-1
printf '#!/bin/sh\nexec taskset -c 1 %s "$@"\n' "${ALTAIR_CHROMIUM:-/usr/bin/chromium}" > "$browser"
chmod +x "$browser"
for run in $(seq "$runs"); do
  ALTAIR_SERVER_BIN="$PWD/target/release/altair-server" ALTAIR_SERVER_CPU=0 \
    ALTAIR_CHROMIUM="$PWD/$browser" taskset -c 0 node tests/browser/bench.mjs "$rate" "$seconds"
done
