#!/usr/bin/env bash
# make test's fuzz smoke run: builds the libFuzzer targets with clang-14
# (ASan + UBSan) and runs each for a few seconds; then builds them again the
# OSS-Fuzz way (fuzz/oss-fuzz/build.sh, scripts/oss-fuzz-check.sh) and runs
# each on one input, unless FUZZ_SMOKE_OSS_FUZZ=0.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset fuzz > /dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_targets
./scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-5}"
if [[ "${FUZZ_SMOKE_OSS_FUZZ:-1}" != 0 ]]; then
  ./scripts/oss-fuzz-check.sh build-oss-fuzz
fi
