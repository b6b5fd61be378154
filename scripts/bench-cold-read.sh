#!/usr/bin/env bash
# Reads from a cold page cache (docs/performance.md, "Reading from a cold
# page cache"): on a database kept by scripts/bench-ten-million.sh
# (KEEP=1), drop the database file's pages from the page cache (that file
# only: posix_fadvise DONTNEED, so other work on the machine keeps its
# cache), start the service, and time a campaign preview of topic
# `events` first cold, then warm twice; with EXPORT=1, evict and start
# again and time a CSV export cold, then warm. Each line gives the wall
# time, optin's user and system CPU, its minor and major page faults and
# the bytes it read from the disk (/proc/<pid>/stat and io) for that
# request, and the load average.
#
#   bash scripts/bench-cold-read.sh [OPTIN-BINARY]
# WORK (default /tmp/optin-10m) holds big.yaml and big/optin.db; the
# binary defaults to $WORK/optin. Run as root or as the file's owner.
set -euo pipefail
W=${WORK:-/tmp/optin-10m}
OPTIN=${1:-$W/optin}
DB=$W/big/optin.db
PORT=$(sed -n 's/^listen: "127.0.0.1:\([0-9]*\)"/\1/p' "$W/big.yaml")
API=http://127.0.0.1:$PORT/api/v1
say() { echo "== $* (load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%T))"; }
ms() { date +%s%N | cut -b1-13; }
# counters PID: user and system ticks, minor and major faults, bytes read.
counters() {
  echo "$(sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13, $8, $10}') $(awk '/^read_bytes/{print $2}' "/proc/$1/io")"
}
timed() { # timed WHAT CURL-ARGS...
  local what=$1 a t0 code wall
  shift
  a=$(counters "$PID")
  t0=$(ms)
  code=$(curl -sS -o "$W/out" -w '%{http_code}' -H "Authorization: Bearer $KEY" "$@") || true
  wall=$(($(ms) - t0))
  echo "$a $(counters "$PID")" | awk -v w="$what" -v c="$code" -v ms=$wall -v t="$(getconf CLK_TCK)" \
    '{printf "%s: HTTP %s, %d ms, CPU %.2f s user + %.2f s system, %d minor + %d major faults, %.1f MB read\n",
      w, c, ms, ($6-$1)/t, ($7-$2)/t, $8-$3, $9-$4, ($10-$5)/1e6}'
}
PID=
trap 'if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi' EXIT
cold_start() { # evict the file's pages (none may be mapped), then serve
  python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$DB"
  echo "$(fincore -n -b -o RES "$DB") bytes of the file in the page cache"
  "$OPTIN" serve --config "$W/big.yaml" >>"$W/cold.log" 2>&1 &
  PID=$!
  until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.01; done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

KEY=$("$OPTIN" apikey create --name "cold-$(date +%s%N)" --role admin --config "$W/big.yaml" 2>/dev/null)
cold_start
CID=$(curl -sf -H "Authorization: Bearer $KEY" -d '{"name":"Still there?","topic":"events",
  "templates":{"en":{"subject":"Still there?","body":"Hello"}}}' "$API/campaigns" | sed 's/.*"id":"\([^"]*\)".*/\1/')
stop
say "preview, cold start"
cold_start
timed "campaign preview, topic events, cold" -X POST "$API/campaigns/$CID/preview"
cat "$W/out"; echo
timed "campaign preview, warm" -X POST "$API/campaigns/$CID/preview"
timed "campaign preview, warm" -X POST "$API/campaigns/$CID/preview"
stop
if [ -n "${EXPORT:-}" ]; then
  say "export, cold start"
  cold_start
  timed "export CSV, cold" "$API/exports/subscribers?format=csv"
  timed "export CSV, warm" "$API/exports/subscribers?format=csv"
  stop
fi
say done
