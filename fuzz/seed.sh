#!/usr/bin/env bash
# Seeds each target's corpus with the committed fixtures (and the peer files when present).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for target in parse convert idempotent dump; do
    mkdir -p "corpus/$target"
    cp ../fixtures/servers/*/*.rdb "corpus/$target/" 2>/dev/null || true
    for f in ../fixtures/servers/*/*.rdb; do
        cp "$f" "corpus/$target/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    if [ -d ../../shared/fixtures/peers ]; then
        cp ../../shared/fixtures/peers/*/*.rdb "corpus/$target/" 2>/dev/null || true
    fi
done
echo "seeded: $(ls corpus/parse | wc -l) files per target"
