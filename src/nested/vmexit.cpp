// The synthesized #VMEXIT to L1 (kvm-nsvm.md §5, APM 15.6):
//   sync_vmcb02_to_vmcb12 -> GIF = 0 -> restore_l1_from_vmcb01
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace nsvm::nested {
namespace ec = arch::exit_code;
using arch::FieldId;
using arch::Seg;

void Vcpu::sync_vmcb02_to_vmcb12(const cpu::ExitInfo& x) noexcept {
    // §5.2: exactly the fields KVM writes; never intercepts, maps, TSC
    // offset, ASID, tlb_ctl, nCR3, misc_ctl*, pause filter, clean bits or
    // the VMLOAD/VMSAVE state.
    for (Seg s : {Seg::es, Seg::cs, Seg::ss, Seg::ds, Seg::gdtr, Seg::idtr})
        (void)write_vmcb12_segment(s, vmcb02_.segment(s));
    // EFER as L2 sees it: SVME only if L1 gave it.
    const std::uint64_t efer = (vmcb02_.get(FieldId::efer) & ~arch::efer::SVME) |
                               (cache_.get(FieldId::efer) & arch::efer::SVME);
    (void)write_vmcb12_field(FieldId::efer, efer);
    for (FieldId f : {FieldId::cr0, FieldId::cr3, FieldId::cr2, FieldId::cr4, FieldId::rflags, FieldId::rip,
                      FieldId::rsp, FieldId::rax, FieldId::dr7, FieldId::dr6, FieldId::cpl})
        (void)write_vmcb12_field(f, vmcb02_.get(f));
    if ((cache_.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) != 0)
        (void)write_vmcb12_field(FieldId::g_pat, vmcb02_.get(FieldId::g_pat));
    if (cpu_->has(checks::Feature::shstk)) {  // §5.2: S_CET, ISST_ADDR, SSP with SHSTK
        for (FieldId f : {FieldId::s_cet, FieldId::ssp, FieldId::isst_addr})
            (void)write_vmcb12_field(f, vmcb02_.get(f));
    }
    (void)write_vmcb12_field(FieldId::int_state, vmcb02_.get(FieldId::int_state));
    const bool failure = ec::is_vmrun_failure(x.code);
    (void)write_vmcb12_field(FieldId::exit_code, x.code);
    (void)write_vmcb12_field(FieldId::exit_info_1, x.info1);
    (void)write_vmcb12_field(FieldId::exit_info_2, x.info2);
    if (!failure) {
        (void)write_vmcb12_field(FieldId::exit_int_info, vmcb02_.get(FieldId::exit_int_info));
        (void)write_vmcb12_field(FieldId::exit_int_info_err, vmcb02_.get(FieldId::exit_int_info_err));
    }
    if (opts_.nrips) (void)write_vmcb12_field(FieldId::next_rip, x.next_rip);
    // int_ctl: L1's value with the bits the processor updates synced back
    // (§5.1): V_IRQ and V_TPR, V_GIF with nested vGIF, vNMI bits with nested vNMI.
    std::uint64_t sync = arch::int_ctl::V_TPR | arch::int_ctl::V_IRQ;
    const std::uint64_t i12 = cache_.get(FieldId::int_ctl);
    if (cpu_->has(checks::Feature::vgif) && (i12 & arch::int_ctl::V_GIF_ENABLE)) sync |= arch::int_ctl::V_GIF;
    if (cpu_->has(checks::Feature::vnmi) && (i12 & arch::int_ctl::V_NMI_ENABLE))
        sync |= arch::int_ctl::V_NMI_PENDING | arch::int_ctl::V_NMI_BLOCKING;
    const std::uint64_t int_ctl = (i12 & ~sync) | (vmcb02_.get(FieldId::int_ctl) & sync);
    cache_.set(FieldId::int_ctl, int_ctl);
    (void)write_vmcb12_field(FieldId::int_ctl, int_ctl);
    // Post-series KVM and the APM: EVENTINJ is consumed.
    (void)write_vmcb12_field(FieldId::event_inj, 0);
    (void)write_vmcb12_field(FieldId::event_inj_err, 0);
}

void Vcpu::restore_l1_from_vmcb01() noexcept {
    using namespace arch;
    // §5.3 steps 11-21 / APM 15.6 steps 5-6. vmcb01 already holds L1's state
    // (RIP past VMRUN); force CR0.PE, RFLAGS.VM = 0, CPL 0, DR7 = 0x400.
    mode_ = Mode::l1;
    vmcb01_.set(FieldId::cr0, vmcb01_.get(FieldId::cr0) | cr0::PE);
    vmcb01_.set(FieldId::rflags, (vmcb01_.get(FieldId::rflags) & ~rflags::VM) | rflags::FIXED1);
    vmcb01_.set(FieldId::cpl, 0);
    vmcb01_.set(FieldId::dr7, dr7::kFixed1);
    vmcb01_.set(FieldId::exit_int_info, 0);
    // §5.3 step 20 drops only what was being injected into L2 (reported via
    // exit_int_info; the model injects through EVENTINJ, already consumed).
    // Events held by GIF (pending_) are still pending for L1 and are taken
    // once L1 sets GIF (APM 15.17 / apm-svm.md §8): never dropped here.
    tsc_ratio02_ = tsc_ratio_;
    use_msrpm02_ = false;
    // Single-stepping VMRUN: #DB for L1 once the #VMEXIT completes (APM 15.5.1 step 9).
    pending_db_ = (vmcb01_.get(FieldId::rflags) & rflags::TF) != 0;
}

StepResult Vcpu::nested_vmexit(const cpu::ExitInfo& x) noexcept {
    sync_vmcb02_to_vmcb12(x);
    gif_ = false;  // APM 15.6 step 1
    restore_l1_from_vmcb01();
    StepResult r;
    r.outcome = Outcome::vmexit_to_l1;
    r.owner = Owner::l1;
    r.exit_code = x.code;
    r.exit_info_1 = x.info1;
    r.exit_info_2 = x.info2;
    return r;
}

void Vcpu::leave_nested() noexcept {
    // svm_leave_nested: forced out of guest mode without a #VMEXIT to
    // vmcb12; GIF = 1 (kvm-nsvm.md §7.3).
    if (mode_ == Mode::l2) restore_l1_from_vmcb01();
    pending_db_ = false;
    gif_ = true;
}

}  // namespace nsvm::nested
