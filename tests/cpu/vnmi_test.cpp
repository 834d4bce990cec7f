// cpu/vnmi.hpp: when a VMCB's virtual NMI is taken (APM 15.21.10), each
// input at the point where it changes the answer, and what taking it does.
#include <gtest/gtest.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/cpu/vnmi.hpp"

using namespace nsvm;
namespace ib = arch::int_ctl;

TEST(VnmiRule, TakenOnlyWhenEnabledPendingUnblockedGifOpenAndNoShadow) {
    const checks::CpuModel& cpu = checks::default_model();
    ASSERT_TRUE(cpu.has(checks::Feature::vnmi) && cpu.has(checks::Feature::vgif));
    const std::uint64_t ready = ib::V_NMI_ENABLE | ib::V_NMI_PENDING;
    EXPECT_TRUE(cpu::vnmi_deliverable(cpu, ready, false));
    EXPECT_FALSE(cpu::vnmi_deliverable(cpu, ready, true));                       // interrupt shadow
    EXPECT_FALSE(cpu::vnmi_deliverable(cpu, ready & ~ib::V_NMI_ENABLE, false));  // not enabled
    EXPECT_FALSE(cpu::vnmi_deliverable(cpu, ready & ~ib::V_NMI_PENDING, false));  // nothing pending
    EXPECT_FALSE(cpu::vnmi_deliverable(cpu, ready | ib::V_NMI_BLOCKING, false));  // blocked until IRET
    // Under vGIF, V_GIF gates it; without V_GIF_ENABLE the virtual GIF does not.
    EXPECT_FALSE(cpu::vnmi_deliverable(cpu, ready | ib::V_GIF_ENABLE, false));
    EXPECT_TRUE(cpu::vnmi_deliverable(cpu, ready | ib::V_GIF_ENABLE | ib::V_GIF, false));
    // A CPU without vNMI ignores V_NMI_ENABLE.
    checks::CpuModel without = cpu;
    without.set(checks::Feature::vnmi, false);
    EXPECT_FALSE(cpu::vnmi_enabled(without, ready));
    EXPECT_FALSE(cpu::vnmi_deliverable(without, ready, false));
}

TEST(VnmiRule, TakingItMovesPendingToBlockingAndKeepsTheRest) {
    const std::uint64_t before = ib::V_NMI_ENABLE | ib::V_NMI_PENDING | ib::V_INTR_MASKING | ib::V_TPR;
    const std::uint64_t after = cpu::int_ctl_after_vnmi_taken(before);
    EXPECT_EQ(after, (before & ~ib::V_NMI_PENDING) | ib::V_NMI_BLOCKING);
    EXPECT_FALSE(cpu::vnmi_deliverable(checks::default_model(), after, false));
}
