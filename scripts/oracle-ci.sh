#!/usr/bin/env bash
# make test's differential run (issue 4): nsvm gen's boundary set, plus a
# random sample for QEMU, through the model and through QEMU (TCG) and Bochs.
# Fails when something differs that the backend's profile does not explain,
# or when an emulator cannot run at all. Reports land in $out/.
set -euo pipefail
cd "$(dirname "$0")/.."
nsvm=${1:-build/nsvm}
out=${ORACLE_CI_OUT:-build/oracle-ci}
mkdir -p "$out"
status=0
run() {
  local name=$1; shift
  echo "== nsvm diff $*"
  if "$nsvm" diff "$@" > "$out/$name.txt" 2> "$out/$name.err"; then
    echo "   no unexplained divergence"
  else
    echo "!! $name: unexplained divergences or the oracle could not run (see $out/$name.txt)"
    grep -v "(explained" "$out/$name.txt" | head -40 || true
    cat "$out/$name.err"
    status=1
  fi
  sed -n '/^model:/,/^check /p' "$out/$name.txt" | sed '$d'
  sed -n '/^known divergences seen:/,$p' "$out/$name.txt"
  cat "$out/$name.err"
}
run qemu-boundary --backend qemu --boundary
run qemu-random --backend qemu --seed 1 --count 20000 --jobs "$(nproc)"
run bochs-boundary --backend bochs --boundary
exit $status
