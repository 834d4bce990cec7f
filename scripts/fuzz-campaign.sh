#!/usr/bin/env bash
# A fuzz campaign measured in CPU time, not wall time: each target runs until
# its process has used FUZZ_CPU_SECONDS (default 3600) of CPU, at most
# FUZZ_JOBS (default 2) targets at once, at nice 19. On a shared machine a
# wall-clock budget (`-max_total_time`, what scripts/fuzz.sh uses) can leave a
# target with a small fraction of its hour; this does not.
#
#   scripts/fuzz-campaign.sh [target ...]     (default: every build-fuzz/fuzz_*)
#
# Logs: FUZZ_LOG_DIR (default build-fuzz/campaign)/fuzz_<target>.log, with the
# CPU seconds used and the exit status appended. Corpora and limits are those
# of scripts/fuzz.sh (docs/fuzzing.md). Exit status 1 if a target found a
# problem (libFuzzer stopped on its own before its budget).
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${FUZZ_CPU_SECONDS:-3600}
jobs=${FUZZ_JOBS:-2}
logdir=${FUZZ_LOG_DIR:-build-fuzz/campaign}
rss_mb=${FUZZ_RSS_MB:-2048}
input_seconds=${FUZZ_INPUT_SECONDS:-10}
mkdir -p "$logdir"
ticks=$(getconf CLK_TCK)

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for bin in build-fuzz/fuzz_*; do [[ -x "$bin" && -f "$bin" ]] && targets+=("$(basename "$bin")"); done
fi

cpu_seconds() {  # utime + stime of one process, in whole seconds
  local f
  read -ra f < "/proc/$1/stat" 2>/dev/null || { echo 0; return; }
  # Fields after the command name (which may hold spaces) start at index 2.
  local rest=${f[*]}; rest=${rest##*) }; read -ra f <<< "$rest"
  echo $(( (f[11] + f[12]) / ticks ))
}

run_one() {
  local name=${1#fuzz_}; local bin=build-fuzz/fuzz_$name; local log=$logdir/fuzz_$name.log
  [[ -x $bin ]] || { echo "!! $bin not built (cmake --build build-fuzz --target fuzz_targets)"; return 1; }
  mkdir -p "build-fuzz/corpus/$name" "build-fuzz/artifacts/$name"
  local seeds=(); [[ -d fuzz/corpus/$name ]] && seeds=("fuzz/corpus/$name")
  echo "== fuzz_$name: ${budget} CPU s ($(date -u +%H:%M:%S) UTC, log $log)"
  nice -n 19 "$bin" -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$name/" -max_len=16384 \
      -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -timeout="$input_seconds" \
      "build-fuzz/corpus/$name" "${seeds[@]}" > "$log" 2>&1 &
  local pid=$! used=0
  while kill -0 "$pid" 2>/dev/null; do
    used=$(cpu_seconds "$pid")
    if (( used >= budget )); then kill -INT "$pid"; wait "$pid" 2>/dev/null || true; break; fi
    sleep 10
  done
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  echo "campaign: fuzz_$name used ${used} CPU s, stopped $(date -u +%H:%M:%S) UTC" >> "$log"
  grep -E "^#[0-9]+" "$log" | tail -1 || true
  if (( used < budget )); then
    echo "!! fuzz_$name stopped after ${used} CPU s: a finding? see $log and build-fuzz/artifacts/$name/"
    return 1
  fi
}

status=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if (( running >= jobs )); then wait -n || status=1; running=$((running - 1)); fi
done
while (( running > 0 )); do wait -n || status=1; running=$((running - 1)); done
exit $status
