#!/usr/bin/env bash
# Checks the build tools the project needs and installs what is missing. Idempotent: what is
# already there is skipped: the Rust toolchain's components, the Debian packages of the Tauri
# app (WebKitGTK) and of its real-window tests (Xvfb, WebKitWebDriver), tauri-driver, and the
# UI's npm packages.
set -euo pipefail
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "setup: installing the Rust component $component"
    rustup component add "$component"
  fi
done

root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/env.sh"

# Debian packages: the desktop app's build (Tauri 2 on WebKitGTK 4.1) and, on the second line,
# running it in a real window under Xvfb with WebKitWebDriver (scripts/test-app.sh; xdotool drives
# the native file dialogs there and drags a file from a small GTK window of Python's, python3-gi).
debs=(build-essential pkg-config curl wget file libssl-dev libgtk-3-dev libwebkit2gtk-4.1-dev
  libjavascriptcoregtk-4.1-dev libsoup-3.0-dev librsvg2-dev libayatana-appindicator3-dev
  libxdo-dev patchelf
  xvfb xauth webkit2gtk-driver imagemagick dbus-x11 at-spi2-core fonts-dejavu-core xdotool
  python3-gi gir1.2-gtk-3.0)
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${debs[@]}" 2>/dev/null || true)
missing=()
for deb in "${debs[@]}"; do
  grep -qx "$deb installed" <<<"$installed" || missing+=("$deb")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

# tauri-driver: the WebDriver server that starts the app for the real-window tests.
if ! command -v tauri-driver >/dev/null; then
  echo "setup: installing tauri-driver into $MEMREADER_TOOLS"
  cargo install tauri-driver --version 2.1.0 --locked --root "$MEMREADER_TOOLS"
fi

# The UI's npm packages, from the lockfile; skipped while node_modules matches it. Install
# scripts stay off: no package the UI needs has one that matters, and some would download.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  echo "setup: the UI needs Node.js 20.19 or newer on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
lock_sum=$(sha256sum "$root/ui/package-lock.json" | cut -d' ' -f1)
stamp="$root/ui/node_modules/.memreader-lock-sha256"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]]; then
  echo "setup: installing the UI's npm packages (npm ci)"
  (cd "$root/ui" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$stamp"
fi
