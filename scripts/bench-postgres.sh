#!/usr/bin/env bash
# Measures optin on PostgreSQL with 1, 2 and 3 instances behind one load
# generator (docs/performance.md, "PostgreSQL, one to three instances"):
# signups/s, latency, the CPU of the optin processes and of the PostgreSQL
# process tree per signup, and the database's growth per pending signup.
# Run as root on a machine with Debian's postgresql package, from the
# repository: bash scripts/bench-postgres.sh (NS, CLIENTS, DUR override
# the instance counts, clients and duration).
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
W=${WORK:-/tmp/optin-pg-bench}
D=$W/pg
OPTIN=$W/optin
BENCH=$W/optin-bench
PORT=55432
mkdir -p $W
go build -tags nomsgpack -o $OPTIN ./cmd/optin
go build -o $BENCH ./cmd/optin-bench
runuser -u postgres -- $BIN/pg_ctl stop -D $D/data -m fast >/dev/null 2>&1 || true
rm -rf $D; mkdir -p $D; chown postgres $D
runuser -u postgres -- $BIN/initdb -D $D/data -U postgres -A trust -E UTF8 --locale=C >/dev/null
runuser -u postgres -- $BIN/pg_ctl start -w -D $D/data -l $D/log -o "-c listen_addresses=127.0.0.1 -p $PORT -k $D -c max_connections=300 -c fsync=on -c synchronous_commit=on" >/dev/null
PGPID=$(head -1 $D/data/postmaster.pid)
psql() { runuser -u postgres -- $BIN/psql -h 127.0.0.1 -p $PORT -U postgres -At "$@"; }
for n in ${NS:-1 2 3}; do
  psql -c "DROP DATABASE IF EXISTS optin" >/dev/null; psql -c "CREATE DATABASE optin" >/dev/null
  pids=(); urls=()
  for i in $(seq 1 $n); do
    port=$((18090+i))
    mkdir -p $W/data$i
    cat > $W/c$i.yaml <<Y
listen: "127.0.0.1:$port"
base_url: "http://127.0.0.1:18091"
data_dir: "$W/data$i"
store: postgres
postgres: {url: "postgres://postgres@127.0.0.1:$PORT/optin?sslmode=disable"}
mail: {transport: smtp, from: "Bench <bench@example.com>", smtp: {host: 127.0.0.1, port: 2525, tls: none}}
limits: {signup_per_ip: "off", manage_per_ip: "off", confirmations: "off"}
Y
    $OPTIN serve --config $W/c$i.yaml >$W/optin$i.log 2>&1 &
    pids+=($!); urls+=("http://127.0.0.1:$port")
    for t in $(seq 1 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
  done
  before=$(psql -d optin -c "SELECT pg_database_size('optin')")
  echo "== $n instance(s), $(date -u +%FT%TZ)"
  $BENCH signup --url "$(IFS=,; echo "${urls[*]}")" --clients ${CLIENTS:-64} --duration ${DUR:-10s} --sink 127.0.0.1:2525 \
    --cpu "optin=$(IFS=+; echo "${pids[*]}"),postgres=$PGPID"
  subs=$(psql -d optin -c "SELECT count(*) FROM subscribers")
  after=$(psql -d optin -c "SELECT pg_database_size('optin')")
  echo "database: $subs subscribers (pending), $before -> $after bytes: $(( (after-before)/subs )) bytes per pending signup"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
done
runuser -u postgres -- $BIN/pg_ctl stop -D $D/data -m fast >/dev/null
