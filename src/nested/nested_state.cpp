// Nested state save/restore (the role of KVM_GET/SET_NESTED_STATE).
//
// Blob, little-endian, fixed size:
//   0x0000  "NSVMNEST"                      magic
//   0x0008  u32 version (1), u32 flags      flags: 0 guest_mode, 1 gif, 2 smm,
//                                                  3 smm_from_l2, 4 pending_db,
//                                                  5 shutdown, 6 smm_inside_nmi
//   0x0010  u32 pending events, u32 0
//   0x0018  u64 vmcb12_gpa, hsave_pa, vm_cr, tsc_ratio, smbase
//   0x0040  vmcb01 page (L1 state + L0 controls)         4096
//   0x1040  vmcb12 cache page                            4096
//   0x2040  vmcb02 save area (L2's live registers)       3072
//   0x2C40  SMRAM image page                             4096
// vmcb02's control area and the merged MSRPM are derived on restore, so
// save -> restore -> save gives identical bytes.
#include <algorithm>
#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "nested_state_layout.hpp"

namespace nsvm::nested {
namespace ic = arch::intercept;
using arch::FieldId;

using namespace state_layout;

std::vector<std::uint8_t> Vcpu::save_state() const {
    std::vector<std::uint8_t> b(kBlobSize, 0);
    std::span<std::uint8_t> s(b);
    std::copy(kMagic.begin(), kMagic.end(), b.begin());
    arch::store_le(s, 8, 4, kNestedStateVersion);
    std::uint32_t flags = 0;
    if (mode_ == Mode::l2) flags |= kFlagGuest;
    if (gif()) flags |= kFlagGif;
    if (smm_) flags |= kFlagSmm;
    if (smm_from_l2_) flags |= kFlagSmmL2;
    if (pending_db_) flags |= kFlagDb;
    // A shut-down vCPU stays shut down across save/restore (as KVM carries a
    // pending triple fault in KVM_GET_VCPU_EVENTS).
    if (mode_ == Mode::shutdown) flags |= kFlagShutdown;
    if (smm_inside_nmi_) flags |= kFlagSmmInsideNmi;
    arch::store_le(s, kFlagsAt, 4, flags);
    arch::store_le(s, 16, 4, pending_);
    arch::store_le(s, kVmcb12GpaAt, 8, vmcb12_gpa_);
    arch::store_le(s, 0x20, 8, hsave_pa_);
    arch::store_le(s, 0x28, 8, vm_cr_);
    arch::store_le(s, 0x30, 8, tsc_ratio_);
    arch::store_le(s, 0x38, 8, smbase_);
    std::copy(vmcb01_.page().begin(), vmcb01_.page().end(), b.begin() + kVmcb01At);
    std::copy(cache_.page().begin(), cache_.page().end(), b.begin() + kCacheAt);
    if (mode_ == Mode::l2)
        std::copy(vmcb02().page().begin() + arch::kSaveAreaOffset, vmcb02().page().end(),
                  b.begin() + kL2SaveAt);
    if (smm_)
        std::copy(smram_l2_.page().begin(), smram_l2_.page().end(),
                  b.begin() + kSmramAt);
    return b;
}

nsvm::expected<void, std::string> Vcpu::restore_state(std::span<const std::uint8_t> blob) {
    using U = nsvm::unexpected<std::string>;
    if (blob.size() != kBlobSize) return U(fmt::format("nested state: {} bytes, expected {}", blob.size(), kBlobSize));
    if (!std::equal(kMagic.begin(), kMagic.end(), blob.begin())) return U("nested state: bad magic");
    const auto version = arch::load_le(blob, 8, 4);
    if (version != kNestedStateVersion) return U(fmt::format("nested state: version {} unsupported", version));
    const auto flags = static_cast<std::uint32_t>(arch::load_le(blob, kFlagsAt, 4));
    if ((flags & ~kKnownFlags) != 0) return U(fmt::format("nested state: unknown flags {:#x}", flags));
    const bool guest = flags & kFlagGuest, smm = flags & kFlagSmm;
    if (guest && smm) return U("nested state: guest mode while in SMM is impossible (SMI exits guest mode)");
    if ((flags & kFlagSmmL2) && !smm) return U("nested state: SMM-from-L2 flag without SMM");
    if ((flags & kFlagSmmInsideNmi) && !smm) return U("nested state: SMM-inside-NMI flag without SMM");
    const bool down = flags & kFlagShutdown;
    if (down && guest) return U("nested state: guest mode in a shut-down vCPU is impossible (nothing runs)");
    const std::uint64_t gpa = arch::load_le(blob, kVmcb12GpaAt, 8), hsave = arch::load_le(blob, 0x20, 8),
                        vmcr = arch::load_le(blob, 0x28, 8), ratio = arch::load_le(blob, 0x30, 8),
                        smbase = arch::load_le(blob, 0x38, 8);
    const std::uint64_t rsv = cpu_->reserved_pa_bits();
    if ((hsave & 0xFFF) || (hsave & rsv)) return U(fmt::format("nested state: VM_HSAVE_PA {:#x} illegal", hsave));
    if (vmcr & arch::vm_cr::kMbz) return U(fmt::format("nested state: VM_CR {:#x} has reserved bits", vmcr));
    if (ratio & arch::bits(63, 40)) return U(fmt::format("nested state: TSC_RATIO {:#x} has bits 63:40", ratio));
    if (guest && ((gpa & 0xFFF) || (gpa & rsv))) return U(fmt::format("nested state: vmcb12 GPA {:#x} illegal", gpa));

    Vcpu backup = *this;
    auto refuse = [&](std::string why) {
        *this = backup;
        return U(std::move(why));
    };
    // KVM_SET_NESTED_STATE runs outside KVM_RUN: the processor is not in L2.
    l0_takes_exit(cpu::ExitInfo{arch::exit_code::INTR, 0, 0, 0});
    std::copy_n(blob.begin() + kVmcb01At, arch::kVmcbSize, vmcb01_.page().begin());
    std::copy_n(blob.begin() + kCacheAt, arch::kVmcbSize, cache_.page().begin());
    // L1's state: what L1 could never have loaded is refused.
    if (const char* why = l1_state_problem(vmcb01_, guest)) return refuse(fmt::format("nested state: {}", why));
    const auto l0_words = l0_intercept_words();
    for (unsigned w = 0; w < 6; ++w) {
        // Under vGIF the STGI intercept is the NMI/SMI window, which the
        // restored GIF and pending events decide (set_gif below); the IRET
        // intercept is L0's NMI mask, which the blob carries (below).
        std::uint32_t window = w == ic::STGI / 32 && l0_uses_vgif() ? 1U << (ic::STGI % 32) : 0;
        if (w == ic::IRET / 32) window |= 1U << (ic::IRET % 32);
        if (w == ic::VINTR / 32) window |= 1U << (ic::VINTR % 32);  // the interrupt window: pending_ decides
        if ((vmcb01_.intercept_word(w) & ~window) != (l0_words[w] & ~window))
            return refuse("nested state: vmcb01 intercepts differ from L0's configuration");
    }
    nmi_masked_ = vmcb01_.intercept(ic::IRET);  // svm_set_iret_intercept keeps them together
    mode_ = Mode::l1;
    write_tsc_multiplier(kL1TscRatio);  // L1's, until switch_to_prepared below enters L2
    smm_ = smm;
    smm_from_l2_ = flags & kFlagSmmL2;
    smm_inside_nmi_ = flags & kFlagSmmInsideNmi;
    // GIF goes where gif() reads it once the mode is known (below): in
    // guest mode vmcb01's V_GIF keeps what the blob has.
    const bool gif = flags & kFlagGif;
    pending_db_ = flags & kFlagDb;
    pending_ = static_cast<std::uint32_t>(arch::load_le(blob, 16, 4));
    vmcb12_gpa_ = gpa;
    hsave_pa_ = hsave;
    vm_cr_ = vmcr;
    tsc_ratio_ = ratio;
    smbase_ = smbase;
    smram_l2_ = arch::Vmcb{};
    if (smm) std::copy_n(blob.begin() + kSmramAt, arch::kVmcbSize, smram_l2_.page().begin());
    if (guest) {
        if (const checks::Check* c = check_cache())
            return refuse(fmt::format("nested state: vmcb12 cache fails check {} ({})", c->id, c->message));
        // Only L2's own CLGI clears GIF in guest mode, and with nested vGIF
        // that CLGI changes V_GIF instead.
        if (!gif && nested_vgif()) return refuse("nested state: guest mode with GIF = 0 although L2 has a virtual GIF");
        const auto l2_save = blob.subspan(kL2SaveAt, kSave);
        // L2's current CR0 (it may differ from vmcb12's): KVM refuses CD = 0 with NW = 1.
        const std::uint64_t cr0_l2 = arch::load_le(l2_save, arch::info(FieldId::cr0).offset - arch::kSaveAreaOffset, 8);
        if ((cr0_l2 & arch::cr0::NW) && !(cr0_l2 & arch::cr0::CD))
            return refuse(fmt::format("nested state: L2 CR0 {:#x} has NW without CD", cr0_l2));
        switch (const FailReason fr = prepare_entry(l2_save)) {
            case FailReason::none: break;
            case FailReason::msrpm_unreadable: return refuse("nested state: L1's MSRPM is unreadable");
            default: return refuse(fmt::format("nested state: L2 CR3/PDPEs: {}", fail_reason_name(fr)));
        }
        switch_to_prepared();  // guest mode
        set_gif(gif);
        // L2's registers arrive with the blob, not through a VMRUN: a value
        // KVM's KVM_SET_SREGS / KVM_SET_DEBUGREGS would refuse (kvm_dr7_valid,
        // kvm_is_valid_cr4, ...) would commit a vmcb02 the processor's VMRUN
        // refuses. Those checks are the hardware's here (check_invariants'
        // rule), so every state saved from a running L2 restores.
        const cpu::SvmResult hr = run_vmcb02();
        if (hr.outcome != cpu::SvmOutcome::entered_guest) {
            const checks::Check* c = hr.failed_check;
            return refuse(c != nullptr ? fmt::format("nested state: L2's state fails the processor's VMRUN check {} ({}, APM {})",
                                                     c->id, c->message, c->apm)
                                       : fmt::format("nested state: the processor does not enter L2 ({})", hr.note));
        }
        // A state VMRUN runs but no processor reaches (a warning check, such
        // as EFER.LMA without LME && PG, which KVM_SET_SREGS refuses too),
        // unless vmcb12 itself holds it: L0 let L1's state through, and its
        // own saved state must restore. check_invariants' rule, once.
        if (const checks::Check* c = vmcb02_hardware_failure())
            return refuse(fmt::format("nested state: L2's state is one no processor reaches from this vmcb12 ({}: {})",
                                      c->id, c->message));
        // No write-through here: vmcb02 keeps the registers exactly as the
        // blob gave them (what the processor loaded may differ in forced
        // bits, CR0.ET, canonical bases), so save -> restore -> save is the
        // identity (fuzz_nested's invariant).
    } else {
        live_vmcb02() = arch::Vmcb{};
        use_msrpm02_ = false;
        if (down) mode_ = Mode::shutdown;  // before GIF: a shut-down vCPU's windows stay as saved
        set_gif(gif);
    }
    return {};
}

}  // namespace nsvm::nested
