#!/usr/bin/env bash
# Points schemathesis (pinned, in a virtual environment) at a real server's own
# /api/openapi.json, once open and once with tokens, so that the document and the server
# cannot drift apart. A bounded run: EXAMPLES cases per operation and phase.
#
#   scripts/api-fuzz.sh                 # uses .ci/.venv, builds the debug server
#   EXAMPLES=300 scripts/api-fuzz.sh    # a longer run
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${EXAMPLES:-60}
venv=${VENV:-.ci/.venv}
# Versions pinned together: hypothesis 6.170 breaks schemathesis 4.32's coverage phase
# ("AST constructor recursion depth mismatch").
pins=(schemathesis==4.32.5 hypothesis==6.160.0)

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "4.32.5"; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
fi
cargo build --quiet --bin altair-server
server="${CARGO_TARGET_DIR:-target}/debug/altair-server"

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the server with "$@", waits for its address; sets pid and addr.
start() {
  : >"$work/server.log"
  "$server" --bind 127.0.0.1:0 --ephemeral --rate-limit 0 --rate-limit-address 0 "$@" \
    2>"$work/server.log" &
  pid=$!
  for _ in $(seq 100); do
    addr=$(sed -n 's/.*listening on \([^;]*\);.*/\1/p' "$work/server.log")
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "api-fuzz: the server did not start:" >&2
  cat "$work/server.log" >&2
  return 1
}

stop() {
  kill "$pid" && wait "$pid" 2>/dev/null || true
  pid=
}

# The WebSocket endpoint is left out: schemathesis speaks HTTP only (its own tests cover it).
# POST /api/kegs runs apart, without the check that every schema-valid body is accepted: a
# part-used keg's remainingMl may not exceed its sizeMl, which JSON Schema cannot relate
# (422 says so); every other check runs on it. It runs on a server of its own: the
# Idempotency-Keys the first run spent on the other keg routes ("0", say) would make every
# keg it taps under them a 409. GET /api/history and GET /api/variance run with it for the
# same reason as the kegs: a history spans at most 3,660 days and a variance 400, which
# relates `from` and `to` (400 says so); so do GET /api/temperatures (`from` before `to`)
# and POST /api/temperatures (a reading's time not ahead of the server's clock, 422), and
# POST /api/kegcop (its `reporttype` says which other fields a report needs, 422).
# POST /api/sales runs on its own with invalid data only: to JSON Schema its body is any
# text, to the server a file with the columns its `format` names (422 lists what is
# wrong), so every generated "valid" body is refused; tests/api/sales.rs sends it real
# files.
fuzz() {
  # One worker: CPython 3.11 before 3.11.8 counts AST recursion per interpreter, not per
  # thread, and two workers building schemas at once can crash it ("AST constructor
  # recursion depth mismatch"), failing a run that found nothing.
  st() {
    "$venv/bin/st" --config-file scripts/schemathesis.toml run "http://$addr/api/openapi.json" \
      --max-examples "$examples" --workers 1 --seed 1 --exclude-path /sockets/beers --no-color "$@"
  }
  st --checks all --exclude-name "POST /api/kegs" --exclude-name "GET /api/history" \
    --exclude-name "GET /api/variance" --exclude-name "POST /api/sales" \
    --exclude-name "POST /api/temperatures" --exclude-name "GET /api/temperatures" \
    --exclude-name "POST /api/kegcop" "$@"
  st --checks all --mode negative --include-name "POST /api/sales" "$@"
  stop
  start "${flags[@]}"
  kegs "$@"
  st --checks all --exclude-checks positive_data_acceptance \
    --include-name "POST /api/kegs" --include-name "GET /api/history" \
    --include-name "GET /api/variance" --include-name "POST /api/temperatures" \
    --include-name "GET /api/temperatures" --include-name "POST /api/kegcop" "$@"
}

# Kegs 1 to 3, so that the keg routes find kegs to read, correct and finish; and taps 9
# to 40, each poured once and its pour deleted, which DELETE /api/taps/{tapId} can forget
# (scripts/schemathesis.toml gives it those ids).
kegs() {
  for tap in 1 2 3; do
    curl -sf -o /dev/null "$@" -H 'Content-Type: application/json' \
      -d "{\"tapId\": $tap, \"beverage\": \"Pils\", \"size\": \"euro-50\"}" \
      "http://$addr/api/kegs"
  done
  local tap id
  for tap in $(seq 9 40); do
    id=$(curl -sf "$@" -H 'Content-Type: application/json' -d "{\"tapId\": $tap, \"volume\": 500}" \
      "http://$addr/api/beers" | python3 -c 'import json, sys; print(json.load(sys.stdin)["beer"]["id"])')
    curl -sf -o /dev/null "$@" -X DELETE "http://$addr/api/beers/$id"
  done
}

echo "== api-fuzz: open server"
flags=()
start
kegs
fuzz
stop

echo "== api-fuzz: server with tokens"
token_entry=$("$server" token new --role admin --name fuzz)
token=$(sed -n 2p <<<"$token_entry")
sed -n '/^\[\[token\]\]/,$p' <<<"$token_entry" >"$work/tokens.toml"
flags=(--tokens "$work/tokens.toml")
start "${flags[@]}"
kegs -H "Authorization: Bearer $token"
fuzz -H "Authorization: Bearer $token"
stop
echo "api-fuzz: both runs passed"
