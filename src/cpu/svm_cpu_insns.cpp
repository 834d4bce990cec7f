// VMLOAD, VMSAVE, STGI, CLGI, INVLPGA, SKINIT and the SVM MSR writes, as
// the host executes them (APM 15.5.2, 15.17, 15.16.3, 15.27, 15.30).
#include <utility>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/cpu/msr_rules.hpp"
#include "nsvm/cpu/npt.hpp"
#include "nsvm/cpu/svm_cpu.hpp"

namespace nsvm::cpu {
using arch::FieldId;
using arch::Seg;
using checks::Feature;

namespace {
template <class R>  // Registers or const Registers
auto& seg_ref(R& r, Seg s) noexcept {
    switch (s) {
        case Seg::fs: return r.fs;
        case Seg::gs: return r.gs;
        case Seg::tr: return r.tr;
        default: return r.ldtr;
    }
}

/// The MSRs VMLOAD/VMSAVE move (APM 15.5.2), with their register.
struct MsrSlot {
    FieldId field;
    std::uint64_t Registers::*reg;
};
constexpr std::array kVmloadMsrs = {
    MsrSlot{FieldId::kernel_gs_base, &Registers::kernel_gs_base}, MsrSlot{FieldId::star, &Registers::star},
    MsrSlot{FieldId::lstar, &Registers::lstar},       MsrSlot{FieldId::cstar, &Registers::cstar},
    MsrSlot{FieldId::sfmask, &Registers::sfmask},     MsrSlot{FieldId::sysenter_cs, &Registers::sysenter_cs},
    MsrSlot{FieldId::sysenter_esp, &Registers::sysenter_esp},
    MsrSlot{FieldId::sysenter_eip, &Registers::sysenter_eip},
};
static_assert([] {
    for (std::size_t i = 0; i < kVmloadMsrs.size(); ++i)
        if (kVmloadMsrs[i].field != arch::kVmloadFields[i]) return false;
    return kVmloadMsrs.size() == arch::kVmloadFields.size();
}(), "the VMLOAD/VMSAVE MSRs are APM 15.5.2's list, in arch's order");
/// kVmloadMsrs' registers alone, in the same order as arch::kVmloadFields:
/// g++ 12 folds a constant index into these two plain arrays to one load and
/// one store per MSR, not into the array of pairs (a width switch each).
constexpr auto kVmloadMsrRegs = [] {
    std::array<std::uint64_t Registers::*, kVmloadMsrs.size()> regs{};
    for (std::size_t i = 0; i < kVmloadMsrs.size(); ++i) regs[i] = kVmloadMsrs[i].reg;
    return regs;
}();

/// The registers' VMLOAD/VMSAVE state seen as a VMCB's, so that
/// arch::copy_vmload_state moves it between the registers and a VMCB page.
/// R is Registers, or const Registers for a VMSAVE of a const processor.
template <class R>
struct VmloadRegisters {
    R& r;
    [[nodiscard]] arch::Segment segment(Seg s) const noexcept { return seg_ref(r, s); }
    void set_segment(Seg s, const arch::Segment& v) const noexcept { seg_ref(r, s) = v; }
    [[nodiscard]] std::uint64_t get(FieldId f) const noexcept { return r.*reg_of(f); }
    void set(FieldId f, std::uint64_t v) const noexcept { r.*reg_of(f) = v; }

private:
    static std::uint64_t Registers::*reg_of(FieldId f) noexcept {
        for (const auto& m : kVmloadMsrs)
            if (m.field == f) return m.reg;
        return &Registers::kernel_gs_base;  // unreachable: copy_vmload_state asks only for kVmloadFields
    }
};
template <class R>
VmloadRegisters(R&) -> VmloadRegisters<R>;

SvmResult fault(std::uint8_t vector, const char* note) noexcept {
    SvmResult r;
    r.outcome = SvmOutcome::exception;
    r.vector = vector;
    r.note = note;
    return r;
}
SvmResult not_in_host() noexcept {
    SvmResult r;
    r.outcome = SvmOutcome::nothing;
    r.note = "a guest runs: its SVM instructions are guest_event()s";
    return r;
}
}  // namespace

SvmResult SvmCpu::vmload() noexcept {
    if (in_guest_) return not_in_host();
    SvmResult r;
    if (!svm_gates(Insn::vmload, regs_, r)) return r;
    const std::uint64_t pa = page_of(regs_.rax);
    // Read the page first, then commit: the registers never see half a VMLOAD.
    arch::Vmcb page;
    if (!mem_->read_vmcb(pa, page)) return fault(13, "#GP(0): the VMCB page is not backed memory (model)");
    Registers next = regs_;
    arch::copy_vmload_state(page, VmloadRegisters{next});
    regs_ = next;
    regs_.rip += kSvmInsnLength;
    r.outcome = SvmOutcome::completed;
    r.note = "VMLOAD: FS, GS, TR, LDTR, KernelGsBase, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP loaded";
    return r;
}

// The host's own VMLOAD/VMSAVE around every VMRUN: the same state as
// copy_vmload_state moves, register by register (no field lookup: this is on
// the nested engine's VMRUN/#VMEXIT path).
// The index sequences unroll the tables at compile time, so every field's
// offset is a constant.
void SvmCpu::vmload_state_from(const arch::Vmcb& v) noexcept {
    if (in_guest_) return;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((seg_ref(regs_, arch::kVmloadSegments[I]) = v.segment(arch::kVmloadSegments[I])), ...);
    }(std::make_index_sequence<arch::kVmloadSegments.size()>{});
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((regs_.*kVmloadMsrRegs[I] = v.get(arch::kVmloadFields[I])), ...);
    }(std::make_index_sequence<kVmloadMsrRegs.size()>{});
}

