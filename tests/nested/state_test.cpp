// Nested state save and restore (KVM_GET_NESTED_STATE / KVM_SET_NESTED_STATE;
// KVM's svm_set_nested_state): the blob round-trips byte for byte, and a
// restore refuses what a VMRUN could not have left.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

TEST(NestedState, SaveRestoreSaveIsIdenticalAndBadBlobsAreRefused) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto blob = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(blob));
    EXPECT_EQ(m.vcpu.save_state(), blob);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
    auto bad = blob;
    bad[12] |= 4;  // guest mode + SMM
    auto r = m.vcpu.restore_state(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("SMM"), std::string::npos);
    bad = blob;
    // vmcb12 cache: ASID 0 fails the catalogue.
    const std::size_t asid_off = 0x40 + 4096 + arch::info(FieldId::asid).offset;
    bad[asid_off] = 0;
    r = m.vcpu.restore_state(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("asid"), std::string::npos);
    bad = blob;
    bad[0x40 + arch::info(FieldId::cr0).offset + 3] |= 0x20;  // L1 CR0.NW without CD
    bad[0x40 + arch::info(FieldId::cr0).offset + 3] &= static_cast<std::uint8_t>(~0x40);
    EXPECT_FALSE(m.vcpu.restore_state(bad));
    EXPECT_EQ(m.vcpu.save_state(), blob);  // refusals change nothing
}

// KVM's svm_set_nested_state: in guest mode, L1's saved state must be one a
// VMRUN could have left (CR0.PG = PE = 1, RFLAGS.VM = 0), and L2's current
// CR0 must not have NW without CD. Each refused with its reason; the last
// passing value of each is accepted.
TEST(NestedState, RestoreValidatesL1SavedStateAndL2Cr0AsKvmDoes) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto blob = m.vcpu.save_state();
    const std::size_t l1 = 0x40, l2 = 0x40 + 2 * 4096 - arch::kSaveAreaOffset;
    auto with = [&](std::size_t base, FieldId f, std::uint64_t v) {
        auto b = blob;
        arch::store_le(b, base + arch::info(f).offset, arch::info(f).width, v);
        return b;
    };
    const std::uint64_t cr0 = m.vcpu.vmcb01().get(FieldId::cr0);
    ASSERT_EQ(cr0 & (arch::cr0::PG | arch::cr0::PE), arch::cr0::PG | arch::cr0::PE);
    auto r = m.vcpu.restore_state(with(l1, FieldId::cr0, cr0 & ~arch::cr0::PG));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("PG or PE"), std::string::npos) << r.error();
    EXPECT_FALSE(m.vcpu.restore_state(with(l1, FieldId::cr0, cr0 & ~arch::cr0::PE)));
    r = m.vcpu.restore_state(with(l1, FieldId::rflags, 0x20002));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("RFLAGS.VM"), std::string::npos) << r.error();
    EXPECT_TRUE(m.vcpu.restore_state(with(l1, FieldId::rflags, 0x2)));
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0x20000011));  // NW, no CD
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("L2 CR0"), std::string::npos) << r.error();
    // CD and NW is legal (paging kept on: L2 is in long mode, and a long-mode
    // L2 without paging, EFER.LMA still set, is a state KVM_SET_SREGS refuses).
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0xE0000011));
    EXPECT_TRUE(r) << r.error();
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0x60000011));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("efer.lma_without_lme_pg"), std::string::npos) << r.error();
    // The same with EFER.LMA cleared: long mode enabled, not active; consistent.
    auto lme_paging_off = with(l2, FieldId::cr0, 0x60000011);
    const std::size_t efer_at = l2 + arch::info(FieldId::efer).offset;
    arch::store_le(lme_paging_off, efer_at, 8, arch::load_le(blob, efer_at, 8) & ~arch::efer::LMA);
    r = m.vcpu.restore_state(lme_paging_off);
    EXPECT_TRUE(r) << r.error();
    // Outside guest mode L1 may be anywhere (real mode included).
    Machine idle;
    auto l1_only = idle.vcpu.save_state();
    arch::store_le(l1_only, l1 + arch::info(FieldId::cr0).offset, 8, 0x10);
    EXPECT_TRUE(idle.vcpu.restore_state(l1_only));
}

