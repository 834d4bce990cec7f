// Nested VMRUN up to the point of no return, in KVM's phases (nested_svm_vmrun):
// the instruction gates, the single read of vmcb12 into the cache
// (copy_vmcb12_to_cache), the consistency checks on the cache, and the one
// failure path every failure goes through (fail_vmrun): VMEXIT_INVALID in
// vmcb12, GIF = 0 (KVM commit "KVM: nSVM: Clear GIF on nested
// #VMEXIT(INVALID)"; APM 15.6), L1 resumed. docs/nested.md "VMRUN" lists the
// phases.
#include <gtest/gtest.h>

#include <string>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
/// A 32-bit PAE guest (legacy paging, no nested paging) whose PDPT is at
/// 0x70000: VMRUN loads its four PDPEs (APM 15.5.1).
arch::Vmcb pae_vmcb12() {
    auto v = valid_vmcb12();
    v.set(FieldId::efer, arch::efer::SVME);
    v.set(FieldId::cr0, 0x80000011);
    v.set(FieldId::cr4, arch::cr4::PAE);
    v.set(FieldId::cr3, 0x70000);
    v.set_segment(arch::Seg::cs, {0x8, 0xC9B, 0xFFFFFFFF, 0});
    return v;
}
}  // namespace

TEST(Vmrun, ValidVmcb12EntersL2WithGif1) {
    Machine m;
    m.vcpu.set_gif(false);
    m.put(valid_vmcb12());
    const auto r = m.vmrun();
    EXPECT_EQ(r.outcome, Outcome::entered_l2);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), 0x400000U);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::rip), 0x1003U);
    EXPECT_EQ(m.vcpu.vmcb12_reads_last_vmrun(), 1U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(Vmrun, GatesBeforeTheVmcbIsRead) {
    Machine m;
    m.put(valid_vmcb12());
    m.vcpu.vmcb01().set(FieldId::rax, kVmcb12 + 8);
    auto r = m.vmrun();
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(m.mem.watched_reads(), 0U);
    m.vcpu.vmcb01().set(FieldId::rax, kVmcb12);
    m.vcpu.vmcb01().set(FieldId::efer, 0x500);  // SVME clear
    r = m.vmrun();
    EXPECT_EQ(r.vector, 6);
}

TEST(Vmcb12Cache, CVE_2021_29657_Vmcb12ReadOnceChangesAfterTheCopyHaveNoEffect) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::CPUID);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb12_reads_last_vmrun(), 1U);
    // L1 (another vCPU) rewrites vmcb12 after the copy: drop CPUID, set an
    // illegal CR0 and AVIC. None of it may reach L0's view.
    auto evil = v;
    evil.set_intercept(ic::CPUID, false);
    evil.set(FieldId::cr0, 0xA0050033);
    evil.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE);
    m.put(evil);
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & arch::int_ctl::AVIC_ENABLE, 0U);
}

TEST(VmrunFailure, ConsistencyFailureClearsGifAndEventInj) {
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::cr0, 0xA0050033);
    v.set(FieldId::event_inj, 0x80000B0E);
    m.put(v);
    const auto before = m.vcpu.vmcb01();
    const auto r = m.vmrun();
    EXPECT_EQ(r.outcome, Outcome::vmrun_failed);
    EXPECT_EQ(r.reason, nested::FailReason::consistency_check);
    ASSERT_NE(r.failed_check, nullptr);
    EXPECT_EQ(r.failed_check->id, "cr0.cd_nw");
    EXPECT_FALSE(m.vcpu.gif());
    const auto after12 = m.vmcb12();
    EXPECT_EQ(after12.get(FieldId::exit_code), ec::INVALID);
    EXPECT_EQ(after12.get(FieldId::exit_info_1), 0U);
    EXPECT_EQ(after12.get(FieldId::exit_info_2), 0U);
    EXPECT_EQ(after12.get(FieldId::event_inj), 0U);
    EXPECT_EQ(after12.get(FieldId::cr0), 0xA0050033U);  // kvm: save area untouched
    auto a = before, b = m.vcpu.vmcb01();
    for (arch::Vmcb* x : {&a, &b}) {
        x->set(FieldId::rip, 0);
        // GIF, checked above: vmcb01's V_GIF under L0's vGIF.
        x->set(FieldId::int_ctl, x->get(FieldId::int_ctl) & ~arch::int_ctl::V_GIF);
    }
    EXPECT_EQ(a, b);  // L1 intact but for RIP past VMRUN and GIF
}

