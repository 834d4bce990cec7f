// The nested layer: VMRUN phases and the single failure path, #VMEXIT,
// routing, SMM, save/restore, the security regressions and a property test.
#include <gtest/gtest.h>

#include <random>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "support/valid_vmcb.hpp"

using namespace nsvm;
using arch::FieldId;
using nested::Outcome;
namespace ic = arch::intercept;
namespace ec = arch::exit_code;

namespace {
constexpr std::uint64_t kVmcb12 = 0x20000, kHsave = 0x50000, kMsrpm = 0x14000, kIopm = 0x10000;

arch::Vmcb valid_vmcb12() {
    // The shared valid guest without its VMMCALL intercept, as this file's
    // vmcb12 always was: L1 does not see L2's VMMCALL, which is then #UD in
    // L2 (L0 never serves L2's hypercalls; KVM's recalc_intercepts).
    auto v = test_support::valid_vmcb64();
    v.set_intercept(ic::VMMCALL, false);
    return v;
}

struct Machine {
    checks::CpuModel cpu = checks::default_model();
    cpu::GuestMemory mem{cpu.maxphyaddr};
    nested::Vcpu vcpu;
    explicit Machine(checks::ProfileId p = checks::ProfileId::kvm, nested::Options o = {},
                     nested::L0Config l0 = nested::L0Config::kvm_default())
        : vcpu(cpu, checks::profile(p), mem, l0, o) {
        EXPECT_TRUE(mem.map(kVmcb12));
        EXPECT_TRUE(mem.map(kHsave));
        EXPECT_TRUE(mem.map(kMsrpm, cpu::kMsrpmSize));
        EXPECT_TRUE(mem.map(kIopm, cpu::kIopmSize));
        vcpu.set_vm_hsave_pa(kHsave);
        vcpu.vmcb01().set(FieldId::rax, kVmcb12);
        vcpu.vmcb01().set(FieldId::rip, 0x1000);
    }
    void put(const arch::Vmcb& v) { ASSERT_TRUE(mem.write_vmcb(kVmcb12, v)); }
    arch::Vmcb vmcb12() {
        arch::Vmcb v;
        EXPECT_TRUE(mem.peek_vmcb(kVmcb12, v));
        return v;
    }
    nested::StepResult vmrun() {
        mem.watch(kVmcb12);
        return vcpu.l1_vmrun();
    }
    /// L1 does CLGI, `k` arrives and is held, then L1 runs VMRUN on `v`.
    nested::StepResult vmrun_with_held(cpu::EventKind k, const arch::Vmcb& v = valid_vmcb12()) {
        put(v);
        (void)vcpu.l1_clgi();
        EXPECT_EQ(vcpu.external(k).outcome, Outcome::held_pending);
        return vmrun();
    }
    /// L2 runs on valid_vmcb12 and an SMI L1 does not intercept takes the
    /// vCPU into SMM (SMRAM at the default SMBASE, 0x30000).
    void enter_smm_from_l2() {
        ASSERT_TRUE(mem.map(0x38000, 0x8000));
        put(valid_vmcb12());
        ASSERT_EQ(vmrun().outcome, Outcome::entered_l2);
        ASSERT_EQ(vcpu.external(cpu::EventKind::smi).outcome, Outcome::smm_entered);
    }
    /// L1 runs `v` (valid_vmcb12 plus the intercept `bit`), L2 then runs.
    void enter_l2_intercepting(unsigned bit, arch::Vmcb v = valid_vmcb12()) {
        v.set_intercept(bit);
        put(v);
        ASSERT_EQ(vmrun().outcome, Outcome::entered_l2);
    }
};
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

TEST(Vmrun, ConsistencyFailureClearsGifAndEventInj) {
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
    a.set(FieldId::rip, 0);
    b.set(FieldId::rip, 0);
    EXPECT_EQ(a, b);  // L1 intact but for RIP past VMRUN
}

TEST(Vmrun, PreFixGifBugOptionLeavesGifSet) {
    Machine m(checks::ProfileId::kvm, nested::Options{.pre_fix_gif_bug = true});
    auto v = valid_vmcb12();
    v.set(FieldId::cr0, 0xA0050033);
    m.put(v);
    EXPECT_EQ(m.vmrun().outcome, Outcome::vmrun_failed);
    EXPECT_TRUE(m.vcpu.gif());
}

TEST(Vmrun, UnreadableMsrpmFailsThroughTheSamePathWithoutL2State) {
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

TEST(Vmrun, IllegalPdpeWithoutNestedPagingFailsLate) {
    Machine m(checks::ProfileId::apm);
    auto v = valid_vmcb12();
    v.set(FieldId::efer, arch::efer::SVME);
    v.set(FieldId::cr0, 0x80000011);
    v.set(FieldId::cr4, arch::cr4::PAE);
    v.set(FieldId::cr3, 0x70000);
    v.set_segment(arch::Seg::cs, {0x8, 0xC9B, 0xFFFFFFFF, 0});
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

TEST(Vmexit, ReflectedExitWritesVmcb12AndClearsGif) {
    Machine m;
    m.enter_l2_intercepting(ic::CPUID);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid, .insn_len = 2});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::CPUID);
    EXPECT_FALSE(m.vcpu.gif());
    const auto w = m.vmcb12();
    EXPECT_EQ(w.get(FieldId::exit_code), ec::CPUID);
    EXPECT_EQ(w.get(FieldId::next_rip), 0x400002U);
    EXPECT_EQ(w.get(FieldId::rip), 0x400000U);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::dr7), 0x400U);
}

