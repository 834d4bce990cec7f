// The nested state in KVM's own layout: struct kvm_nested_state, format 1
// (KVM_STATE_NESTED_FORMAT_SVM), as KVM_GET_NESTED_STATE returns it and
// KVM_SET_NESTED_STATE takes it (KVM's svm_get_nested_state /
// svm_set_nested_state; the uapi layout in docs/nested.md "Nested state").
//
//   0x000  u16 flags, u16 format (1), u32 size
//   0x008  hdr.svm: u64 vmcb_pa (vmcb12's GPA; the rest of the 120-byte union is 0)
//   0x080  data.svm.vmcb12: one VMCB page, in guest mode only: the control
//          area is L0's cache of vmcb12's controls, the save area is L1's
//          state (vmcb01's), which the #VMEXIT will restore
//
// L2's registers are not in it: KVM takes them from KVM_SET_REGS/SREGS, so
// the restore takes them as `regs` (a VMCB whose save area holds them:
// L2's in guest mode, L1's outside). Everything the layout does not carry
// (VM_HSAVE_PA, VM_CR, TSC_RATIO, SMM, held events) is the vCPU's as it is,
// as KVM keeps those in MSRs and KVM_{GET,SET}_VCPU_EVENTS. The restore
// applies KVM's own refusals first, then the native restore's checks.
#include <algorithm>
#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "nested_state_layout.hpp"

