#!/usr/bin/env bash
# Companion of device-train.sh, for the later calls while the GPU host is held: waits up to
# WAIT seconds for the runs to finish (printing their progress each minute), then leaves in
# $OUT the weights of run SHIP as f16 safetensors in 15 MB parts (its last finished phase's
# weights, else the newest checkpoint's; `cat model-f16.part* > model.safetensors`) and logs.tgz (status, training
# logs, configs and tokenizers, loss logs, evaluations).
#
#   bash scripts/gpu-run.sh bash scripts/device-collect.sh SHIP WAIT
set -euo pipefail
ship=$1 wait=$2
work=${WORK:-/tmp/memreader-train}
end=$(( $(date +%s) + wait ))
while ! grep -qs '^.* done$' "$work/status" && [ "$(date +%s)" -lt "$end" ]; do
  sleep $(( end - $(date +%s) < 60 ? end - $(date +%s) : 60 ))
  echo "== $(date -u +%T)"
  for log in "$work"/*.log; do
    [ -e "$log" ] && echo "$(basename "$log"): $(grep -E 'step|eval' "$log" | tail -1)"
  done
done
cat "$work/status"
# The last finished phase's weights, else the newest checkpoint's.
weights=$work/$ship/model.safetensors
[ -f "$weights" ] || weights=$(ls -t "$work/$ship"/phase-*/checkpoint/model.safetensors 2>/dev/null | head -1)
if [ -f "$weights" ]; then
  echo "shipping $weights"
  python3 - "$weights" "$work/model-f16.safetensors" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open
with safe_open(sys.argv[1], "pt") as f:
    metadata = f.metadata()
tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(sys.argv[1]).items()}
save_file(tensors, sys.argv[2], metadata=metadata)
PY
  split -b 15M -d "$work/model-f16.safetensors" "$OUT/model-f16.part"
fi
(cd "$work" && find . -maxdepth 3 \( -name status -o -name '*.log' -o -name '*.md' \
  -o -name config.json -o -name tokenizer.json -o -name log.jsonl \) -print0 | xargs -0 tar czf "$OUT/logs.tgz" || true)
ls -la "$OUT"