TEST(Vmexit, SingleStepDbForL1WhenRflagsTf) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::HLT);
    m.put(v);
    m.vcpu.vmcb01().set(FieldId::rflags, 2 | arch::rflags::TF);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    (void)m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::hlt});
    EXPECT_TRUE(m.vcpu.pending_db_for_l1());
}

TEST(Routing, IntrAndNmiStayWithL0UnlessL1Intercepts) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::NMI);
    // Review: L2 must have RFLAGS.IF = 1 for L0 to inject the INTR into it
    // (no V_INTR_MASKING in vmcb12: L2's IF masks it; see Review.IntrInL2...).
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

TEST(Routing, L2VmrunIsReflectedToL1) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::VMRUN);
}

TEST(Routing, ClearingSvmeWhileL2RunsForcesExitWithGif1) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    (void)m.vcpu.host_set_efer(0xD00);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_TRUE(m.vcpu.gif());
}

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
    // L2 without paging is a state the processor's VMRUN refuses).
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0xE0000011));
    EXPECT_TRUE(r) << r.error();
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0x60000011));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("processor's VMRUN check"), std::string::npos) << r.error();
    // Outside guest mode L1 may be anywhere (real mode included).
    Machine idle;
    auto l1_only = idle.vcpu.save_state();
    arch::store_le(l1_only, l1 + arch::info(FieldId::cr0).offset, 8, 0x10);
    EXPECT_TRUE(idle.vcpu.restore_state(l1_only));
}

// --- Security regressions ---

TEST(Security, CVE_2021_29657_Vmcb12ReadOnceChangesAfterTheCopyHaveNoEffect) {
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

TEST(Security, CVE_2021_3653_IntCtlAvicAndVIntrMaskingAreNotL1s) {
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

TEST(Security, CVE_2021_3656_VirtualVmloadVmsaveNeedsNestedPaging) {
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

// L2's VMLOAD/VMSAVE that L1 does not intercept: L0's own intercept catches
// them and emulates them as KVM's vmload_vmsave_interception does, on rAX as
// an L1 physical address; the VMLOAD state is L1's and L2's alike (vmcb01).
TEST(L2VmloadVmsave, NotInterceptedByL1L0EmulatesOnL1PhysicalRax) {
    Machine m;
    constexpr std::uint64_t kSrc = 0x70000, kDst = 0x71000;
    ASSERT_TRUE(m.mem.map(kSrc) && m.mem.map(kDst));
    arch::Vmcb src;
    src.set_segment(arch::Seg::fs, {0x33, 0x93, 0xFFFF, 0x7F0000001000});
    src.set(FieldId::kernel_gs_base, 0xFFFF800000002000);
    ASSERT_TRUE(m.mem.write_vmcb(kSrc, src));
    auto v = valid_vmcb12();
    v.set(FieldId::rax, kSrc);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_TRUE(m.vcpu.vmcb02().intercept(ic::VMLOAD));  // L0's
    const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
    auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmload, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(r.exit_code, ec::VMLOAD);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip + 3);
    EXPECT_EQ(m.vcpu.vmcb01().segment(arch::Seg::fs).base, 0x7F0000001000U);
    EXPECT_EQ(m.vcpu.vmcb02().segment(arch::Seg::fs).base, 0x7F0000001000U);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::kernel_gs_base), 0xFFFF800000002000U);
    // VMSAVE writes that state where L2's rAX points, and nothing else.
    ASSERT_TRUE(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun}).outcome == Outcome::vmexit_to_l1);
    v.set(FieldId::rax, kDst);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmsave, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    arch::Vmcb saved;
    ASSERT_TRUE(m.mem.peek_vmcb(kDst, saved));
    EXPECT_EQ(saved.segment(arch::Seg::fs), src.segment(arch::Seg::fs));
    EXPECT_EQ(saved.get(FieldId::kernel_gs_base), 0xFFFF800000002000U);
    EXPECT_EQ(saved.get(FieldId::cr0), 0U);  // VMRUN state is not VMSAVE's
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L2VmloadVmsave, L2sGatesAndUnbackedMemoryFaultInL2) {
    Machine m;
    auto v = valid_vmcb12();
    const auto enter = [&](std::uint64_t rax, std::uint64_t cpl) {
        auto w = v;
        w.set(FieldId::rax, rax);
        w.set(FieldId::cpl, cpl);
        m.put(w);
        m.vcpu.vmcb01().set(FieldId::rax, kVmcb12);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    };
    const cpu::Event vmload{.kind = cpu::EventKind::vmload, .insn_len = 3};
    const cpu::Event back{.kind = cpu::EventKind::vmrun};
    enter(0x70000, 3);
    auto r = m.vcpu.l2_event(vmload);
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);  // CPL 3
    ASSERT_EQ(m.vcpu.l2_event(back).outcome, Outcome::vmexit_to_l1);
    enter(0x70008, 0);
    EXPECT_EQ(m.vcpu.l2_event(vmload).vector, 13);  // not 4 KiB aligned
    ASSERT_EQ(m.vcpu.l2_event(back).outcome, Outcome::vmexit_to_l1);
    enter(0x900000, 0);
    r = m.vcpu.l2_event(vmload);  // aligned, legal, but L0 backs nothing there
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    ASSERT_EQ(m.vcpu.l2_event(back).outcome, Outcome::vmexit_to_l1);
    // L2 turns paging off (L0 emulates the CR0 write; from compatibility
    // mode, as leaving long mode requires): VMLOAD is #UD in L2.
    auto cs = v.segment(arch::Seg::cs);
    cs.attrib = static_cast<std::uint16_t>((cs.attrib & ~arch::seg_attr::L) | arch::seg_attr::DB);
    v.set_segment(arch::Seg::cs, cs);
    enter(0x70000, 0);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = 0, .value = 0x11}).outcome,
              Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.l2_event(vmload).vector, 6);
    ASSERT_EQ(m.vcpu.l2_event(back).outcome, Outcome::vmexit_to_l1);
    // L1 intercepting VMLOAD gets the exit instead.
    v.set_intercept(ic::VMLOAD);
    enter(0x70000, 0);
    r = m.vcpu.l2_event(vmload);
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::VMLOAD);
}

