// STI/CLI's privilege rule (APM Vol.3 "STI", "CLI"): each branch at its boundary.
#include <gtest/gtest.h>

#include "nsvm/cpu/interrupt_flag.hpp"

namespace nsvm::cpu {
namespace {
using arch::cr0::PE;
using arch::cr4::PVI;
using arch::cr4::VME;
constexpr std::uint64_t iopl(unsigned n) { return std::uint64_t{n} << arch::rflags::kIoplShift; }

TEST(StiCliRule, RealModeAlwaysWritesIf) {
    EXPECT_EQ(sti_cli_rule(true, 0, 0, 0, 3), IfWrite::interrupt_flag);
    EXPECT_EQ(sti_cli_rule(false, 0, 0, 0, 3), IfWrite::interrupt_flag);
}

TEST(StiCliRule, ProtectedModeCplAgainstIoplBoundary) {
    for (unsigned pl = 0; pl < 4; ++pl) {
        for (unsigned cpl = 0; cpl < 4; ++cpl) {
            const IfWrite want = cpl <= pl ? IfWrite::interrupt_flag : IfWrite::general_protection;
            EXPECT_EQ(sti_cli_rule(true, iopl(pl), PE, 0, cpl), want) << "CPL " << cpl << " IOPL " << pl;
            EXPECT_EQ(sti_cli_rule(false, iopl(pl), PE, 0, cpl), want) << "CPL " << cpl << " IOPL " << pl;
        }
    }
}

TEST(StiCliRule, PviAppliesAtCpl3OnlyAndStiWithVipIsGp) {
    EXPECT_EQ(sti_cli_rule(true, iopl(0), PE, PVI, 3), IfWrite::virtual_flag);
    EXPECT_EQ(sti_cli_rule(false, iopl(0), PE, PVI, 3), IfWrite::virtual_flag);
    EXPECT_EQ(sti_cli_rule(true, iopl(1), PE, PVI, 2), IfWrite::general_protection) << "PVI is for CPL 3 only";
    EXPECT_EQ(sti_cli_rule(true, iopl(0) | arch::rflags::VIP, PE, PVI, 3), IfWrite::general_protection);
    EXPECT_EQ(sti_cli_rule(false, iopl(0) | arch::rflags::VIP, PE, PVI, 3), IfWrite::virtual_flag)
        << "CLI does not look at VIP";
    EXPECT_EQ(sti_cli_rule(true, iopl(3), PE, PVI, 3), IfWrite::interrupt_flag) << "IOPL 3 writes IF";
}

TEST(StiCliRule, Virtual8086ModeRunsAtCpl3WithVme) {
    const std::uint64_t vm = arch::rflags::VM;
    EXPECT_EQ(sti_cli_rule(true, vm | iopl(3), PE, 0, 0), IfWrite::interrupt_flag);
    EXPECT_EQ(sti_cli_rule(true, vm | iopl(2), PE, 0, 0), IfWrite::general_protection)
        << "CPL is 3 in virtual-8086 mode, whatever the VMCB says";
    EXPECT_EQ(sti_cli_rule(true, vm | iopl(2), PE, VME, 0), IfWrite::virtual_flag);
    EXPECT_EQ(sti_cli_rule(true, vm | iopl(2), PE, PVI, 3), IfWrite::general_protection) << "PVI is not VME";
}

}  // namespace
}  // namespace nsvm::cpu
