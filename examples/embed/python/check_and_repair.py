#!/usr/bin/env python3
"""nsvm from Python: check a VMCB file, repair it, run it as L1's vmcb12.

    check_and_repair.py FILE [CPU [PROFILE]]

With an installed nsvm: PYTHONPATH=PREFIX/lib/python3.X/site-packages.
"""
import sys

import nsvm


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cpu = argv[2] if len(argv) > 2 else "zen4"
    profile = argv[3] if len(argv) > 3 else "kvm"
    try:
        vmcb = nsvm.Vmcb.from_file(argv[1])
    except nsvm.InputError as e:  # file, line and field say where
        print(f"error: {e.file}:{e.line}: {e.field}: {e.message}", file=sys.stderr)
        return 2
    print(f"nsvm {nsvm.__version__}: {argv[1]} ({vmcb.format})")
    for f in vmcb.check(cpu=cpu, profile=profile):
        print(f"  x {f['id']} [APM {f['apm']}] {f['message']} ({', '.join(f['fields'])})")
    if vmcb.would_succeed(cpu=cpu, profile=profile):
        print("VMRUN would succeed")
        return 0
    fixed = vmcb.repair(cpu=cpu, profile=profile)
    for c in fixed["changes"]:
        print(f"  repair: {c['field']} {c['old']:#x} -> {c['new']:#x} ({c['check']})")
    for check in fixed["unrepaired"]:
        print(f"  unrepaired: {check}")

    # The repaired VMCB as vmcb12 of a nested guest: L1 runs VMRUN on it.
    m = nsvm.Machine(cpu=cpu, profile=profile)
    for gpa, size in ((0x20000, 0x1000), (0x50000, 0x1000), (0x10000, 0x3000), (0x14000, 0x2000)):
        m.map(gpa, size)
    v12 = fixed["vmcb"]
    v12["control.iopm_base_pa"], v12["control.msrpm_base_pa"] = 0x10000, 0x14000
    m.write_vmcb(0x20000, v12)
    m.set_hsave(0x50000)
    m.set_vmcb01("save.rax", 0x20000)
    step = m.l1("vmrun")
    print(f"repaired: L1's VMRUN -> {step['outcome']} (GIF {int(m.gif)}, invariants "
          f"{m.check_invariants() or 'hold'})")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
