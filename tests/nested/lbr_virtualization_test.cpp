// DebugCtl and the LBRs of L2 (APM 15.23, LBR virtualization; KVM's
// nested_vmcb02_prepare_save, nested_svm_vmexit and svm_set_msr): with
// LBR_VIRT in vmcb12 (and the feature offered) L2's LBR state is vmcb12's,
// DebugCtl masked to what L0 virtualizes, and the #VMEXIT writes it back to
// vmcb12; without it L2 runs with L1's (vmcb01's), which the #VMEXIT gives
// back to vmcb01 while vmcb12 keeps its values. vmcb12's clean bits, VMCB_LBR
// (bit 10) included, are never written ("KVM: nSVM: Avoid clearing VMCB_LBR
// in vmcb12"). L2's WRMSR DebugCtl is emulated by L0: a reserved bit is #GP(0)
// in L2, or #VMEXIT(#GP) to L1 when L1 intercepts #GP.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
constexpr std::uint64_t kCleanLbr = std::uint64_t{1} << 10;
constexpr std::uint64_t kBrFrom = 0x401000, kBrTo = 0x402000, kExcpFrom = 0x403000, kExcpTo = 0x404000;

/// valid_vmcb12 with L2's LBR state in the save area, HLT intercepted (L1's
/// way back), LBR virtualization on or off, all clean bits set.
arch::Vmcb lbr_vmcb12(bool lbrv, std::uint64_t dbgctl = arch::debugctl::LBR) {
    auto v = valid_vmcb12();
    v.set_intercept(ic::HLT);
    v.set(FieldId::misc_ctl2, lbrv ? arch::misc_ctl2::LBR_VIRT : 0);
    v.set(FieldId::dbgctl, dbgctl);
    v.set(FieldId::br_from, kBrFrom);
    v.set(FieldId::br_to, kBrTo);
    v.set(FieldId::last_excp_from, kExcpFrom);
    v.set(FieldId::last_excp_to, kExcpTo);
    v.set(FieldId::clean, 0xFFFFFFFF);
    return v;
}

cpu::Event wrmsr_debugctl(std::uint64_t value) {
    return cpu::Event{.kind = cpu::EventKind::wrmsr, .index = arch::msr::DEBUGCTL, .value = value};
}
cpu::Event hlt() { return cpu::Event{.kind = cpu::EventKind::hlt}; }

checks::CpuModel without_lbrv() {
    checks::CpuModel c = checks::default_model();
    c.set(checks::Feature::lbrv, false);
    return c;
}
}  // namespace

TEST(LbrVirtualization, L2sDebugCtlWrittenBackToVmcb12WithLbrv) {
    Machine m;
    m.put(lbr_vmcb12(true, 0));
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_NE(m.vcpu.vmcb02().get(FieldId::misc_ctl2) & arch::misc_ctl2::LBR_VIRT, 0U);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::br_from), kBrFrom);
    // L0 does not pass DebugCtl through: it emulates the write into vmcb02.
    const auto w = m.vcpu.l2_event(wrmsr_debugctl(arch::debugctl::LBR));
    ASSERT_EQ(w.outcome, Outcome::handled_by_l0) << w.note;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::dbgctl), arch::debugctl::LBR);
    ASSERT_EQ(m.vcpu.l2_event(hlt()).outcome, Outcome::vmexit_to_l1);
    const auto v12 = m.vmcb12();
    EXPECT_EQ(v12.get(FieldId::dbgctl), arch::debugctl::LBR);
    EXPECT_EQ(v12.get(FieldId::br_from), kBrFrom);
    EXPECT_EQ(v12.get(FieldId::br_to), kBrTo);
    EXPECT_EQ(v12.get(FieldId::last_excp_from), kExcpFrom);
    EXPECT_EQ(v12.get(FieldId::last_excp_to), kExcpTo);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::dbgctl), 0U) << "L1's DebugCtl is untouched";
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(LbrVirtualization, WithoutLbrvL2RunsWithL1sLbrsAndVmcb01GetsThemBack) {
    Machine m;
    ASSERT_EQ(m.vcpu.l1_wrmsr(arch::msr::DEBUGCTL, arch::debugctl::LBR).outcome, Outcome::l1_continues);
    m.vcpu.vmcb01().set(FieldId::br_from, 0x1111);
    const auto v = lbr_vmcb12(false, 0);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::misc_ctl2) & arch::misc_ctl2::LBR_VIRT, 0U);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::dbgctl), arch::debugctl::LBR) << "L1's, from vmcb01";
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::br_from), 0x1111U);
    ASSERT_EQ(m.vcpu.l2_event(wrmsr_debugctl(0)).outcome, Outcome::handled_by_l0);
    ASSERT_EQ(m.vcpu.l2_event(hlt()).outcome, Outcome::vmexit_to_l1);
    const auto v12 = m.vmcb12();
    for (FieldId f : arch::kLbrVirtFields) EXPECT_EQ(v12.get(f), v.get(f)) << arch::info(f).name;
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::dbgctl), 0U) << "L2's write was to L1's DebugCtl";
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::br_from), 0x1111U);
    std::uint64_t value = ~0ULL;
    ASSERT_EQ(m.vcpu.l1_rdmsr(arch::msr::DEBUGCTL, value).outcome, Outcome::l1_continues);
    EXPECT_EQ(value, 0U);
}

