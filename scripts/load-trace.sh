#!/usr/bin/env bash
# Trace-query latency with a large event_logs on PostgreSQL, against a release build:
#   seeds ROWS rows (default 1,000,000: 1,000 sessions of 1,000 events) with scripts/seed-event-logs.sql,
#   then measures with wrk (1 connection, so the figures are per-query latency):
#     GET /api/v1/traces/sessions/{id}            (1,000 events each)
#     GET /api/v1/traces/sessions/{id}/metrics
#     GET /api/v1/traces/correlation/{id}         (20 events across two sessions)
#     GET /dashboard/traces/session/{id}          (the rendered trace page)
#   and, as the same-run baseline, the session query alone through pgbench (per-query latencies from
#   its log, so p50/p95 compare directly).
# Usage: scripts/load-trace.sh [duration_seconds] [rows]   (needs `cargo build --release` first)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-15}"
ROWS="${2:-1000000}"
BIN=target/release/omninode-bridge
PG="${OMNINODE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PORT="${PORT:-18058}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
WORK=$(mktemp -d)
NAME="omninode_trace_$(date +%s)"
trap 'kill $SVC 2>/dev/null || true; psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $NAME" >/dev/null 2>&1; rm -rf "$WORK"' EXIT

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -sr); $(psql "$PG/postgres" -Atc 'show server_version')"
psql "$PG/postgres" -qc "CREATE DATABASE $NAME" >/dev/null
URL="$PG/$NAME"
OMNINODE__DATABASE__URL="$URL" "$BIN" migrate >/dev/null
echo "== seeding $ROWS event_logs rows"
/usr/bin/time -f "seeded in %e s" psql -q -v rows="$ROWS" -f scripts/seed-event-logs.sql "$URL"
psql "$URL" -Atc "SELECT 'rows: ' || count(*) || ', table + indexes: ' || pg_size_pretty(pg_total_relation_size('event_logs')) FROM event_logs"
echo "== plan of the session trace"
psql "$URL" -Atc "EXPLAIN ANALYZE SELECT * FROM event_logs WHERE \"timestamp\" >= now() - interval '24 hours' AND session_id = 'bench-s-7' ORDER BY \"timestamp\", event_id LIMIT 10001" | grep -E "Index|Scan|Execution"

OMNINODE__DATABASE__URL="$URL" OMNINODE__HTTP__BIND="127.0.0.1:$PORT" OMNINODE__LOG__LEVEL=warn \
    "$BIN" serve >"$WORK/service.log" 2>&1 &
SVC=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/api/v1/metadata-stamping/health/ready" >/dev/null && break
    sleep 0.1
done
# Warm the cache the way a running service has it: read the table once.
psql "$URL" -Atqc "SELECT count(*), sum(length(payload::text)) FROM event_logs" >/dev/null
n=$(curl -sf "http://127.0.0.1:$PORT/api/v1/traces/sessions/bench-s-1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["event_count"])')
echo "== one session trace returns $n events"

for kind in session metrics correlation page; do
    TRACE_KIND=$kind wrk -t1 -c1 -d3s -s scripts/wrk/trace.lua "http://127.0.0.1:$PORT" >/dev/null  # warm-up
    TRACE_KIND=$kind wrk -t1 -c1 -d"${DURATION}s" -s scripts/wrk/trace.lua "http://127.0.0.1:$PORT" | grep RESULT
done
kill -TERM "$SVC"; wait "$SVC" 2>/dev/null || true

echo "== baseline: the session query through pgbench, 1 client (${DURATION}s)"
(cd "$WORK" && pgbench -n -c1 -T"$DURATION" -f "$OLDPWD/scripts/pgbench-trace.sql" -l --log-prefix=trace "$URL" 2>/dev/null | grep -E "tps|latency average")
cat "$WORK"/trace* | awk '{print $3/1000}' | sort -n | awk '{a[NR]=$1} END {printf "RESULT kind=pgbench-session p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f n=%d\n", a[int(NR*0.50+0.5)], a[int(NR*0.95+0.5)], a[int(NR*0.99+0.5)], NR}'
