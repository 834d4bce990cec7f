#!/usr/bin/env bash
# Runs fuzz/oss-fuzz/build.sh as OSS-Fuzz / ClusterFuzzLite would, here:
# clang-14 with ASan and libFuzzer's instrumentation in $CFLAGS/$CXXFLAGS,
# -fsanitize=fuzzer as $LIB_FUZZING_ENGINE, a temporary $OUT; then checks that
# every fuzz/fuzz_*.cpp became a target in $OUT and that each runs one input
# (its first seed, or an empty input) and exits 0.
#
#   scripts/oss-fuzz-check.sh [WORK_DIR]   (default: build-oss-fuzz, kept for
#                                           the next run's incremental build)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mkdir -p "${1:-build-oss-fuzz}" && cd "${1:-build-oss-fuzz}" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

export CC=clang-14 CXX=clang++-14
export CFLAGS="-O1 -gline-tables-only -fsanitize=address -fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link"
export CXXFLAGS="$CFLAGS"
export LIB_FUZZING_ENGINE=-fsanitize=fuzzer
export OUT=$out WORK=$work
export NSVM_BUILD_JOBS=${NSVM_BUILD_JOBS:-$(nproc)}
# Not something OSS-Fuzz sets, but CMake reads it: repeated local runs
# rebuild from the cache.
if command -v ccache > /dev/null; then export CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache}; fi
fuzz/oss-fuzz/build.sh

status=0
for target_src in fuzz/fuzz_*.cpp; do
  name=$(basename "$target_src" .cpp)
  bin=$out/$name
  if [[ ! -x "$bin" ]]; then
    echo "FAIL: build.sh made no $name in \$OUT" >&2
    status=1
    continue
  fi
  [[ -f "$out/$name.options" ]] || { echo "FAIL: no $name.options" >&2; status=1; }
  seed=$(find "fuzz/corpus/${name#fuzz_}" -type f 2>/dev/null | sort | head -n 1)
  if [[ -z "$seed" ]]; then
    seed=$out/empty-input
    : > "$seed"
  fi
  # libFuzzer given files (not directories) runs each once and exits.
  if "$bin" -runs=1 "$seed" > "$out/$name.log" 2>&1 && grep -q "Executed .* in" "$out/$name.log"; then
    echo "ok: $name ran one input ($(basename "$seed"))"
  else
    echo "FAIL: $name on $seed:" >&2
    tail -20 "$out/$name.log" >&2
    status=1
  fi
done
exit $status
