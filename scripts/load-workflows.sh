#!/usr/bin/env bash
# Completed workflows/s with full persistence (POST /api/v1/workflows?wait=true, 32 connections, unique
# ~1 KiB content each) against a release build, on SQLite and on PostgreSQL. Prints RESULT lines.
# Usage: scripts/load-workflows.sh [duration_seconds]   (needs `cargo build --release` and wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
BIN=target/release/omninode-bridge
PG="${OMNINODE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PORT="${PORT:-18059}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'kill $SVC 2>/dev/null || true; rm -rf "$WORK"' EXIT
start() {
    OMNINODE__DATABASE__URL="$1" OMNINODE__HTTP__BIND="127.0.0.1:$PORT" OMNINODE__LOG__LEVEL=warn \
        "$BIN" serve >"$WORK/service.log" 2>&1 &
    SVC=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/api/v1/metadata-stamping/health/ready" >/dev/null && return 0
        sleep 0.1
    done
    echo "service did not start" >&2; exit 1
}
stop() { kill -TERM "$SVC"; wait "$SVC" 2>/dev/null || true; }
echo "== workflows, 32 connections, SQLite (${DURATION}s)"
start "sqlite://$WORK/wf.db"
RUN_ID=warm wrk -t2 -c32 -d3s -s scripts/wrk/workflow.lua "http://127.0.0.1:$PORT" >/dev/null
RUN_ID=sqlite wrk -t2 -c32 -d"${DURATION}s" -s scripts/wrk/workflow.lua "http://127.0.0.1:$PORT" | grep RESULT
stop
echo "== workflows, 32 connections, PostgreSQL (${DURATION}s)"
name="omninode_load_wf_$(date +%s%N)"
psql "$PG/postgres" -qc "CREATE DATABASE $name" >/dev/null
start "$PG/$name"
RUN_ID=warm wrk -t2 -c32 -d3s -s scripts/wrk/workflow.lua "http://127.0.0.1:$PORT" >/dev/null
RUN_ID=pg wrk -t2 -c32 -d"${DURATION}s" -s scripts/wrk/workflow.lua "http://127.0.0.1:$PORT" | grep RESULT
stop
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null || true
