#!/usr/bin/env bash
# Seeds the corpora of the targets that read RDB files with the committed fixtures and,
# when present, the peer projects' files (RDBKIT_PEER_FIXTURES, default
# /work/shared/fixtures/peers). `roundtrip` reads structured input and starts empty.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
peers=${RDBKIT_PEER_FIXTURES:-/work/shared/fixtures/peers}
for target in parse convert idempotent dump; do
    mkdir -p "corpus/$target"
    for f in ../fixtures/servers/*/*.rdb; do
        cp "$f" "corpus/$target/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    if [ -d "$peers" ]; then
        for f in "$peers"/*/*.rdb; do
            cp "$f" "corpus/$target/peer-$(basename "$(dirname "$f")")-$(basename "$f")"
        done
    fi
done
mkdir -p corpus/roundtrip
echo "seeded: $(ls corpus/parse | wc -l) files per RDB target"
