#!/usr/bin/env bash
# What `make demo` shows: nsvm answering "why did my VMRUN fail?" on the
# bundled examples (examples/), the exit-code decoder, one disagreement
# between implementations, then the seed's nested scenario. Every command is
# printed before its output, with its exit status after it
# (0 VMRUN would succeed, 1 it would fail, 2 bad input).
set -uo pipefail
nsvm=${1:-build/nsvm}
cd "$(dirname "$0")/.."
[[ "$nsvm" == /* ]] || nsvm="$PWD/$nsvm"
if [[ ! -x "$nsvm" ]]; then
  echo "demo: $nsvm not found; build first (make demo does)" >&2
  exit 2
fi

step=0
section() {
  step=$((step + 1))
  echo
  echo "== $step. $* =="
}
# run ARGS...: print the command line as a user would type it, then run it.
run() {
  echo "\$ nsvm $*"
  "$nsvm" "$@"
  echo "[exit status $?]"
}

section "A KVM dump_vmcb() of a VMCB whose VMRUN failed (exit_code ffffffff): which checks, and why?"
run check examples/kvm-dump-invalid.txt

section "The same, as one JSON object for scripts"
run check --json examples/kvm-dump-invalid.txt

section "A valid 64-bit guest written as JSON"
run check examples/valid-vmcb.json

section "A Xen svm_vmcb_dump()"
run check examples/xen-dump.txt

section "QEMU's register dump after 'KVM: entry failed' with SMM=1 (WSL2/Hyper-V): AMD hardware, then Hyper-V as L0"
run check tests/formats/fixtures/qemu-entry-failed-smm.txt
run check --profile hyperv tests/formats/fixtures/qemu-entry-failed-smm.txt

section "Every field of a VMCB by name, bits decoded"
run decode examples/valid-vmcb.json

section "What does exit code 0x7b with EXITINFO1 0x3f80210 mean?"
run exit-code 0x7b --info1 0x3f80210 --info2 0xffffffff81000123

section "The xen-devel report: a 64-bit vmcb12 with CR0.PG cleared (EFER.LMA still 1), and Xen's own LMA rule"
xen_case() { sed 's/"cr0": "0x80050033"/"cr0": "0x50033"/' examples/valid-vmcb.json; }
for profile in apm xen; do
  echo "\$ sed 's/\"cr0\": \"0x80050033\"/\"cr0\": \"0x50033\"/' examples/valid-vmcb.json | nsvm check --profile $profile -"
  xen_case | "$nsvm" check --profile "$profile" -
  echo "[exit status $?: a warning, not a VMRUN failure]"
done
# Xen's own rule sees LMA without LME only (svm_vmcb_isvalid asks with CR0.PG unknown).
echo "\$ sed 's/\"efer\": \"0x1d00\"/\"efer\": \"0x1c00\"/' examples/valid-vmcb.json | nsvm check --profile xen -"
sed 's/"efer": "0x1d00"/"efer": "0x1c00"/' examples/valid-vmcb.json | "$nsvm" check --profile xen -
echo "[exit status $?: Xen's rule, efer.lma_without_lme]"
echo "\$ nsvm profile show xen   (the efer_lma_without_lme_checked line)"
"$nsvm" profile show xen | grep -A1 'efer_lma_without_lme_checked'

if [[ -f examples/scenarios/seed-gif.yaml ]]; then
  section "The seed's case: L1 runs VMRUN with GIF=1 on a vmcb12 failing a check (nested SVM, KVM profile)"
  run run examples/scenarios/seed-gif.yaml
fi

if [[ -f examples/scenarios/kvm-nested-state.yaml ]]; then
  section "A nested state in KVM's own layout (KVM_SET_NESTED_STATE): a saved one restores, crafted headers are refused naming the field"
  run run examples/scenarios/kvm-nested-state.yaml
fi

echo
echo "Every check, with its APM section and the profiles that apply it: nsvm checks list, or docs/checks.md."
exit 0
