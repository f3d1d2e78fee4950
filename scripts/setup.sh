#!/usr/bin/env bash
# Checks the build tools the project needs and installs what is missing. Idempotent: what is
# already there is skipped. Today only the Rust toolchain's components are needed; Debian
# packages (the Tauri app's webkit2gtk stack, Xvfb) join here when the app lands.
set -euo pipefail
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "setup: installing the Rust component $component"
    rustup component add "$component"
  fi
done
