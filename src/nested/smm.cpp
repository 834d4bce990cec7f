// SMI and RSM with nested SVM (KVM's svm_enter_smm / svm_leave_smm, APM 15.22 and 10.2).
//
// SMI from L2 not intercepted by L1: the SMRAM state-save map records that a
// guest ran (SMBASE+FED8 = 1) and vmcb12's address (SMBASE+FEE0); L2 is
// forced out with #VMEXIT(SW) to vmcb12; L1's VMRUN state (vmcb01's save
// area) is parked at HSAVE+0x400 because vmcb01 is clobbered in SMM. RSM
// re-reads vmcb12, re-validates its control AND save areas, re-enters L2 and
// reloads L2's registers from SMRAM. Any failure on RSM shuts the vCPU down.
#include <algorithm>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace nsvm::nested {
namespace ec = arch::exit_code;
using arch::FieldId;

namespace {
constexpr std::size_t kSaveAreaBytes = arch::kVmcbSize - arch::kSaveAreaOffset;

std::span<std::uint8_t> save_area(arch::Vmcb& v) noexcept {
    return std::span<std::uint8_t>(v.page()).subspan(arch::kSaveAreaOffset, kSaveAreaBytes);
}
}  // namespace

StepResult Vcpu::enter_smm() noexcept {
    StepResult r;
    const bool from_l2 = mode_ == Mode::l2;
    // The SMRAM image holds the interrupted context's registers.
    smram_l2_ = from_l2 ? vmcb02() : vmcb01_;
    if (!mem_->write_u64(smbase_ + kSmramGuestFlag, from_l2 ? 1 : 0) ||
        !mem_->write_u64(smbase_ + kSmramEfer, smram_l2_.get(FieldId::efer))) {
        shutdown();
        r.outcome = Outcome::shutdown;
        r.note = "SMRAM is not backed memory";
        return r;
    }
    if (from_l2) {
        (void)mem_->write_u64(smbase_ + kSmramVmcb12Gpa, vmcb12_gpa_);
        cpu::ExitInfo x{ec::SW, 0, 0, 0};
        r = nested_vmexit(x);  // forced exit to L1 (nested_svm_simple_vmexit(SVM_EXIT_SW))
        if (!mem_->write(hsave_pa_ + kHsaveL1State, save_area(vmcb01_))) {
            shutdown();
            r.outcome = Outcome::shutdown;
            r.note = "HSAVE is not backed memory";
            return r;
        }
    }
    // SMM entry blocks NMIs until RSM (APM 10.3: NMIs are latched until
    // RSM or an IRET inside SMM), in L1's context after any exit from L2
    // (KVM's enter_smm: set_nmi_mask, or HF_SMM_INSIDE_NMI_MASK when they
    // were blocked already, so that RSM leaves them blocked).
    smm_inside_nmi_ = nmi_masked();
    if (!smm_inside_nmi_) set_nmi_masked(true);
    // APM 10.2.4 SMM entry state; EFER = 0 clears SVME, which gives GIF = 1
    // in KVM (svm_set_efer -> svm_set_gif(true)).
    smm_ = true;
    smm_from_l2_ = from_l2;
    vmcb01_.set(FieldId::efer, 0);
    vmcb01_.set(FieldId::cr0, vmcb01_.get(FieldId::cr0) & ~(arch::cr0::PE | arch::cr0::EM | arch::cr0::TS | arch::cr0::PG));
    vmcb01_.set(FieldId::cr4, 0);
    vmcb01_.set(FieldId::rflags, arch::rflags::FIXED1);
    vmcb01_.set(FieldId::rip, 0x8000);
    vmcb01_.set(FieldId::dr7, arch::dr7::kFixed1);
    vmcb01_.set_segment(arch::Seg::cs, {static_cast<std::uint16_t>((smbase_ >> 4) & 0xFFFF), 0x93, 0xFFFFFFFF, smbase_});
    mode_ = Mode::l1;
    set_gif(true);
    r.outcome = Outcome::smm_entered;
    r.owner = Owner::l0;
    r.exit_code = from_l2 ? ec::SW : 0;
    r.note = from_l2 ? "SMI from L2: forced #VMEXIT(SW) to L1, L1 state parked at HSAVE+0x400, SMM entered"
                     : "SMI from L1: SMM entered";
    return r;
}

