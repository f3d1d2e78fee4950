# Sourced by the scripts: one cargo target dir outside the clone, shared by every checkout on
# this machine, so that a fresh clone (and CI) builds warm. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/memreader/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Tools that setup.sh installs outside the system (tauri-driver, for the app's real-window tests).
export MEMREADER_TOOLS="${MEMREADER_TOOLS:-$HOME/.cache/memreader/tools}"
case ":$PATH:" in *":$MEMREADER_TOOLS/bin:"*) ;; *) export PATH="$MEMREADER_TOOLS/bin:$PATH" ;; esac
