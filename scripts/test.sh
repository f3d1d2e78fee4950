#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors), every test of the workspace,
# the UI's unit tests and the desktop app's real-window tests. Installs what it needs first;
# safe to run again. Ends with one line counting every test; exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
# The app (src-tauri/) embeds ui/dist when it compiles, clippy included: build the UI first.
echo "== ui: npm run build"
npm --prefix ui run build
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== hostile corpus: scripts/hostile-corpus.sh"
# Real broken PDFs and EPUBs for ingest's hostile test (39 MB of downloads, cached in ~/.cache/memreader);
# without them (no network) that test skips, saying so, rather than fail.
if ! bash scripts/hostile-corpus.sh; then
  echo "WARNING: the hostile corpus could not be fetched: its test in ingest/tests/hostile.rs SKIPS" >&2
fi
echo "== cargo test"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
# With the app's custom-protocol feature, as the e2e build below, so both share one build;
# --no-fail-fast so that one failing test binary does not hide the others' counts.
cargo test --workspace --locked --no-fail-fast --features memreader-app/custom-protocol 2>&1 |
  tee "$logs/cargo.log" || failed=1
echo "== ui: vitest"
(cd ui && NO_COLOR=1 npx vitest run --reporter=default --reporter=json \
  --outputFile.json="$logs/vitest.json") || failed=1
echo "== app: real-window end-to-end tests"
# The same packages and features as `cargo test` above, so that this only links the app.
cargo build --workspace --features memreader-app/custom-protocol --locked
bash scripts/test-app.sh 2>&1 | tee "$logs/e2e.log" || failed=1
# One closing line over all test binaries (the last binary alone may have run none), the UI's
# unit tests and the app's end-to-end tests.
cargo_counts=$(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$logs/cargo.log")
ui_counts=$(node -e '
  try { const r = require(process.argv[1]); console.log(r.numPassedTests, r.numFailedTests); }
  catch { console.log(0, 0); }' "$logs/vitest.json")
e2e_counts=$(awk '/^# pass / { p = $3 } /^# fail / { f = $3 } END { print p + 0, f + 0 }' "$logs/e2e.log")
read -r cp cf <<<"$cargo_counts"
read -r up uf <<<"$ui_counts"
read -r ep ef <<<"$e2e_counts"
echo "passed/failed by runner: cargo $cp/$cf, ui (vitest) $up/$uf, app e2e (node:test) $ep/$ef"
if ((failed && cf + uf + ef == 0)); then
  echo "a test runner failed without counting a failed test: see its output above" >&2
fi
echo "tests: $((cp + up + ep)) passed, $((cf + uf + ef)) failed"
exit "$failed"
