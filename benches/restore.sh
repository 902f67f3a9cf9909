#!/usr/bin/env bash
# Times loading a generated snapshot into a local server three ways, and prints medians:
#   restore      rdbkit restore FILE --to redis://127.0.0.1:PORT     (RESTORE, pipelined)
#   pipe-resp    redis-cli --pipe < (rdbkit export --format resp)    (plain commands)
#   pipe-restore redis-cli --pipe < (rdbkit export --format restore) (RESTORE commands)
# The export files are written beforehand; their time is shown separately ("export ...").
# Each run starts on an empty server (FLUSHALL) and checks DBSIZE afterwards, so a run that
# loads nothing cannot look fast.
#
#   benches/restore.sh [MB]          default 64; RUNS=3; SERVER=redis-7.0 (a manifest name)
# The server and redis-cli come from $RDBKIT_TOOLS/servers.json (scripts/install-servers.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mb=${1:-64}
runs=${RUNS:-3}
server_name=${SERVER:-redis-7.0}
tools=${RDBKIT_TOOLS:-$PWD/.tools}
work=$(mktemp -d -p "${BENCH_DIR:-/dev/shm}")
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

read -r server env_path < <("$tools/venv/bin/python" - "$tools/servers.json" "$server_name" <<'PY'
import json, sys
entry = next(e for e in json.load(open(sys.argv[1])) if e["name"] == sys.argv[2])
print(entry["server"][-1], entry.get("env", {}).get("LD_LIBRARY_PATH", "-"))
PY
)
[ "$env_path" = "-" ] || export LD_LIBRARY_PATH="$env_path"
cli=$(dirname "$server")/redis-cli
[ -x "$cli" ] || { echo "no redis-cli beside $server (use SERVER=redis-7.0)" >&2; exit 2; }

cargo build -q --release -p rdb-cli
cargo build -q --release -p rdbkit-benches --example generate
bin=$PWD/target/release/rdbkit
file=$work/gen.rdb
target/release/examples/generate "$file" "$mb" 2>&1 | tail -1
keys=$("$bin" info "$file" --json | "$tools/venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["keys"])' 2>/dev/null || echo "")

port=$("$tools/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --daemonize no >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do "$cli" -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
dbsize() { "$cli" -p "$port" dbsize; }

t0=$(now); "$bin" export "$file" --format resp -o "$work/cmds.resp"; t1=$(now)
"$bin" export "$file" --format restore --target "$server_name" -o "$work/cmds.restore"; t2=$(now)
printf 'export --format resp:    %6.2f s, %d MB\n' "$(echo "$t1 - $t0" | bc)" "$(( $(stat -c %s "$work/cmds.resp") >> 20 ))"
printf 'export --format restore: %6.2f s, %d MB\n' "$(echo "$t2 - $t1" | bc)" "$(( $(stat -c %s "$work/cmds.restore") >> 20 ))"

declare -A med
expected=""
for way in restore pipe-resp pipe-restore; do
    times=()
    for _ in $(seq "$runs"); do
        "$cli" -p "$port" flushall >/dev/null
        start=$(now)
        case $way in
            restore) "$bin" restore "$file" --to "redis://127.0.0.1:$port" --now 0 >/dev/null 2>"$work/restore.log" \
                         || { cat "$work/restore.log" >&2; exit 1; } ;;
            pipe-resp) "$cli" -p "$port" --pipe <"$work/cmds.resp" >"$work/pipe.log" 2>&1 ;;
            pipe-restore) "$cli" -p "$port" --pipe <"$work/cmds.restore" >"$work/pipe.log" 2>&1 ;;
        esac
        case $way in pipe-*) grep -q "errors: 0" "$work/pipe.log" || { tail -3 "$work/pipe.log" >&2; exit 1; } ;; esac
        end=$(now)
        n=$(dbsize)
        [ -n "$expected" ] || expected=$n
        [ "$n" = "$expected" ] && [ "$n" -gt 0 ] || { echo "$way loaded $n keys, not $expected" >&2; exit 1; }
        times+=("$(echo "$end - $start" | bc)")
    done
    med[$way]=$(printf '%s\n' "${times[@]}" | median)
done
bytes=$(stat -c %s "$file")
printf '%-13s %10s %10s %8s   (%s keys%s, %s, %d runs)\n' way "median s" "MB/s" ratio "$expected" "${keys:+ of $keys}" "$server_name" "$runs"
for way in restore pipe-resp pipe-restore; do
    printf '%-13s %10.2f %10.1f %7.2fx\n' "$way" "${med[$way]}" "$(echo "$bytes / 1048576 / ${med[$way]}" | bc -l)" \
        "$(echo "${med[$way]} / ${med[restore]}" | bc -l)"
done