// The invariants hold every committed vmcb02 to the processor's own VMRUN
// checks. A restored nested state commits vmcb02 from L2's registers in the
// blob, past every VMRUN check: one with DR7 bits 63:32 set is refused,
// naming the check, and leaves the vCPU as it was.
TEST(NestedState, RestoreRefusesAnL2StateTheProcessorWouldRefuse) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02_hardware_failure(), nullptr);
    const auto blob = m.vcpu.save_state();
    auto bad = blob;
    // The L2 save area starts at 0x2040; DR7's high dword.
    const std::size_t dr7_hi = 0x2040 + arch::info(FieldId::dr7).offset - arch::kSaveAreaOffset + 4;
    bad[dr7_hi] = 1;
    const auto r = m.vcpu.restore_state(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("dr7.upper"), std::string::npos) << r.error();
    EXPECT_EQ(m.vcpu.save_state(), blob);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

// Nested vGIF: L2's CLGI clears V_GIF in vmcb02. KVM syncs it into the
// cached vmcb12 controls after every exit from L2 (KVM's
// nested_sync_control_from_vmcb02), which is what KVM_GET_NESTED_STATE saves; so a
// save/restore keeps L2's virtual GIF, and the later #VMEXIT reports it in
// vmcb12.int_ctl.
TEST(NestedState, SaveRestoreKeepsL2VirtualGif) {
    Machine m;
    ASSERT_TRUE(m.cpu.has(checks::Feature::vgif));
    auto v = valid_vmcb12();
    v.set(FieldId::int_ctl, arch::int_ctl::V_GIF_ENABLE | arch::int_ctl::V_GIF);
    v.set_intercept(ic::CPUID);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_NE(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clgi, .insn_len = 3}).outcome,
              Outcome::vmexit_to_l1);
    ASSERT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & arch::int_ctl::V_GIF, 0U);
    const auto before = m.vcpu.vmcb02();
    const auto blob = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(blob));
    EXPECT_EQ(m.vcpu.save_state(), blob);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl), before.get(FieldId::int_ctl));
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vmcb12().get(FieldId::int_ctl) & arch::int_ctl::V_GIF, 0U);
}

// Shutdown is final (no reset is modelled, and KVM keeps no shut-down state
// to resume: the VMM is told KVM_EXIT_SHUTDOWN and resets). Every step on a
// shut-down vCPU changes nothing and reports shutdown; the state, shutdown
// included, survives save -> restore -> save byte for byte.
TEST(Shutdown, EveryStepOnAShutDownVcpuIsANoOpReportingShutdown) {
    Machine m;
    m.enter_smm_from_l2();
    ASSERT_TRUE(m.mem.write_u64(kVmcb12 + arch::info(FieldId::asid).offset, 0));  // RSM fails: shutdown
    ASSERT_EQ(m.vcpu.rsm().outcome, Outcome::shutdown);
    ASSERT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
    const auto blob = m.vcpu.save_state();
    std::uint64_t msr = 0;
    const nested::StepResult results[] = {
        m.vmrun(), m.vcpu.l1_vmload(), m.vcpu.l1_vmsave(), m.vcpu.l1_stgi(), m.vcpu.l1_clgi(),
        m.vcpu.l1_invlpga(), m.vcpu.l1_vmmcall(), m.vcpu.l1_skinit(), m.vcpu.l1_wrmsr(arch::msr::STAR, 1),
        m.vcpu.l1_rdmsr(arch::msr::STAR, msr), m.vcpu.rsm(),
        m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}),
        m.vcpu.external(cpu::EventKind::smi), m.vcpu.external(cpu::EventKind::init)};
    for (const auto& r : results) {
        EXPECT_EQ(r.outcome, Outcome::shutdown) << r.note;
        EXPECT_NE(std::string_view(r.note).find("shut down"), std::string_view::npos) << r.note;
    }
    EXPECT_EQ(m.vcpu.save_state(), blob);  // nothing changed
    const auto restored = m.vcpu.restore_state(blob);
    ASSERT_TRUE(restored) << restored.error();
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
    EXPECT_EQ(m.vcpu.save_state(), blob);
    auto bad = blob;
    bad[12] |= 1;  // shut down and in guest mode
    EXPECT_FALSE(m.vcpu.restore_state(bad));
}
