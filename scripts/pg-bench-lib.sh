# Sourced by the PostgreSQL benchmarks: a throwaway PostgreSQL cluster (fsync and
# synchronous_commit on, over a Unix socket, on SERVER_CORE), removed on exit with every
# server started through start_server. Sets work, out, db_url; defines sql, fresh_db,
# start_server (runs $server_bin), stop_servers, db_counters.
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is needed" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "bench: PostgreSQL is needed (apt-get install postgresql)" >&2; exit 1; }

work=$(mktemp -d)
out="$work/results"
mkdir -p "$out"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ]; then
  chown postgres "$work"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

as_pg "$pgbin/initdb" --auth=trust --username=altair --encoding=UTF8 -D "$work/pg" >/dev/null
as_pg taskset -c "$SERVER_CORE" "$pgbin/pg_ctl" -w -D "$work/pg" -l "$work/pg.log" \
  -o "-k $work -c listen_addresses='' -c max_connections=200 ${PG_EXTRA:-}" start >/dev/null
db_url="host=$work user=altair dbname=altair"
sql() { "$pgbin/psql" -h "$work" -U altair -d altair -Atqc "$1"; }
fresh_db() {
  "$pgbin/dropdb" -h "$work" -U altair --if-exists altair
  "$pgbin/createdb" -h "$work" -U altair altair
}


start_server() { # port, extra flags...
  local port=$1; shift
  taskset -c "$SERVER_CORE" "${server_bin:?}" --bind "127.0.0.1:$port" --rate-limit 0 --rate-limit-address 0 \
    --request-log errors --max-subscribers 20000 "$@" 2>>"$work/server-$port.log" &
  pids+=($!)
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: the server did not start" >&2; cat "$work/server-$port.log" >&2; exit 1
}
stop_servers() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}

# What the database did during a run: transactions that wrote pours (each locks and
# updates the counters row once), all commits, and WAL bytes.
db_counters() {
  sql "SELECT (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'altair_counters'),
              (SELECT xact_commit FROM pg_stat_database WHERE datname = 'altair'),
              pg_current_wal_lsn()"
}

