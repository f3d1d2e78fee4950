#!/usr/bin/env bash
# Fuzzes every parser of user files with cargo-fuzz (libFuzzer): builds the targets in fuzz/,
# writes the seed corpora (fuzz/seeds/, from the ingest fixtures, the demo books and model
# files), then runs each target for SECONDS_PER_TARGET seconds, one process at a time, and
# prints the executions and the crashes of each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Builds into
# $FUZZ_TARGET_DIR (default fuzz/target) with debug assertions (overflow checks) and without a
# sanitizer (the code under test is safe Rust; panics, aborts, hangs and memory blow-ups are
# what is looked for). Per input: 10 s (-timeout), 2048 MiB (-rss_limit_mb). Each target runs
# on one core (RAYON_NUM_THREADS=1: the model code would use every core). The corpus grows
# in fuzz/corpus/TARGET; crashing inputs land in fuzz/artifacts/TARGET/, logs next to them.
# Exits 1 if any target crashed.
set -euo pipefail

seconds=${1:-60}
shift || true
all=(sniff_text html markdown epub pdf passages config_json snapshot weights session_snapshot
  session_snapshot_structured)
targets=("${@:-${all[@]}}")

cd "$(dirname "$0")/../fuzz"
target_dir=${FUZZ_TARGET_DIR:-$PWD/target}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin="$target_dir/$triple/release"

cargo +nightly fuzz build --sanitizer none --debug-assertions --target-dir "$target_dir"
"$bin/make_seeds" -runs=1 >/dev/null 2>&1

crashed=0
printf '%-28s %12s %8s  %s\n' target execs seconds crashes
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/fuzz.log"
    before=$(find "artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
    started=$(date +%s)
    status=0
    RAYON_NUM_THREADS=1 "$bin/$t" "corpus/$t" "seeds/$t" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - started))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(find "artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | sort)
    new=$(($(echo -n "$found" | grep -c '^' || true) - before))
    if [ "$status" -ne 0 ]; then
        crashed=1
        printf '%-28s %12s %8s  %s\n' "$t" "${execs:-?}" "$elapsed" \
            "exit $status, $new new: $(echo "$found" | tail -1) (log $log)"
    else
        printf '%-28s %12s %8s  %s\n' "$t" "${execs:-?}" "$elapsed" "none"
    fi
done
exit $crashed
