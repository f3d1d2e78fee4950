#!/usr/bin/env bash
# Builds MemReader (release) and runs `memreader demo` on the bundled demo books.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo build --release --locked --bin memreader
exec "$CARGO_TARGET_DIR/release/memreader" demo "$@"