// Virtual VMLOAD/VMSAVE (L1's nested paging on, the feature offered and
// enabled): vmcb02 does not intercept; rAX is an L2 address translated
// through L1's nested page tables, and a fault there is L1's #NPF.
TEST(L2VmloadVmsave, VirtualVmloadTranslatesRaxThroughL1sNestedPageTables) {
    // L0 uses virtual VMLOAD/VMSAVE for L1 itself (KVM's vls=1): vmcb01 does
    // not intercept them, so vmcb02 need not either.
    auto l0 = nested::L0Config::kvm_default();
    l0.intercept_words[ic::VMLOAD / 32] &= ~((1U << (ic::VMLOAD % 32)) | (1U << (ic::VMSAVE % 32)));
    Machine m(checks::ProfileId::kvm, {}, l0);
    ASSERT_TRUE(m.cpu.has(checks::Feature::v_vmsave_vmload));
    constexpr std::uint64_t ncr3 = 0x60000, l2_gpa = 0x5000, l1_pa = 0x70000;
    ASSERT_TRUE(m.mem.map(ncr3, 0x4000) && m.mem.map(l1_pa));
    ASSERT_TRUE(m.mem.write_u64(ncr3, 0x61007) && m.mem.write_u64(0x61000, 0x62007) &&
                m.mem.write_u64(0x62000, 0x63007) && m.mem.write_u64(0x63000 + 8 * (l2_gpa >> 12), l1_pa | 7));
    arch::Vmcb src;
    src.set(FieldId::star, 0x0023001000000000);
    ASSERT_TRUE(m.mem.write_vmcb(l1_pa, src));
    auto v = valid_vmcb12();
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    v.set(FieldId::nested_cr3, ncr3);
    v.set(FieldId::misc_ctl2, arch::misc_ctl2::V_VMSAVE_VMLOAD);
    v.set(FieldId::rax, l2_gpa);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_FALSE(m.vcpu.vmcb02().intercept(ic::VMLOAD));
    auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmload, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::no_exit);
    EXPECT_FALSE(r.l0_exit);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::star), 0x0023001000000000U);
    // An L2 address L1's tables do not map: #NPF to L1.
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun}).outcome, Outcome::vmexit_to_l1);
    v.set(FieldId::rax, 0x6000);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmload, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::NPF);
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_info_2), 0x6000U);
}

