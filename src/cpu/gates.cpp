// Which instruction gates each SVM instruction applies (see gates.hpp).
#include "nsvm/cpu/gates.hpp"

#include "nsvm/arch/vmcb.hpp"

namespace nsvm::cpu {
using checks::Feature;

namespace {
/// The gates that are not every SVM instruction's, found once by id.
struct GateIds {
    const checks::Check* hsave_zero = checks::find_check("gate.hsave_zero");
    const checks::Check* smm = checks::find_check("gate.smm");
    const checks::Check* rax_alignment = checks::find_check("gate.rax_alignment");
    const checks::Check* rax_maxphyaddr = checks::find_check("gate.rax_maxphyaddr");
    const checks::Check* efer_svme = checks::find_check("gate.efer_svme");
};
const GateIds& gate_ids() noexcept {
    static const GateIds ids;
    return ids;
}

bool applies(const checks::Check& c, SvmInsn insn, const checks::CpuModel& cpu, GateContext where) noexcept {
    const GateIds& g = gate_ids();
    // VM_HSAVE_PA and SMM are about the host's own VMRUN.
    if ((insn != SvmInsn::vmrun || where == GateContext::guest) && (&c == g.hsave_zero || &c == g.smm)) return false;
    // Only VMRUN, VMLOAD and VMSAVE take a physical address in rAX.
    const bool uses_rax = insn == SvmInsn::vmrun || insn == SvmInsn::vmload || insn == SvmInsn::vmsave;
    if (!uses_rax && (&c == g.rax_alignment || &c == g.rax_maxphyaddr)) return false;
    // APM 15.31 / 15.27: with SKINIT or SVM-Lock, STGI and SKINIT are legal with EFER.SVME = 0.
    const bool svme_optional = (insn == SvmInsn::stgi || insn == SvmInsn::skinit) &&
                               (cpu.has(Feature::skinit) || cpu.has(Feature::svm_lock));
    return !(svme_optional && &c == g.efer_svme);
}
}  // namespace

const checks::Check* svm_instruction_gate(SvmInsn insn, const checks::HostState& h, const checks::CpuModel& cpu,
                                          const checks::Profile& profile, GateContext where) noexcept {
    if (insn == SvmInsn::vmmcall) return nullptr;
    // The gates read the processor's state only, never a VMCB.
    static const arch::Vmcb no_vmcb{};
    const checks::Context ctx{no_vmcb, cpu, profile, &h, nullptr};
    for (const auto& c : checks::catalogue()) {
        if (c.stage != checks::Stage::instruction || (c.profiles & checks::mask_of(profile.id)) == 0) continue;
        if (applies(c, insn, cpu, where) && c.violated(ctx)) return &c;
    }
    return nullptr;
}

}  // namespace nsvm::cpu
