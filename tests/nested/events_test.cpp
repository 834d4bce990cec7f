// Physical INTR, NMI, SMI and INIT around nested SVM: GIF holding them
// (APM 15.17), the IF that masks an INTR while L2 runs (APM 15.21.1; KVM's
// svm_interrupt_blocked), the intercepted ones that exit to L1 and stay
// pending, and what the GIF held being recognized at VMRUN or STGI (KVM's
// svm_check_nested_events).
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

// L0 without vNMI (KVM's vnmi = 0): the NMI is held by L0 (pending_events);
// under vNMI it waits in vmcb01 instead (l1_vnmi_test.cpp).
TEST(Gating, L1IntrWaitsForIfAndGif) {
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    m.vcpu.vmcb01().set(FieldId::rflags, 2);  // IF = 0
    EXPECT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    m.vcpu.vmcb01().set(FieldId::rflags, 2 | arch::rflags::IF);
    EXPECT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::handled_by_l0);
    (void)m.vcpu.l1_clgi();
    EXPECT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);
    EXPECT_NE(m.vcpu.pending_events(), 0U);
    (void)m.vcpu.l1_stgi();
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
}

// STGI delivers the held events L1 can take: an INTR waits for L1's
// RFLAGS.IF (APM 8.2), an NMI does not.
TEST(Gating, StgiDeliversAHeldIntrOnlyWhenL1sIfIsSet) {
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    const auto intr = 1U << static_cast<unsigned>(cpu::EventKind::intr);
    const auto nmi = 1U << static_cast<unsigned>(cpu::EventKind::nmi);
    m.vcpu.vmcb01().set(FieldId::rflags, 0x2);  // IF = 0
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);
    ASSERT_EQ(m.vcpu.pending_events(), intr | nmi);
    (void)m.vcpu.l1_stgi();
    EXPECT_EQ(m.vcpu.pending_events(), intr);  // the NMI was taken, the INTR waits for IF
    (void)m.vcpu.l1_clgi();
    m.vcpu.vmcb01().set(FieldId::rflags, 0x202);  // IF = 1
    (void)m.vcpu.l1_stgi();
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
}

TEST(ExternalEvents, IntrAndNmiStayWithL0UnlessL1Intercepts) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::NMI);
    // L2 must have RFLAGS.IF = 1 for L0 to inject the INTR into it (no
    // V_INTR_MASKING in vmcb12: L2's IF masks it; see
    // ExternalEvents.IntrInL2IsMaskedByTheRightRflagsIf).
    v.set(FieldId::rflags, 0x202);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    auto r = m.vcpu.external(cpu::EventKind::intr);
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
    r = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::NMI);
    // GIF = 0 now: an INTR is held.
    EXPECT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
}

// A physical INTR while L2 runs is recognized only if the IF that masks it
// is set: with vmcb12 V_INTR_MASKING, L1's RFLAGS.IF saved at VMRUN (the
// "host IF"), otherwise L2's RFLAGS.IF (APM 15.21.1, 15.17; KVM's
// svm_interrupt_blocked in guest mode). Masked, it is held
// pending: no #VMEXIT(INTR) to L1, and L0 does not inject it into L2.
TEST(ExternalEvents, IntrInL2IsMaskedByTheRightRflagsIf) {
    {
        Machine m;
        auto v = valid_vmcb12();
        v.set_intercept(ic::INTR);
        v.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING);
        v.set(FieldId::rflags, 0x202);  // L2 IF = 1 does not matter
        m.put(v);
        m.vcpu.vmcb01().set(FieldId::rflags, 0x2);  // L1 ran VMRUN with IF = 0
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const auto r = m.vcpu.external(cpu::EventKind::intr);
        EXPECT_EQ(r.outcome, Outcome::held_pending);
        EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
        EXPECT_NE(m.vcpu.pending_events(), 0U);
    }
    {
        Machine m;
        auto v = valid_vmcb12();
        v.set_intercept(ic::INTR);
        v.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING);
        m.put(v);
        m.vcpu.vmcb01().set(FieldId::rflags, 0x202);  // L1 IF = 1: the INTR exits to L1
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const auto r = m.vcpu.external(cpu::EventKind::intr);
        EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
        EXPECT_EQ(r.exit_code, ec::INTR);
    }
    {
        Machine m;  // no V_INTR_MASKING in vmcb12, L1 does not intercept INTR: L2's IF
        auto v = valid_vmcb12();
        v.set(FieldId::rflags, 0x2);
        m.put(v);
        m.vcpu.vmcb01().set(FieldId::rflags, 0x202);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        EXPECT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    }
}

// A physical NMI/SMI/INIT/INTR that L1 intercepts causes #VMEXIT and stays
// pending (APM 15.17: NMI, external SMI and INIT that are intercepted exit
// and stay pending; KVM's svm_check_nested_events synthesizes the exit
// without consuming nmi_pending/smi_pending). GIF = 0 after the exit holds it
// until L1's STGI, when L1 takes it.
TEST(ExternalEvents, InterceptedExternalEventStaysPendingForL1) {
    Machine m;
    ASSERT_TRUE(m.mem.map(0x38000, 0x8000));
    auto v = valid_vmcb12();
    v.set_intercept(ic::SMI);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.external(cpu::EventKind::smi);
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::SMI);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_NE(m.vcpu.pending_events(), 0U);
    EXPECT_EQ(m.vcpu.l1_stgi().outcome, Outcome::smm_entered);  // L1 takes the SMI itself
}

