#!/usr/bin/env bash
# The ten-million-subscriber run of docs/performance.md ("Ten million
# subscribers"): generate N varied people (optin-bench generate), import
# them into a fresh bbolt database with the service stopped, then measure
# the database's size, the start to /healthz after dropping the page
# cache, exports (CSV right after that cold start, then CSV and NDJSON
# warm), list pages with and without a filter, a campaign preview, and
# signups/s on that database and on an empty one. Every step prints its
# wall time, the CPU time of the process doing the work and the load
# average, because the machine may be shared.
#
# Run from the repository, as root (to drop the page cache):
#   bash scripts/bench-ten-million.sh
# N (default 10000000) is the number of people; WORK (default
# /tmp/optin-10m) holds the file and both databases, about 2.5 KB per
# person; KEEP=1 keeps them afterwards; PREVIEW_MAX (default 1200) caps the
# campaign preview's seconds. PORT (default 18190) and SINK (default
# 127.0.0.1:2526) let a second run share the machine with a first; with
# EVICT=file the cold start evicts only the database file's pages
# (posix_fadvise, as scripts/bench-cold-read.sh does) instead of dropping
# the whole page cache, so the other run keeps its cache.
set -euo pipefail
N=${N:-10000000}
W=${WORK:-/tmp/optin-10m}
OPTIN=$W/optin
BENCH=$W/optin-bench
PORT=${PORT:-18190}
SINK=${SINK:-127.0.0.1:2526}
mkdir -p "$W"
go build -tags nomsgpack -o "$OPTIN" ./cmd/optin
go build -o "$BENCH" ./cmd/optin-bench
rm -rf "$W/big" "$W/empty"

say() { echo "== $* (load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%T))"; }
# cpu PID: the user and system CPU seconds of process PID so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }
ms() { date +%s%N | cut -b1-13; }

config() { # config NAME: a config with data in $W/NAME
  cat >"$W/$1.yaml" <<Y
listen: "127.0.0.1:$PORT"
base_url: "http://127.0.0.1:$PORT"
data_dir: "$W/$1"
mail: {transport: smtp, from: "Bench <bench@example.com>", postal_address: "1 Bench Street, Benchville",
       smtp: {host: 127.0.0.1, port: ${SINK#*:}, tls: none}}
limits: {signup_per_ip: "off", manage_per_ip: "off", confirmations: "off"}
Y
}
PID=
start() { # start NAME: serve, and print the time to /healthz
  local t0
  t0=$(ms)
  "$OPTIN" serve --config "$W/$1.yaml" >>"$W/$1.log" 2>&1 &
  PID=$!
  until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.005; done
  echo "start to /healthz: $(($(ms) - t0)) ms"
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
# timed WHAT CURL-ARGS...: one request, its wall time and optin's CPU for it.
timed() {
  local what=$1 c0 t0 out
  shift
  c0=$(cpu "$PID")
  t0=$(ms)
  out=$(curl -sS -o "$W/out" -w '%{http_code} %{size_download}' -H "Authorization: Bearer $KEY" "$@") || true
  echo "$what: HTTP ${out% *}, $((${out#* } / 1000)) KB, $(($(ms) - t0)) ms wall, optin CPU $(echo "$(cpu "$PID") - $c0" | bc) s"
}
setup() { # setup NAME: a database with the topics and an admin key
  config "$1"
  KEY=$("$OPTIN" apikey create --name bench --role admin --config "$W/$1.yaml" 2>/dev/null)
  start "$1" >/dev/null
  for t in offers events; do
    curl -sf -o /dev/null -H "Authorization: Bearer $KEY" -d "{\"id\":\"$t\",\"name\":\"$t\"}" "http://127.0.0.1:$PORT/api/v1/topics"
  done
  stop
}
signups() {
  "$BENCH" signup --url "http://127.0.0.1:$PORT" --clients 64 --duration 10s --cpu "optin=$PID" | grep -E 'requests|latency|cpu|errors|memory'
}

"$BENCH" sink --listen $SINK --duration 24h >/dev/null 2>&1 &
SINKPID=$!
trap 'kill $SINKPID 2>/dev/null || true; if [ -n "$PID" ]; then kill $PID 2>/dev/null || true; fi' EXIT

say "empty database: signups/s"
setup empty
start empty
signups
stop

say "generate $N people"
/usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KB peak RSS" "$BENCH" generate --subscribers "$N" >"$W/people.csv"
ls -l "$W/people.csv"

setup big
say "import $N people, service stopped"
/usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KB peak RSS (anonymous and mapped file together)" -o "$W/import.time" \
  "$OPTIN" import --no-notice --config "$W/big.yaml" "$W/people.csv" >"$W/import.json" 2>/dev/null &
TPID=$!
# Peak anonymous memory (heap, stacks) apart from the pages of the mapped
# database file, which ps and time count in RSS too.
anon=0 file=0
while kill -0 $TPID 2>/dev/null; do
  if IPID=$(pgrep -P $TPID); then
    read -r a f < <(awk '/RssAnon/{a=$2} /RssFile/{f=$2} END{print a+0, f+0}' /proc/$IPID/status 2>/dev/null || echo "0 0")
    anon=$((a > anon ? a : anon)) file=$((f > file ? f : file))
  fi
  sleep 1
done
wait $TPID
cat "$W/import.time"
echo "import peak RssAnon $anon KB, peak RssFile $file KB (sampled each second)"
tr -d ' \n' <"$W/import.json" | cut -c1-300; echo
say "imported"
ls -l "$W/big/optin.db"

sync
if [ "${EVICT:-}" = file ]; then
  python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$W/big/optin.db"
else
  echo 3 >/proc/sys/vm/drop_caches
fi
say "cold start"
start big
API=http://127.0.0.1:$PORT/api/v1
timed "export CSV, first read after the cold start" "$API/exports/subscribers?format=csv"
timed "export CSV, warm" "$API/exports/subscribers?format=csv"
timed "export NDJSON, warm" "$API/exports/subscribers?format=ndjson"
timed "list page, no filter" "$API/subscribers?limit=50"
timed "list page, offers confirmed" "$API/subscribers?limit=50&topic=offers&status=confirmed"
timed "list page, events and customer" "$API/subscribers?limit=50&topic=events&lifecycle=customer"
timed "stats" "$API/stats"
curl -sf -o "$W/campaign.json" -H "Authorization: Bearer $KEY" -d '{"name":"Still there?","topic":"events",
  "templates":{"en":{"subject":"Still there?","body":"Hello"}}}' "$API/campaigns"
CID=$(sed 's/.*"id":"\([^"]*\)".*/\1/' "$W/campaign.json")
say "campaign preview"
timed "campaign preview, topic events" --max-time "${PREVIEW_MAX:-1200}" -X POST "$API/campaigns/$CID/preview"
cat "$W/out" 2>/dev/null; echo
say "signups/s on the big database"
signups
grep -E 'VmHWM|VmRSS|RssAnon|RssFile' /proc/$PID/status | tr -s ' \t' ' ' | paste -sd, -
stop
ls -l "$W/big/optin.db"
say "done"
if [ -z "${KEEP:-}" ]; then rm -rf "$W/big" "$W/empty" "$W/people.csv" "$W/out"; fi
