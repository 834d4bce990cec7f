// L1's own SVM instructions and MSRs that L0 emulates: VM_CR's LOCK and
// SVMDIS against EFER.SVME (APM 15.30.1), and the rule that L1's
// instructions run only while L1 does.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

// VM_CR (APM 15.30.1): while LOCK = 1 only writes to LOCK
// and SVMDIS are ignored (DPD, R_INIT, DIS_A20M still change); setting
// SVMDIS while EFER.SVME = 1 is #GP; with SVMDIS = 1, EFER.SVME is MBZ.
TEST(L1Instructions, VmCrLockSvmdisAndEferSvmeFollowTheApm) {
    Machine m;
    std::uint64_t val = 0;
    auto r = m.vcpu.l1_wrmsr(arch::msr::VM_CR, arch::vm_cr::SVMDIS);  // SVME = 1
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    (void)m.vcpu.l1_rdmsr(arch::msr::VM_CR, val);
    EXPECT_EQ(val, 0U);
    ASSERT_EQ(m.vcpu.l1_wrmsr(arch::msr::VM_CR, arch::vm_cr::LOCK | arch::vm_cr::DPD).outcome, Outcome::l1_continues);
    ASSERT_EQ(m.vcpu.l1_wrmsr(arch::msr::VM_CR, arch::vm_cr::R_INIT).outcome, Outcome::l1_continues);
    (void)m.vcpu.l1_rdmsr(arch::msr::VM_CR, val);
    EXPECT_EQ(val, arch::vm_cr::LOCK | arch::vm_cr::R_INIT);  // LOCK kept, DPD/R_INIT written
    // Unlocked: SVME off, SVMDIS on, then EFER.SVME = 1 is refused.
    Machine n;
    const std::uint64_t efer = n.vcpu.vmcb01().get(FieldId::efer);
    ASSERT_EQ(n.vcpu.l1_wrmsr(arch::msr::EFER, efer & ~arch::efer::SVME).outcome, Outcome::l1_continues);
    ASSERT_EQ(n.vcpu.l1_wrmsr(arch::msr::VM_CR, arch::vm_cr::SVMDIS).outcome, Outcome::l1_continues);
    r = n.vcpu.l1_wrmsr(arch::msr::EFER, efer);
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(n.vcpu.vmcb01().get(FieldId::efer) & arch::efer::SVME, 0U);
}

// L1 instructions only while L1 runs (the model's contract, l1_instruction_
// gates): VMMCALL, WRMSR and RDMSR by "L1" while L2 runs must not advance
// L1's RIP or change L1's MSRs behind L2's back.
TEST(L1Instructions, L1VmmcallAndMsrAccessOnlyWhileL1Runs) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto l1 = m.vcpu.vmcb01();
    EXPECT_EQ(m.vcpu.l1_vmmcall().outcome, Outcome::exception);
    EXPECT_EQ(m.vcpu.l1_wrmsr(arch::msr::STAR, 0x1234).outcome, Outcome::exception);
    EXPECT_EQ(m.vcpu.l1_wrmsr(arch::msr::EFER, 0xD00).outcome, Outcome::exception);  // would clear SVME
    std::uint64_t val = 0;
    EXPECT_EQ(m.vcpu.l1_rdmsr(arch::msr::STAR, val).outcome, Outcome::exception);
    EXPECT_EQ(m.vcpu.vmcb01(), l1);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
}
