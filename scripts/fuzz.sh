#!/usr/bin/env bash
# Runs every libFuzzer target for N seconds (default 10) on its corpus.
# Corpora: fuzz/corpus/<target>/ (seeds, committed) + build-fuzz/corpus/<target>/ (grown, not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
status=0
for bin in build-fuzz/fuzz_*; do
  [[ -x "$bin" ]] || continue
  name=$(basename "$bin"); target=${name#fuzz_}
  mkdir -p "build-fuzz/corpus/$target" "build-fuzz/artifacts/$target"
  seeds=()
  [[ -d "fuzz/corpus/$target" ]] && seeds=("fuzz/corpus/$target")
  echo "== $name: ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$target/" \
       -max_len=16384 "build-fuzz/corpus/$target" "${seeds[@]}" > "build-fuzz/$name.log" 2>&1; then
    echo "!! $name found a problem; see build-fuzz/$name.log and build-fuzz/artifacts/$target/"
    tail -30 "build-fuzz/$name.log"
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|cov:" "build-fuzz/$name.log" | tail -3 || true
done
exit $status
