#!/usr/bin/env bash
# Run the whole test suite on a fresh machine. Sets up what the tests need by itself:
#   - PostgreSQL on 127.0.0.1:5432 (started, or installed with apt-get when missing);
#   - a Kafka-protocol broker: tansu 0.6.0 (fetched once into ~/.cache, see scripts/lib/ensure-tansu.sh)
#     on a free 127.0.0.1 port, stopped when the script exits;
#   - headless Chromium + chromedriver for the dashboard test (Debian packages, installed when missing;
#     screenshots land in target/dashboard-screenshots/);
# then runs every unit and integration test against both backends (SQLite and PostgreSQL).
# Use other servers with OMNINODE_TEST_PG_URL=postgres://user@host:port and
# OMNINODE_TEST_KAFKA=host:port (a real Kafka; topics are created by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure-postgres.sh
source scripts/lib/ensure-postgres.sh
# shellcheck source=scripts/lib/ensure-tansu.sh
source scripts/lib/ensure-tansu.sh
# shellcheck source=scripts/lib/ensure-chromium.sh
source scripts/lib/ensure-chromium.sh

if [ -z "${OMNINODE_TEST_PG_URL:-}" ]; then
    ensure_postgres
    export OMNINODE_TEST_PG_URL="postgres://postgres@127.0.0.1:${PGPORT:-5432}"
fi

# Databases left behind by interrupted earlier runs (ones nobody is connected to: a suite running
# at the same time against the same server keeps its own).
if command -v psql >/dev/null 2>&1; then
    psql "$OMNINODE_TEST_PG_URL/postgres" -Atqc \
        "SELECT datname FROM pg_database WHERE datname LIKE 'omninode_test_%'" 2>/dev/null \
        | while read -r db; do
            psql "$OMNINODE_TEST_PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
        done
fi

# The broker-outage test starts and stops brokers of its own, so it needs the binary either way.
TANSU_BIN="$(ensure_tansu_binary)"
export TANSU_BIN
if [ -z "${OMNINODE_TEST_KAFKA:-}" ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p target
    start_tansu "$port" target/tansu-test.log >/dev/null
    trap 'stop_tansu "$TANSU_PID"' EXIT
    export OMNINODE_TEST_KAFKA="127.0.0.1:$port"
fi

if [ -z "${OMNINODE_TEST_CHROMEDRIVER:-}" ]; then
    ensure_chromium
fi

cargo test --locked --all-targets "$@"