// Events held while GIF = 0 are pending events of the vCPU (KVM: nmi_pending,
// smi_pending, the LAPIC IRR, a latched INIT). A #VMEXIT, VMEXIT_INVALID
// included, drops only what was being injected into L2 (KVM's
// nested_svm_vmexit clears nmi_injected and the exception and interrupt
// queues) — never what is still pending for L1 (APM 15.17: held pending
// until GIF = 1).
TEST(HeldEvents, EventsHeldByGifSurviveAFailedVmrunAndAreTakenAtStgi) {
    Machine m;
    ASSERT_TRUE(m.mem.map(0x38000, 0x8000));  // SMRAM (SMBASE 0x30000 + 0x8000)
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::smi).outcome, Outcome::held_pending);
    const auto held = m.vcpu.pending_events();
    ASSERT_NE(held, 0U);
    auto v = valid_vmcb12();
    v.set(FieldId::asid, 0);  // consistency check fails
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::vmrun_failed);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.pending_events(), held);  // the SMI is still latched
    EXPECT_EQ(m.vcpu.l1_stgi().outcome, Outcome::smm_entered);
}

TEST(HeldEvents, EventsHeldByGifSurviveAReflectedVmexit) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::CPUID);
    m.put(v);
    (void)m.vcpu.l1_clgi();
    // An INTR held by GIF, still masked once VMRUN sets GIF = 1 (L2's
    // RFLAGS.IF = 0 without V_INTR_MASKING): it stays held through L2.
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    const auto held = m.vcpu.pending_events();
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.pending_events() & held, held);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vcpu.pending_events() & held, held);
}

// APM 15.17: events held while GIF = 0 are recognized as soon as VMRUN sets
// GIF = 1. An INTR L1 intercepts exits to L1 before L2 runs an instruction
// (KVM: svm_check_nested_events right after the nested VMRUN).
TEST(HeldEvents, HeldIntrL1InterceptsExitsToL1AsSoonAsVmrunSetsGif) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::INTR);
    v.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING);  // masked by L1's RFLAGS.IF
    m.put(v);
    m.vcpu.vmcb01().set(FieldId::rflags, 0x202);  // L1's IF = 1
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    const auto r = m.vmrun();
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::INTR);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::INTR);
    EXPECT_EQ(m.vmcb12().get(FieldId::rip), 0x400000U);  // L2 never ran
    EXPECT_EQ(m.vcpu.vmcb12_reads_last_vmrun(), 1U);
    // Intercepted, not consumed: L1 takes it once it sets GIF.
    EXPECT_NE(m.vcpu.pending_events(), 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

// A held NMI L1 does not intercept is L0's to inject into L2: taken at the
// VMRUN, which still enters L2, and no longer pending.
TEST(HeldEvents, HeldNmiL1DoesNotInterceptIsInjectedIntoL2AtVmrun) {
    Machine m;
    const auto r = m.vmrun_with_held(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::entered_l2);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
}

// A held INIT L1 does not intercept resets the vCPU as soon as VMRUN sets
// GIF = 1: the VMRUN step ends out of guest mode, and says so.
TEST(HeldEvents, HeldInitL1DoesNotInterceptEndsTheVmrunOutOfGuestMode) {
    Machine m;
    const auto r = m.vmrun_with_held(cpu::EventKind::init);
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
}

// The processor L1 sees holds an NMI in L2's interrupt shadow, unless L1
// intercepts NMI: then it exits at once (cpu::signal_action, the rule the
// physical processor applies too; KVM's svm_nmi_blocked in guest mode).
TEST(ExternalEvents, NmiInL2sInterruptShadowWaitsUnlessL1InterceptsIt) {
    for (const bool l1_intercepts : {false, true}) {
        Machine m;
        auto v = valid_vmcb12();
        if (l1_intercepts) v.set_intercept(ic::NMI);
        v.set(FieldId::int_state, arch::int_state::INTERRUPT_SHADOW);
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const auto r = m.vcpu.external(cpu::EventKind::nmi);
        if (l1_intercepts) {
            EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
            EXPECT_EQ(r.exit_code, ec::NMI);
        } else {
            EXPECT_EQ(r.outcome, Outcome::held_pending) << r.note;
            EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
            EXPECT_EQ(m.vcpu.pending_events(), 1U << static_cast<unsigned>(cpu::EventKind::nmi));
        }
    }
}

// INIT, like SMI, is not recognized in SMM (APM 10.3.2; KVM's
// kvm_apic_init_sipi_allowed): held until RSM.
TEST(ExternalEvents, InitIsHeldWhileL1IsInSmm) {
    Machine m;
    ASSERT_TRUE(m.mem.map(0x38000, 0x8000));  // SMRAM at the default SMBASE
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::smi).outcome, Outcome::smm_entered);
    const auto r = m.vcpu.external(cpu::EventKind::init);
    EXPECT_EQ(r.outcome, Outcome::held_pending);
    EXPECT_STREQ(r.note, "INIT blocked in SMM");
    EXPECT_EQ(m.vcpu.pending_events(), 1U << static_cast<unsigned>(cpu::EventKind::init));
    // RSM ends SMM, and the INIT is recognized at once.
    const auto left = m.vcpu.rsm();
    EXPECT_EQ(left.outcome, Outcome::smm_left);
    EXPECT_STREQ(left.note, "RSM to L1; events held in SMM delivered to L1");
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
}
