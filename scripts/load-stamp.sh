#!/usr/bin/env bash
# Load test against a release build with wrk (Debian package `wrk`):
#   POST /stamp, 1 KiB unique content, 64 connections — on SQLite and on PostgreSQL, plus the pgbench
#   single-row INSERT baseline into the same table at the same client count;
#   POST /hash 1 KiB at 50 connections and 1 MiB at 8 connections.
# Prints one RESULT line per run and the service's peak RSS (VmHWM).
# Usage: scripts/load-stamp.sh [duration_seconds]   (needs `cargo build --release` first)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-20}"
BIN=target/release/omninode-bridge
PG="${OMNINODE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PORT="${PORT:-18057}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'kill $SVC 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() { # $1 = database url
    OMNINODE__DATABASE__URL="$1" OMNINODE__HTTP__BIND="127.0.0.1:$PORT" OMNINODE__LOG__LEVEL=warn \
        "$BIN" serve >"$WORK/service.log" 2>&1 &
    SVC=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/api/v1/metadata-stamping/health/ready" >/dev/null && return 0
        sleep 0.1
    done
    echo "service did not start" >&2; cat "$WORK/service.log" >&2; exit 1
}
stop() { kill -TERM "$SVC"; wait "$SVC" 2>/dev/null || true; }
rss() { grep VmHWM "/proc/$SVC/status" | awk '{print $2/1024 " MiB peak RSS"}'; }
fresh_pg() { # prints a url of a new database with the service's migrations applied
    local name="omninode_load_$(date +%s%N)"
    psql "$PG/postgres" -qc "CREATE DATABASE $name" >/dev/null
    OMNINODE__DATABASE__URL="$PG/$name" "$BIN" migrate >/dev/null
    echo "$PG/$name"
}

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -sr)"

echo "== POST /stamp 1 KiB, 64 connections, SQLite (${DURATION}s)"
start "sqlite://$WORK/load.db"
wrk -t2 -c64 -d3s -s scripts/wrk/stamp.lua "http://127.0.0.1:$PORT" >/dev/null  # warm-up
RUN_ID=sqlite wrk -t2 -c64 -d"${DURATION}s" -s scripts/wrk/stamp.lua "http://127.0.0.1:$PORT" | grep RESULT
rss; stop

echo "== POST /stamp 1 KiB, 64 connections, PostgreSQL (${DURATION}s)"
URL=$(fresh_pg)
start "$URL"
wrk -t2 -c64 -d3s -s scripts/wrk/stamp.lua "http://127.0.0.1:$PORT" >/dev/null
RUN_ID=pg wrk -t2 -c64 -d"${DURATION}s" -s scripts/wrk/stamp.lua "http://127.0.0.1:$PORT" | grep RESULT
rss; stop

echo "== baseline: pgbench single-row INSERT into metadata_stamps, 64 clients (${DURATION}s)"
URL=$(fresh_pg)
pgbench -n -c64 -j2 -T"$DURATION" -f scripts/pgbench-insert.sql "$URL" 2>/dev/null | grep -E "tps|latency average"

echo "== POST /hash 1 KiB, 50 connections (${DURATION}s)"
start "sqlite://$WORK/hash.db"
wrk -t2 -c50 -d3s -s scripts/wrk/hash.lua "http://127.0.0.1:$PORT" >/dev/null
wrk -t2 -c50 -d"${DURATION}s" -s scripts/wrk/hash.lua "http://127.0.0.1:$PORT" | grep RESULT
echo "== POST /hash 1 MiB, 8 connections (${DURATION}s)"
head -c 1048576 /dev/urandom >"$WORK/1mib.bin"
BODY_FILE="$WORK/1mib.bin" wrk -t2 -c8 -d"${DURATION}s" -s scripts/wrk/hash.lua "http://127.0.0.1:$PORT" | grep RESULT
rss; stop
