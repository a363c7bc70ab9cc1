#!/usr/bin/env bash
# 10,000 concurrent connections against a release build (embedded profile): wrk holds CONNS keep-alive
# connections, each sending POST /hash (1 KiB) back to back, for DURATION seconds. Prints wrk's result
# (requests, socket errors, non-2xx, latency percentiles), the success ratio and the service's peak RSS.
# Usage: scripts/load-connections.sh [duration_seconds] [connections]   (needs `cargo build --release`)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-20}"
CONNS="${2:-10000}"
BIN=target/release/omninode-bridge
PORT="${PORT:-18059}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
# One descriptor per connection on each side, plus headroom.
ulimit -n "$(( CONNS + 2048 ))" 2>/dev/null || { echo "raise the open-files limit above $CONNS (ulimit -n)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'kill $SVC 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -sr); somaxconn $(cat /proc/sys/net/core/somaxconn)"
OMNINODE__DATABASE__URL="sqlite://$WORK/conn.db" OMNINODE__HTTP__BIND="127.0.0.1:$PORT" OMNINODE__LOG__LEVEL=warn \
    "$BIN" serve >"$WORK/service.log" 2>&1 &
SVC=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/api/v1/metadata-stamping/health/ready" >/dev/null && break
    sleep 0.1
done
base=$(grep VmRSS "/proc/$SVC/status" | awk '{print $2}')
echo "== $CONNS connections, POST /hash 1 KiB, ${DURATION}s"
out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s scripts/wrk/hash.lua "http://127.0.0.1:$PORT" 2>&1)
echo "$out" | grep -E "Socket errors|RESULT|Non-2xx" || true
echo "$out" | awk '/RESULT/ {for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
    printf "success ratio: %.5f (requests %d, socket errors %d, non-2xx %d)\n", (v["requests"]-v["errors"]-v["non2xx"])/v["requests"], v["requests"], v["errors"], v["non2xx"]}'
echo "RSS: idle $((base / 1024)) MiB, peak $(grep VmHWM "/proc/$SVC/status" | awk '{print int($2/1024)}') MiB"

