// What a successful VMRUN builds for L2 (prepare_vmcb02, merge_msrpm,
// commit_guest_mode): which of vmcb12's controls reach vmcb02 and which stay
// L0's (KVM's nested_vmcb02_prepare_control / _prepare_save), and the merged
// MSR permission map (KVM's nested_svm_merge_msrpm; APM 15.11).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

TEST(Vmcb02Prepare, CVE_2021_3653_IntCtlAvicAndVIntrMaskingAreNotL1s) {
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE | arch::int_ctl::X2AVIC_ENABLE | arch::int_ctl::V_IRQ | 0x5);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto i02 = m.vcpu.vmcb02().get(FieldId::int_ctl);
    EXPECT_EQ(i02 & (arch::int_ctl::AVIC_ENABLE | arch::int_ctl::X2AVIC_ENABLE), 0U);
    EXPECT_NE(i02 & arch::int_ctl::V_INTR_MASKING, 0U);  // forced on though L1 left it clear
    EXPECT_NE(i02 & arch::int_ctl::V_IRQ, 0U);
    EXPECT_EQ(i02 & arch::int_ctl::V_TPR, 5U);
}

TEST(Vmcb02Prepare, CVE_2021_3656_VirtualVmloadVmsaveNeedsNestedPaging) {
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::misc_ctl2, arch::misc_ctl2::V_VMSAVE_VMLOAD);  // nested paging off
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::misc_ctl2) & arch::misc_ctl2::V_VMSAVE_VMLOAD, 0U);
    EXPECT_TRUE(m.vcpu.vmcb02().intercept(ic::VMLOAD));
    EXPECT_TRUE(m.vcpu.vmcb02().intercept(ic::VMSAVE));
    // With nested paging on (and the feature offered) it may pass.
    auto w = v;
    w.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    w.set(FieldId::nested_cr3, 0x60000);
    (void)m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun});  // back to L1
    m.put(w);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const bool offered = m.cpu.has(checks::Feature::v_vmsave_vmload);
    EXPECT_EQ((m.vcpu.vmcb02().get(FieldId::misc_ctl2) & arch::misc_ctl2::V_VMSAVE_VMLOAD) != 0, offered);
}

// vmcb02's TLB_CONTROL must be an encoding the CPU has: FLUSH_ASID (3) and
// FLUSH_ASID_LOCAL (7) need FlushByAsid (APM 15.16.1); a
// CPU without it only has DO_NOTHING (0) and FLUSH_ALL (1).
TEST(Vmcb02Prepare, Vmcb02TlbControlIsDefinedOnTheCpu) {
    Machine m;
    m.cpu.set(checks::Feature::flushbyasid, false);
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::tlb_ctl), arch::tlb_ctl::FLUSH_ALL);
    Machine n;
    ASSERT_TRUE(n.cpu.has(checks::Feature::flushbyasid));
    n.put(valid_vmcb12());
    ASSERT_EQ(n.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(n.vcpu.vmcb02().get(FieldId::tlb_ctl), arch::tlb_ctl::FLUSH_ASID);
}

// CET supervisor state is VMRUN state: with SHSTK, vmcb02's S_CET, SSP and
// ISST_ADDR come from vmcb12 (KVM's nested_vmcb02_prepare_save; KVM's
// svm_copy_vmrun_state counts them as VMRUN state; APM 15.5.1 checks S_CET),
// and the #VMEXIT writes them back to vmcb12 (KVM's nested_svm_vmexit).
TEST(Vmcb02Prepare, CetStateIsLoadedIntoVmcb02AndWrittenBack) {
    Machine m;
    ASSERT_TRUE(m.cpu.has(checks::Feature::shstk));
    auto v = valid_vmcb12();
    v.set(FieldId::s_cet, 0x1);  // SH_STK_EN
    v.set(FieldId::ssp, 0x7FF8);
    v.set(FieldId::isst_addr, 0x9000);
    v.set_intercept(ic::CPUID);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::s_cet), 0x1U);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::ssp), 0x7FF8U);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::isst_addr), 0x9000U);
    // L1 scribbles vmcb12's copy while L2 runs: the #VMEXIT rewrites it from vmcb02.
    ASSERT_TRUE(m.mem.write_u64(kVmcb12 + arch::info(FieldId::ssp).offset, 0xDEAD0));
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vmcb12().get(FieldId::ssp), 0x7FF8U);
}

// vmcb02 and its merged MSRPM are double-buffered (vcpu.hpp): the map a
// VMRUN commits must equal a merge computed from nothing, whatever the
// buffers held from earlier entries (other L1 maps, MSR_PROT off, entries
// that failed after the merge).
TEST(MsrpmMerge, MergedMsrpmEqualsAFreshMergeAcrossManyEntries) {
    std::mt19937_64 rng(2026);
    Machine m;
    const auto& l0 = m.vcpu.l0();
    const auto msrpm01 = m.vcpu.msrpm01();
    for (int iter = 0; iter < 400; ++iter) {
        // A random L1 map, dense or sparse.
        std::array<std::uint8_t, cpu::kMsrpmSize> l1{};
        const std::uint64_t density = rng() % 4;
        for (auto& b : l1) b = static_cast<std::uint8_t>(density == 0 ? 0 : density == 3 ? 0xFF : rng());
        ASSERT_TRUE(m.mem.write(kMsrpm, l1));
        auto v = valid_vmcb12();
        v.set(FieldId::msrpm_base_pa, kMsrpm);
        v.set_intercept(ic::HLT);
        const bool prot = rng() % 3 != 0;
        v.set_intercept(ic::MSR_PROT, prot);
        // Sometimes the entry fails after the merge (illegal L2 CR3, found
        // late by KVM): the next entry must not see a half-used buffer.
        const bool fail_late = rng() % 5 == 0;
        if (fail_late) {
            v.set(FieldId::efer, arch::efer::SVME);
            v.set(FieldId::cr0, 0x11);
            v.set(FieldId::cr3, std::uint64_t{1} << 62);
        }
        m.put(v);
        m.vcpu.vmcb01().set(FieldId::rax, kVmcb12);
        const auto r = m.vmrun();
        if (fail_late) {
            ASSERT_EQ(r.outcome, Outcome::vmrun_failed) << "iteration " << iter;
            continue;
        }
        ASSERT_EQ(r.outcome, Outcome::entered_l2) << "iteration " << iter;
        std::array<std::uint8_t, cpu::kMsrpmSize> want{};
        if (prot) {
            want.fill(0xFF);
            for (std::uint8_t i = 0; i < l0.passthrough_count; ++i) {
                const auto bit = cpu::msrpm_bit(l0.passthrough_msrs[i]);
                ASSERT_TRUE(bit.has_value());
                const std::uint32_t byte = *bit / 8, two = 3U << (*bit % 8);
                want[byte] = static_cast<std::uint8_t>((want[byte] & ~two) | ((msrpm01[byte] | l1[byte]) & two));
            }
        } else {
            std::copy(msrpm01.begin(), msrpm01.end(), want.begin());
        }
        const auto got = m.vcpu.vmcb02_msrpm();
        ASSERT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end())) << "iteration " << iter;
        ASSERT_EQ(m.vcpu.check_invariants(), nullptr);
        const cpu::Event vmmcall{.kind = cpu::EventKind::vmmcall};
        (void)m.vcpu.l2_event(vmmcall);  // #UD in L2 (not intercepted by L1)
        const cpu::Event hlt{.kind = cpu::EventKind::hlt};
        ASSERT_EQ(m.vcpu.l2_event(hlt).outcome, Outcome::vmexit_to_l1);
    }
}
