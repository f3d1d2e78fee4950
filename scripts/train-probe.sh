#!/usr/bin/env bash
# Training speed and peak GPU memory of memmamba-train builds side by side on a GPU host, one
# process at a time, on the same tokens with the same seed and the retrieval mixture. Run it
# through gpu-run.sh, which unpacks .device/ and points the loader at the CUDA runtime:
#
#   bash scripts/gpu-run.sh bash scripts/train-probe.sh TOKENS TOKENIZER "NAME BIN SEQ_LEN STEPS" ...
#   e.g. ... .device/dev.tokens .device/tokenizer.json "before /tmp/old/memmamba-train 16384 14" \
#            "after .device/memmamba-train 16384 14"
#
# Prints one markdown row per probe: tokens/s over the steps after the first two, and the peak
# of the device's memory in use (nvidia-smi every 200 ms, CUDA context included).
set -euo pipefail
tokens=$1 tokenizer=$2
shift 2
echo "| build | tokens per sequence | tokens/s | peak GPU MiB |"
echo "|---|---:|---:|---:|"
for probe in "$@"; do
  read -r name bin seq steps <<< "$probe"
  out=$(mktemp -d)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$out/memory" &
  poll=$!
  status=0
  "$bin" train --tokens "$tokens" --tokenizer "$tokenizer" --seq-len "$seq" --batch 1 \
    --steps "$steps" --warmup 1 --eval-every 0 --checkpoint-every 0 --device cuda --out "$out/run" \
    --passkey-share 0.45 --multikey-share 0.2 --recall-share 0.1 --answer-weight 100 \
    > "$out/log" 2>&1 || status=$?
  kill "$poll"
  rate=$(awk '/tok\/s/ { n++; if (n > 2) { s += $(NF-1); m++ } } END { print m ? int(s / m) : 0 }' "$out/log")
  peak=$(sort -n "$out/memory" | tail -1)
  if [ "$status" -eq 0 ]; then
    echo "| $name | $seq | $rate | $peak |"
  else
    echo "| $name | $seq | failed ($status): $(tail -1 "$out/log") | $peak |"
  fi
  rm -rf "$out"
done
