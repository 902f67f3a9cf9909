#!/usr/bin/env bash
# Install headless Chromium for the `rdbkit stats --html` browser test
# (rdb-cli/tests/stats.rs) and record where it is.
#
#   scripts/install-chromium.sh
#
# Uses the Debian package `chromium` (apt-get, as root); does nothing when a chromium
# binary is already on PATH. Writes its path to ${RDBKIT_TOOLS:-<repo>/.tools}/chromium.path,
# which the test reads. Idempotent and quick when already installed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${RDBKIT_TOOLS:-$REPO/.tools}
mkdir -p "$TOOLS"

find_chromium() {
    command -v chromium || command -v chromium-browser || true
}

BIN=$(find_chromium)
if [ -z "$BIN" ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "install-chromium: installing the Debian package chromium" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
    BIN=$(find_chromium)
fi
if [ -z "$BIN" ]; then
    echo "install-chromium: chromium is still not on PATH after apt-get install" >&2
    exit 1
fi
"$BIN" --version >&2
echo "$BIN" > "$TOOLS/chromium.path"
echo "install-chromium: $BIN (recorded in $TOOLS/chromium.path)" >&2