TEST(Security, XenLongModeVmcb12WithPagingOffNeverYieldsAnUnexpectedExitCode) {
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

// The apm profile rejects EFER.LMA = 1 without LME && PG
// (checks: efer.lma_without_lme_pg, profile knob efer_lma_checked).
TEST(Security, XenLongModeVmcb12WithPagingOffIsVmexitInvalid) {
    Machine m(checks::ProfileId::apm);
    auto v = valid_vmcb12();
    v.set(FieldId::cr0, 0x00050032);
    m.put(v);
    EXPECT_EQ(m.vmrun().outcome, Outcome::vmrun_failed);
}

// --- Property: random vmcb12s and event sequences keep the invariants ---

TEST(Property, InvariantsHoldOnRandomVmcb12sAndEvents) {
    std::mt19937_64 rng(12345);
    for (int iter = 0; iter < 1500; ++iter) {
        Machine m(static_cast<checks::ProfileId>(iter % 5));
        auto v = valid_vmcb12();
        // Flip a few random bits of interesting fields.
        constexpr FieldId fields[] = {FieldId::cr0, FieldId::cr4, FieldId::efer, FieldId::int_ctl, FieldId::misc_ctl,
                                      FieldId::misc_ctl2, FieldId::event_inj, FieldId::asid, FieldId::cr3,
                                      FieldId::intercepts3, FieldId::intercepts4, FieldId::dr6};
        for (int k = 0; k < 3; ++k) {
            const FieldId f = fields[rng() % std::size(fields)];
            v.set(f, v.get(f) ^ (std::uint64_t{1} << (rng() % 64)));
        }
        m.put(v);
        for (int step = 0; step < 12; ++step) {
            const auto mode = m.vcpu.mode();
            if (mode == nested::Mode::shutdown) break;
            nested::StepResult r;
            if (mode == nested::Mode::l1) {
                m.vcpu.vmcb01().set(FieldId::rax, kVmcb12);
                r = m.vmrun();
                if (r.outcome != Outcome::exception) {
                    ASSERT_EQ(m.vcpu.vmcb12_reads_last_vmrun(), 1U);
                }
            } else {
                cpu::Event e;
                constexpr cpu::EventKind kinds[] = {cpu::EventKind::cpuid, cpu::EventKind::rdmsr, cpu::EventKind::wrmsr,
                                                    cpu::EventKind::io, cpu::EventKind::hlt, cpu::EventKind::vmmcall,
                                                    cpu::EventKind::cr_write, cpu::EventKind::exception,
                                                    cpu::EventKind::intr, cpu::EventKind::nmi, cpu::EventKind::vmrun,
                                                    cpu::EventKind::stgi, cpu::EventKind::pause};
                e.kind = kinds[rng() % std::size(kinds)];
                e.index = static_cast<std::uint32_t>(rng() % 0x100);
                e.value = rng();
                r = m.vcpu.l2_event(e);
            }
            if (r.outcome == Outcome::vmexit_to_l1 || r.outcome == Outcome::vmrun_failed) {
                ASSERT_FALSE(m.vcpu.gif());
            }
            const char* bad = m.vcpu.check_invariants();
            const checks::Check* hw = m.vcpu.vmcb02_hardware_failure();
            ASSERT_EQ(bad, nullptr) << bad << (hw ? ": " + std::string(hw->id) : "") << " at iteration " << iter
                                    << " step " << step << ", profile " << iter % 5 << ", outcome "
                                    << nested::outcome_name(r.outcome);
        }
    }
}

// vmcb02 and its merged MSRPM are double-buffered (vcpu.hpp): the map a
// VMRUN commits must equal a merge computed from nothing, whatever the
// buffers held from earlier entries (other L1 maps, MSR_PROT off, entries
// that failed after the merge).
TEST(Property, MergedMsrpmEqualsAFreshMergeAcrossManyEntries) {
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

// A VMRUN that fails after vmcb02 was prepared leaves the live vmcb02 (the
// last L2's) byte for byte as it was: the prepared one is the other buffer.
TEST(Vmrun, LateFailureLeavesTheLiveVmcb02Untouched) {
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

TEST(Invariants, DetectGifZeroInGuestModeAndMissingL0Intercepts) {
    Machine m;
    ASSERT_TRUE(m.cpu.has(checks::Feature::vgif));
    auto v = valid_vmcb12();
    v.set(FieldId::int_ctl, arch::int_ctl::V_GIF_ENABLE | arch::int_ctl::V_GIF);  // L2 has a virtual GIF
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_EQ(m.vcpu.check_invariants(), nullptr);
    m.vcpu.set_gif(false);  // nothing L2 can do clears it
    ASSERT_NE(m.vcpu.check_invariants(), nullptr);
    EXPECT_STREQ(m.vcpu.check_invariants(), "GIF = 0 while L2 runs with nested vGIF");
    m.vcpu.set_gif(true);
    // L0 adds an intercept to vmcb01 after vmcb02 was built: now a subset violation.
    m.vcpu.vmcb01().set_intercept(ic::RDTSC);
    EXPECT_STREQ(m.vcpu.check_invariants(), "an L0 intercept is missing from vmcb02");
}

TEST(Gating, L1IntrWaitsForIfAndGif) {
    Machine m;
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

// --- Review (line-by-line review of src/nested against KVM's nested.c and the APM) ---

namespace {
// A Machine whose L0 passes some I/O ports through to L1 (scenario key
// l0.passthrough_ports); everything else as L0Config::kvm_default().
struct PortMachine : Machine {
    static nested::L0Config l0_with_port(std::uint16_t port) {
        auto c = nested::L0Config::kvm_default();
        c.passthrough_ports[c.passthrough_port_count++] = port;
        return c;
    }
    explicit PortMachine(std::uint16_t port) : Machine(checks::ProfileId::kvm, {}, l0_with_port(port)) {}
};}  // namespace

// Events held while GIF = 0 are pending events of the vCPU (KVM: nmi_pending,
// smi_pending, the LAPIC IRR, a latched INIT). A #VMEXIT, VMEXIT_INVALID
// included, drops only what was being injected into L2 (KVM's
// nested_svm_vmexit clears nmi_injected and the exception and interrupt
// queues) — never what is still pending for L1 (APM 15.17: held pending
// until GIF = 1).
TEST(Review, EventsHeldByGifSurviveAFailedVmrunAndAreTakenAtStgi) {
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

TEST(Review, EventsHeldByGifSurviveAReflectedVmexit) {
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
TEST(Review, HeldIntrL1InterceptsExitsToL1AsSoonAsVmrunSetsGif) {
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
TEST(Review, HeldNmiL1DoesNotInterceptIsInjectedIntoL2AtVmrun) {
    Machine m;
    const auto r = m.vmrun_with_held(cpu::EventKind::nmi);
    EXPECT_EQ(r.outcome, Outcome::entered_l2);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
}

// A held INIT L1 does not intercept resets the vCPU as soon as VMRUN sets
// GIF = 1: the VMRUN step ends out of guest mode, and says so.
TEST(Review, HeldInitL1DoesNotInterceptEndsTheVmrunOutOfGuestMode) {
    Machine m;
    const auto r = m.vmrun_with_held(cpu::EventKind::init);
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
}

// L2's CLGI/STGI that L1 does not intercept. With a virtual GIF of its own
// (vgif offered, V_GIF_ENABLE in vmcb12) they change vmcb02.V_GIF only;
// without, they change the GIF as on hardware without vGIF (KVM emulates
// them with svm_set_gif): an INTR is then held while L2 runs, and taken by
// L2's STGI (here: a #VMEXIT(INTR) to L1, which intercepts INTR).
TEST(L2Gif, ClgiWithoutNestedVgifClearsTheGifAndStgiTakesWhatItHeld) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::INTR);
    v.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING);
    m.vcpu.vmcb01().set(FieldId::rflags, 0x202);  // L1's IF = 1
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const cpu::Event clgi{.kind = cpu::EventKind::clgi, .insn_len = 3};
    const cpu::Event stgi{.kind = cpu::EventKind::stgi, .insn_len = 3};
    EXPECT_EQ(m.vcpu.l2_event(clgi).outcome, Outcome::handled_by_l0);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    EXPECT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    // Save and restore keep guest mode with GIF = 0.
    const auto blob = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(blob));
    EXPECT_EQ(m.vcpu.save_state(), blob);
    const auto r = m.vcpu.l2_event(stgi);
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::INTR);
    EXPECT_FALSE(m.vcpu.gif());  // the #VMEXIT cleared it again

    // With nested vGIF: only V_GIF moves.
    Machine n;
    auto w = valid_vmcb12();
    w.set(FieldId::int_ctl, arch::int_ctl::V_GIF_ENABLE | arch::int_ctl::V_GIF);
    n.put(w);
    ASSERT_EQ(n.vmrun().outcome, Outcome::entered_l2);
    (void)n.vcpu.l2_event(clgi);
    EXPECT_TRUE(n.vcpu.gif());
    EXPECT_EQ(n.vcpu.vmcb02().get(FieldId::int_ctl) & arch::int_ctl::V_GIF, 0U);
    // A saved GIF = 0 in guest mode is refused when L2 has a virtual GIF.
    auto blob2 = n.vcpu.save_state();
    blob2[12] &= static_cast<std::uint8_t>(~2);
    const auto refused = n.vcpu.restore_state(blob2);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("virtual GIF"), std::string::npos) << refused.error();
}

// The same when L0 does not intercept STGI/CLGI either (L0 uses vGIF for L1,
// vmcb01 leaves them alone): L2's CLGI/STGI run in hardware on the GIF, and
// what the GIF held is taken at the STGI.
TEST(L2Gif, NotInterceptedAtAllStgiStillTakesWhatTheGifHeld) {
    auto l0 = nested::L0Config::kvm_default();
    l0.intercept_words[ic::STGI / 32] &= ~((1U << (ic::STGI % 32)) | (1U << (ic::CLGI % 32)));
    Machine m(checks::ProfileId::kvm, {}, l0);
    auto v = valid_vmcb12();
    v.set_intercept(ic::NMI);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_FALSE(m.vcpu.vmcb02().intercept(ic::CLGI));
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clgi, .insn_len = 3}).outcome, Outcome::no_exit);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::stgi, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::NMI);
}

