#!/usr/bin/env bash
# Runs every libFuzzer target for N seconds (default 10) on its corpus.
# Corpora: build-fuzz/corpus/<target>/ (grown, not committed) comes FIRST,
# because libFuzzer writes new inputs into the first directory it is given;
# fuzz/corpus/<target>/ (committed seeds) is only read.
# FUZZ_LOG_DIR (default build-fuzz) keeps a long campaign's logs apart from
# the short smoke runs of `make test`, which share build-fuzz.
# Every run has a memory limit and a time limit per input (docs/fuzzing.md):
# an input that makes a target use more than FUZZ_RSS_MB (default 2048) or run
# longer than FUZZ_INPUT_SECONDS (default 10) is a finding, not a slow machine.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
logdir=${FUZZ_LOG_DIR:-build-fuzz}
rss_mb=${FUZZ_RSS_MB:-2048}
input_seconds=${FUZZ_INPUT_SECONDS:-10}
mkdir -p "$logdir"
status=0
for bin in build-fuzz/fuzz_*; do
  [[ -x "$bin" && -f "$bin" ]] || continue
  name=$(basename "$bin"); target=${name#fuzz_}
  mkdir -p "build-fuzz/corpus/$target" "build-fuzz/artifacts/$target"
  seeds=()
  [[ -d "fuzz/corpus/$target" ]] && seeds=("fuzz/corpus/$target")
  log="$logdir/$name.log"
  echo "== $name: ${seconds}s ($(date -u +%H:%M:%S) UTC, log $log)"
  if ! "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$target/" \
       -max_len=16384 -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -timeout="$input_seconds" \
       "build-fuzz/corpus/$target" "${seeds[@]}" > "$log" 2>&1; then
    echo "!! $name found a problem; see $log and build-fuzz/artifacts/$target/"
    tail -30 "$log"
    status=1
  fi
  # The last status line carries the final coverage (cov:, ft:, corp:).
  grep -E "^#[0-9]+" "$log" | tail -1 || true
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "$log" || true
done
exit $status
