#!/usr/bin/env bash
# Installs, from Debian 12's packages, whatever nsvm needs and the machine
# lacks. Idempotent: packages already installed are not touched, and apt is
# not called at all when nothing is missing.
set -euo pipefail

packages=(
  g++ cmake ninja-build make pkg-config   # toolchain (C++23 as g++ 12 supports it)
  libfmt-dev                              # formatting
  nlohmann-json3-dev                      # JSON VMCBs, CPU models, --json output
  libcli11-dev                            # command-line parsing
  libyaml-cpp-dev                         # YAML scenarios
  libgtest-dev libgmock-dev               # tests
  parallel                                # tests: the sharded campaign (GNU parallel, docs/oracle.md)
  libbenchmark-dev                        # benchmarks
  python3                                 # scripts/bench.sh reads Google Benchmark's JSON
  python3-dev pybind11-dev                # the Python module nsvm (bindings/python)
  python3-pytest                          # its tests (tests/python)
  clang-14 libclang-rt-14-dev             # libFuzzer targets with ASan/UBSan
  binutils                                # as/ld for the oracle test image
  qemu-system-x86                         # oracle: QEMU TCG
  bochs bochsbios vgabios bochs-term      # oracle: Bochs 2.7
  mtools dosfstools                       # oracle: Bochs floppy image
  groff-base                              # the tests render the generated man page (groff -man)
)
[[ "${NSVM_SKIP_ORACLE_DEPS:-0}" == 1 ]] && packages=("${packages[@]/qemu-system-x86}")

missing=()
for p in "${packages[@]}"; do
  [[ -z "$p" ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "deps: everything is installed"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
