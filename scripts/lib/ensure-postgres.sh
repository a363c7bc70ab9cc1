# shellcheck shell=bash
# ensure_postgres: make sure a PostgreSQL server answers on 127.0.0.1:${PGPORT:-5432} and that user
# `postgres` can connect over TCP without a password. Starts an installed cluster, or installs
# PostgreSQL from the distribution's packages when none is installed (Debian/Ubuntu).
ensure_postgres() {
    local port="${PGPORT:-5432}"
    if pg_ready "$port"; then return 0; fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "PostgreSQL is not installed; installing it with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
    fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        echo "no PostgreSQL cluster found under /etc/postgresql" >&2
        return 1
    fi
    # Tests connect as postgres over TCP without a password: trust loopback connections.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if [ -f "$hba" ] && ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
        || pg_ctlcluster "$version" main start 2>/dev/null \
        || pg_ctlcluster "$version" main reload 2>/dev/null || true
    for _ in $(seq 1 30); do
        if pg_ready "$port"; then return 0; fi
        sleep 1
    done
    echo "PostgreSQL did not come up on 127.0.0.1:$port" >&2
    return 1
}

pg_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p "$1"
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
