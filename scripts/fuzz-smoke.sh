#!/usr/bin/env bash
# Runs every fuzz target for a short fixed time (RDBKIT_FUZZ_SECONDS, default 20) on the
# seeded corpus: proof that the targets build and hold on the corpus, not a fuzzing
# campaign (that is `fuzz/run.sh SECONDS`, logged in fuzz/RUNS.md).
# Needs the nightly toolchain; installs cargo-fuzz into $RDBKIT_TOOLS when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=${RDBKIT_TOOLS:-$PWD/.tools}
seconds=${RDBKIT_FUZZ_SECONDS:-20}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz smoke: the nightly toolchain is not installed (rustup toolchain install nightly);" \
        "cargo-fuzz needs it."
    if [ -n "${CI:-}" ]; then
        echo "fuzz smoke: FAILED (CI is set)"
        exit 1
    fi
    echo "fuzz smoke: skipped"
    exit 0
fi
export PATH="$tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz smoke: installing cargo-fuzz into $tools"
    cargo install cargo-fuzz --locked --root "$tools"
fi
echo "fuzz smoke: every target for ${seconds}s"
RUNS_MD= fuzz/run.sh "$seconds"
