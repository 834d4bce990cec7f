#!/usr/bin/env bash
# What `make demo` shows: nsvm answering "why did my VMRUN fail?" on the
# bundled examples, then the seed's nested scenario.
set -uo pipefail
nsvm=${1:-build/nsvm}
cd "$(dirname "$0")/.."

run() {
  echo
  echo "\$ nsvm $*"
  "$nsvm" "$@"
  echo "[exit status $?]"
}

echo "== 1. A KVM dump_vmcb() of a VMCB whose VMRUN failed (exit_code ffffffff) =="
run check examples/kvm-dump-invalid.txt
echo
echo "== 2. The same, for scripts =="
run check --json examples/kvm-dump-invalid.txt
echo
echo "== 3. A valid 64-bit guest as JSON =="
run check examples/valid-vmcb.json
echo
echo "== 4. A Xen svm_vmcb_dump() =="
run check examples/xen-dump.txt
echo
echo "== 5. What does exit code 0x7b with EXITINFO1 0x3f80210 mean? =="
run exit-code 0x7b --info1 0x3f80210 --info2 0xffffffff81000123
if [[ -f examples/scenarios/seed-gif.yaml ]]; then
  echo
  echo "== 6. The seed's case: L1 runs VMRUN with GIF=1 on a vmcb12 failing a check =="
  run run examples/scenarios/seed-gif.yaml
fi
exit 0
