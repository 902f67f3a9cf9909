#!/usr/bin/env bash
# Times rdbkit beside the peer tools installable here, on the same RDB file.
#
#   benches/compare.sh FILE            an existing snapshot (RDB <= 10 lets every peer read it)
#   benches/compare.sh --generate MB   the benches' production-like mix, converted to RDB 10
#
# For each command: median wall time of RUNS (3) runs, MB/s of input, ratio to rdbkit's
# fastest comparable operation, and peak RSS (/usr/bin/time -v, the largest of the runs;
# rdbkit's RSS includes the pages of its memory-mapped input that it touched).
# The slow formatters (rdbtools-tikon93, the `rdb` crate's JSON) read a SMALL_MB (32) file
# of the same mix instead, each capped at PEER_TIMEOUT (300) seconds.
# Outputs go to ${BENCH_DIR:-/dev/shm} (rdbkit fsyncs its output; a disk would time the disk).
# Peers come from benches/install-peers.sh and scripts/install-servers.sh (servers.json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=${RDBKIT_TOOLS:-$PWD/.tools}
runs=${RUNS:-3}
small_mb=${SMALL_MB:-32}
peer_timeout=${PEER_TIMEOUT:-300}
work=$(mktemp -d -p "${BENCH_DIR:-/dev/shm}")
trap 'rm -rf "$work"' EXIT

cargo build -q --release -p rdb-cli
cargo build -q --release -p rdbkit-benches --example generate
bin=$PWD/target/release/rdbkit
benches/install-peers.sh >/dev/null
peers=$tools/peers

make_rdb10() { # MB OUT
    target/release/examples/generate "$work/gen.rdb" "$1" >/dev/null 2>&1
    "$bin" convert "$work/gen.rdb" -o "$2" --rdb-version 10 >/dev/null 2>&1
    rm -f "$work/gen.rdb"
}
case "${1:-}" in
    --generate) file=$work/input.rdb; make_rdb10 "${2:?--generate MB}" "$file" ;;
    "" | -h | --help) sed -n '2,14p' "$0"; exit 2 ;;
    *) file=$1 ;;
