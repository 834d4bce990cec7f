#!/usr/bin/env bash
# make test's fuzz smoke run: builds the libFuzzer targets with clang-14
# (ASan + UBSan) and runs each for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset fuzz > /dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_targets
./scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-5}"
