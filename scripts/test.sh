#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, round-trip, fixture ground truth, peer files,
# robustness), then proves the committed fixtures still reproduce from real servers.
# Installs the servers first (quick when already installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$(date +%s)
scripts/install-servers.sh
scripts/install-chromium.sh
cargo test --workspace --locked
echo "==> fixtures/generate.py --check: regenerate every fixture from real servers and compare"
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
.tools/venv/bin/python fixtures/generate.py --check --keep "$fresh"
echo "==> the regenerated dumps export to their ground truth too"
RDBKIT_FIXTURES="$fresh" cargo test --locked -p rdb-cli --test fixtures
echo "==> all tests passed in $(( $(date +%s) - start ))s"
