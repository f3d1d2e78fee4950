#!/usr/bin/env bash
# gpu-run.sh COMMAND... : on the GPU host, in the repo root: unpacks the binaries that
# scripts/gpu-pack.sh put in .device/, points the loader at the CUDA 13 runtime libraries of the
# host's PyTorch (cu130) wheels, prints the GPU, and runs COMMAND, e.g.
#   bash scripts/gpu-run.sh .device/gpu --nocapture
#   bash scripts/gpu-run.sh .device/kernel_bench
set -euo pipefail
cd "$(dirname "$0")/.."
for f in .device/*.gz; do
  [ -e "$f" ] || continue
  gunzip -kf "$f"
  chmod +x "${f%.gz}"
done
CU13=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH=${CU13}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$@"
