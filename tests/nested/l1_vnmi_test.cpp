// L1's NMIs as KVM's L0 handles them: with vNMI for L1 (module parameter
// vnmi, on a CPU with vNMI and vGIF) vmcb01 has V_NMI_ENABLE and the
// processor takes L1's NMI from vmcb01's V_NMI_PENDING (APM 15.21.10); with
// vnmi = 0, L0 injects it and blocks NMIs in software with the IRET
// intercept until L1's handler returns (KVM's svm_inject_nmi,
// iret_interception). Across VMRUN and #VMEXIT the pending NMI and L1's
// blocking move as KVM's nested_vmcb02_prepare_control and
// nested_svm_vmexit move them.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
constexpr std::uint64_t kPending = arch::int_ctl::V_NMI_PENDING, kBlocking = arch::int_ctl::V_NMI_BLOCKING,
                        kEnable = arch::int_ctl::V_NMI_ENABLE;
constexpr std::uint32_t kNmiBit = 1U << static_cast<unsigned>(cpu::EventKind::nmi);

std::uint64_t int_ctl01(const Machine& m) { return m.vcpu.vmcb01().get(FieldId::int_ctl); }

struct ModelMachine : test_support::NestedMachine {
    ModelMachine(const checks::CpuModel& model, const nested::L0Config& l0)
        : NestedMachine(checks::ProfileId::kvm, {}, l0, model) {}
};
}  // namespace

TEST(L1Vnmi, Vmcb01HasVNmiEnableExactlyWhenL0UsesVnmi) {
    Machine on;
    ASSERT_TRUE(on.cpu.has(checks::Feature::vnmi));
    EXPECT_TRUE(on.vcpu.l0_uses_vnmi());
    EXPECT_EQ(int_ctl01(on) & kEnable, kEnable);
    EXPECT_EQ(on.vcpu.check_invariants(), nullptr);

    Machine param_off(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    EXPECT_FALSE(param_off.vcpu.l0_uses_vnmi());
    EXPECT_EQ(int_ctl01(param_off) & kEnable, 0U);

    // svm_hardware_setup: vnmi = vgif && vnmi && X86_FEATURE_VNMI.
    auto no_vgif = nested::L0Config::kvm_default();
    no_vgif.vgif = false;
    Machine vgif_off(checks::ProfileId::kvm, {}, no_vgif);
    EXPECT_FALSE(vgif_off.vcpu.l0_uses_vnmi());
    EXPECT_EQ(int_ctl01(vgif_off) & kEnable, 0U);
    EXPECT_EQ(vgif_off.vcpu.check_invariants(), nullptr);

    checks::CpuModel model = checks::default_model();
    model.set(checks::Feature::vnmi, false);
    ModelMachine no_feature(model, nested::L0Config::kvm_default());
    EXPECT_FALSE(no_feature.vcpu.l0_uses_vnmi());
    EXPECT_EQ(no_feature.vcpu.vmcb01().get(FieldId::int_ctl) & kEnable, 0U);
    EXPECT_EQ(no_feature.vcpu.check_invariants(), nullptr);

    // The invariant catches a vmcb01 that disagrees.
    on.vcpu.vmcb01().set(FieldId::int_ctl, int_ctl01(on) & ~kEnable);
    EXPECT_STREQ(on.vcpu.check_invariants(), "vmcb01's V_NMI_ENABLE is not L0's vNMI");
}

TEST(L1Vnmi, TheProcessorTakesL1sNmiFromVmcb01WithoutAnExit) {
    Machine m;
    const auto r = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::interrupt);
    EXPECT_EQ(r.vector, 2);
    EXPECT_EQ(r.owner, nested::Owner::none);
    EXPECT_FALSE(r.l0_exit);
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), kBlocking);
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_TRUE(m.vcpu.nmi_masked());
    // No software mask and no IRET intercept: hardware tracks the blocking.
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::IRET));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1Vnmi, WhileBlockedOneNmiWaitsInVNmiPendingAFurtherOneIsDroppedIretTakesIt) {
    Machine m;
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::interrupt);
    auto r = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::held_pending);
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), kPending | kBlocking);
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    // KVM's process_nmi: with one pending in hardware and NMIs blocked, the
    // limit is reached; hardware latches one NMI while blocked.
    r = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::held_pending);
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // L1's IRET ends the blocking in hardware (no exit); the pending vNMI is
    // taken at once, which blocks NMIs again.
    const std::uint64_t rip = m.vcpu.vmcb01().get(FieldId::rip);
    r = m.vcpu.l1_iret();
    EXPECT_EQ(r.outcome, Outcome::l1_continues);
    EXPECT_FALSE(r.l0_exit);
    EXPECT_STREQ(r.note, "NMIs unblocked: the held NMI was delivered to L1");
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), kBlocking);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::rip), rip);  // L1's stack is not modelled
    // The second IRET leaves nothing blocked and nothing pending.
    r = m.vcpu.l1_iret();
    EXPECT_EQ(r.outcome, Outcome::l1_continues);
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), 0U);
    EXPECT_FALSE(m.vcpu.nmi_masked());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1Vnmi, GifZeroHoldsItInVNmiPendingWithNoStgiWindowAndStgiTakesIt) {
    Machine m;
    (void)m.vcpu.l1_clgi();
    const auto held = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(held.outcome, Outcome::held_pending);
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), kPending);
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::STGI));  // no svm_enable_nmi_window
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    const auto r = m.vcpu.l1_stgi();
    EXPECT_EQ(r.outcome, Outcome::l1_continues);
    EXPECT_FALSE(r.l0_exit);
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), kBlocking);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1Vnmi, AtVmrunThePendingVNmiIsL0sAndTheExitHandsItBack) {
    // CLGI; the NMI waits in vmcb01's V_NMI_PENDING; VMRUN makes it L0's
    // (nmi_pending++), L1 intercepts NMI: #VMEXIT(NMI) right at entry. The
    // exit hands it back to vmcb01 (GIF = 0 again), where L1's STGI lets the
    // processor take it.
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::NMI);
    const auto r = m.vmrun_with_held(cpu::EventKind::nmi, v);
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::NMI);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), kPending);
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::STGI));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    const auto s = m.vcpu.l1_stgi();
    EXPECT_FALSE(s.l0_exit);
    EXPECT_EQ(int_ctl01(m) & (kPending | kBlocking), kBlocking);
}