void SvmCpu::vmsave_state_to(arch::Vmcb& v) const noexcept {
    if (in_guest_) return;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (v.set_segment(arch::kVmloadSegments[I], seg_ref(regs_, arch::kVmloadSegments[I])), ...);
    }(std::make_index_sequence<arch::kVmloadSegments.size()>{});
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (v.set(arch::kVmloadFields[I], regs_.*kVmloadMsrRegs[I]), ...);
    }(std::make_index_sequence<kVmloadMsrRegs.size()>{});
}

SvmResult SvmCpu::guest_vmload_vmsave(const Event& e, bool save) noexcept {
    // A guest's VMLOAD/VMSAVE that is not intercepted (its gates passed).
    // With virtual VMLOAD/VMSAVE (V_VMSAVE_VMLOAD under nested paging, APM
    // 15.33.1) rAX is a guest-physical address the nested page tables
    // translate, a fault there being #VMEXIT(NPF); without it rAX is used
    // as a system-physical address (why hypervisors intercept them).
    std::uint64_t pa = page_of(regs_.rax);
    const bool virtualized = cpu_->has(Feature::v_vmsave_vmload) && np_enabled() &&
                             (cur().get(FieldId::misc_ctl2) & arch::misc_ctl2::V_VMSAVE_VMLOAD) != 0;
    if (virtualized) {
        const NptResult w =
            npt_walk(*mem_, cur().get(FieldId::nested_cr3), pa, Access{.write = save, .user = false}, nested_mode());
        if (!w.ok) return vmexit(arch::exit_code::NPF, w.info1, w.info2, 0, exit_nrip(0));
        pa = w.hpa;
    }
    if (save) {
        const auto page = mem_->vmcb_in_place(pa);
        if (!page) return guest_exception(13, 0, 0, "#GP(0): the VMCB page is not backed memory (model)");
        arch::copy_vmload_state(VmloadRegisters{regs_}, *page);
    } else {
        arch::Vmcb page;
        if (!mem_->read_vmcb(pa, page)) return guest_exception(13, 0, 0, "#GP(0): the VMCB page is not backed memory (model)");
        arch::copy_vmload_state(page, VmloadRegisters{regs_});
    }
    apply_guest_effect(e);
    SvmResult r;
    r.outcome = SvmOutcome::no_exit;
    r.in_guest = true;
    r.note = virtualized ? "virtual VMLOAD/VMSAVE: rAX translated through the nested page tables"
                         : "VMLOAD/VMSAVE in the guest, not intercepted: rAX is a system-physical address";
    return r;
}