// STGI delivers the held events L1 can take: an INTR waits for L1's
// RFLAGS.IF (APM 8.2), an NMI does not.
TEST(Review, StgiDeliversAHeldIntrOnlyWhenL1sIfIsSet) {
    Machine m;
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

// L1 intercepts only the selective CR0 write; L0 (kvm_default) intercepts
// every CR0 write, so the hardware exit from L2 is WRITE_CR0 and L0 sees it
// first. L0 must still reflect it to L1 as CR0_SEL_WRITE when bits other
// than TS/MP change (APM 15.9.2; KVM check_selective_cr0_intercepted,
// and the 2025 series "nSVM: Fixes for SVM_EXIT_CR0_SEL_WRITE injection").
TEST(Review, SelectiveCr0InterceptOfL1IsHonouredWhenL0InterceptsCr0Writes) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::SELECTIVE_CR0);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_TRUE(m.vcpu.vmcb02().intercept(ic::cr_write(0)));  // L0's own intercept
    // Only TS changes: not selective, L0 emulates, L2 goes on.
    auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = 0,
                                        .value = 0x80050033 | arch::cr0::TS});
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    ASSERT_EQ(m.vcpu.mode(), nested::Mode::l2);
    // CD changes: L1 asked for this one.
    r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = 0,
                                   .value = 0xC0050033, .gpr = 3});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::CR0_SEL_WRITE);
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::CR0_SEL_WRITE);
    EXPECT_EQ(m.vmcb12().get(FieldId::cr0), 0x80050033U | arch::cr0::TS);  // the write did not happen
}

