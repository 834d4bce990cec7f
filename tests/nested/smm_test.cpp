// SMM with a nested guest: an SMI L1 does not intercept takes L2 into SMM
// and RSM returns into L2 (KVM's svm_enter_smm / svm_leave_smm; APM 15.22;
// the SMRAM save area of APM Vol.2 10.2.3), and every way RSM can find
// state that it must refuse.
#include <gtest/gtest.h>

#include <random>
#include <span>
#include <string_view>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

TEST(Smm, SmiFromL2ThenRsmReturnsToL2) {
    Machine m;
    ASSERT_TRUE(m.mem.map(0x38000, 0x8000));
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    auto r = m.vcpu.external(cpu::EventKind::smi);
    EXPECT_EQ(r.outcome, Outcome::smm_entered);
    std::uint64_t flag = 0, gpa = 0;
    ASSERT_TRUE(m.mem.read_u64(0x30000 + nested::kSmramGuestFlag, flag));
    ASSERT_TRUE(m.mem.read_u64(0x30000 + nested::kSmramVmcb12Gpa, gpa));
    EXPECT_EQ(flag, 1U);
    EXPECT_EQ(gpa, kVmcb12);
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::SW);
    EXPECT_EQ(m.vcpu.l1_vmrun().vector, 6);  // VMRUN in SMM: #UD
    r = m.vcpu.rsm();
    EXPECT_EQ(r.outcome, Outcome::smm_left);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::rip), 0x1003U);  // L1 back from HSAVE+0x400
    // A vmcb12 made invalid in SMM (control area this time) shuts down on RSM.
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::smi).outcome, Outcome::smm_entered);
    ASSERT_TRUE(m.mem.write_u64(kVmcb12 + arch::info(FieldId::asid).offset, 0));
    EXPECT_EQ(m.vcpu.rsm().outcome, Outcome::shutdown);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
}

// Regression, found by fuzz_nested (2026-12-01 campaign, "own blob refused"):
// RSM left the "SMM entered from L2" flag set, so a nested state saved after
// an SMI from L2 and an RSM (into L2, or to L1 when the handler cleared the
// SMRAM guest flag) said SMM-from-L2 outside SMM, and restore_state refused it.
TEST(Smm, StateSavedAfterRsmRestores) {
    for (const bool back_to_l2 : {true, false}) {
        Machine m;
        m.enter_smm_from_l2();
        if (!back_to_l2) {
            ASSERT_TRUE(m.mem.write_u64(0x30000 + nested::kSmramGuestFlag, 0));
        }
        ASSERT_EQ(m.vcpu.rsm().outcome, Outcome::smm_left);
        EXPECT_EQ(m.vcpu.mode(), back_to_l2 ? nested::Mode::l2 : nested::Mode::l1);
        const auto blob = m.vcpu.save_state();
        const auto restored = m.vcpu.restore_state(blob);
        ASSERT_TRUE(restored) << restored.error();
        EXPECT_EQ(m.vcpu.save_state(), blob);
    }
}

// RSM into L2 reloads L1's state from HSAVE+0x400, L1 memory the SMM
// handler can rewrite: a state L1's VMRUN could not have left (paging off
// here) shuts the vCPU down, as RSM's other failures do, instead of
// resuming a guest mode no nested-state restore would accept.
TEST(Smm, RsmWithAnImpossibleL1StateInHsaveShutsDown) {
    Machine m;
    m.enter_smm_from_l2();
    const std::uint64_t cr0_at = kHsave + nested::kHsaveL1State + arch::info(FieldId::cr0).offset - arch::kSaveAreaOffset;
    std::uint64_t cr0 = 0;
    ASSERT_TRUE(m.mem.read_u64(cr0_at, cr0));
    ASSERT_NE(cr0 & arch::cr0::PG, 0U);
    ASSERT_TRUE(m.mem.write_u64(cr0_at, cr0 & ~arch::cr0::PG));
    const auto r = m.vcpu.rsm();
    EXPECT_EQ(r.outcome, Outcome::shutdown);
    EXPECT_NE(std::string_view(r.note).find("HSAVE"), std::string_view::npos) << r.note;
}