TEST(L1Vnmi, NotInterceptedByL1TheNmiIsInjectedIntoL2AndMasksInSoftware) {
    // In guest mode vmcb01 is not running (is_vnmi_enabled is false): L0
    // injects L1's NMI into L2 and masks NMIs itself, with the IRET
    // intercept in vmcb01 and, through recalc_intercepts, vmcb02.
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_TRUE(m.vcpu.nmi_masked());
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::IRET));
    EXPECT_TRUE(m.vcpu.vmcb02().intercept(ic::IRET));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // A second one waits for the IRET.
    const auto second = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(second.outcome, Outcome::held_pending);
    EXPECT_STREQ(second.note, "NMIs blocked until the NMI handler's IRET: held pending");
    EXPECT_EQ(m.vcpu.pending_events(), kNmiBit);
}

TEST(L1Vnmi, TheExitGivesL1TheBlockingVmcb02EndsWith) {
    // nested_svm_vmexit: vmcb01's V_NMI_BLOCKING <- vmcb02's. With nested
    // vNMI, vmcb02's is L2's from vmcb12; without, it is clear, so an L1
    // that ran VMRUN from its NMI handler comes back unblocked.
    Machine m;
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::interrupt);  // L1 blocked
    m.enter_l2_intercepting(ic::CPUID);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & (kEnable | kBlocking), 0U);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(int_ctl01(m) & kBlocking, 0U);

    Machine n;
    auto v = valid_vmcb12();
    v.set_intercept(ic::NMI);  // V_NMI_ENABLE needs it (APM 15.21.10)
    v.set(FieldId::int_ctl, kEnable | kBlocking);
    n.enter_l2_intercepting(ic::CPUID, v);
    EXPECT_TRUE(n.vcpu.nested_vnmi());
    EXPECT_EQ(n.vcpu.vmcb02().get(FieldId::int_ctl) & (kEnable | kBlocking), kEnable | kBlocking);
    ASSERT_EQ(n.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(n.vcpu.vmcb01().get(FieldId::int_ctl) & kBlocking, kBlocking);
    EXPECT_EQ(n.vcpu.check_invariants(), nullptr);
}

TEST(L1Vnmi, NestedVnmiIsOfferedOnlyWhenL0UsesIt) {
    // svm_set_cpu_caps offers VNMI to L1 only with vnmi: vmcb12's
    // V_NMI_ENABLE then does not reach vmcb02.
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    auto v = valid_vmcb12();
    v.set_intercept(ic::NMI);
    v.set(FieldId::int_ctl, kEnable | kPending);
    m.enter_l2_intercepting(ic::CPUID, v);
    EXPECT_FALSE(m.vcpu.nested_vnmi());
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & (kEnable | kPending), 0U);
}