// L0 passes port 0x80 through to L1; L1 intercepts it for L2 in its IOPM.
// vmcb02 runs on L0's IOPM, so without a merge L2's OUT 0x80 would never
// exit and L1's intercept would be bypassed (APM 15.10.1: with IOIO_PROT the
// port's bit in *L1's* IOPM must intercept; L0's own ports stay intercepted).
TEST(Review, PortL0PassesThroughIsStillInterceptedForL1) {
    PortMachine m(0x80);
    auto v = valid_vmcb12();
    v.set_intercept(ic::IOIO_PROT);
    const std::array<std::uint8_t, 1> bit80{1U << (0x80 % 8)};
    ASSERT_TRUE(m.mem.write(kIopm + 0x80 / 8, bit80));  // L1 intercepts 0x80 only
    ASSERT_TRUE(m.mem.write_vmcb(kVmcb12, v));
    ASSERT_EQ(m.vcpu.l1_vmrun().outcome, Outcome::entered_l2);
    auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::io, .index = 0x80, .size = 1});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::IOIO);
    EXPECT_EQ(r.exit_info_1 >> 16, 0x80U);
    // A port nobody but L0 intercepts: L0 handles it; one L0 passes through
    // and L1 does not intercept would run without an exit.
    ASSERT_EQ(m.vcpu.l1_vmrun().outcome, Outcome::entered_l2);
    r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::io, .index = 0x81, .size = 1});
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
}

// KVM's svm_leave_smm fails RSM when the SMRAM image's EFER.SVME is clear.
// The image is guest memory (EFER at SMBASE+FED0h, APM Vol.2 10.2.3): the
// SMM handler may have changed it, so RSM must look there, not at a copy
// L0 kept in private memory.
TEST(Review, RsmFromL2ReadsEferSvmeFromSmramMemory) {
    Machine m;
    m.enter_smm_from_l2();
    std::uint64_t efer = 0;
    ASSERT_TRUE(m.mem.read_u64(0x30000 + nested::kSmramEfer, efer));
    ASSERT_NE(efer & arch::efer::SVME, 0U);
    ASSERT_TRUE(m.mem.write_u64(0x30000 + nested::kSmramEfer, efer & ~arch::efer::SVME));
    EXPECT_EQ(m.vcpu.rsm().outcome, Outcome::shutdown);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
}

