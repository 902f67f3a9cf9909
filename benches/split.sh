#!/usr/bin/env bash
# Splits generated snapshots into 3 cluster shards with rdbkit, on one thread and on all
# cores, and reports the median time, throughput, speed-up and peak anonymous memory
# (RssAnon, sampled every 20 ms: the memory-mapped input is file-backed and not counted).
#
#   benches/split.sh [SIZES_MB...]      default: 256 512 1024
# Two passes per size: to RDB 11 (every key copied as stored) and to RDB 9 (listpacks
# re-encoded as ziplists: the work that spreads over cores).
# Files go to ${BENCH_DIR:-/dev/shm}: in memory, so the disk's fsync speed does not hide
# rdbkit's (rdbkit syncs each output before renaming it into place).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(256 512 1024)
runs=${RUNS:-3}
work=$(mktemp -d -p "${BENCH_DIR:-/dev/shm}"); trap 'rm -rf "$work"' EXIT
cargo build -q --release -p rdb-cli
cargo build -q --release -p rdbkit-benches --example generate
bin=target/release/rdbkit

# peak RssAnon (kB) of a command, and its wall time (s)
measure() {
    local start end pid peak=0 rss
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 & pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.02
    done
    wait "$pid"
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc) $peak"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-6s %-7s %-8s %10s %10s %12s %9s\n' "MB" "target" "threads" "median s" "MB/s" "peak anon MB" "speed-up"
for mb in "${sizes[@]}"; do
    file=$work/gen-$mb.rdb
    target/release/examples/generate "$file" "$mb" >/dev/null 2>&1
    bytes=$(stat -c %s "$file")
    for version in 11 9; do
    one=""
    for threads in 1 all; do
        args=(); [ "$threads" = all ] || args=(--threads "$threads")
        times=(); peaks=()
        for _ in $(seq "$runs"); do
            rm -rf "$work/out"
            read -r t p < <(measure "$bin" "${args[@]}" convert "$file" -o "$work/out" --rdb-version "$version" --shards 3)
            times+=("$t"); peaks+=("$p")
        done
        med=$(printf '%s\n' "${times[@]}" | median)
        peak=$(printf '%s\n' "${peaks[@]}" | sort -n | tail -1)
        [ -n "$one" ] || one=$med
        printf '%-6s %-7s %-8s %10.2f %10.0f %12.1f %8.2fx\n' "$mb" "rdb$version" "$threads" "$med" \
            "$(echo "$bytes / 1048576 / $med" | bc -l)" "$(echo "$peak / 1024" | bc -l)" \
            "$(echo "$one / $med" | bc -l)"
    done
    done
    rm -f "$file"
done
