#!/usr/bin/env bash
# Runs two rdbkit builds over every fixture and peer file and compares what they print and
# write: info/stats/verify JSON, export (JSON Lines, RESP, RESTORE), convert and split. A
# restructuring must leave every byte as it was.
#
#   scripts/compare-outputs.sh BASE_REV            this tree against BASE_REV (built here)
#   scripts/compare-outputs.sh OLD_BIN NEW_BIN     two binaries
#
# Exit 0 when every output is identical, 1 otherwise (the differing cases are listed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"; git worktree remove --force "$work/base" 2>/dev/null || true' EXIT

if [[ $# -eq 2 ]]; then
    old=$1 new=$2
elif [[ $# -eq 1 ]]; then
    echo "==> building $1 and this tree" >&2
    git worktree add -q --detach "$work/base" "$1"
    # Dependencies built for this tree serve the base build too.
    CARGO_TARGET_DIR="$PWD/target/compare-base" cargo build -q --bin rdbkit \
        --manifest-path "$work/base/Cargo.toml"
    cargo build -q --bin rdbkit
    old="$PWD/target/compare-base/debug/rdbkit" new="$PWD/target/debug/rdbkit"
else
    echo "usage: $0 BASE_REV | OLD_BIN NEW_BIN" >&2
    exit 2
fi

files=$(find fixtures/servers -name '*.rdb' | sort)
if [[ -d ../shared/fixtures/peers ]]; then
    files+=$'\n'$(find ../shared/fixtures/peers -name '*.rdb' | sort)
fi

# One case: NAME, then the arguments; OUT in them is replaced by a per-binary output path.
run_case() {
    local bin=$1 dir=$2 name=$3
    shift 3
    mkdir -p "$dir"
    local args=()
    for a in "$@"; do args+=("${a//OUT/$dir/out}"); done
    set +e
    "$bin" "${args[@]}" >"$dir/stdout" 2>"$dir/stderr"
    echo $? >"$dir/status"
    set -e
}

differ=0 cases=0
while IFS= read -r f; do
    [[ -n $f ]] || continue
    for spec in \
        "info|info $f --json" \
        "stats|stats $f --json --now 1700000000000" \
        "verify|verify $f --json" \
        "export|export $f" \
        "resp|export $f --format resp" \
        "restore|export $f --format restore --rdb-version 9 --field-ttls drop --functions drop" \
        "convert9|convert $f -o OUT --rdb-version 9 --field-ttls drop --functions drop --modules drop --dbs keep" \
        "convert12|convert $f -o OUT --rdb-version 12" \
        "split|convert $f -o OUT --shards 3 --rdb-version 12"; do
        name=${spec%%|*} cmd=${spec#*|}
        key=$(echo "$f" | tr '/.' '__')-$name
        # shellcheck disable=SC2086
        run_case "$old" "$work/old/$key" "$name" $cmd
        # shellcheck disable=SC2086
        run_case "$new" "$work/new/$key" "$name" $cmd
        cases=$((cases + 1))
        # The output path differs between the two runs; error text may name it.
        sed -i "s#$work/old/$key#DIR#g" "$work/old/$key/stderr" "$work/old/$key/stdout"
        sed -i "s#$work/new/$key#DIR#g" "$work/new/$key/stderr" "$work/new/$key/stdout"
        if ! diff -r -q "$work/old/$key" "$work/new/$key" >/dev/null; then
            differ=$((differ + 1))
            echo "DIFFERS: $name on $f"
            diff -r "$work/old/$key" "$work/new/$key" | head -5 || true
        fi
    done
done <<<"$files"
echo "$cases cases, $differ differ"
[[ $differ -eq 0 ]]