// KVM's late VMRUN failure (illegal PDPE / CR3 in nested_svm_load_cr3, or an
// unreadable MSRPM in nested_svm_merge_msrpm) is a full nested_svm_vmexit:
// with NRIPS, vmcb12.next_rip <- vmcb02.next_rip, which
// nested_vmcb02_prepare_control took from vmcb12. So L1 finds its own
// next_rip there, not 0.
TEST(Review, KvmLateFailureWritesBackVmcb02NextRip) {
    Machine m;  // kvm, NRIPS offered
    auto v = valid_vmcb12();
    v.set(FieldId::efer, arch::efer::SVME);
    v.set(FieldId::cr0, 0x80000011);
    v.set(FieldId::cr4, arch::cr4::PAE);
    v.set(FieldId::cr3, 0x70000);
    v.set_segment(arch::Seg::cs, {0x8, 0xC9B, 0xFFFFFFFF, 0});
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

// A physical INTR while L2 runs is recognized only if the IF that masks it
// is set: with vmcb12 V_INTR_MASKING, L1's RFLAGS.IF saved at VMRUN (the
// "host IF"), otherwise L2's RFLAGS.IF (APM 15.21.1, 15.17; KVM's
// svm_interrupt_blocked in guest mode). Masked, it is held
// pending: no #VMEXIT(INTR) to L1, and L0 does not inject it into L2.
TEST(Review, IntrInL2IsMaskedByTheRightRflagsIf) {
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

// VM_CR (APM 15.30.1): while LOCK = 1 only writes to LOCK
// and SVMDIS are ignored (DPD, R_INIT, DIS_A20M still change); setting
// SVMDIS while EFER.SVME = 1 is #GP; with SVMDIS = 1, EFER.SVME is MBZ.
TEST(Review, VmCrLockSvmdisAndEferSvmeFollowTheApm) {
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

// A physical NMI/SMI/INIT/INTR that L1 intercepts causes #VMEXIT and stays
// pending (APM 15.17: NMI, external SMI and INIT that are intercepted exit
// and stay pending; KVM's svm_check_nested_events synthesizes the exit
// without consuming nmi_pending/smi_pending). GIF = 0 after the exit holds it
// until L1's STGI, when L1 takes it.
TEST(Review, InterceptedExternalEventStaysPendingForL1) {
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

// vmcb02's TLB_CONTROL must be an encoding the CPU has: FLUSH_ASID (3) and
// FLUSH_ASID_LOCAL (7) need FlushByAsid (APM 15.16.1); a
// CPU without it only has DO_NOTHING (0) and FLUSH_ALL (1).
TEST(Review, Vmcb02TlbControlIsDefinedOnTheCpu) {
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

// Nested vGIF: L2's CLGI clears V_GIF in vmcb02. KVM syncs it into the
// cached vmcb12 controls after every exit from L2 (KVM's
// nested_sync_control_from_vmcb02), which is what KVM_GET_NESTED_STATE saves; so a
// save/restore keeps L2's virtual GIF, and the later #VMEXIT reports it in
// vmcb12.int_ctl.
TEST(Review, SaveRestoreKeepsL2VirtualGif) {
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

// CET supervisor state is VMRUN state: with SHSTK, vmcb02's S_CET, SSP and
// ISST_ADDR come from vmcb12 (KVM's nested_vmcb02_prepare_save; KVM's
// svm_copy_vmrun_state counts them as VMRUN state; APM 15.5.1 checks S_CET),
// and the #VMEXIT writes them back to vmcb12 (KVM's nested_svm_vmexit).
TEST(Review, CetStateIsLoadedIntoVmcb02AndWrittenBack) {
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

// L2's VMMCALL, SKINIT and RSM that L1 does not intercept exit only because
// L0 intercepts them for L1. L0 must not act on them for L2 (a VMMCALL would
// be a hypercall to L0 behind L1's back): KVM never handles L2's VMMCALL
// (KVM's recalc_intercepts; the 2026 series "nSVM: Fix #UD on VMMCALL
// issues"), SKINIT is
// #UD (not offered), RSM outside SMM is #UD. So L2 gets #UD, RIP unchanged.
TEST(Review, L2VmmcallSkinitRsmNotInterceptedByL1AreUdInL2) {
    Machine m;
    m.put(valid_vmcb12());  // no VMMCALL/SKINIT/RSM intercept in vmcb12
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    for (auto k : {cpu::EventKind::vmmcall, cpu::EventKind::skinit, cpu::EventKind::rsm}) {
        const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
        const auto r = m.vcpu.l2_event(cpu::Event{.kind = k, .insn_len = 3});
        EXPECT_EQ(r.outcome, Outcome::exception) << cpu::event_name(k);
        EXPECT_EQ(r.vector, 6) << cpu::event_name(k);
        EXPECT_NE(r.owner, nested::Owner::l1);
        EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
        EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip) << cpu::event_name(k);
    }
    // L1 intercepting VMMCALL still gets it.
    auto v = valid_vmcb12();
    v.set_intercept(ic::VMMCALL);
    (void)m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun});  // back to L1
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmmcall}).outcome, Outcome::vmexit_to_l1);
}

// L1 instructions only while L1 runs (the model's contract, l1_instruction_
// gates): VMMCALL, WRMSR and RDMSR by "L1" while L2 runs must not advance
// L1's RIP or change L1's MSRs behind L2's back.
TEST(Review, L1VmmcallAndMsrAccessOnlyWhileL1Runs) {
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

// Hardening: L2 writing DR6/DR7 with bits 63:32 set. Only L0 intercepts the
// write (KVM's init_vmcb intercepts every DR access): L0 emulates it as
// kvm_set_dr does, #GP(0) into L2, and vmcb02 keeps its legal DR6/DR7 (a
// vmcb02 with those bits set is one the next VMRUN refuses). A legal value
// is written; L1 intercepting the write gets its #VMEXIT as before.
TEST(Hardening, L2DebugRegisterWriteWithUpperBitsIsGpInL2) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    for (const unsigned dr : {6U, 7U}) {
        const FieldId f = dr == 6 ? FieldId::dr6 : FieldId::dr7;
        const auto before = m.vcpu.vmcb02().get(f);
        const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
        const auto r = m.vcpu.l2_event(
            cpu::Event{.kind = cpu::EventKind::dr_write, .index = dr, .value = (std::uint64_t{1} << 32) | 0x400});
        EXPECT_EQ(r.outcome, Outcome::exception) << "DR" << dr;
        EXPECT_EQ(r.vector, 13) << "DR" << dr;
        EXPECT_TRUE(r.l0_exit);
        EXPECT_EQ(m.vcpu.vmcb02().get(f), before) << "DR" << dr;
        EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip);  // a fault: RIP stays
        EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    }
    const auto ok = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::dr_write, .index = 7, .value = 0x401});
    EXPECT_EQ(ok.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::dr7), 0x401U);
    // L1 intercepting DR7 writes: its exit, whatever the value.
    (void)m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun});  // back to L1
    m.enter_l2_intercepting(ic::dr_write(7));
    const auto r = m.vcpu.l2_event(
        cpu::Event{.kind = cpu::EventKind::dr_write, .index = 7, .value = std::uint64_t{0xFF} << 32});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ic::dr_write(7));
}

