#!/usr/bin/env bash
# Run the whole test suite on a fresh machine. Sets up what the tests need by itself:
#   - PostgreSQL on 127.0.0.1:5432 (started, or installed with apt-get when missing);
# then runs every unit and integration test against both backends (SQLite and PostgreSQL).
# Point the tests at another PostgreSQL server with OMNINODE_TEST_PG_URL=postgres://user@host:port
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/ensure-postgres.sh
source scripts/lib/ensure-postgres.sh

if [ -z "${OMNINODE_TEST_PG_URL:-}" ]; then
    ensure_postgres
    export OMNINODE_TEST_PG_URL="postgres://postgres@127.0.0.1:${PGPORT:-5432}"
fi

# Databases left behind by interrupted earlier runs.
if command -v psql >/dev/null 2>&1; then
    psql "$OMNINODE_TEST_PG_URL/postgres" -Atqc \
        "SELECT datname FROM pg_database WHERE datname LIKE 'omninode_test_%'" 2>/dev/null \
        | while read -r db; do
            psql "$OMNINODE_TEST_PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
        done
fi

cargo test --locked --all-targets "$@"
