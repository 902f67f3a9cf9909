#!/usr/bin/env bash
# Installs the peer tools benches/compare.sh runs, into $RDBKIT_TOOLS/peers (idempotent;
# quick when already there):
#   - the `rdb` crate's CLI (cargo install rdb)
#   - a venv with rdbtools-tikon93 + python-lzf (the `rdb` Python CLI) and rdb-py
# redis-server / redis-check-rdb 7.0 come from scripts/install-servers.sh (servers.json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=${RDBKIT_TOOLS:-$PWD/.tools}
peers=$tools/peers
mkdir -p "$peers"
if [ ! -x "$peers/bin/rdb" ]; then
    echo "install-peers: cargo install rdb --root $peers"
    cargo install rdb --locked --root "$peers"
fi
# rdbtools-tikon93 brings the `rdb` command; rdb-py the `rdb` Python module.
if [ ! -x "$peers/venv/bin/rdb" ] || ! "$peers/venv/bin/python" -c "import rdb; rdb.RdbDecoder" 2>/dev/null; then
    echo "install-peers: venv with rdbtools-tikon93, python-lzf, rdb-py"
    python3 -m venv "$peers/venv"
    "$peers/venv/bin/pip" install --quiet rdbtools-tikon93 python-lzf rdb-py
fi
echo "install-peers: ready in $peers"
