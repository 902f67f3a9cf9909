#!/usr/bin/env bash
# Times `rdbkit upload` against the Python azure-storage-blob client on the same file,
# both uploading to a real Azurite (in memory) on 127.0.0.1: median wall time of RUNS
# runs (default 3), MB/s, and the ratio.
#
#   benches/upload.sh [SIZE_MB]          default 256
# Both sides use 8 MiB blocks and 8 blocks in flight. Each run's blob size is checked
# (a wrong upload cannot look fast) and the blob deleted before the next run.
# Needs scripts/install-azurite.sh; installs azure-storage-blob into
# $RDBKIT_TOOLS/venv-bench on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
mb=${1:-256}
runs=${RUNS:-3}
TOOLS=${RDBKIT_TOOLS:-$REPO/.tools}
PY_PIN="azure-storage-blob==12.31.1"

scripts/install-azurite.sh >/dev/null
venv=$TOOLS/venv-bench
if ! "$venv/bin/python" -c 'import azure.storage.blob' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$PY_PIN"
fi
py=$venv/bin/python

cargo build -q --release -p rdb-cli
cargo build -q --release -p rdbkit-benches --example generate
bin=$REPO/target/release/rdbkit

work=$(mktemp -d -p "${BENCH_DIR:-/dev/shm}")
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$TOOLS/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
    --inMemoryPersistence --skipApiVersionCheck --disableTelemetry --silent >"$work/azurite.log" 2>&1 &
azurite_pid=$!
trap 'kill "$azurite_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

file=$work/bench.rdb
target/release/examples/generate "$file" "$mb" >/dev/null 2>&1
bytes=$(stat -c %s "$file")

# Container + a container SAS (well-known Azurite key; bench code only).
export AZ_ACCOUNT_URL="http://127.0.0.1:$port/devstoreaccount1"
helper=$work/helper.py
cat >"$helper" <<'PY'
import os, sys, time
from datetime import datetime, timedelta, timezone
from azure.storage.blob import (BlobServiceClient, BlobClient, generate_container_sas,
                                ContainerSasPermissions)
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
url = os.environ["AZ_ACCOUNT_URL"]
cmd = sys.argv[1]
if cmd == "sas":
    svc = BlobServiceClient(url, credential={"account_name": ACCOUNT, "account_key": KEY})
    svc.create_container("bench")
    sas = generate_container_sas(ACCOUNT, "bench", account_key=KEY,
                                 permission=ContainerSasPermissions(read=True, write=True, create=True, delete=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=2))
    print(f"{url}/bench?{sas}")
elif cmd == "upload":   # upload FILE BLOB_SAS_URL
    blob = BlobClient.from_blob_url(sys.argv[3], max_block_size=8 << 20, max_single_put_size=8 << 20)
    with open(sys.argv[2], "rb") as f:
        blob.upload_blob(f, overwrite=True, max_concurrency=8)
elif cmd == "size":     # size BLOB_SAS_URL
    print(BlobClient.from_blob_url(sys.argv[2]).get_blob_properties().size)
elif cmd == "delete":
    BlobClient.from_blob_url(sys.argv[2]).delete_blob()
PY
sas=$("$py" "$helper" sas)
blob_url() { echo "${sas%%\?*}/$1?${sas#*\?}"; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }

declare -A med
for tool in rdbkit python; do
    times=()
    for i in $(seq "$runs"); do
        name=$tool-$i.rdb
        if [ "$tool" = rdbkit ]; then
            t=$(timed "$bin" upload "$file" --sas-url "$sas" --name "$name" --parallel 8 --block-size 8MiB)
        else
            t=$(timed "$py" "$helper" upload "$file" "$(blob_url "$name")")
        fi
        got=$("$py" "$helper" size "$(blob_url "$name")")
        [ "$got" = "$bytes" ] || { echo "$tool run $i: blob has $got bytes, file $bytes" >&2; exit 1; }
        "$py" "$helper" delete "$(blob_url "$name")"
        times+=("$t")
    done
    med[$tool]=$(printf '%s\n' "${times[@]}" | median)
done

printf 'file: %d bytes (%.0f MB), %d runs each, Azurite in memory on 127.0.0.1\n' "$bytes" "$(echo "$bytes/1048576" | bc -l)" "$runs"
printf '%-28s %10s %10s\n' "uploader" "median s" "MB/s"
for tool in rdbkit python; do
    label=$tool; [ "$tool" = python ] && label="python azure-storage-blob"
    printf '%-28s %10.2f %10.1f\n' "$label" "${med[$tool]}" "$(echo "$bytes / 1048576 / ${med[$tool]}" | bc -l)"
done
printf 'ratio (python time / rdbkit time): %.2fx\n' "$(echo "${med[python]} / ${med[rdbkit]}" | bc -l)"
