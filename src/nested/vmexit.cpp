// The synthesized #VMEXIT to L1 (KVM's nested_svm_vmexit, APM 15.6):
//   sync_vmcb02_to_vmcb12 -> GIF = 0 -> restore_l1_from_vmcb01
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace nsvm::nested {
namespace ec = arch::exit_code;
using arch::FieldId;
using arch::Seg;

namespace {
/// The registers nested_svm_vmexit copies from vmcb02 into vmcb12 as they are.
constexpr std::array kVmexitSavedRegisters = {FieldId::cr0, FieldId::cr3, FieldId::cr2,  FieldId::cr4,
                                              FieldId::rflags, FieldId::rip, FieldId::rsp, FieldId::rax,
                                              FieldId::dr7, FieldId::dr6, FieldId::cpl};
}  // namespace

void Vcpu::sync_vmcb02_to_vmcb12(const arch::Vmcb& vmcb02, const cpu::ExitInfo& x) noexcept {
    // int_ctl: L1's value with the bits the processor updates synced back
    // (nested_sync_control_from_vmcb02): V_IRQ and V_TPR, V_GIF with nested vGIF, vNMI bits with nested vNMI.
    std::uint64_t sync = arch::int_ctl::V_TPR | arch::int_ctl::V_IRQ;
    const std::uint64_t i12 = cache_.get(FieldId::int_ctl);
    if (nested_vgif()) sync |= arch::int_ctl::V_GIF;
    if (nested_vnmi()) sync |= arch::int_ctl::V_NMI_PENDING | arch::int_ctl::V_NMI_BLOCKING;
    // Not V_IRQ while L0 has usurped vmcb02's for its own interrupt window
    // (vmcb02 intercepts VINTR, vmcb12 does not): vmcb12's V_IRQ is still
    // L1's ("KVM: nSVM: Don't sync vmcb02 V_IRQ back to vmcb12 if KVM (L0)
    // is intercepting VINTR").
    if (vmcb02.intercept(arch::intercept::VINTR) && !cache_.intercept(arch::intercept::VINTR))
        sync &= ~arch::int_ctl::V_IRQ;
    const std::uint64_t int_ctl = (i12 & ~sync) | (vmcb02.get(FieldId::int_ctl) & sync);
    cache_.set(FieldId::int_ctl, int_ctl);

    // vmcb12 was read at VMRUN and pages are never unmapped; without it
    // there is nothing to write back to.
    const auto vmcb12 = mem_->vmcb_in_place(vmcb12_gpa_);
    if (!vmcb12) return;
    // Exactly the fields KVM's nested_svm_vmexit writes; never intercepts, maps, TSC
    // offset, ASID, tlb_ctl, nCR3, misc_ctl*, pause filter, clean bits or
    // the VMLOAD/VMSAVE state. The clean bits are L1's: KVM once cleared
    // VMCB_LBR (bit 10) in vmcb12 when it copied the LBRs there, fixed by
    // "KVM: nSVM: Avoid clearing VMCB_LBR in vmcb12" (2026).
    for (Seg s : arch::kVmrunSegments) vmcb12->set_segment(s, vmcb02.segment(s));
    // EFER as L2 sees it: SVME only if L1 gave it.
    vmcb12->set(FieldId::efer, l2_efer(vmcb02));
    arch::copy_fields<kVmexitSavedRegisters>(vmcb02, *vmcb12);
    if (l2_has_own_pat()) vmcb12->set(FieldId::g_pat, vmcb02.get(FieldId::g_pat));
    if (cpu_->has(checks::Feature::shstk)) arch::copy_fields<arch::kCetSupervisorFields>(vmcb02, *vmcb12);
    // APM 15.23: L2's DebugCtl and LBRs, when L1 virtualizes them (the
    // other case gives them to vmcb01: give_back_l1_lbrs).
    if (nested_lbrv()) arch::copy_fields<arch::kLbrVirtFields>(vmcb02, *vmcb12);
    vmcb12->set(FieldId::int_state, vmcb02.get(FieldId::int_state));
    vmcb12->set(FieldId::exit_code, x.code);
    vmcb12->set(FieldId::exit_info_1, x.info1);
    vmcb12->set(FieldId::exit_info_2, x.info2);
    if (!ec::is_vmrun_failure(x.code)) {
        vmcb12->set(FieldId::exit_int_info, vmcb02.get(FieldId::exit_int_info));
        vmcb12->set(FieldId::exit_int_info_err, vmcb02.get(FieldId::exit_int_info_err));
    }
    if (opts_.nrips) vmcb12->set(FieldId::next_rip, x.next_rip);
    vmcb12->set(FieldId::int_ctl, int_ctl);
    // Post-series KVM and the APM: EVENTINJ is consumed.
    vmcb12->set(FieldId::event_inj, 0);
    vmcb12->set(FieldId::event_inj_err, 0);
}

void Vcpu::give_back_l1_lbrs(const arch::Vmcb& vmcb02) noexcept {
    // KVM's nested_svm_vmexit (svm_copy_lbrs(vmcb01, vmcb02)): without LBR
    // virtualization for L2, the DebugCtl and LBRs L2 ran with were L1's
    // (vmcb02 took them from vmcb01; an L2 WRMSR DebugCtl L0 emulated
    // landed in vmcb02): L1 has them back.
    if (!nested_lbrv()) arch::copy_fields<arch::kLbrVirtFields>(vmcb02, vmcb01_);
}

void Vcpu::restore_l1_from_vmcb01() noexcept {
    using namespace arch;
    // nested_svm_vmexit's restore of L1 / APM 15.6. vmcb01 already holds L1's state
    // (RIP past VMRUN); force CR0.PE, RFLAGS.VM = 0, CPL 0, DR7 = 0x400.
    mode_ = Mode::l1;
    vmcb01_.set(FieldId::cr0, vmcb01_.get(FieldId::cr0) | cr0::PE);
    vmcb01_.set(FieldId::rflags, (vmcb01_.get(FieldId::rflags) & ~rflags::VM) | rflags::FIXED1);
    vmcb01_.set(FieldId::cpl, 0);
    vmcb01_.set(FieldId::dr7, dr7::kFixed1);
    vmcb01_.set(FieldId::exit_int_info, 0);
    // nested_svm_vmexit drops only what was being injected into L2 (reported via
    // exit_int_info; the model injects through EVENTINJ, already consumed).
    // Events held by GIF (pending_) are still pending for L1 and are taken
    // once L1 sets GIF (APM 15.17): never dropped here.
    // KVM's nested_svm_vmexit: the TSC multiplier back to L1's
    // (l1_tsc_scaling_ratio, svm_write_tsc_multiplier). L0 does not scale
    // L1's TSC in this model: 1.0. tsc_ratio02_ keeps what L2 ran with.
    write_tsc_multiplier(kL1TscRatio);
    use_msrpm02_ = false;
    use_iopm02_ = false;
    // Single-stepping VMRUN: #DB for L1 once the #VMEXIT completes (APM 15.5.1 step 9).
    pending_db_ = (vmcb01_.get(FieldId::rflags) & rflags::TF) != 0;
}

StepResult Vcpu::nested_vmexit(const cpu::ExitInfo& x) noexcept {
    // The processor has left L2 already when its own #VMEXIT brought L0
    // here; for what L0 decides alone (a physical event, a forced exit) it
    // leaves now, writing L2's state into vmcb02.
    l0_takes_exit(x);
    sync_vmcb02_to_vmcb12(vmcb02(), x);
    give_back_l1_lbrs(vmcb02());
    restore_l1_from_vmcb01();
    vnmi_state_to_vmcb01(vmcb02());
    // APM 15.6 step 1, GIF = 0: KVM's nested_svm_vmexit clears it once
    // vmcb01 is current again (svm_set_gif: vmcb01's V_GIF under vGIF).
    set_gif(false);
    StepResult r;
    r.outcome = Outcome::vmexit_to_l1;
    r.owner = Owner::l1;
    r.exit_code = x.code;
    r.exit_info_1 = x.info1;
    r.exit_info_2 = x.info2;
    return r;
}

void Vcpu::vnmi_state_to_vmcb01(const arch::Vmcb& vmcb02) noexcept {
    if (!l0_uses_vnmi()) return;
    // nested_svm_vmexit: L1's NMI blocking is what vmcb02 ends with (its
    // V_NMI_BLOCKING, from vmcb12 with nested vNMI, else clear), and one NMI
    // L0 held for L1 is handed to the processor in vmcb01's V_NMI_PENDING,
    // where it waits for L1's STGI (GIF = 0 after the exit) with no STGI
    // window; without one V_NMI_PENDING is cleared.
    namespace ic_bits = arch::int_ctl;
    std::uint64_t i01 = vmcb01_.get(FieldId::int_ctl) & ~(ic_bits::V_NMI_BLOCKING | ic_bits::V_NMI_PENDING);
    i01 |= vmcb02.get(FieldId::int_ctl) & ic_bits::V_NMI_BLOCKING;
    if ((pending_ & pending_bit(cpu::Signal::nmi)) != 0) {
        pending_ &= ~pending_bit(cpu::Signal::nmi);
        i01 |= ic_bits::V_NMI_PENDING;
    }
    vmcb01_.set(FieldId::int_ctl, i01);
}

void Vcpu::leave_nested() noexcept {
    // svm_leave_nested: forced out of guest mode without a #VMEXIT to
    // vmcb12; GIF = 1 (KVM's svm_leave_nested: svm_set_gif(svm, true)).
    if (mode_ == Mode::l2) {
        // Whatever exit brought L0 out of L2 (its code is L0's business).
        l0_takes_exit(cpu::ExitInfo{ec::INTR, 0, 0, 0});
        restore_l1_from_vmcb01();
    }
    pending_db_ = false;
    set_gif(true);
}

}  // namespace nsvm::nested
