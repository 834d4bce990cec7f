// L0's own interrupt window for an INTR it holds for L1 (KVM's
// svm_enable_irq_window -> svm_set_vintr, and svm_clear_vintr once the
// INTR is taken): the VINTR intercept in vmcb01 (vmcb02's through
// recalc_intercepts) and a dummy V_IRQ at priority 15, vector 0, in the
// running VMCB; vmcb12's own virtual interrupt is given back to vmcb02 when
// the window closes and is never overwritten by the dummy at #VMEXIT.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
namespace ib = arch::int_ctl;
constexpr std::uint64_t kDummy = ib::V_IRQ | (std::uint64_t{0xF} << 16);
constexpr std::uint64_t kInjection = ib::V_IRQ | ib::V_INTR_PRIO | ib::V_IGN_TPR;
}  // namespace

TEST(L0IrqWindow, UnderVgifAnIntrHeldByGifOpensTheWindowInVmcb01) {
    Machine m;  // zen4: vGIF
    m.vcpu.vmcb01().set(FieldId::rflags, 0x202);
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_ctl) & kInjection, kDummy);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_vector), 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // L1's STGI sets V_GIF in hardware; the INTR is taken and the window closes.
    (void)m.vcpu.l1_stgi();
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_ctl) & kInjection, 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0IrqWindow, WithoutVgifGifZeroOpensNoWindow) {
    // svm_enable_irq_window: GIF = 0 without vGIF is the STGI intercept's business.
    auto l0 = nested::L0Config::kvm_default();
    l0.vgif = false;
    Machine m(checks::ProfileId::kvm, {}, l0);
    m.vcpu.vmcb01().set(FieldId::rflags, 0x202);
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_ctl) & kInjection, 0U);
    // With GIF = 1 and L1's IF = 0 it opens.
    (void)m.vcpu.l1_stgi();
    m.vcpu.vmcb01().set(FieldId::rflags, 0x2);
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_ctl) & kInjection, kDummy);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0IrqWindow, InL2TheDummyTakesVmcb02sVIrqAndTheExitDoesNotSyncIt) {
    // L2's IF masks L1's INTR (no V_INTR_MASKING in vmcb12), L1 does not
    // intercept INTR. vmcb12 has no virtual interrupt of its own: the dummy
    // V_IRQ must not reach vmcb12 at the #VMEXIT (nested_sync_control_from_vmcb02).
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::rflags, 0x2);
    v.set(FieldId::int_vector, 0x55);
    v.set(FieldId::int_ctl, std::uint64_t{5} << 16);  // V_INTR_PRIO 5, no V_IRQ
    m.enter_l2_intercepting(ic::CPUID, v);
    const auto held = m.vcpu.external(cpu::EventKind::intr);
    ASSERT_EQ(held.outcome, Outcome::held_pending);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_TRUE(m.vcpu.vmcb02().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & kInjection, kDummy);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_vector), 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    const auto v12 = m.vmcb12();
    EXPECT_EQ(v12.get(FieldId::int_ctl) & ib::V_IRQ, 0U);
    EXPECT_EQ(v12.get(FieldId::int_ctl) & ib::V_INTR_PRIO, std::uint64_t{5} << 16);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0IrqWindow, ClosingItGivesVmcb02BackVmcb12sVirtualInterrupt) {
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::rflags, 0x2);
    v.set(FieldId::int_vector, 0x55);
    v.set(FieldId::int_ctl, ib::V_IRQ | (std::uint64_t{5} << 16));  // L1's own virtual interrupt
    m.enter_l2_intercepting(ic::CPUID, v);
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & kInjection, kDummy);
    // L2's STI and the next instruction: the INTR L1 does not intercept is
    // injected into L2 and the window closes (svm_clear_vintr): vmcb12's V_IRQ, priority and vector.
    (void)m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::sti, .insn_len = 1});
    EXPECT_EQ(m.vcpu.pending_events(), 1U << static_cast<unsigned>(cpu::EventKind::intr));  // STI's shadow
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & kInjection, kDummy);
    (void)m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::nop, .insn_len = 1});
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_FALSE(m.vcpu.vmcb02().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_ctl) & kInjection, 0U);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_vector), 0x55U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0IrqWindow, UnderVIntrMaskingWithL1sIfClearVmcb02GetsNoWindow) {
    // recalc_intercepts: L1's INTR cannot become deliverable while L2 runs,
    // so vmcb02 neither intercepts VINTR nor gets the dummy; vmcb01 keeps
    // the intercept (svm_set_vintr sets it before recalculating).
    Machine m;
    m.vcpu.vmcb01().set(FieldId::rflags, 0x2);  // L1's IF = 0 at VMRUN
    auto v = valid_vmcb12();
    v.set(FieldId::int_ctl, ib::V_INTR_MASKING);
    m.enter_l2_intercepting(ic::INTR, v);
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_FALSE(m.vcpu.vmcb02().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & ib::V_IRQ, 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0IrqWindow, WithoutVgifGifZeroClosesAnOpenWindow) {
    // svm_set_gif(false) without vGIF: svm_clear_vintr. Here a VMRUN that
    // fails (GIF = 0 after its #VMEXIT) while an INTR waits for L1's IF.
    // Found by fuzz_nested.
    auto l0 = nested::L0Config::kvm_default();
    l0.vgif = false;
    Machine m(checks::ProfileId::kvm, {}, l0);
    m.vcpu.vmcb01().set(FieldId::rflags, 0x2);
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    ASSERT_TRUE(m.vcpu.vmcb01().intercept(ic::VINTR));
    auto v = valid_vmcb12();
    v.set_intercept(ic::VMRUN, false);  // a consistency-check failure
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::vmrun_failed);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_ctl) & kInjection, 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // L1's STGI (L0's exit without vGIF) opens it again: the INTR still waits for IF.
    (void)m.vcpu.l1_stgi();
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::VINTR));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}