StepResult Vcpu::rsm() noexcept {
    StepResult r;
    if (shut_down(r)) return r;
    if (!smm_) {
        r.outcome = Outcome::exception;
        r.vector = 6;
        r.note = "RSM outside SMM: #UD";
        return r;
    }
    // Leaving SMM ends "entered from L2" too: a saved state must never say
    // SMM-from-L2 outside SMM (restore_state refuses that combination).
    auto fail = [&](const char* why) {
        smm_ = false;
        smm_from_l2_ = false;
        smm_inside_nmi_ = false;
        shutdown();
        r.outcome = Outcome::shutdown;
        r.note = why;
        return r;
    };
    std::uint64_t flag = 0;
    if (!mem_->read_u64(smbase_ + kSmramGuestFlag, flag)) return fail("RSM: SMRAM unreadable");
    smm_ = false;
    smm_from_l2_ = false;
    // emulator_leave_smm: NMIs unblocked unless they were at SMM entry,
    // still in L1's context (before guest mode is re-entered).
    if (!smm_inside_nmi_) set_nmi_masked(false);
    smm_inside_nmi_ = false;
    if (flag == 0) {
        std::copy(save_area(smram_l2_).begin(), save_area(smram_l2_).end(), save_area(vmcb01_).begin());
        mode_ = Mode::l1;
        r.outcome = Outcome::smm_left;
        r.note = "RSM to L1";
        // An SMI or INIT latched in SMM is recognized now (APM 10.3.2).
        return take_held_signals(r, nullptr, "RSM to L1; events held in SMM delivered to L1");
    }
    std::uint64_t gpa = 0;
    if (!mem_->read_u64(smbase_ + kSmramVmcb12Gpa, gpa)) return fail("RSM: SMRAM unreadable");
    // svm_leave_smm: the SMRAM image's EFER, i.e.
    // guest memory at SMBASE+FED0 the SMM handler may have rewritten.
    std::uint64_t smram_efer = 0;
    if (!mem_->read_u64(smbase_ + kSmramEfer, smram_efer)) return fail("RSM: SMRAM unreadable");
    if ((smram_efer & arch::efer::SVME) == 0) return fail("RSM: SMRAM EFER.SVME = 0");
    // L1's VMRUN state back from HSAVE+0x400. HSAVE is L1's memory and the
    // SMM handler may have rewritten it: an L1 state VMRUN could not have
    // left is a failed RSM (shutdown), as the other inconsistencies RSM
    // finds, never a guest mode that a nested-state save/restore would
    // refuse. It is checked before it replaces vmcb01's, so a shut-down
    // vCPU keeps a legal L1 state and its saved state still restores.
    arch::Vmcb l1 = vmcb01_;
    if (!mem_->read(hsave_pa_ + kHsaveL1State, save_area(l1))) return fail("RSM: HSAVE unreadable");
    if (l1_state_problem(l1, true) != nullptr)
        return fail("RSM: L1's state at HSAVE+0x400 is not one its VMRUN could have left");
    vmcb01_ = l1;
    // vmcb12 may have changed during SMM: copy it again and re-validate
    // save AND control areas (Paolo's fix for bugzilla #220964).
    if (!copy_vmcb12_to_cache(gpa)) return fail("RSM: vmcb12 unreadable");
    if (const checks::Check* c = check_cache()) {
        r.failed_check = c;
        return fail("RSM: vmcb12 fails a consistency check");
    }
    switch (prepare_entry()) {
        case FailReason::none: break;
        case FailReason::msrpm_unreadable: return fail("RSM: L1's MSRPM unreadable");
        default: return fail("RSM: illegal L2 CR3 or PDPEs");
    }
    commit_guest_mode(gpa);
    // rsm_load_state_64: L2's registers from the SMRAM image.
    std::copy(save_area(smram_l2_).begin(), save_area(smram_l2_).end(), save_area(live_vmcb02()).begin());
    // KVM loads them through its register setters, and a value they refuse
    // fails the RSM (emulator_leave_smm -> triple fault): a vmcb02 the
    // processor's VMRUN refuses is never resumed. (The image is the one SMM
    // entry saved, or one a nested-state restore brought.)
    r.outcome = Outcome::smm_left;
    r.note = "RSM into L2: vmcb12 re-validated, guest mode re-entered on the processor";
    const cpu::SvmResult hr = run_vmcb02();
    if (took_entry(hr, r)) return take_held_signals(r, "RSM into L2, and an event held in SMM was taken at once");
    r.failed_check = hr.failed_check;
    return fail("RSM: L2's registers in SMRAM are a state VMRUN refuses");
}

}  // namespace nsvm::nested
