#!/usr/bin/env bash
# Measures optin on PostgreSQL with 1, 2 and 3 instances behind one load
# generator (docs/performance.md, "PostgreSQL, one to three instances"):
# signups/s, latency, the CPU of the optin processes and of the PostgreSQL
# process tree per signup, and the database's growth per pending signup.
# Run as root on a machine with Debian's postgresql package, from the
# repository: bash scripts/bench-postgres.sh (NS, CLIENTS, DUR override
# the instance counts, clients and duration; WORK, PGPORT, BASEPORT and
# SINKPORT the work directory and ports, so two runs can share a machine;
# IMPORT=N also measures N imported people, see below; CONFIRM=1 also
# presses Confirm in every confirmation mail once the mails are in, so the
# CPU is per whole double opt-in and the bytes per confirmed signup;
# PPROF=1 serves the first instance's profiles on 127.0.0.1:6060, or
# on PPROFPORT).
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
W=${WORK:-/tmp/optin-pg-bench}
D=$W/pg
OPTIN=$W/optin
BENCH=$W/optin-bench
PORT=${PGPORT:-55432}
BASE=${BASEPORT:-18090}
SINK=${SINKPORT:-2525}
mkdir -p $W
# PGSS=1 loads pg_stat_statements (a diagnostic run: it costs CPU itself)
# and prints the statements each signup cost.
PGOPTS=; [ "${PGSS:-}" = 1 ] && PGOPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
go build -tags nomsgpack -o $OPTIN ./cmd/optin
go build -o $BENCH ./cmd/optin-bench
runuser -u postgres -- $BIN/pg_ctl stop -D $D/data -m fast >/dev/null 2>&1 || true
rm -rf $D; mkdir -p $D; chown postgres $D
runuser -u postgres -- $BIN/initdb -D $D/data -U postgres -A trust -E UTF8 --locale=C >/dev/null
runuser -u postgres -- $BIN/pg_ctl start -w -D $D/data -l $D/log -o "-c listen_addresses=127.0.0.1 -p $PORT -k $D -c max_connections=300 -c fsync=on -c synchronous_commit=on $PGOPTS" >/dev/null
PGPID=$(head -1 $D/data/postmaster.pid)
# A run cut short (a signal, a failing step, a closed pipe) must not leave
# its optin instances and PostgreSQL running: the next run would find
# their ports taken.
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; runuser -u postgres -- $BIN/pg_ctl stop -D $D/data -m fast >/dev/null 2>&1' EXIT
psql() { runuser -u postgres -- $BIN/psql -h 127.0.0.1 -p $PORT -U postgres -At "$@"; }
for n in ${NS:-1 2 3}; do
  psql -c "DROP DATABASE IF EXISTS optin" >/dev/null; psql -c "CREATE DATABASE optin" >/dev/null
  pids=(); urls=()
  for i in $(seq 1 $n); do
    port=$((BASE+i))
    mkdir -p $W/data$i
    cat > $W/c$i.yaml <<Y
