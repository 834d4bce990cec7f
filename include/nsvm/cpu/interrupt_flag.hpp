// STI and CLI: which flag they write, or #GP(0) (APM Vol.3 "STI", "CLI";
// Vol.2 15.21 for what RFLAGS.IF means to a guest). Neither has an SVM
// intercept, so the processor applies this rule wherever a guest executes them.
#pragma once

#include <cstdint>

#include "nsvm/arch/bits.hpp"

namespace nsvm::cpu {

enum class IfWrite : std::uint8_t {
    interrupt_flag,  ///< RFLAGS.IF
    virtual_flag,    ///< RFLAGS.VIF (CR4.VME in virtual-8086 mode, CR4.PVI at CPL 3)
    general_protection,
};

/// STI (`set`) or CLI at `cpl` with `rflags`, `cr0`, `cr4`: real mode and
/// CPL <= IOPL write IF; virtual-8086 mode with CR4.VME, or protected mode at
/// CPL 3 with CR4.PVI, write VIF instead (STI with VIP set is #GP(0));
/// anything else is #GP(0). Virtual-8086 mode runs at CPL 3.
[[nodiscard]] constexpr IfWrite sti_cli_rule(bool set, std::uint64_t rflags, std::uint64_t cr0, std::uint64_t cr4,
                                            unsigned cpl) noexcept {
    if ((cr0 & arch::cr0::PE) == 0) return IfWrite::interrupt_flag;
    const bool v86 = (rflags & arch::rflags::VM) != 0;
    const unsigned effective_cpl = v86 ? 3U : cpl;
    const auto iopl = static_cast<unsigned>((rflags & arch::rflags::IOPL) >> arch::rflags::kIoplShift);
    if (effective_cpl <= iopl) return IfWrite::interrupt_flag;
    const bool virtual_if = v86 ? (cr4 & arch::cr4::VME) != 0 : (cr4 & arch::cr4::PVI) != 0 && cpl == 3;
    if (!virtual_if) return IfWrite::general_protection;
    if (set && (rflags & arch::rflags::VIP) != 0) return IfWrite::general_protection;
    return IfWrite::virtual_flag;
}

}  // namespace nsvm::cpu