TEST(LbrVirtualization, Vmcb12DebugCtlReservedBitsAreClearedOnEntry) {
    // KVM's nested_vmcb02_prepare_save: vmcb02's DebugCtl keeps only the
    // bits L0 virtualizes (LBR); VMRUN does not fail for the others.
    Machine m;
    const std::uint64_t dbgctl = arch::debugctl::LBR | arch::debugctl::BTF | arch::debugctl::kPins |
                                 (std::uint64_t{1} << 40);
    m.put(lbr_vmcb12(true, dbgctl));
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::dbgctl), arch::debugctl::LBR);
    ASSERT_EQ(m.vcpu.l2_event(hlt()).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vmcb12().get(FieldId::dbgctl), arch::debugctl::LBR) << "the value L2 ran with";
}

TEST(LbrVirtualization, TheVmexitPreservesVmcb12sCleanBitsLbrIncluded) {
    for (const bool lbrv : {false, true}) {
        Machine m;
        m.put(lbr_vmcb12(lbrv));
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        ASSERT_EQ(m.vcpu.l2_event(wrmsr_debugctl(0)).outcome, Outcome::handled_by_l0);
        ASSERT_EQ(m.vcpu.l2_event(hlt()).outcome, Outcome::vmexit_to_l1);
        EXPECT_EQ(m.vmcb12().get(FieldId::clean), 0xFFFFFFFFU) << "lbrv " << lbrv;
        EXPECT_NE(m.vmcb12().get(FieldId::clean) & kCleanLbr, 0U) << "lbrv " << lbrv;
    }
}

TEST(LbrVirtualization, L2WrmsrDebugCtlWithAReservedBitIsGpInL2OrL1sExit) {
    for (const bool l1_intercepts_gp : {false, true}) {
        Machine m;
        auto v = lbr_vmcb12(true, 0);
        if (l1_intercepts_gp) v.set_intercept(ic::exception(13));
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const std::uint64_t rip = m.vcpu.vmcb02().get(FieldId::rip);
        // Bit 2 (PB0, or BusLockTrap): the processor takes it, L0 does not.
        const auto r = m.vcpu.l2_event(wrmsr_debugctl(arch::debugctl::LBR | (1U << 2)));
        EXPECT_TRUE(r.l0_exit);
        if (l1_intercepts_gp) {
            ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
            EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 13);
            EXPECT_EQ(m.vmcb12().get(FieldId::dbgctl), 0U) << "the write did not happen";
            EXPECT_EQ(m.vmcb12().get(FieldId::rip), rip) << "RIP on the WRMSR";
        } else {
            EXPECT_EQ(r.outcome, Outcome::exception) << r.note;
            EXPECT_EQ(r.vector, 13);
            EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::dbgctl), 0U);
            EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip);
        }
    }
}

TEST(LbrVirtualization, L2WrmsrDebugCtlDropsBtf) {
    // KVM's svm_set_msr: BTF is not virtualized and silently dropped.
    Machine m;
    m.put(lbr_vmcb12(true, 0));
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(wrmsr_debugctl(arch::debugctl::LBR | arch::debugctl::BTF));
    ASSERT_EQ(r.outcome, Outcome::handled_by_l0) << r.note;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::dbgctl), arch::debugctl::LBR);
}

TEST(LbrVirtualization, L1InterceptingDebugCtlWritesGetsTheExit) {
    Machine m;
    auto v = lbr_vmcb12(true, 0);
    v.set_intercept(ic::MSR_PROT);
    v.set(FieldId::msrpm_base_pa, kMsrpm);
    // MSRPM: MSR 01D9h in the first range, 2 bits per MSR, the write bit odd.
    const std::uint64_t bit = 2 * arch::msr::DEBUGCTL + 1;
    ASSERT_TRUE(m.mem.write_u64(kMsrpm + (bit / 64) * 8, std::uint64_t{1} << (bit % 64)));
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(wrmsr_debugctl(arch::debugctl::LBR | (1U << 2)));
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
    EXPECT_EQ(r.exit_code, ec::MSR);
    EXPECT_EQ(r.exit_info_1, 1U) << "a write";
}

TEST(LbrVirtualization, WithoutTheFeatureLbrVirtIsIgnored) {
    test_support::NestedMachine m(checks::ProfileId::kvm, {}, nested::L0Config::kvm_default(), without_lbrv());
    ASSERT_TRUE(m.backed);
    ASSERT_TRUE(m.put_vmcb12(lbr_vmcb12(true, 0)));
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::misc_ctl2) & arch::misc_ctl2::LBR_VIRT, 0U);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::br_from), 0U) << "L1's LBRs, not vmcb12's";
    // A host without LBR virtualization ignores DebugCtl writes (KVM: !lbrv).
    const auto w = m.vcpu.l2_event(wrmsr_debugctl(arch::debugctl::LBR | (1U << 2)));
    EXPECT_EQ(w.outcome, Outcome::handled_by_l0) << w.note;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::dbgctl), 0U);
    ASSERT_EQ(m.vcpu.l2_event(hlt()).outcome, Outcome::vmexit_to_l1);
    arch::Vmcb v12;
    ASSERT_TRUE(m.peek_vmcb12(v12));
    EXPECT_EQ(v12.get(FieldId::dbgctl), 0U);
    EXPECT_EQ(v12.get(FieldId::br_from), kBrFrom) << "vmcb12 keeps its values";
}

TEST(LbrVirtualization, L1WrmsrDebugCtlFollowsL0sRule) {
    Machine m;
    EXPECT_EQ(m.vcpu.l1_wrmsr(arch::msr::DEBUGCTL, 1U << 2).vector, 13);
    EXPECT_EQ(m.vcpu.l1_wrmsr(arch::msr::DEBUGCTL, arch::debugctl::LBR | arch::debugctl::BTF).outcome,
              Outcome::l1_continues);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::dbgctl), arch::debugctl::LBR);
}