TEST(VmrunFailure, PreFixGifBugOptionLeavesGifSet) {
    Machine m(checks::ProfileId::kvm, nested::Options{.pre_fix_gif_bug = true});
    auto v = valid_vmcb12();
    v.set(FieldId::cr0, 0xA0050033);
    m.put(v);
    EXPECT_EQ(m.vmrun().outcome, Outcome::vmrun_failed);
    EXPECT_TRUE(m.vcpu.gif());
}

TEST(VmrunChecks, XenLongModeVmcb12WithPagingOffNeverYieldsAnUnexpectedExitCode) {
    // xen-devel: L1 ran VMRUN on a long-mode vmcb12 with CR0.PG=0 and Xen hit
    // BUG() on exit 0x402. Here the result is either L2 entry or
    // VMEXIT_INVALID, never an AVIC exit code, for every profile.
    for (auto p : {checks::ProfileId::apm, checks::ProfileId::kvm, checks::ProfileId::xen}) {
        Machine m(p);
        auto v = valid_vmcb12();
        v.set(FieldId::cr0, 0x00050032);  // PG = 0, PE = 0, EFER.LME|LMA set
        m.put(v);
        const auto r = m.vmrun();
        EXPECT_TRUE(r.outcome == Outcome::entered_l2 || r.outcome == Outcome::vmrun_failed);
        if (r.outcome == Outcome::vmrun_failed) {
            EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::INVALID);
        }
        EXPECT_NE(m.vmcb12().get(FieldId::exit_code), ec::AVIC_NOACCEL);
    }
}

// EFER.LMA = 1 without LME && PG: the processor does not check it (the
// efer.lma_without_lme_pg warning), so L1's VMRUN enters L2 with vmcb12's
// EFER (KVM clears LMA in the paging-off case, docs/nested.md "Known gaps");
// vmcb02 then holds L1's state, not an L0 bug. Xen's own
// rule (efer.lma_without_lme) rejects LMA without LME, and only that.
TEST(VmrunChecks, LmaWithoutLmeAndPgEntersL2ExceptUnderXensOwnRule) {
    auto paging_off = valid_vmcb12();  // the xen-devel case: a 64-bit vmcb12 with CR0.PG cleared
    paging_off.set(FieldId::cr0, 0x00050032);
    auto no_lme = valid_vmcb12();
    no_lme.set(FieldId::efer, no_lme.get(FieldId::efer) & ~arch::efer::LME);
    for (auto p : {checks::ProfileId::apm, checks::ProfileId::kvm, checks::ProfileId::xen}) {
        Machine m(p);
        m.put(paging_off);
        EXPECT_EQ(m.vmrun().outcome, Outcome::entered_l2) << checks::profile(p).name;
        EXPECT_NE(m.vcpu.vmcb02().get(FieldId::efer) & arch::efer::LMA, 0U);
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
        // Its saved state restores (found by fuzz_nested: the restore refused
        // what the engine itself had entered).
        const auto blob = m.vcpu.save_state();
        const auto restored = m.vcpu.restore_state(blob);
        EXPECT_TRUE(restored) << (restored ? "" : restored.error());
        EXPECT_EQ(m.vcpu.save_state(), blob);
    }
    Machine xen(checks::ProfileId::xen);
    xen.put(no_lme);
    EXPECT_EQ(xen.vmrun().outcome, Outcome::vmrun_failed);
    EXPECT_EQ(xen.vmcb12().get(FieldId::exit_code), ec::INVALID);
}

