#!/usr/bin/env bash
# One training variant through device-train.sh, then the evaluations that decide whether it
# ships, written to $WORK/NAME/report.md (which device-collect.sh returns in logs.tgz):
#
#   bash scripts/gpu-run.sh bash scripts/device-experiment.sh DATA_DIR HELDOUT_TOKENS MINUTES NAME "ARGS"
#
# It takes device-train.sh's environment (PHASES, INIT, FRESH_READ_PATH, WORK, BIN, DEVICE).
# As each phase finishes (while the next one trains): the pass key from the notes alone, the
# recurrent state zeroed before the question (NOTES_LENGTHS, TRIALS). After the last phase, each
# beside the REFERENCE weights in the same call (default: INIT's folder; set it to the shipped
# model when a chain of experiments starts each from the last): the pass-key grid as the app
# reads (GRID, GRID_TRIALS), perplexity (PPL) and multi-key. Start it in the background
# (setsid); `NAME report done` in $WORK/status says the report is complete. Rehearse it on this
# machine's CPU first, with a tiny preset, short phases and short lengths (docs/MODEL_CARD.md,
# "Training"): a mistake found there costs no device time.
set -uo pipefail
data=$1 heldout=$2 minutes=$3 name=$4 args=$5
work=${WORK:-/tmp/memreader-train}
report=$work/$name/report.md
read -ra phases <<< "${PHASES:-4096x8}"
mkdir -p "$work/$name"
: > "$report"
# The status file keeps earlier runs' lines: only the lines from here on count.
seen=$(cat "$work/status" 2> /dev/null | wc -l)
bash "$(dirname "$0")/device-train.sh" "$data" "$minutes" "$name" "$args" \
  > "$work/$name-experiment.log" 2>&1 &
train=$!

# evaluate ARGS...: `memmamba-train eval` on the held-out tokens, its tables only.
evaluate() {
  "${BIN:-.device/memmamba-train}" eval --tokens "$heldout" --device "${DEVICE:-cuda}" "$@" \
    2>&1 | grep '^|\|^#\|^Error'
}

for i in "${!phases[@]}"; do
  until tail -n +$((seen + 1)) "$work/status" 2> /dev/null | grep -qs " $name phase $i .* ended with 0$" \
    || ! kill -0 "$train" 2> /dev/null; do
    sleep 5
  done
  phase=$work/$name/phase-$i
  if [ ! -f "$phase/model.safetensors" ]; then
    echo "phase $i did not finish: see $name.log and $name-experiment.log" >> "$report"
    break
  fi
  {
    echo "# $name phase $i (${phases[$i]}): the pass key from the notes alone"
    evaluate --run "$phase" --measure passkey --passkey-lengths "${NOTES_LENGTHS:-512,2048,8192}" \
      --trials "${TRIALS:-10}" --depths 0.25 --pool-only
  } >> "$report"
done
wait "$train"
last=$work/$name/phase-$(( ${#phases[@]} - 1 ))
reference=${REFERENCE:-${INIT:+$(dirname "$INIT")}}
beside=()
[ -n "$reference" ] && beside=(--run "$reference")
if [ -f "$last/model.safetensors" ]; then
  {
    echo "# $name: pass keys as the app reads${reference:+, beside $reference}"
    evaluate --run "$last" "${beside[@]}" --measure passkey \
      --passkey-lengths "${GRID:-4096,65536,262144,1048576}" --trials "${GRID_TRIALS:-4,2,1,1}"
    echo "# $name: perplexity${reference:+, beside $reference}"
    evaluate --run "$last" "${beside[@]}" \
      --measure perplexity --contexts "${PPL:-1024,4096,16384,65536}" --windows 8
    echo "# $name: multi-key${reference:+, beside $reference}"
    evaluate --run "$last" "${beside[@]}" --measure multikey --multikey-lengths 4096 \
      --multikey-trials 10
  } >> "$report"
fi
echo "$(date -u +%T) $name report done" >> "$work/status"