// The invariants hold every committed vmcb02 to the processor's own VMRUN
// checks. A restored nested state commits vmcb02 from L2's registers in the
// blob, past every VMRUN check: one with DR7 bits 63:32 set is refused,
// naming the check, and leaves the vCPU as it was.
TEST(Hardening, RestoreRefusesAnL2StateTheProcessorWouldRefuse) {
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

// Shutdown is final (no reset is modelled, and KVM keeps no shut-down state
// to resume: the VMM is told KVM_EXIT_SHUTDOWN and resets). Every step on a
// shut-down vCPU changes nothing and reports shutdown; the state, shutdown
// included, survives save -> restore -> save byte for byte.
TEST(Hardening, EveryStepOnAShutDownVcpuIsANoOpReportingShutdown) {
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

// RSM into L2 reloads L1's state from HSAVE+0x400, which the SMM handler can
// rewrite at will. Whatever it writes there (here: random values in L1's
// control registers, EFER, RFLAGS, or random bytes anywhere in the area),
// the vCPU after RSM, back in L2 or shut down, saves a state that restores
// and saves again to the same bytes.
TEST(Hardening, AnyRsmWithARewrittenHsaveLeavesAStateThatRestores) {
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

// Guest memory is backed lazily: map() records a range, a page is stored on
// its first write, unwritten backed pages read as zeroes, and stored pages
// are bounded by a budget. A write beyond it fails, changes nothing and is
// remembered, so a caller tells it from unbacked memory.
TEST(Hardening, GuestMemoryIsBackedLazilyWithinItsBudget) {
    cpu::GuestMemory mem(52);
    ASSERT_TRUE(mem.map(0, std::uint64_t{1} << 40));  // 1 TiB mapped
    ASSERT_TRUE(mem.map(std::uint64_t{1} << 40, 0x1000));  // merged with the range before it
    EXPECT_EQ(mem.stored_bytes(), 0U);
    std::uint64_t v = 1;
    ASSERT_TRUE(mem.read_u64((std::uint64_t{1} << 40) - 8, v));
    EXPECT_EQ(v, 0U);
    EXPECT_TRUE(mem.backed(std::uint64_t{1} << 40));
    EXPECT_FALSE(mem.backed((std::uint64_t{1} << 40) + 0x1000));
    arch::Vmcb vmcb;
    EXPECT_TRUE(mem.peek_vmcb(0x123000, vmcb));
    EXPECT_EQ(vmcb, arch::Vmcb{});
    ASSERT_TRUE(mem.write_u64(0x1ffc, 0x1122334455667788ULL));  // straddles two pages
    EXPECT_EQ(mem.stored_bytes(), 2 * cpu::kPageSize);
    ASSERT_TRUE(mem.read_u64(0x1ffc, v));
    EXPECT_EQ(v, 0x1122334455667788ULL);

    mem.set_budget(3 * cpu::kPageSize);
    EXPECT_FALSE(mem.write_u64(0x4ffc, 7));  // needs two more pages: nothing written
    EXPECT_TRUE(mem.budget_exhausted());
    EXPECT_EQ(mem.budget_refused_gpa(), 0x4ffcU);
    EXPECT_EQ(mem.stored_bytes(), 2 * cpu::kPageSize);
    ASSERT_TRUE(mem.read_u64(0x4ff8, v));
    EXPECT_EQ(v, 0U);
    EXPECT_TRUE(mem.write_u64(0x5000, 7));  // one more page fits
    EXPECT_FALSE(mem.vmcb_in_place(0x9000).has_value());  // a fourth does not
    EXPECT_TRUE(mem.vmcb_in_place(0x5000).has_value());   // a stored page still is
    EXPECT_FALSE(mem.write_u64(std::uint64_t{1} << 41, 1));  // not backed
}

// Found by the vmcb02 hardware-check invariant: L2 clearing CR0.PG, emulated
// by L0, left EFER.LMA = 1 with paging off in vmcb02 (efer.lma_without_lme_pg).
// In 64-bit mode that write is #GP(0); from compatibility mode it leaves long
// mode and the processor clears EFER.LMA. Clearing CR4.PAE in long mode is
// #GP(0) too. vmcb02 stays one the processor's VMRUN accepts.
TEST(Hardening, L2LeavingLongModeKeepsVmcb02Legal) {
    Machine m;
    m.put(valid_vmcb12());  // 64-bit L2: EFER.LME/LMA, CS.L
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto cr_write = [&](unsigned cr, std::uint64_t v) {
        return m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = cr, .value = v});
    };
    auto r = cr_write(0, 0x60000011);  // PG off in 64-bit mode
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    r = cr_write(4, m.vcpu.vmcb02().get(FieldId::cr4) & ~arch::cr4::PAE);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // Compatibility mode (CS.L = 0): PG off leaves long mode.
    (void)m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun});  // back to L1
    auto v = valid_vmcb12();
    auto cs = v.segment(arch::Seg::cs);
    cs.attrib = static_cast<std::uint16_t>((cs.attrib & ~arch::seg_attr::L) | arch::seg_attr::DB);
    v.set_segment(arch::Seg::cs, cs);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    r = cr_write(0, 0x60000011);
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::efer) & arch::efer::LMA, 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr) << m.vcpu.vmcb02_hardware_failure()->id;
    r = cr_write(0, 0x80000011);  // and PG back on enters long mode again
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_NE(m.vcpu.vmcb02().get(FieldId::efer) & arch::efer::LMA, 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

// RSM into L2 loads L2's registers from the SMRAM image, which a restored
// nested state brings as it likes: one the processor's VMRUN would refuse
// (DR7 bits 63:32) fails the RSM (shutdown, as KVM's emulator_leave_smm),
// never a running L2 on an illegal vmcb02; the state still saves and restores.
TEST(Hardening, RsmWithAnIllegalL2StateInSmramShutsDown) {
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
