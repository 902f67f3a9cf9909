#!/usr/bin/env bash
# Transcoding beside copying, on one file (issue 22): passthrough convert, convert to RDB 9
# (--target redis-6.2), RESTORE payloads for redis-6.2 (export --format restore), and
# verify beside redis-check-rdb 7.0.
#
#   benches/transcode.sh FILE              an existing snapshot (RDB <= 10 for redis-check-rdb 7.0)
#   benches/transcode.sh --generate MB     the benches' mix, converted to RDB 10
#   benches/transcode.sh --giant MB [KINDS]  one key of MB per kind (default list,hash,set,zset),
#                                          quicklist 2 / hashtable / ZSET_2, converted to RDB 10
#
# Each row: median wall seconds and CPU seconds (user + system) of RUNS (3) runs, MB/s of
# input, the ratio asked for (transcodes to passthrough, verify to redis-check-rdb), and
# peak memory: anonymous (RssAnon, the mapped input excluded, sampled every 10 ms) and
# max RSS (/usr/bin/time, input pages included); the largest of the runs.
# Files and outputs in ${BENCH_DIR:-/dev/shm}. BIN=path/to/rdbkit times another build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=${RDBKIT_TOOLS:-$PWD/.tools}
runs=${RUNS:-3}
work=$(mktemp -d -p "${BENCH_DIR:-/dev/shm}")
trap 'rm -rf "$work"' EXIT

if [ -z "${BIN:-}" ]; then
    cargo build -q --release -p rdb-cli
fi
cargo build -q --release -p rdbkit-benches --example generate --example huge
bin=${BIN:-$PWD/target/release/rdbkit}

to_rdb10() { # IN OUT
    "$bin" convert "$1" -o "$2" --rdb-version 10 >/dev/null 2>&1
    rm -f "$1"
}
case "${1:-}" in
    --generate)
        file=$work/input.rdb
        target/release/examples/generate "$work/gen.rdb" "${2:?--generate MB}" >/dev/null 2>&1
        to_rdb10 "$work/gen.rdb" "$file" ;;
    --giant)
        file=$work/input.rdb
        target/release/examples/huge "$work/gen.rdb" "${3:-list,hash,set,zset}" "${2:?--giant MB}" >/dev/null 2>&1
        to_rdb10 "$work/gen.rdb" "$file" ;;
    "" | -h | --help) sed -n '2,16p' "$0"; exit 2 ;;
    *) file=$1 ;;
esac
version=$((10#$(head -c 9 "$file" | tail -c 4 | tr -dc 0-9)))
server_json() { # NAME FIELD -> first element (or the env's LD_LIBRARY_PATH)
    python3 -c "import json,sys; d={s['name']:s for s in json.load(open('$tools/servers.json'))}; \
s=d.get('$1'); v=s and s['$2']; print(v[0] if isinstance(v, list) else (v or {}).get('LD_LIBRARY_PATH', ''))" 2>/dev/null || true
}
check_rdb=$(server_json redis-7.0 check)
check_ld=$(server_json redis-7.0 env)

# A FIFO opened read-write never delivers: `read -t` on it is a sleep without a fork.
mkfifo "$work/tick"
exec {tick}<>"$work/tick"

# Runs a command RUNS times: "median_wall median_cpu peak_anon_kB max_rss_kB", or "fail".
measure() {
    local walls=() cpus=() anon=0 rss=0 pid child k v rest e u s m
    for _ in $(seq "$runs"); do
        rm -rf "$work/out"
        /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" &
        pid=$!
        child=""
        while kill -0 "$pid" 2>/dev/null; do
            [ -n "$child" ] || read -r child rest <"/proc/$pid/task/$pid/children" 2>/dev/null || true
            if [ -n "$child" ]; then
                while read -r k v rest; do
                    if [ "$k" = RssAnon: ]; then [ "$v" -le "$anon" ] || anon=$v; break; fi
                done <"/proc/$child/status" 2>/dev/null || true
            fi
            read -r -t 0.01 -u "$tick" rest || true
        done
        if ! wait "$pid"; then
            echo "fail: $(head -c 200 "$work/err" | tr '\n' ' ')" >&2
            echo fail; return
        fi
        # The last line: GNU time puts any note of its own (a signal, a status) before it.
        read -r e u s m < <(tail -n 1 "$work/time")
        if [ -z "$m" ]; then
            echo "unreadable /usr/bin/time output: $(tr '\n' ' ' <"$work/time")" >&2
            echo fail; return
        fi
        walls+=("$e"); cpus+=("$(echo "$u + $s" | bc)"); [ "$m" -le "$rss" ] || rss=$m
    done
    median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    echo "$(median "${walls[@]}") $(median "${cpus[@]}") $anon $rss"
}

mb=$(echo "$(stat -L -c %s "$file") / 1000000" | bc -l)
printf 'input: %s, RDB %s, %.0f MB, runs: %s, binary: %s\n\n' "$(basename "$file")" "$version" "$mb" "$runs" "$bin"
printf '| %-40s | %6s | %6s | %6s | %-22s | %8s | %8s |\n' "operation" "wall s" "CPU s" "MB/s" "ratio" "anon MB" "RSS MB"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "---" "---:" "---:" "---:" "---" "---:" "---:"
declare -A rate
row() { # KEY LABEL RESULT [BASE_KEY BASE_NAME]
    local key=$1 label=$2 result=$3 base=${4:-} t c a r ratio=""
    if [[ $result == fail* ]]; then
        printf '| %-40s | %6s | %6s | %6s | %-22s | %8s | %8s |\n' "$label" failed - - - - -; return
    fi
    read -r t c a r <<<"$result"
    rate[$key]=$(echo "$mb / ($t + 0.0001)" | bc -l)
    if [ -n "$base" ] && [ -n "${rate[$base]:-}" ]; then
        ratio=$(printf '%.2fx %s' "$(echo "${rate[$key]} / ${rate[$base]}" | bc -l)" "$5")
    fi
    printf '| %-40s | %6.2f | %6.2f | %6.0f | %-22s | %8.1f | %8.1f |\n' "$label" "$t" "$c" "${rate[$key]}" \
        "$ratio" "$(echo "$a / 1024" | bc -l)" "$(echo "$r / 1024" | bc -l)"
}

row pass "convert passthrough (RDB $version -> $version)" \
    "$(measure "$bin" convert "$file" -o "$work/out" --rdb-version "$version")"
row rdb9 "convert --target redis-6.2 (RDB 9)" \
    "$(measure "$bin" convert "$file" -o "$work/out" --target redis-6.2)" pass "of passthrough"
row restore "export --format restore --target redis-6.2" \
    "$(measure "$bin" export --format restore --target redis-6.2 "$file" -o "$work/out")" pass "of passthrough"
if [ -n "$check_rdb" ] && [ "$version" -le 10 ]; then
    row check "redis-check-rdb 7.0" "$(measure env LD_LIBRARY_PATH="$check_ld" "$check_rdb" "$file")"
fi
row verify "verify" "$(measure "$bin" verify "$file")" check "of redis-check-rdb"