TEST(L1NmiMask, WithoutVnmiL0MasksWithTheIretInterceptUntilL1sIret) {
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    auto r = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_TRUE(m.vcpu.nmi_masked());
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::IRET));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    r = m.vcpu.external(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::held_pending);
    EXPECT_EQ(m.vcpu.pending_events(), kNmiBit);
    // The handler's IRET exits to L0 (iret_interception); once it completed
    // the held NMI is injected, which masks NMIs again.
    r = m.vcpu.l1_iret();
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(r.exit_code, ec::IRET);
    EXPECT_TRUE(r.l0_exit);
    EXPECT_STREQ(r.note, "NMIs unblocked: the held NMI was delivered to L1");
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::IRET));
    r = m.vcpu.l1_iret();
    EXPECT_EQ(r.exit_code, ec::IRET);
    EXPECT_FALSE(m.vcpu.nmi_masked());
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::IRET));
    // An IRET outside an NMI handler is L1's own: no exit.
    r = m.vcpu.l1_iret();
    EXPECT_EQ(r.outcome, Outcome::l1_continues);
    EXPECT_FALSE(r.l0_exit);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // The invariant catches an IRET intercept that is not the mask.
    m.vcpu.vmcb01().set_intercept(ic::IRET);
    EXPECT_STREQ(m.vcpu.check_invariants(), "vmcb01's IRET intercept is not L0's NMI mask");
}

TEST(L1NmiMask, TheMaskSurvivesSaveAndRestore) {
    for (const bool vnmi : {false, true}) {
        auto l0 = nested::L0Config::kvm_default();
        l0.vnmi = vnmi;
        Machine m(checks::ProfileId::kvm, {}, l0);
        ASSERT_NE(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);
        ASSERT_TRUE(m.vcpu.nmi_masked());
        const auto blob = m.vcpu.save_state();
        Machine n(checks::ProfileId::kvm, {}, l0);
        ASSERT_TRUE(n.vcpu.restore_state(blob)) << vnmi;
        EXPECT_TRUE(n.vcpu.nmi_masked()) << vnmi;
        EXPECT_EQ(n.vcpu.save_state(), blob) << vnmi;
        EXPECT_EQ(n.vcpu.check_invariants(), nullptr) << vnmi;
    }
}

TEST(L1NmiMask, SmmBlocksNmisUntilRsmUnlessTheyWereBlockedAtEntry) {
    // APM 10.3 (NMIs are latched until RSM); KVM's enter_smm sets the NMI
    // mask, or records HF_SMM_INSIDE_NMI_MASK, and emulator_leave_smm clears
    // it only in the first case. Both L0 configurations.
    for (const bool vnmi : {false, true}) {
        auto l0 = nested::L0Config::kvm_default();
        l0.vnmi = vnmi;
        Machine m(checks::ProfileId::kvm, {}, l0);
        ASSERT_TRUE(m.map_smram());
        ASSERT_EQ(m.vcpu.external(cpu::EventKind::smi).outcome, Outcome::smm_entered) << vnmi;
        EXPECT_TRUE(m.vcpu.nmi_masked()) << vnmi;
        EXPECT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending) << vnmi;
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr) << vnmi;
        // The state survives save/restore in SMM.
        const auto blob = m.vcpu.save_state();
        ASSERT_TRUE(m.vcpu.restore_state(blob)) << vnmi;
        EXPECT_EQ(m.vcpu.save_state(), blob) << vnmi;
        // RSM unblocks and the held NMI is taken at once, which blocks again.
        ASSERT_EQ(m.vcpu.rsm().outcome, Outcome::smm_left) << vnmi;
        EXPECT_EQ(m.vcpu.pending_events(), 0U) << vnmi;
        EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::int_ctl) & kPending, 0U) << vnmi;
        EXPECT_TRUE(m.vcpu.nmi_masked()) << vnmi;  // the NMI's handler now runs
        // An SMI inside that handler: RSM leaves NMIs blocked.
        ASSERT_EQ(m.vcpu.external(cpu::EventKind::smi).outcome, Outcome::smm_entered) << vnmi;
        ASSERT_EQ(m.vcpu.rsm().outcome, Outcome::smm_left) << vnmi;
        EXPECT_TRUE(m.vcpu.nmi_masked()) << vnmi;
        (void)m.vcpu.l1_iret();
        EXPECT_FALSE(m.vcpu.nmi_masked()) << vnmi;
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr) << vnmi;
    }
}
