#!/usr/bin/env bash
# Real-window end-to-end tests of the desktop app (ui/e2e/, node:test + webdriverio): starts
# Xvfb and tauri-driver (which starts the app through WebKitWebDriver), runs the tests, and
# stops everything it started, by PID, whatever happens. Tests the app as last built with
# `--features custom-protocol` (scripts/test.sh builds it); `--build` builds the UI and the app
# first. The app runs on an empty library and empty config and data folders of its own, with a
# tiny random model (src-tauri/examples/tiny_model.rs) so that reading and notes run quickly.
# The tests add files as a person does, through X: xdotool types paths into the native pickers
# and drags a file from a small GTK window (ui/e2e/drag-source.py, on Debian's python3-gi; the
# drop test is skipped without it) onto the app's window.
# MEMREADER_SCREENSHOTS=DIR also saves the main views, as the screen shows them, into DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [[ "${1:-}" == "--build" ]]; then
  bash scripts/setup.sh
  npm --prefix ui run build
  cargo build -p memreader-app --features custom-protocol --locked
fi
app="$CARGO_TARGET_DIR/debug/memreader-app"
if [[ ! -x "$app" ]]; then
  echo "test-app: $app is not built; run: bash scripts/test-app.sh --build" >&2
  exit 1
fi

work=$(mktemp -d)
xvfb_pid=""
driver_pid=""
cleanup() {
  # tauri-driver runs in its own session: its group holds WebKitWebDriver and the app, which
  # would outlive tauri-driver if a test died before ending its WebDriver session.
  if [[ -n "$driver_pid" ]]; then
    kill -TERM -- "-$driver_pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 -- "-$driver_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$driver_pid" 2>/dev/null || true
  fi
  if [[ -n "$xvfb_pid" ]]; then
    kill -TERM "$xvfb_pid" 2>/dev/null || true
    wait "$xvfb_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A display of our own: Xvfb picks a free number and writes it to fd 3.
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.log" &
xvfb_pid=$!
for _ in $(seq 100); do
  [[ -s "$work/display" ]] && break
  kill -0 "$xvfb_pid" 2>/dev/null || { cat "$work/xvfb.log" >&2; exit 1; }
  sleep 0.1
done
export DISPLAY=":$(tr -d '[:space:]' <"$work/display")"
unset WAYLAND_DISPLAY

# tauri-driver starts the app with this environment: a library, settings, data and a model of
# its own.
cargo run --quiet --locked -p memreader-app --features custom-protocol --example tiny_model \
  -- "$work/model"
export MEMREADER_HOME="$work/library" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
  MEMREADER_MODEL="$work/model"

# Two free local ports for tauri-driver and the WebKitWebDriver behind it.
read -r port native_port < <(node -e '
  const net = require("node:net");
  const free = () => new Promise((ok) => { const s = net.createServer().listen(0, "127.0.0.1",
    () => { const p = s.address().port; s.close(() => ok(p)); }); });
  Promise.all([free(), free()]).then(([a, b]) => console.log(a, b));')
setsid tauri-driver --port "$port" --native-port "$native_port" >"$work/driver.log" 2>&1 &
driver_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$driver_pid" 2>/dev/null || { cat "$work/driver.log" >&2; exit 1; }
  sleep 0.1
done

if [[ -n "${MEMREADER_SCREENSHOTS:-}" ]]; then
  mkdir -p "$MEMREADER_SCREENSHOTS"
  MEMREADER_SCREENSHOTS=$(realpath "$MEMREADER_SCREENSHOTS")
  export MEMREADER_SCREENSHOTS
fi
echo "test-app: $app on display $DISPLAY, tauri-driver on port $port"
status=0
(cd ui && MEMREADER_APP="$app" TAURI_DRIVER_PORT="$port" \
  node --test --test-reporter=tap --test-concurrency=1 e2e/app.test.mjs) || status=$?
if ((status)); then
  echo "test-app: tauri-driver's log:" >&2
  tail -n 50 "$work/driver.log" >&2
fi
exit "$status"