SvmResult SvmCpu::vmsave() noexcept {
    if (in_guest_) return not_in_host();
    SvmResult r;
    if (!svm_gates(Insn::vmsave, regs_, r)) return r;
    const auto page = mem_->vmcb_in_place(page_of(regs_.rax));
    if (!page) return fault(13, "#GP(0): the VMCB page is not backed memory (model)");
    arch::copy_vmload_state(VmloadRegisters{regs_}, *page);
    regs_.rip += kSvmInsnLength;
    r.outcome = SvmOutcome::completed;
    r.note = "VMSAVE: FS, GS, TR, LDTR, KernelGsBase, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP stored";
    return r;
}

SvmResult SvmCpu::stgi() noexcept {
    if (in_guest_) return not_in_host();
    SvmResult r;
    if (!svm_gates(Insn::stgi, regs_, r)) return r;
    gif_ = true;
    regs_.rip += kSvmInsnLength;
    // Events held while GIF was 0 are taken now (APM 15.17.1).
    SvmResult p = poll();
    if (p.outcome != SvmOutcome::nothing && p.outcome != SvmOutcome::held_pending) return p;
    r.outcome = SvmOutcome::completed;
    r.note = "GIF = 1";
    return r;
}

SvmResult SvmCpu::clgi() noexcept {
    if (in_guest_) return not_in_host();
    SvmResult r;
    if (!svm_gates(Insn::clgi, regs_, r)) return r;
    gif_ = false;
    regs_.rip += kSvmInsnLength;
    r.outcome = SvmOutcome::completed;
    r.note = "GIF = 0";
    return r;
}

SvmResult SvmCpu::invlpga(std::uint32_t ecx) noexcept {
    if (in_guest_) return not_in_host();
    SvmResult r;
    if (!svm_gates(Insn::invlpga, regs_, r)) return r;
    // APM 15.16.3: invalidates the mapping of the VA in rAX for the ASID in ECX.
    tlb_.invlpga_va = regs_.rax;
    tlb_.invlpga_asid = ecx;
    ++tlb_.invlpga_count;
    regs_.rip += kSvmInsnLength;
    r.outcome = SvmOutcome::completed;
    r.note = "INVLPGA recorded";
    return r;
}

SvmResult SvmCpu::skinit() noexcept {
    if (in_guest_) return not_in_host();
    // CPUID Fn8000_0001_ECX[SKINIT] = 0: the opcode is undefined.
    if (!cpu_->has(Feature::skinit)) return fault(6, "SKINIT without the feature: #UD");
    SvmResult r;
    if (!svm_gates(Insn::skinit, regs_, r)) return r;
    // APM 15.27: SKINIT clears GIF; the secure-loader launch is not modelled.
    gif_ = false;
    r.outcome = SvmOutcome::completed;
    r.note = "SKINIT: GIF = 0 (secure loader launch not modelled)";
    return r;
}

SvmResult SvmCpu::wrmsr(std::uint32_t msr, std::uint64_t value) noexcept {
    using namespace arch;
    if (in_guest_) return not_in_host();
    const MsrWrite w = svm_msr_write(*cpu_, msr, value, SvmMsrState{regs_.efer, msrs_.vm_cr, regs_.cpl});
    if (w.gp != nullptr) return fault(13, w.gp);
    switch (msr) {
        case msr::EFER: regs_.efer = w.stored; break;
        case msr::VM_CR: msrs_.vm_cr = w.stored; break;
        case msr::VM_HSAVE_PA: msrs_.vm_hsave_pa = w.stored; break;
        case msr::TSC_RATIO: msrs_.tsc_ratio = w.stored; break;
        case msr::TSC_AUX: msrs_.tsc_aux = w.stored; break;
        case msr::PAT: regs_.pat = w.stored; break;
        case msr::DEBUGCTL: regs_.lbr.dbgctl = w.stored; break;
        case msr::HWCR: msrs_.hwcr = value; break;
        case msr::TSC: msrs_.tsc = value; break;
        default: break;  // not an SVM MSR: accepted, no effect in this model
    }
    regs_.rip += 2;  // 0F 30
    SvmResult r;
    r.outcome = SvmOutcome::completed;
    r.note = "WRMSR";
    return r;
}

}  // namespace nsvm::cpu