// KVM's svm_leave_smm fails RSM when the SMRAM image's EFER.SVME is clear.
// The image is guest memory (EFER at SMBASE+FED0h, APM Vol.2 10.2.3): the
// SMM handler may have changed it, so RSM must look there, not at a copy
// L0 kept in private memory.
TEST(Smm, RsmFromL2ReadsEferSvmeFromSmramMemory) {
    Machine m;
    m.enter_smm_from_l2();
    std::uint64_t efer = 0;
    ASSERT_TRUE(m.mem.read_u64(0x30000 + nested::kSmramEfer, efer));
    ASSERT_NE(efer & arch::efer::SVME, 0U);
    ASSERT_TRUE(m.mem.write_u64(0x30000 + nested::kSmramEfer, efer & ~arch::efer::SVME));
    EXPECT_EQ(m.vcpu.rsm().outcome, Outcome::shutdown);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
}

// RSM into L2 reloads L1's state from HSAVE+0x400, which the SMM handler can
// rewrite at will. Whatever it writes there (here: random values in L1's
// control registers, EFER, RFLAGS, or random bytes anywhere in the area),
// the vCPU after RSM, back in L2 or shut down, saves a state that restores
// and saves again to the same bytes.
TEST(Smm, AnyRsmWithARewrittenHsaveLeavesAStateThatRestores) {
    std::mt19937_64 rng(20261206);
    constexpr FieldId fields[] = {FieldId::efer, FieldId::cr0, FieldId::cr4, FieldId::rflags, FieldId::cr3};
    int shut = 0, resumed = 0;
    for (int iter = 0; iter < 300; ++iter) {
        Machine m;
        m.enter_smm_from_l2();
        const std::uint64_t area = kHsave + nested::kHsaveL1State;
        if (iter % 3 == 0) {
            for (int k = 0; k < 8; ++k) {
                const std::uint64_t at = area + rng() % (arch::kVmcbSize - arch::kSaveAreaOffset);
                std::uint8_t b = static_cast<std::uint8_t>(rng());
                ASSERT_TRUE(m.mem.write(at, std::span<const std::uint8_t>(&b, 1)));
            }
        } else {
            const FieldId f = fields[rng() % std::size(fields)];
            const std::uint64_t at = area + arch::info(f).offset - arch::kSaveAreaOffset;
            std::uint64_t v = 0;
            ASSERT_TRUE(m.mem.read_u64(at, v));
            v = iter % 3 == 1 ? v ^ (std::uint64_t{1} << (rng() % 64)) : rng();
            ASSERT_TRUE(m.mem.write_u64(at, v));
        }
        const auto r = m.vcpu.rsm();
        ASSERT_TRUE(r.outcome == Outcome::smm_left || r.outcome == Outcome::shutdown) << nested::outcome_name(r.outcome);
        (r.outcome == Outcome::shutdown ? shut : resumed)++;
        const auto blob = m.vcpu.save_state();
        const auto restored = m.vcpu.restore_state(blob);
        ASSERT_TRUE(restored) << restored.error() << " at iteration " << iter << " after " << r.note;
        EXPECT_EQ(m.vcpu.save_state(), blob) << "iteration " << iter;
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr) << "iteration " << iter;
    }
    EXPECT_GT(shut, 50);     // both outcomes were exercised
    EXPECT_GT(resumed, 20);
}

// RSM into L2 loads L2's registers from the SMRAM image, which a restored
// nested state brings as it likes: one the processor's VMRUN would refuse
// (DR7 bits 63:32) fails the RSM (shutdown, as KVM's emulator_leave_smm),
// never a running L2 on an illegal vmcb02; the state still saves and restores.
TEST(Smm, RsmWithAnIllegalL2StateInSmramShutsDown) {
    Machine m;
    m.enter_smm_from_l2();
    auto blob = m.vcpu.save_state();
    // The SMRAM image page starts at 0x2C40; DR7's high dword in it.
    blob[0x2C40 + arch::info(FieldId::dr7).offset + 4] = 1;
    const auto restored = m.vcpu.restore_state(blob);
    ASSERT_TRUE(restored) << restored.error();
    const auto r = m.vcpu.rsm();
    EXPECT_EQ(r.outcome, Outcome::shutdown);
    EXPECT_NE(std::string_view(r.note).find("SMRAM"), std::string_view::npos) << r.note;
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    const auto again = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(again));
    EXPECT_EQ(m.vcpu.save_state(), again);
}
