// The virtual GIF (APM 15.33.2): the one place that says when a VMCB's
// V_GIF stands in for the GIF, and what a guest's STGI/CLGI that is not
// intercepted changes. The processor (SvmCpu) applies it to the VMCB it
// runs; the nested engine's L0 applies it to vmcb01 for L1's STGI/CLGI,
// since L1 runs on vmcb01 without the processor being modelled there.
#pragma once

#include <cstdint>

#include "nsvm/arch/bits.hpp"
#include "nsvm/checks/cpu_model.hpp"

namespace nsvm::cpu {

/// vGIF is in effect for a guest whose VMCB has `int_ctl`: the processor
/// offers it (CPUID Fn8000_000A_EDX[16]) and the VMCB sets V_GIF_ENABLE
/// (int_ctl bit 25). Then V_GIF (bit 9) is the guest's GIF.
[[nodiscard]] inline bool vgif_enabled(const checks::CpuModel& cpu, std::uint64_t int_ctl) noexcept {
    return cpu.has(checks::Feature::vgif) && (int_ctl & arch::int_ctl::V_GIF_ENABLE) != 0;
}

/// What a guest's STGI (`set`) or CLGI that its VMCB does not intercept
/// changes (APM 15.33.2): with vGIF in effect, V_GIF in int_ctl (no exit);
/// without, the processor's GIF itself.
struct GuestGifWrite {
    bool virtual_gif = false;    ///< true: `int_ctl` is the VMCB's new int_ctl; false: GIF = `set`
    std::uint64_t int_ctl = 0;
};
[[nodiscard]] inline GuestGifWrite guest_gif_write(const checks::CpuModel& cpu, std::uint64_t int_ctl,
                                                   bool set) noexcept {
    if (!vgif_enabled(cpu, int_ctl)) return GuestGifWrite{false, int_ctl};
    return GuestGifWrite{true, set ? (int_ctl | arch::int_ctl::V_GIF) : (int_ctl & ~arch::int_ctl::V_GIF)};
}

/// The virtual interrupt and virtual NMI are gated by V_GIF under vGIF
/// (APM 15.33.2); without vGIF they are not gated by it.
[[nodiscard]] inline bool virtual_gif_open(const checks::CpuModel& cpu, std::uint64_t int_ctl) noexcept {
    return !vgif_enabled(cpu, int_ctl) || (int_ctl & arch::int_ctl::V_GIF) != 0;
}

}  // namespace nsvm::cpu
