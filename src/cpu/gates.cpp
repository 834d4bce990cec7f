// Which instruction gates each SVM instruction applies (see gates.hpp).
#include "nsvm/cpu/gates.hpp"

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/evaluate.hpp"

namespace nsvm::cpu {
using checks::Feature;

namespace {
/// The processor state as the gates of `insn` see it. A gate that is not
/// this instruction's reads an operand the instruction does not have, so it
/// is given none: the VM_HSAVE_PA and SMM gates are about the host's own
/// VMRUN (a guest's VMRUN exits through its mandatory intercept first); only
/// VMRUN, VMLOAD and VMSAVE take a physical address in rAX; with SKINIT or
/// SVM-Lock, STGI and SKINIT are legal with EFER.SVME = 0 (APM 15.27, 15.31).
/// Virtual-8086 mode is seen as outside protected mode where the profile says so.
/// One walk of the catalogue's gates then decides (evaluate.hpp's first_gate_failure).
void see_as(SvmInsn insn, checks::HostState& h, const checks::CpuModel& cpu, const checks::Profile& profile,
            GateContext where) noexcept {
    // Virtual-8086 mode: #UD where the profile says the SVM instructions are
    // not recognized there (APM Vol.3: "only recognized in protected mode"),
    // else gate.cpl's #GP(0) (profile setting v86_vmrun_ud, with its sources).
    if (profile.v86_vmrun_ud && (h.rflags & arch::rflags::VM) != 0) h.cr0 &= ~arch::cr0::PE;
    if (insn != SvmInsn::vmrun || where == GateContext::guest) {
        h.vm_hsave_pa.reset();
        h.smm = false;
    }
    if (insn != SvmInsn::vmrun && insn != SvmInsn::vmload && insn != SvmInsn::vmsave) h.rax = 0;
    if ((insn == SvmInsn::stgi || insn == SvmInsn::skinit) &&
        (cpu.has(Feature::skinit) || cpu.has(Feature::svm_lock)))
        h.efer |= arch::efer::SVME;
}
}  // namespace

const checks::Check* svm_instruction_gate(SvmInsn insn, checks::HostState&& h, const checks::CpuModel& cpu,
                                          const checks::Profile& profile, GateContext where) noexcept {
    if (insn == SvmInsn::vmmcall) return nullptr;
    // The gates read the processor's state only, never a VMCB.
    static const arch::Vmcb no_vmcb{};
    see_as(insn, h, cpu, profile, where);
    const checks::Context ctx{no_vmcb, cpu, profile, &h, nullptr};
    return checks::first_gate_failure(ctx);
}

GateFault gate_fault(const checks::Check& gate) noexcept {
    return gate.outcome == checks::Outcome::ud ? GateFault{6, "#UD: instruction gate (failed_check names it)"}
                                               : GateFault{13, "#GP(0): instruction gate (failed_check names it)"};
}

}  // namespace nsvm::cpu
