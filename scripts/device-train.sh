#!/usr/bin/env bash
# Trains MemMamba variants one after the other on one GPU host that has no Rust, within a wall-clock
# budget and with the same token budget each, then evaluates them. Run it through gpu-run.sh,
# which unpacks the CUDA build of `memmamba-train` that scripts/gpu-pack.sh put in .device/ and
# finds the CUDA runtime (steps: docs/MODEL_CARD.md):
#
#   bash scripts/gpu-run.sh bash scripts/device-train.sh DATA_DIR MINUTES NAME "ARGS" [NAME "ARGS"]...
#   e.g. ... .device-train 15 memmamba "" baseline "--notes-off"
#
# DATA_DIR holds tokenizer.json, train.tokens.gz + train.books.json and dev.tokens +
# dev.books.json. An 8-step probe of each variant measures its step time first; each variant
# then gets the step count that the sum of the step times allows in MINUTES (which sizes the
# cosine schedule), so all see the same tokens. Everything goes to /tmp/memreader-train/NAME; progress to
# $WORK/status. Start it in the background (setsid) and collect results with
# `device-collect.sh` in later calls while the host is held.
set -euo pipefail
data=$1 minutes=$2
shift 2
seq_len=${SEQ_LEN:-4096} batch=${BATCH:-8}
work=${WORK:-/tmp/memreader-train}
mkdir -p "$work"
[ -f "$work/train.tokens" ] || gunzip -c "$data/train.tokens.gz" > "$work/train.tokens"
cp "$data/train.books.json" "$data/dev.tokens" "$data/dev.books.json" "$data/tokenizer.json" "$work/"
log() { echo "$(date -u +%T) $*" | tee -a "$work/status"; }

train() {
  .device/memmamba-train train --tokens "$work/train.tokens" --eval "$work/dev.tokens" \
    --tokenizer "$work/tokenizer.json" --seq-len "$seq_len" --batch "$batch" --device cuda "$@"
}

# Probe: seconds per step of each variant alone (the mean of the steps after the first two).
names=() args=() total=0
while [ $# -ge 2 ]; do
  name=$1 extra=$2
  shift 2
  rm -rf "$work/probe-$name"
  # shellcheck disable=SC2086
  train --steps 8 --warmup 1 --eval-every 0 --checkpoint-every 0 --out "$work/probe-$name" $extra \
    > "$work/probe-$name.log" 2>&1
  rate=$(awk '/tok\/s/ { n++; if (n > 2) { s += $(NF-1); m++ } } END { print int(s / m) }' "$work/probe-$name.log")
  log "probe $name: $rate tokens/s"
  total=$(awk -v t="$total" -v r="$rate" -v n=$(( seq_len * batch )) 'BEGIN { print t + n / r }')
  names+=("$name") args+=("$extra")
done
steps=$(awk -v m="$minutes" -v t="$total" 'BEGIN { print int(m * 60 * 0.9 / t) }')
log "plan: $steps steps of $batch x $seq_len tokens per variant, ${total}s per step of all variants"

# One after the other: side by side, the two processes' memory did not fit in the GPU.
for i in "${!names[@]}"; do
  status=0
  # shellcheck disable=SC2086
  train --steps "$steps" --warmup $(( steps / 20 + 1 )) --eval-every $(( steps / 8 + 1 )) \
    --checkpoint-every $(( steps / 8 + 1 )) --out "$work/${names[$i]}" ${args[$i]} \
    > "$work/${names[$i]}.log" 2>&1 || status=$?
  log "training ${names[$i]} ended with $status"
done

# The evaluations, side by side (the final weights, or the last checkpoint's).
pids=()
for name in "${names[@]}"; do
  run=$work/$name
  [ -f "$run/model.safetensors" ] || cp "$run/checkpoint/model.safetensors" "$run/" || continue
  .device/memmamba-train eval --run "$run" --tokens "$work/dev.tokens" \
    --tokenizer "$work/tokenizer.json" --device cuda --contexts 1024,4096,16384,65536 --windows 4 \
    --passkey-lengths 1024,4096,16384,65536 --depths 0,0.5,1 --trials 6 \
    > "$work/eval-$name.md" 2> "$work/eval-$name.log" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done
log "done"