namespace nsvm::nested {
using arch::FieldId;

std::vector<std::uint8_t> Vcpu::save_kvm_nested_state() const {
    using namespace kvm_state;
    const bool guest = mode_ == Mode::l2;
    std::vector<std::uint8_t> b(guest ? kGuestSize : kHeaderSize, 0);
    std::span<std::uint8_t> s(b);
    std::uint32_t flags = 0;
    if (guest) flags |= kGuestMode;
    if (gif()) flags |= kGifSet;  // V_GIF where L0 keeps it, under vGIF
    arch::store_le(s, kFlagsAt, 2, flags);
    arch::store_le(s, kFormatAt, 2, kFormatSvm);
    arch::store_le(s, kSizeAt, 4, b.size());
    if (!guest) return b;
    arch::store_le(s, kVmcbPaAt, 8, vmcb12_gpa_);
    // svm_get_nested_state: the cached controls, then vmcb01's save area.
    std::copy_n(cache_.page().begin(), arch::kSaveAreaOffset, b.begin() + kHeaderSize);
    std::copy(vmcb01_.page().begin() + arch::kSaveAreaOffset, vmcb01_.page().end(),
              b.begin() + kHeaderSize + arch::kSaveAreaOffset);
    return b;
}

const arch::Vmcb& Vcpu::current_registers() const noexcept { return mode_ == Mode::l2 ? vmcb02() : vmcb01_; }

const char* Vcpu::kvm_state_refusal(std::span<const std::uint8_t> blob, const arch::Vmcb& regs,
                                    std::string& detail) const {
    using namespace kvm_state;
    // KVM_SET_NESTED_STATE's refusals (each -EINVAL): the generic ioctl's
    // (size, flags, RUN_PENDING) and svm_set_nested_state's.
    if (blob.size() < kHeaderSize) {
        detail = fmt::format("{} bytes, shorter than the {}-byte header", blob.size(), kHeaderSize);
        return "size";
    }
    const auto flags = static_cast<std::uint32_t>(arch::load_le(blob, kFlagsAt, 2));
    const auto format = static_cast<std::uint32_t>(arch::load_le(blob, kFormatAt, 2));
    const auto size = static_cast<std::uint32_t>(arch::load_le(blob, kSizeAt, 4));
    if (format != kFormatSvm) {
        detail = fmt::format("{} is not KVM_STATE_NESTED_FORMAT_SVM (1)", format);
        return "format";
    }
    if (size < kHeaderSize || size > blob.size()) {
        detail = fmt::format("the header says {} bytes, {} given ({} at least)", size, blob.size(), kHeaderSize);
        return "size";
    }
    if ((flags & ~kKnownFlags) != 0) {
        detail = fmt::format("{:#x} has bits other than GUEST_MODE (0x1), RUN_PENDING (0x2), GIF_SET (0x100)", flags);
        return "flags";
    }
    // KVM reads EFER from the vCPU (vcpu->arch.efer: what KVM_SET_SREGS set).
    if ((regs.get(FieldId::efer) & arch::efer::SVME) == 0 && flags != kGifSet) {
        detail = fmt::format("{:#x} with EFER.SVME = 0: only GIF_SET (0x100) alone is allowed", flags);
        return "flags";
    }
    const bool guest = (flags & kGuestMode) != 0;
    if (guest && smm_) {
        detail = "GUEST_MODE in SMM (SMM temporarily disables SVM)";
        return "flags";
    }
    if ((flags & kRunPending) != 0 && !guest) {  // kvm_arch_vcpu_ioctl: "RUN_PENDING implies guest mode"
        detail = "RUN_PENDING without GUEST_MODE";
        return "flags";
    }
    if (!guest) return nullptr;
    const std::uint64_t pa = arch::load_le(blob, kVmcbPaAt, 8);
    if ((pa & 0xFFF) != 0 || (pa & cpu_->reserved_pa_bits()) != 0) {
        detail = fmt::format("{:#x} is not a page-aligned address below MAXPHYADDR", pa);  // page_address_valid
        return "hdr.svm.vmcb_pa";
    }
    if (size < kGuestSize) {
        detail = fmt::format("{} bytes in guest mode, {} needed (header and the vmcb12 page)", size, kGuestSize);
        return "size";
    }
    return nullptr;
}

nsvm::expected<void, std::string> Vcpu::restore_kvm_nested_state(std::span<const std::uint8_t> blob,
                                                                 const arch::Vmcb& regs) {
    namespace ks = kvm_state;
    namespace nl = state_layout;
    using U = nsvm::unexpected<std::string>;
    std::string detail;
    if (const char* field = kvm_state_refusal(blob, regs, detail))
        return U(fmt::format("kvm_nested_state: {}: {}", field, detail));
    const auto flags = static_cast<std::uint32_t>(arch::load_le(blob, ks::kFlagsAt, 2));
    const bool guest = (flags & ks::kGuestMode) != 0;
    // The native state of this vCPU, with what the KVM layout and the
    // registers say put in; the native restore then checks all of it.
    std::vector<std::uint8_t> n = save_state();
    std::span<std::uint8_t> s(n);
    std::uint32_t nflags = static_cast<std::uint32_t>(arch::load_le(s, nl::kFlagsAt, 4)) & ~(nl::kFlagGuest | nl::kFlagGif);
    if (guest) nflags |= nl::kFlagGuest;
    if ((flags & ks::kGifSet) != 0) nflags |= nl::kFlagGif;
    arch::store_le(s, nl::kFlagsAt, 4, nflags);
    const auto regs_save = std::span<const std::uint8_t>(regs.page()).subspan(arch::kSaveAreaOffset);
    if (!guest) {
        // Outside guest mode the registers are L1's.
        std::copy(regs_save.begin(), regs_save.end(), n.begin() + nl::kVmcb01At + arch::kSaveAreaOffset);
    } else {
        const auto page = blob.subspan(ks::kHeaderSize, arch::kVmcbSize);
        arch::store_le(s, nl::kVmcb12GpaAt, 8, arch::load_le(blob, ks::kVmcbPaAt, 8));
        // L1's state from the blob's save area (svm_copy_vmrun_state into vmcb01).
        std::copy(page.begin() + arch::kSaveAreaOffset, page.end(), n.begin() + nl::kVmcb01At + arch::kSaveAreaOffset);
        // vmcb12's controls; L2's registers stand for its save area (KVM
        // keeps no vmcb12 save-area cache across a restore) and are L2's.
        // Together they fill the whole cache page.
        std::copy_n(page.begin(), arch::kSaveAreaOffset, n.begin() + nl::kCacheAt);
        std::copy(regs_save.begin(), regs_save.end(), n.begin() + nl::kCacheAt + arch::kSaveAreaOffset);
        std::copy(regs_save.begin(), regs_save.end(), n.begin() + nl::kL2SaveAt);
    }
    return restore_state(n);
}

}  // namespace nsvm::nested
