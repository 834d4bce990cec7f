// MOV to a control or debug register: which values raise #GP(0), and what
// else changes with CR0 (APM Vol.2 3.1, 13.1.1, 14.6). The processor and L0,
// when it emulates such a write for a guest (KVM's kvm_set_cr0/cr4/cr3 and
// kvm_set_dr), apply these rules; there is no second copy.
#pragma once

#include <cstdint>

#include "nsvm/checks/cpu_model.hpp"

namespace nsvm::cpu {

/// The state a MOV to CRn is judged against.
struct ControlState {
    std::uint64_t efer = 0;
    std::uint64_t cr0 = 0;
    std::uint64_t cr4 = 0;
    bool cs_l = false;  ///< CS.L: 64-bit code (with EFER.LMA)
};

/// #GP(0) for MOV to CR0, CR3, CR4 or CR8 with `value`: a static reason, or nullptr.
[[nodiscard]] const char* mov_to_cr_fault(const checks::CpuModel& cpu, unsigned cr, std::uint64_t value,
                                          const ControlState& s) noexcept;
/// DR6.BS (APM 13.1.1.3): the #DB was a single-step trap. The processor
/// sets it for the instructions it completes, L0 for the ones it emulates.
inline constexpr std::uint64_t kDr6SingleStep = std::uint64_t{1} << 14;
/// DR6 after a single-step #DB: BS set, and the breakpoint-condition bits
/// B0-B3 cleared, since no breakpoint matched ("certain debug exceptions may
/// clear bits 0-3", Intel SDM 17.2.3; KVM's kvm_deliver_exception_payload
/// clears them for every #DB it delivers; QEMU 7.2 and Bochs 2.7 clear them
/// on single step, found by nsvm diff with save.dr6 = 0xFFFFFFFF).
[[nodiscard]] constexpr std::uint64_t dr6_after_single_step(std::uint64_t dr6) noexcept {
    return (dr6 & ~std::uint64_t{0xF}) | kDr6SingleStep;
}
/// #GP(0) for MOV to DR6 or DR7 with any of bits 63:32 set (APM 13.1.1.3, 13.1.1.4).
[[nodiscard]] const char* mov_to_dr_fault(unsigned dr, std::uint64_t value) noexcept;
/// The CR0 a legal MOV to CR0 leaves: CR0.ET is read-only 1 on AMD64
/// processors (APM 3.1.1; KVM's kvm_set_cr0 sets it too, and VMRUN forces it
/// when it loads CR0).
[[nodiscard]] std::uint64_t cr0_as_written(std::uint64_t value) noexcept;
/// The CR3 a legal MOV to CR3 leaves: with CR4.PCIDE, bit 63 asks the
/// processor not to flush the PCID's TLB entries and is not stored (APM
/// 3.1.2; KVM's kvm_set_cr3 drops X86_CR3_PCID_NOFLUSH); without PCIDE it is
/// an address bit beyond MAXPHYADDR (#GP).
[[nodiscard]] std::uint64_t cr3_as_written(std::uint64_t value, std::uint64_t cr4) noexcept;
/// EFER after CR0 becomes `cr0`: with EFER.LME, CR0.PG turns long mode on or
/// off and the processor sets or clears EFER.LMA with it (APM 14.6.1).
[[nodiscard]] std::uint64_t efer_after_cr0_write(std::uint64_t efer, std::uint64_t cr0) noexcept;

}  // namespace nsvm::cpu
