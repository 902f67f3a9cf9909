#!/usr/bin/env bash
# Install the Azurite blob emulator (npm package `azurite`, pinned) into
# ${RDBKIT_TOOLS:-<repo>/.tools}/azurite, for the `rdbkit upload` tests and benches.
#
#   scripts/install-azurite.sh
#
# Idempotent: when the pinned version is already there it only checks that
# `azurite-blob --version` runs. Needs node + npm on PATH (the npm registry is the only
# network target). Azurite 3.37 declares Node >= 22 but runs on Node 20; npm's
# EBADENGINE warning is expected.
set -euo pipefail

AZURITE_PIN=3.37.0

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${RDBKIT_TOOLS:-$REPO/.tools}
mkdir -p "$TOOLS"
TOOLS=$(cd "$TOOLS" && pwd)
PREFIX=$TOOLS/azurite
BIN=$PREFIX/node_modules/.bin/azurite-blob

installed=""
if [ -f "$PREFIX/node_modules/azurite/package.json" ]; then
    installed=$(node -p "require('$PREFIX/node_modules/azurite/package.json').version" 2>/dev/null || true)
fi
if [ "$installed" != "$AZURITE_PIN" ]; then
    # npm is needed only to install; an installed Azurite runs on node alone.
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-azurite: npm is not installed (apt-get install nodejs npm)" >&2
        exit 1
    fi
    echo "install-azurite: installing azurite@$AZURITE_PIN into $PREFIX"
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_PIN"
fi
version=$("$BIN" --version)
echo "install-azurite: azurite-blob $version at $BIN"
