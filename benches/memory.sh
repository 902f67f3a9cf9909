#!/usr/bin/env bash
# Peak anonymous memory (RssAnon, sampled every 20 ms; the memory-mapped input is
# file-backed and not counted) of rdbkit's streaming commands:
#   - on generated production-like files of growing size (MIX_SIZES, default "256 1024" MB);
#   - on files holding ONE huge key (HUGE_MB, default 1024 MB) of each type.
# The goal: flat in the file size, and at most 64 MB plus the largest single value an
# operation must hold in memory (a re-encoded or formatted value; a value copied as stored
# is borrowed from the input and costs nothing).
#   benches/memory.sh            files and outputs in ${BENCH_DIR:-/dev/shm}
#   OPS="export resp|stats" MIX_SIZES=256 KINDS="list hash" benches/memory.sh   a subset
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
read -r -a mix_sizes <<<"${MIX_SIZES:-256 1024}"
huge_mb=${HUGE_MB:-1024}
read -r -a kinds <<<"${KINDS:-string list hash set zset}"
work=$(mktemp -d -p "${BENCH_DIR:-/dev/shm}"); trap 'rm -rf "$work"' EXIT
cargo build -q --release -p rdb-cli
cargo build -q --release -p rdbkit-benches --example generate --example huge
bin=target/release/rdbkit

# "seconds peak_kB exit_code" of a command
measure() {
    local start end pid peak=0 rss rc
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/err" & pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.02
    done
    rc=0; wait "$pid" || rc=$?
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc) $peak $rc"
}

ops=("stats" "convert -> RDB 9" "convert --shards 3" "export jsonl" "export resp" "keys parquet")
# OPS="export resp|stats" measures only those.
[ -z "${OPS:-}" ] || IFS='|' read -r -a ops <<<"$OPS"
run_op() { # OP FILE
    rm -rf "$work/out" "$work/out.rdb" "$work/out.jsonl" "$work/out.parquet"
    case "$1" in
        stats) measure "$bin" stats "$2" ;;
        "convert -> RDB 9") measure "$bin" convert "$2" -o "$work/out.rdb" --rdb-version 9 ;;
        "convert --shards 3") measure "$bin" convert "$2" -o "$work/out" --rdb-version 11 --shards 3 ;;
        "export jsonl") measure "$bin" export --format jsonl "$2" -o "$work/out.jsonl" ;;
        "export resp") measure "$bin" export --format resp "$2" -o "$work/out.jsonl" ;;
        "keys parquet") measure "$bin" keys "$2" -o "$work/out.parquet" ;;
    esac
}

printf '| %-24s | %-20s | %8s | %12s | %s |\n' "input" "operation" "seconds" "peak anon MB" "exit"
printf '|---|---|---|---|---|\n'
report() { # INPUT OP RESULT
    local t p rc
    read -r t p rc <<<"$3"
    printf '| %-24s | %-20s | %8.2f | %12.1f | %s |\n' "$1" "$2" "$t" "$(echo "$p / 1024" | bc -l)" \
        "$([ "$rc" = 0 ] && echo ok || echo "exit $rc: $(head -c 120 "$work/err" | tr '\n' ' ')")"
}
for mb in "${mix_sizes[@]}"; do
    target/release/examples/generate "$work/in.rdb" "$mb" >/dev/null 2>&1
    for op in "${ops[@]}"; do report "mix, $mb MB" "$op" "$(run_op "$op" "$work/in.rdb")"; done
    rm -f "$work/in.rdb"
done
for kind in "${kinds[@]}"; do
    target/release/examples/huge "$work/in.rdb" "$kind" "$huge_mb" >/dev/null 2>&1
    for op in "${ops[@]}"; do report "one $huge_mb MB $kind" "$op" "$(run_op "$op" "$work/in.rdb")"; done
    rm -f "$work/in.rdb"
done
