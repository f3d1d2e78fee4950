#!/usr/bin/env bash
# gpu-pack.sh BINARY... : copies release binaries built with `--features cuda` into .device/
# (git-ignored), stripped and gzipped, to be carried to a GPU host (`carry: [".device"]`) and run
# there with scripts/gpu-run.sh. Keep the total under the carry limit (a binary is ~12 MB gzipped).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
for bin in "$@"; do
  name=$(basename "$bin" | sed -E 's/-[0-9a-f]{16}$//')
  cp "$bin" ".device/$name"
  strip ".device/$name"
  gzip -f ".device/$name"
  echo ".device/$name.gz ($(du -h ".device/$name.gz" | cut -f1))"
done
