#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors), and every test of the
# workspace. Installs what it needs first; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
