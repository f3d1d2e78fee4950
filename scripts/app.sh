#!/usr/bin/env bash
# Builds the desktop app (the UI, then the Tauri shell with the UI embedded) and starts it.
# Needs a display (X11 or Wayland); arguments go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
npm --prefix ui run build
cargo build --release --locked -p memreader-app --features custom-protocol
exec "$CARGO_TARGET_DIR/release/memreader-app" "$@"