esac
small=$work/small.rdb
make_rdb10 "$small_mb" "$small"
version=$((10#$(head -c 9 "$file" | tail -c 4 | tr -dc 0-9)))
server_json() { # NAME FIELD -> first element
    python3 -c "import json,sys; d={s['name']:s for s in json.load(open('$tools/servers.json'))}; \
s=d.get('$1'); v=s and s['$2']; print(v[0] if isinstance(v, list) else (v or {}).get('LD_LIBRARY_PATH', ''))" 2>/dev/null || true
}
check_rdb=$(server_json redis-7.0 check)
redis_server=$(server_json redis-7.0 server)
redis_ld=$(server_json redis-7.0 env)

# Runs a command RUNS times; prints "median_seconds peak_rss_kB" or "fail".
measure() {
    local times=() peak=0 t rss
    for _ in $(seq "$runs"); do
        rm -rf "$work/out" "$work/out.rdb" "$work/out.jsonl"
        if ! timeout "$peer_timeout" /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err"; then
            echo "fail"; return
        fi
        read -r t rss <"$work/time"
        times+=("$t"); [ "$rss" -le "$peak" ] || peak=$rss
    done
    echo "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') $peak"
}

# redis-server 7.0: the load time it logs ("DB loaded from disk: N seconds"), median.
server_load() { # FILE
    local times=() peak=0 port pid secs rss
    for _ in $(seq "$runs"); do
        port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
        mkdir -p "$work/srv"; ln -sf "$1" "$work/srv/dump.rdb"; : >"$work/srv/log"
        LD_LIBRARY_PATH=$redis_ld "$redis_server" --port "$port" --bind 127.0.0.1 --dir "$work/srv" \
            --dbfilename dump.rdb --save "" --appendonly no --logfile "$work/srv/log" --daemonize no &
        pid=$!
        for _ in $(seq 1200); do
            grep -q "DB loaded from disk\|Ready to accept" "$work/srv/log" && break
            kill -0 "$pid" 2>/dev/null || break; sleep 0.1
        done
        secs=$(grep -o 'DB loaded from disk: [0-9.]*' "$work/srv/log" | grep -o '[0-9.]*$' || true)
        rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        [ -n "$secs" ] || { echo fail; return; }
        times+=("$secs"); [ "$rss" -le "$peak" ] || peak=$rss
    done
    echo "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') $peak"
}

has() { "$bin" "$1" --help >/dev/null 2>&1; }
mb_of() { echo "$(stat -L -c %s "$1") / 1000000" | bc -l; }
big_mb=$(mb_of "$file"); little_mb=$(mb_of "$small")
printf 'input: %s, RDB %s, %.0f MB (slow formatters: %.0f MB)  runs: %s\n\n' "$(basename "$file")" "$version" "$big_mb" "$little_mb" "$runs"
printf '| %-44s | %8s | %8s | %8s | %9s |\n' "tool and operation" "median s" "MB/s" "vs rdbkit" "peak RSS MB"
printf '|%s|%s|%s|%s|%s|\n' "---" "---" "---" "---" "---"
declare -A base
row() { # LABEL INPUT_MB BASE_KEY RESULT
    local label=$1 mb=$2 key=$3 result=$4 t rss rate ratio
    if [ "$result" = fail ]; then
        printf '| %-44s | %8s | %8s | %8s | %9s |\n' "$label" "failed" "-" "-" "-"; return
    fi
    read -r t rss <<<"$result"
    rate=$(echo "$mb / ($t + 0.0001)" | bc -l)
    # rdbkit's first row of a kind is the base of that kind.
    if [[ $label == rdbkit* ]] && [ -z "${base[$key]:-}" ]; then base[$key]=$rate; fi
    ratio=-
    [ -z "${base[$key]:-}" ] || ratio=$(printf '%.2fx' "$(echo "$rate / ${base[$key]}" | bc -l)")
    printf '| %-44s | %8.2f | %8.0f | %8s | %9.1f |\n' "$label" "$t" "$rate" "$ratio" "$(echo "$rss / 1024" | bc -l)"
}

# rdbkit on the big file; each row's ratio is against rdbkit's row of the same kind.
has verify && row "rdbkit verify" "$big_mb" check "$(measure "$bin" verify "$file")"
row "rdbkit info" "$big_mb" check "$(measure "$bin" info "$file")"
has stats && row "rdbkit stats" "$big_mb" stats "$(measure "$bin" stats "$file")"
row "rdbkit export jsonl" "$big_mb" json "$(measure "$bin" export --format jsonl "$file" -o "$work/out.jsonl")"
row "rdbkit convert -> RDB 9" "$big_mb" convert "$(measure "$bin" convert "$file" -o "$work/out.rdb" --rdb-version 9)"
row "rdbkit convert passthrough (RDB $version)" "$big_mb" pass "$(measure "$bin" convert "$file" -o "$work/out.rdb" --rdb-version "$version")"
row "rdbkit convert --shards 3" "$big_mb" pass "$(measure "$bin" convert "$file" -o "$work/out" --rdb-version "$version" --shards 3)"
has export && "$bin" export --help 2>/dev/null | grep -q restore &&
    row "rdbkit export --format restore" "$big_mb" restore "$(measure "$bin" export --format restore --rdb-version "$version" "$file" -o "$work/out.jsonl")"
row "rdbkit export jsonl (small file)" "$little_mb" json_small "$(measure "$bin" export --format jsonl "$small" -o "$work/out.jsonl")"

# Peers.
[ -z "$check_rdb" ] || row "redis-check-rdb 7.0.15" "$big_mb" check \
    "$(measure env LD_LIBRARY_PATH="$redis_ld" "$check_rdb" "$file")"
[ -z "$redis_server" ] || row "redis-server 7.0.15 load (its log's time)" "$big_mb" check "$(server_load "$file")"
[ -x "$peers/bin/rdb" ] && row "rdb crate --format nil (decode only)" "$big_mb" check "$(measure "$peers/bin/rdb" --format nil "$file")"
[ -x "$peers/bin/rdb" ] && row "rdb crate --format json (small file)" "$little_mb" json_small "$(measure "$peers/bin/rdb" --format json "$small")"
[ -x "$peers/venv/bin/rdb" ] && row "rdbtools-tikon93 --command json (small file)" "$little_mb" json_small \
    "$(measure "$peers/venv/bin/rdb" --command json "$small")"
[ -x "$peers/venv/bin/rdb" ] && row "rdbtools-tikon93 --command protocol (small)" "$little_mb" restore \
    "$(measure "$peers/venv/bin/rdb" --command protocol "$small")"
if "$peers/venv/bin/python" -c "import rdb; rdb.RdbDecoder" 2>/dev/null; then
    row "rdb-py RdbDecoder, iterate (small file)" "$little_mb" json_small "$(measure "$peers/venv/bin/python" -c \
        "import rdb,sys; n=sum(1 for _ in rdb.RdbDecoder(sys.argv[1]))" "$small")"
fi
echo
echo "ratio: MB/s divided by rdbkit's MB/s for the same kind of work (check: verify/info;"
echo "convert: -> RDB 9; pass: passthrough; json_small: JSON of the small file; restore: RESTORE payloads)."