listen: "127.0.0.1:$port"
base_url: "http://127.0.0.1:$((BASE+1))"
data_dir: "$W/data$i"
store: postgres
postgres: {url: "postgres://postgres@127.0.0.1:$PORT/optin?sslmode=disable"}
mail: {transport: smtp, from: "Bench <bench@example.com>", smtp: {host: 127.0.0.1, port: $SINK, tls: none}}
limits: {signup_per_ip: "off", manage_per_ip: "off", confirmations: "off"}
Y
    pp=; [ "${PPROF:-}" = 1 ] && [ $i = 1 ] && pp=127.0.0.1:${PPROFPORT:-6060}
    OPTIN_PPROF=$pp $OPTIN serve --config $W/c$i.yaml >$W/optin$i.log 2>&1 &
    pids+=($!); urls+=("http://127.0.0.1:$port")
    for t in $(seq 1 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
  done
  [ "${PGSS:-}" = 1 ] && psql -d optin -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()" >/dev/null
  stat="SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_fetched FROM pg_stat_database WHERE datname = 'optin'"
  sleep 1; s0=$(psql -d optin -F' ' -c "$stat")
  before=$(psql -d optin -c "SELECT pg_database_size('optin')")
  echo "== $n instance(s), $(date -u +%FT%TZ)"
  $BENCH signup --url "$(IFS=,; echo "${urls[*]}")" --clients ${CLIENTS:-64} --duration ${DUR:-10s} --sink 127.0.0.1:$SINK \
    --cpu "optin=$(IFS=+; echo "${pids[*]}"),postgres=$PGPID" ${CONFIRM:+--confirm}
  subs=$(psql -d optin -c "SELECT count(*) FROM subscribers")
  # A table read whole, again and again, during the run is a plan gone
  # wrong (one made while the table was nearly empty, kept by a pooled
  # connection): a few scans of the first rows are not.
  echo "sequential scans (scans/rows read) of the tables read whole for more than 1,000 rows: $(psql -d optin -c "SELECT coalesce(string_agg(relname||' '||seq_scan||'/'||seq_tup_read, ', '), 'none') FROM pg_stat_user_tables WHERE seq_tup_read > 1000")"
  after=$(psql -d optin -c "SELECT pg_database_size('optin')")
  state=pending; [ -n "${CONFIRM:-}" ] && state=confirmed
  echo "database: $subs subscribers ($state), $before -> $after bytes: $(( (after-before)/subs )) bytes per $state signup"
  sleep 2; s1=$(psql -d optin -F' ' -c "$stat")
  read -r c0 i0 u0 d0 f0 <<<"$s0"; read -r c1 i1 u1 d1 f1 <<<"$s1"
  echo "per signup: commits $(( (c1-c0)*1000/subs ))/1000, rows inserted $(( (i1-i0)*100/subs ))/100, updated $(( (u1-u0)*100/subs ))/100, deleted $(( (d1-d0)*100/subs ))/100"
  rel="SELECT c.relname, pg_table_size(c.oid)/$subs, pg_indexes_size(c.oid)/$subs FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r' AND pg_total_relation_size(c.oid) > 16384 ORDER BY pg_total_relation_size(c.oid) DESC"
  echo "bytes per $state signup by relation as the run left them (table with toast / indexes):"
  psql -d optin -F' ' -c "$rel" | sed 's/^/  /'
  # VACUUM FULL rewrites every table and index with the live rows alone:
  # what a subscriber takes once the dead versions (the sent mail's
  # outbox row, a request's version before it was marked sent) are gone.
  psql -d optin -c "VACUUM FULL" >/dev/null
  # (The database's size would mislead here: VACUUM FULL compacts the
  # system catalogs too.)
  live=$(psql -d optin -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r'")
  echo "after VACUUM FULL: $(( live/subs )) bytes per $state signup in optin's tables; by relation:"
  psql -d optin -F' ' -c "$rel" | sed 's/^/  /'
  echo "average bytes of a column (pg_column_size) after VACUUM FULL:"
  psql -d optin -F' ' -c "SELECT 'subscribers', avg(pg_column_size(id))::int, avg(pg_column_size(email_key))::int, avg(pg_column_size(data))::int FROM subscribers
    UNION ALL SELECT 'requests', avg(pg_column_size(id))::int, avg(pg_column_size(subscriber))::int, avg(pg_column_size(data))::int FROM requests
    UNION ALL SELECT 'ledger(subscriber,event,personal,tree)', avg(pg_column_size(subscriber))::int, avg(pg_column_size(event))::int, avg(pg_column_size(personal))::int FROM ledger
    UNION ALL SELECT 'ledger tree', avg(pg_column_size(tree))::int, NULL, NULL FROM ledger" | sed 's/^/  /'
  if [ "${PGSS:-}" = 1 ]; then
    echo "statements per signup (calls*1000/signups, mean ms, rows*1000/signups):"
    psql -d optin -F' | ' -c "SELECT calls*1000/$subs, round(mean_exec_time::numeric, 3), rows*1000/$subs, left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'optin') ORDER BY calls DESC LIMIT 40" | sed 's/^/  /'
    echo "statements by total time (total ms, calls, buffers hit per call):"
    psql -d optin -F' | ' -c "SELECT round(total_exec_time::numeric), calls, shared_blks_hit/greatest(calls, 1), left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'optin') ORDER BY total_exec_time DESC LIMIT 10" | sed 's/^/  /'
  fi
  # IMPORT=N then imports N people of optin-bench generate through the
  # first instance (optin import --no-notice; the generated mix: 64%
  # consent with evidence, 25% soft opt-in, 9% legitimate interest, 2%
  # pending) and prints the live bytes each added, after VACUUM FULL.
  if [ -n "${IMPORT:-}" ]; then
    sizes="SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind = 'r'"
    psql -d optin -F' ' -c "$sizes" > $W/sizes-before
    # The generated people subscribe to news, offers and events.
    psql -d optin -c "INSERT INTO topics (id, data) VALUES ('offers', '{\"id\": \"offers\", \"name\": \"Offers\"}'),
      ('events', '{\"id\": \"events\", \"name\": \"Events\"}') ON CONFLICT DO NOTHING" >/dev/null
    $BENCH generate --subscribers $IMPORT --seed 1 > $W/people.csv
    rep=$(OPTIN_CONFIG=$W/c1.yaml $OPTIN import --no-notice $W/people.csv 2>/dev/null | tr -d '\n ')
    echo "import: $(echo "$rep" | grep -o '"\(imported\|pending\|invalid_count\)":[0-9]*' | tr '\n' ' ')"
    imported=$(echo "$rep" | grep -o '"imported":[0-9]*' | cut -d: -f2)
    psql -d optin -c "VACUUM FULL" >/dev/null
    psql -d optin -F' ' -c "$sizes" > $W/sizes-after
    echo "$imported imported: bytes per imported subscriber after VACUUM FULL by relation (table with toast / indexes), then in all:"
    awk -v n=$imported 'NR == FNR { t[$1] = $2; i[$1] = $3; next }
      { dt = $2 - t[$1]; di = $3 - i[$1]; all += dt + di; if (dt + di > 0) printf "  %s %d %d\n", $1, dt / n, di / n }
      END { printf "  together %d\n", all / n }' $W/sizes-before $W/sizes-after
    # A hash index rebuilt by VACUUM FULL has a power of two of buckets
    # for the rows it holds, so the difference of two sizes can be a
    # step, not what a row costs: each index's size over its rows says
    # what an entry costs on average at this size.
    echo "bytes per entry of each index after VACUUM FULL (size / rows of its table):"
    psql -d optin -F' ' -c "SELECT c.relname, a.amname, round(pg_relation_size(c.oid)::numeric / greatest(t.reltuples, 1)::numeric, 1)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am a ON a.oid = c.relam
      WHERE t.relname IN ('ledger', 'subscribers', 'requests', 'subscriber_topics') ORDER BY 1" | sed 's/^/  /'
  fi
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
done
runuser -u postgres -- $BIN/pg_ctl stop -D $D/data -m fast >/dev/null
