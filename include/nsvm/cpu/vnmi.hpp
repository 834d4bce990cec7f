// The virtual NMI (APM 15.21.10): the one statement of when a VMCB's
// pending virtual NMI is taken and what taking it changes. The processor
// (SvmCpu::poll) applies it to the guest it runs; the nested engine's L0
// applies it to vmcb01 for L1 when L0 uses vNMI for L1 (KVM's `vnmi`),
// since L1 runs on vmcb01 without the processor being modelled there.
#pragma once

#include <cstdint>

#include "nsvm/arch/bits.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/cpu/gif.hpp"

namespace nsvm::cpu {

/// vNMI is in effect for a guest whose VMCB has `int_ctl`: the processor
/// offers it (CPUID Fn8000_000A_EDX[25]) and the VMCB sets V_NMI_ENABLE
/// (int_ctl bit 26). Then V_NMI_PENDING (bit 11) is the guest's pending
/// NMI and V_NMI_BLOCKING (bit 12) its NMI mask.
[[nodiscard]] inline bool vnmi_enabled(const checks::CpuModel& cpu, std::uint64_t int_ctl) noexcept {
    return cpu.has(checks::Feature::vnmi) && (int_ctl & arch::int_ctl::V_NMI_ENABLE) != 0;
}

/// APM 15.21.10: the virtual NMI is taken when it is pending and not
/// blocked, the (virtual) GIF is set and the guest is not in an interrupt
/// shadow.
[[nodiscard]] inline bool vnmi_deliverable(const checks::CpuModel& cpu, std::uint64_t int_ctl, bool shadow) noexcept {
    return vnmi_enabled(cpu, int_ctl) && (int_ctl & arch::int_ctl::V_NMI_PENDING) != 0 &&
           (int_ctl & arch::int_ctl::V_NMI_BLOCKING) == 0 && virtual_gif_open(cpu, int_ctl) && !shadow;
}

/// Taking it moves the NMI from pending to blocking: NMIs stay blocked until
/// the guest's IRET.
[[nodiscard]] constexpr std::uint64_t int_ctl_after_vnmi_taken(std::uint64_t int_ctl) noexcept {
    return (int_ctl & ~arch::int_ctl::V_NMI_PENDING) | arch::int_ctl::V_NMI_BLOCKING;
}

}  // namespace nsvm::cpu