TEST(VmrunFailure, UnreadableMsrpmFailsThroughTheSamePathWithoutL2State) {
    Machine m(checks::ProfileId::apm);
    auto v = valid_vmcb12();
    v.set_intercept(ic::MSR_PROT);
    v.set(FieldId::msrpm_base_pa, 0x900000);
    m.put(v);
    const auto r = m.vmrun();
    EXPECT_EQ(r.outcome, Outcome::vmrun_failed);
    EXPECT_EQ(r.reason, nested::FailReason::msrpm_unreadable);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), 0U);  // scratch never committed
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::INVALID);
}

TEST(VmrunFailure, IllegalPdpeWithoutNestedPagingFailsLate) {
    Machine m(checks::ProfileId::apm);
    auto v = pae_vmcb12();
    m.put(v);
    ASSERT_TRUE(m.mem.map(0x70000));
    ASSERT_TRUE(m.mem.write_u64(0x70000, 0x80003));  // RW (bit 1) is reserved in a PAE PDPE
    const auto r = m.vmrun();
    EXPECT_EQ(r.outcome, Outcome::vmrun_failed);
    EXPECT_EQ(r.reason, nested::FailReason::illegal_pdpe);
    EXPECT_FALSE(m.vcpu.gif());
    ASSERT_TRUE(m.mem.write_u64(0x70000, 0x80001));
    m.vcpu.vmcb01().set(FieldId::rip, 0x1000);
    EXPECT_EQ(m.vmrun().outcome, Outcome::entered_l2);
}

// A VMRUN that fails after vmcb02 was prepared leaves the live vmcb02 (the
// last L2's) byte for byte as it was: the prepared one is the other buffer.
TEST(VmrunFailure, LateFailureLeavesTheLiveVmcb02Untouched) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::HLT);
    m.enter_l2_intercepting(ic::HLT, v);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::hlt}).outcome, Outcome::vmexit_to_l1);
    const arch::Vmcb live = m.vcpu.vmcb02();
    v.set(FieldId::efer, arch::efer::SVME);
    v.set(FieldId::cr0, 0x11);
    v.set(FieldId::cr3, std::uint64_t{1} << 62);  // above MAXPHYADDR: KVM finds it in nested_svm_load_cr3
    v.set(FieldId::rip, 0x777000);
    m.put(v);
    const auto r = m.vmrun();
    ASSERT_EQ(r.outcome, Outcome::vmrun_failed);
    EXPECT_EQ(r.reason, nested::FailReason::illegal_l2_cr3);
    EXPECT_EQ(m.vcpu.vmcb02(), live);
    // KVM's late failure writes vmcb12's save area from the prepared vmcb02.
    EXPECT_EQ(m.vmcb12().get(FieldId::rip), 0x777000U);
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::INVALID);
}

// KVM's late VMRUN failure (illegal PDPE / CR3 in nested_svm_load_cr3, or an
// unreadable MSRPM in nested_svm_merge_msrpm) is a full nested_svm_vmexit:
// with NRIPS, vmcb12.next_rip <- vmcb02.next_rip, which
// nested_vmcb02_prepare_control took from vmcb12. So L1 finds its own
// next_rip there, not 0.
TEST(VmrunFailure, KvmLateFailureWritesBackVmcb02NextRip) {
    Machine m;  // kvm, NRIPS offered
    auto v = pae_vmcb12();
    v.set(FieldId::next_rip, 0x400123);
    m.put(v);
    ASSERT_TRUE(m.mem.map(0x70000));
    ASSERT_TRUE(m.mem.write_u64(0x70000, 0x80003));  // reserved RW bit in a present PDPE
    const auto r = m.vmrun();
    ASSERT_EQ(r.outcome, Outcome::vmrun_failed);
    ASSERT_EQ(r.reason, nested::FailReason::illegal_pdpe);
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::INVALID);
    EXPECT_EQ(m.vmcb12().get(FieldId::next_rip), 0x400123U);
}
