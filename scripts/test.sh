#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, round-trip, fixture ground truth, peer files,
# robustness), then proves the committed fixtures still reproduce from real servers.
# Installs the servers, Azurite and Chromium first (quick when already installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$(date +%s)
scripts/install-servers.sh
scripts/install-azurite.sh   # blob emulator for the upload tests
scripts/install-chromium.sh  # headless browser for the stats --html test
phase=$(date +%s)
echo "==> gates: rustfmt, clippy (warnings denied), rustdoc (warnings denied), no clap/indicatif in the library"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
for dep in clap indicatif; do  # the library's tree holds neither (the `cli` feature adds them for the binary)
    tree=$(cargo tree --locked -p rdb-cli --no-default-features -e normal -i "$dep" 2>&1 || true)
    grep -q "did not match any packages" <<<"$tree" || { echo "rdb-cli's library depends on $dep:"; echo "$tree"; exit 1; }
done
echo "==> gates took $(( $(date +%s) - phase ))s"
phase=$(date +%s)
cargo test --workspace --locked
echo "==> workspace tests took $(( $(date +%s) - phase ))s"
echo "==> fixtures/generate.py --check: regenerate every fixture from real servers and compare"
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
.tools/venv/bin/python fixtures/generate.py --check --keep "$fresh"
echo "==> the regenerated dumps export to their ground truth too"
RDBKIT_FIXTURES="$fresh" cargo test --locked -p rdb-cli --test fixtures
phase=$(date +%s)
echo "==> benches, quick mode (16 MB inputs): they run and their count checks hold"
# A smoke run proves the benches run, not how fast: built without LTO or debug info and
# in more units, it builds in 3m56s instead of 6m19s on 2 cores. Timings come from a
# plain `cargo bench` (benches/README.md).
CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_DEBUG=0 CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 \
    RDBKIT_BENCH_MB=16 cargo bench --locked -p rdbkit-benches -- --quick
echo "==> benches took $(( $(date +%s) - phase ))s"
phase=$(date +%s)
echo "==> fuzz smoke: each fuzz target briefly on the seeded corpus"
scripts/fuzz-smoke.sh
echo "==> fuzz smoke took $(( $(date +%s) - phase ))s"
echo "==> all tests passed in $(( $(date +%s) - start ))s"
