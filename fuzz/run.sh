#!/usr/bin/env bash
# Runs fuzz targets one after another, each for SECONDS of wall-clock time, at the lowest
# CPU priority on one core, and appends a row per run to fuzz/RUNS.md.
#   fuzz/run.sh SECONDS [TARGET...]     (default: every target)
# Crashes land in fuzz/artifacts/<target>/ and logs in fuzz/artifacts/logs/; a target's
# run stops at its first crash and the next target starts. Exits 1 when any crashed.
# RUNS_MD= (empty) leaves fuzz/RUNS.md alone (the CI smoke run does).
# Never pause a run (SIGSTOP, e.g. to time something): -timeout counts wall-clock time, so
# a pause of more than 10 s is reported as a timeout of whatever input was running.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
fuzz_dir=$PWD
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse roundtrip convert idempotent dump)
runs_md=${RUNS_MD-$fuzz_dir/RUNS.md}
[ -d corpus/parse ] || bash seed.sh
mkdir -p artifacts/logs
found=0
for t in "${targets[@]}"; do
    if ! cargo +nightly fuzz build "$t" >/dev/null 2>"artifacts/logs/build-$t.log"; then
        cat "artifacts/logs/build-$t.log" >&2
        exit 2
    fi
    bin=$fuzz_dir/target/x86_64-unknown-linux-gnu/release/$t
    mkdir -p "corpus/$t" "artifacts/$t"
    # -jobs=1 runs the fuzzer in a child and logs to fuzz-0.log in the working directory.
    work=$(mktemp -d "artifacts/logs/$t-XXXX")
    start=$(date +%s)
    # One core: rayon and the checksum thread stay sequential inside the target.
    (cd "$work" && RAYON_NUM_THREADS=1 nice -n 19 "$bin" "$fuzz_dir/corpus/$t" \
        -dict="$fuzz_dir/rdb.dict" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len=1048576 -jobs=1 -workers=1 -print_final_stats=1 \
        -artifact_prefix="$fuzz_dir/artifacts/$t/" >runner.log 2>&1)
    minutes=$(awk "BEGIN { printf \"%.1f\", ($(date +%s) - $start) / 60 }")
    log=$work/fuzz-0.log
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" 2>/dev/null | grep -o '[0-9]*$' | tail -1)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" 2>/dev/null | tail -1 | tr -d '#')
    corpus=$(ls "corpus/$t" | wc -l)
    if grep -qE "ERROR: libFuzzer|panicked at|SUMMARY: " "$log" 2>/dev/null; then
        found=1
        finding="$(grep -m1 -E "panicked at|ERROR: libFuzzer" "$log" | cut -c1-150) (log: fuzz/${log#"$fuzz_dir"/})"
    else
        finding=none
    fi
    row="| $(date -u +%Y-%m-%d) | $t | $minutes | ${execs:-?} | $corpus | $finding |"
    echo "$row"
    [ -z "$runs_md" ] || echo "$row" >>"$runs_md"
done
exit $found
