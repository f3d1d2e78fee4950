#!/usr/bin/env bash
# Trains MemMamba variants side by side on one GPU host that has no Rust, within a wall-clock
# budget and with the same token budget each. Run it through gpu-run.sh, which unpacks the CUDA
# build of `memmamba-train` that scripts/gpu-pack.sh put in .device/ and finds the CUDA runtime
# (steps: docs/MODEL_CARD.md):
#
#   bash scripts/gpu-run.sh bash scripts/device-train.sh DATA_DIR MINUTES NAME "ARGS" [NAME "ARGS"]...
#   e.g. INIT=assets/model/model.safetensors PHASES="2048x16 4096x8" \
#        ... .device-train 20 memmamba "--lr 5e-4" baseline "--notes-off --lr 5e-4"
#
# DATA_DIR holds tokenizer.json, train.tokens.gz + train.books.json and dev.tokens +
# dev.books.json. PHASES is the curriculum over length: SEQ_LENxBATCH[xSEGMENTS] per phase
# (SEGMENTS sequences per sample with the memory carried, `train --segments`), each a fresh
# cosine schedule over an equal share of the steps, started from the previous phase's weights
# (the first from INIT when set, with its read path drawn afresh when FRESH_READ_PATH is set;
# a notes-off variant takes the note-free part of MemMamba weights). An 8-step probe of all
# variants at once, each started as its first phase is, measures the step time; each variant
# then gets the step count that the slowest allows in MINUTES, so all see the same tokens. A
# training process that dies (the GPU host's memory has run out in long runs) is resumed from
# its last checkpoint. Everything goes to /tmp/memreader-train/NAME, the latest finished
# phase's weights to NAME/model.safetensors; progress to $WORK/status. Start it in the
# background (setsid) and collect results with `device-collect.sh` in later calls while the
# host is held. BIN (default .device/memmamba-train) and DEVICE (default cuda) let the same
# script rehearse a run on this machine's CPU with a tiny preset before device time is spent.
set -euo pipefail
data=$1 minutes=$2
shift 2
read -ra phases <<< "${PHASES:-4096x8}"
work=${WORK:-/tmp/memreader-train}
mkdir -p "$work"
[ -f "$work/train.tokens" ] || gunzip -c "$data/train.tokens.gz" > "$work/train.tokens"
cp "$data/train.books.json" "$data/dev.tokens" "$data/dev.books.json" "$data/tokenizer.json" "$work/"
log() { echo "$(date -u +%T) $*" | tee -a "$work/status"; }

# train PHASE ARGS...: one training process at the phase's sequence length, batch and segments.
train() {
  local seq batch segments
  IFS=x read -r seq batch segments <<< "$1"
  shift
  "${BIN:-.device/memmamba-train}" train --tokens "$work/train.tokens" --eval "$work/dev.tokens" \
    --tokenizer "$work/tokenizer.json" --seq-len "$seq" --batch "$batch" \
    --segments "${segments:-1}" --device "${DEVICE:-cuda}" "$@"
}

# FRESH_READ_PATH=1: the first phase draws the read path afresh (`train --fresh-read-path`).
fresh=${FRESH_READ_PATH:+--fresh-read-path}
names=() args=()
while [ $# -ge 2 ]; do
  names+=("$1") args+=("$2")
  shift 2
done

# Probe: seconds per step of each variant while all run (the mean after the first two steps).
for i in "${!names[@]}"; do
  rm -rf "$work/probe-${names[$i]}"
  # shellcheck disable=SC2086
  train "${phases[0]}" --steps 8 --warmup 1 --eval-every 0 --checkpoint-every 0 \
    --out "$work/probe-${names[$i]}" ${INIT:+--init "$INIT"} $fresh ${args[$i]} > "$work/probe-${names[$i]}.log" 2>&1 &
done
wait
slowest=0
for name in "${names[@]}"; do
  rate=$(awk '{ for (i = 2; i <= NF; i++) if ($i == "tok/s" && ++n > 2) { s += $(i-1); m++ } }
    END { print m ? int(s / m) : 0 }' "$work/probe-$name.log")
  [ "$rate" -gt 0 ] || { log "probe $name failed: see probe-$name.log"; exit 1; }
  log "probe $name: $rate tokens/s with all variants running"
  slowest=$(awk -v a="$slowest" -v r="$rate" 'BEGIN { print (a == 0 || r < a) ? r : a }')
done
IFS=x read -r seq batch segments <<< "${phases[0]}"
tokens_per_step=$(( seq * batch * ${segments:-1} ))
steps=$(awk -v m="$minutes" -v r="$slowest" -v n="$tokens_per_step" -v p="${#phases[@]}" \
  'BEGIN { print int(m * 60 * 0.9 * r / n / p) }')
log "plan: ${#phases[@]} phases (${phases[*]}) of $steps steps each per variant"

# variant NAME ARGS: the phases of one variant, each resumed up to three times if it dies.
variant() {
  local name=$1 extra=$2 init=${INIT:-} first=$fresh i attempt status out
  for i in "${!phases[@]}"; do
    out=$work/$name/phase-$i
    for attempt in 1 2 3 4; do
      status=0
      # shellcheck disable=SC2086
      train "${phases[$i]}" --steps "$steps" --warmup $(( steps / 20 + 1 )) \
        --eval-every $(( steps / 4 + 1 )) --checkpoint-every $(( steps / 10 + 1 )) \
        --seed $(( i + 1 )) --out "$out" ${init:+--init "$init"} $first $extra \
        >> "$work/$name.log" 2>&1 || status=$?
      log "$name phase $i (${phases[$i]}) attempt $attempt ended with $status"
      [ "$status" -eq 0 ] || [ ! -d "$out/checkpoint" ] && break
    done
    [ -f "$out/model.safetensors" ] || return 1
    cp "$out/model.safetensors" "$work/$name/model.safetensors"
    init=$out/model.safetensors first=
  done
}

# GPU memory of each training process every 10 s, to $WORK/gpu-mem.log: runs at short
# sequences (512 x 16) still run out of memory after a few hundred steps (docs/MODEL_CARD.md).
if command -v nvidia-smi > /dev/null; then
  while true; do
    echo "$(date -u +%T) $(nvidia-smi --query-compute-apps=pid,used_memory \
      --format=csv,noheader,nounits | tr '\n' ' ')" >> "$work/gpu-mem.log"
    sleep 10
  done &
  memory_log=$!
fi
pids=()
for i in "${!names[@]}"; do
  variant "${names[$i]}" "${args[$i]}" &
  pids+=($!)
done
wait "${pids[@]}" || true
[ -z "${memory_log:-}" ] || kill "$memory_log"
log "done"
