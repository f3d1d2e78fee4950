#!/usr/bin/env bash
# Trains a MemMamba on a GPU host that has no Rust, within a wall-clock budget, and leaves the
# weights (f16, split into parts of 15 MB) and the logs in $OUT. Run it through gpu-run.sh, which
# unpacks the CUDA build of `memmamba-train` that scripts/gpu-pack.sh put in .device/ and finds
# the CUDA runtime (steps: docs/MODEL_CARD.md):
#
#   bash scripts/gpu-run.sh bash scripts/device-train.sh DATA_DIR RUN_NAME MINUTES [train args]
#
# DATA_DIR holds tokenizer.json, train.tokens.gz + train.books.json and dev.tokens +
# dev.books.json. A 10-step probe measures the throughput first, so that the run's step count
# (and with it the cosine schedule) fits the budget.
set -euo pipefail
data=$1 name=$2 minutes=$3
shift 3
seq_len=${SEQ_LEN:-2048} batch=${BATCH:-16}
work=/tmp/memreader-train
mkdir -p "$work"
[ -f "$work/train.tokens" ] || gunzip -c "$data/train.tokens.gz" > "$work/train.tokens"
cp "$data/train.books.json" "$data/dev.tokens" "$data/dev.books.json" "$data/tokenizer.json" "$work/"

train() {
  timeout $(( minutes * 60 + 60 )) .device/memmamba-train train --tokens "$work/train.tokens" --eval "$work/dev.tokens" \
    --tokenizer "$work/tokenizer.json" --seq-len "$seq_len" --batch "$batch" --device cuda "$@"
}
rm -rf "$work/probe"
train --steps 10 --warmup 1 --eval-every 0 --checkpoint-every 0 --out "$work/probe" "$@" \
  2>&1 | tee "$OUT/probe.log"
# Throughput of the last probe steps (the first ones include start-up).
rate=$(awk '/tok\/s/ { r[NR] = $(NF-1) } END { n = 0; s = 0; for (i in r) { n++; s += r[i] } print int(s / n) }' "$OUT/probe.log")
steps=$(( minutes * 60 * rate * 85 / 100 / (seq_len * batch) ))
echo "probe: $rate tokens/s -> $steps steps of $batch x $seq_len tokens in $minutes min" | tee "$OUT/plan.txt"
train --steps "$steps" --warmup $(( steps / 20 + 1 )) --eval-every $(( steps / 10 + 1 )) \
  --checkpoint-every $(( steps / 10 + 1 )) --out "$work/$name" "$@" 2>&1 | tee "$OUT/train.log" | grep -E "eval|wrote|error" || true
cp "$work/$name/config.json" "$work/$name/log.jsonl" "$OUT/"
# The final weights, or the last checkpoint's when the budget ran out first.
weights=$work/$name/model.safetensors
[ -f "$weights" ] || weights=$work/$name/checkpoint/model.safetensors
python3 - "$weights" "$work/model-f16.safetensors" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(sys.argv[1]).items()}
save_file(tensors, sys.argv[2])
PY
split -b 15M -d "$work/model-f16.safetensors" "$OUT/model-f16.part"
ls -la "$OUT"
