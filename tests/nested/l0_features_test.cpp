// L0's vmcb01 as KVM builds it on the CPU model (init_vmcb,
// svm_recalc_instruction_intercepts): the virtual GIF (APM 15.33.2) and
// virtual VMLOAD/VMSAVE (APM 15.33.1) when the CPU has them and the module
// parameters vgif / vls are on; L1's GIF in V_GIF then (KVM's get_vgif_vmcb),
// and L1's STGI, CLGI, VMLOAD and VMSAVE without an exit to L0.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
constexpr std::uint64_t kVGif = arch::int_ctl::V_GIF, kVGifEnable = arch::int_ctl::V_GIF_ENABLE;

nested::L0Config without_vgif_vls() {
    auto l0 = nested::L0Config::kvm_default();
    l0.vgif = false;
    l0.vls = false;
    return l0;
}

checks::CpuModel model_without(std::initializer_list<checks::Feature> features) {
    checks::CpuModel m = checks::default_model();
    for (auto f : features) m.set(f, false);
    return m;
}

std::uint64_t int_ctl01(const Machine& m) { return m.vcpu.vmcb01().get(FieldId::int_ctl); }

/// A test machine on `model` (the tests' Machine runs the default model).
struct ModelMachine : test_support::NestedMachine {
    explicit ModelMachine(const checks::CpuModel& model)
        : NestedMachine(checks::ProfileId::kvm, {}, nested::L0Config::kvm_default(), model) {}
};
}  // namespace

TEST(L0Vmcb01, WithVgifAndVlsOnTheCpuModel) {
    Machine m;  // the default model (zen4) has vGIF and V_VMSAVE_VMLOAD
    ASSERT_TRUE(m.cpu.has(checks::Feature::vgif) && m.cpu.has(checks::Feature::v_vmsave_vmload));
    const auto& v = m.vcpu.vmcb01();
    for (unsigned b : {ic::STGI, ic::CLGI, ic::VMLOAD, ic::VMSAVE}) EXPECT_FALSE(v.intercept(b)) << b;
    EXPECT_TRUE(v.intercept(ic::VMRUN));
    // GIF = 1 in V_GIF; vNMI too (zen4 has it, KVM's vnmi needs vgif).
    EXPECT_EQ(v.get(FieldId::int_ctl),
              arch::int_ctl::V_INTR_MASKING | kVGifEnable | kVGif | arch::int_ctl::V_NMI_ENABLE);
    EXPECT_EQ(v.get(FieldId::misc_ctl2), arch::misc_ctl2::V_VMSAVE_VMLOAD);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0Vmcb01, ModuleParametersOffKeepTheIntercepts) {
    Machine m(checks::ProfileId::kvm, {}, without_vgif_vls());
    const auto& v = m.vcpu.vmcb01();
    for (unsigned b : {ic::STGI, ic::CLGI, ic::VMLOAD, ic::VMSAVE}) EXPECT_TRUE(v.intercept(b)) << b;
    EXPECT_EQ(v.get(FieldId::int_ctl), arch::int_ctl::V_INTR_MASKING);
    EXPECT_EQ(v.get(FieldId::misc_ctl2), 0U);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0Vmcb01, ACpuWithoutTheFeaturesKeepsTheIntercepts) {
    ModelMachine m(model_without({checks::Feature::vgif, checks::Feature::v_vmsave_vmload}));
    const auto& v = m.vcpu.vmcb01();
    for (unsigned b : {ic::STGI, ic::CLGI, ic::VMLOAD, ic::VMSAVE}) EXPECT_TRUE(v.intercept(b)) << b;
    EXPECT_EQ(v.get(FieldId::int_ctl) & (kVGif | kVGifEnable), 0U);
    EXPECT_EQ(v.get(FieldId::misc_ctl2), 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L0Vmcb01, VirtualVmloadVmsaveNeedsNpt) {
    // KVM's svm_hardware_setup turns vls off without npt_enabled.
    auto l0 = nested::L0Config::kvm_default();
    l0.npt = false;
    Machine m(checks::ProfileId::kvm, {}, l0);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::VMLOAD));
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::VMSAVE));
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::misc_ctl2), 0U);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::STGI));  // vGIF does not need NPT
}

TEST(L1Gif, StgiClgiUnderVgifChangeVmcb01sVGifWithoutAnExit) {
    Machine m;
    const std::uint64_t rip = m.vcpu.vmcb01().get(FieldId::rip);
    auto r = m.vcpu.l1_clgi();
    EXPECT_EQ(r.outcome, Outcome::l1_continues);
    EXPECT_EQ(r.owner, nested::Owner::none);
    EXPECT_EQ(r.exit_code, 0U);
    EXPECT_FALSE(r.l0_exit);
    EXPECT_EQ(int_ctl01(m) & kVGif, 0U);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::rip), rip + 3);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    r = m.vcpu.l1_stgi();
    EXPECT_EQ(r.outcome, Outcome::l1_continues);
    EXPECT_EQ(r.owner, nested::Owner::none);
    EXPECT_EQ(int_ctl01(m) & kVGif, kVGif);
    EXPECT_TRUE(m.vcpu.gif());
}

TEST(L1Gif, StgiClgiWithoutVgifAreL0sExits) {
    Machine m(checks::ProfileId::kvm, {}, without_vgif_vls());
    auto r = m.vcpu.l1_clgi();
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(r.owner, nested::Owner::l0);
    EXPECT_EQ(r.exit_code, ec::CLGI);
    EXPECT_TRUE(r.l0_exit);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(int_ctl01(m), arch::int_ctl::V_INTR_MASKING);  // GIF is L0's software flag
    r = m.vcpu.l1_stgi();
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(r.exit_code, ec::STGI);
    EXPECT_TRUE(m.vcpu.gif());
}

TEST(L1Gif, VmrunAndVmexitMoveGifBetweenVmcb01AndVmcb02) {
    // Without nested vGIF, L1's GIF lives in vmcb02's V_GIF while L2 runs
    // (get_vgif_vmcb); VMRUN sets it there, the #VMEXIT clears vmcb01's.
    Machine m;
    m.enter_l2_intercepting(ic::CPUID);
    const std::uint64_t i02 = m.vcpu.vmcb02().get(FieldId::int_ctl);
    EXPECT_EQ(i02 & (kVGif | kVGifEnable), kVGif | kVGifEnable);
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // L2's CLGI (L1 does not intercept it, L0 does not under vGIF) runs in
    // hardware and clears vmcb02's V_GIF: L1's GIF.
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clgi, .insn_len = 3}).outcome, Outcome::no_exit);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & kVGif, 0U);
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::stgi, .insn_len = 3}).outcome, Outcome::no_exit);
    EXPECT_TRUE(m.vcpu.gif());
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid});
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(int_ctl01(m) & kVGif, 0U);  // APM 15.6: GIF = 0, in vmcb01's V_GIF
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1Gif, NestedVgifKeepsL1sGifInVmcb01) {
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::int_ctl, kVGifEnable);  // L2's virtual GIF starts at 0
    m.put(v);
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(int_ctl01(m) & kVGif, kVGif);  // VMRUN set L1's GIF in vmcb01
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & kVGif, 0U);  // L2's own
    EXPECT_TRUE(m.vcpu.gif());
}

TEST(L1Gif, VmexitInvalidClearsVmcb01sVGif) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::VMRUN, false);  // a consistency check fails
    m.put(v);
    ASSERT_TRUE(m.vcpu.gif());
    const auto r = m.vmrun();
    ASSERT_EQ(r.outcome, Outcome::vmrun_failed);
    EXPECT_EQ(int_ctl01(m) & kVGif, 0U);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1Gif, HeldIntrIsTakenWhenL1sStgiSetsVGif) {
    // KVM's svm_enable_irq_window under vGIF: no STGI intercept, the
    // virtual interrupt window opens once hardware sets V_GIF.
    Machine m;
    m.vcpu.vmcb01().set(FieldId::rflags, 0x202);  // L1's IF = 1
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::intr).outcome, Outcome::held_pending);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::STGI));
    const auto r = m.vcpu.l1_stgi();
    EXPECT_EQ(r.outcome, Outcome::l1_continues);
    EXPECT_FALSE(r.l0_exit);
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_EQ(int_ctl01(m) & kVGif, kVGif);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1Gif, HeldNmiOpensTheStgiWindow) {
    // KVM's svm_enable_nmi_window under vGIF sets the STGI intercept;
    // svm_set_gif(true) at L1's STGI clears it and the NMI is taken. With
    // vnmi = 0: under vNMI the NMI waits in vmcb01's V_NMI_PENDING instead.
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::STGI));
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::CLGI));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    const auto r = m.vcpu.l1_stgi();
    EXPECT_EQ(r.exit_code, ec::STGI);
    EXPECT_EQ(r.owner, nested::Owner::l0);
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::STGI));
    EXPECT_TRUE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1Gif, TheStgiWindowReachesVmcb02AndClosesAtVmrun) {
    // An NMI held at L1's VMRUN: vmcb02 is prepared from vmcb01's window,
    // VMRUN's GIF = 1 closes it (svm_set_gif, recalc_intercepts) and the
    // NMI goes to L2.
    Machine m;
    const auto r = m.vmrun_with_held(cpu::EventKind::nmi);
    ASSERT_EQ(r.outcome, Outcome::entered_l2);
    EXPECT_FALSE(m.vcpu.vmcb01().intercept(ic::STGI));
    EXPECT_FALSE(m.vcpu.vmcb02().intercept(ic::STGI));
    EXPECT_EQ(m.vcpu.pending_events(), 0U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L1VmloadVmsave, VirtualVmloadVmsaveMoveTheSameStateWithoutAnExit) {
    Machine with, without(checks::ProfileId::kvm, {}, without_vgif_vls());
    arch::Vmcb page;
    page.set(FieldId::star, 0x1234);
    page.set(FieldId::kernel_gs_base, 0xFFFF800000001000ULL);
    page.set_segment(arch::Seg::fs, {0x33, 0x93, 0xFFFF, 0x7000});
    for (Machine* m : {&with, &without}) ASSERT_TRUE(m->put_vmcb12(page));
    const auto a = with.vcpu.l1_vmload(), b = without.vcpu.l1_vmload();
    EXPECT_EQ(a.outcome, Outcome::l1_continues);
    EXPECT_EQ(a.owner, nested::Owner::none);
    EXPECT_FALSE(a.l0_exit);
    EXPECT_EQ(b.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(b.owner, nested::Owner::l0);
    EXPECT_EQ(b.exit_code, ec::VMLOAD);
    EXPECT_EQ(with.vcpu.vmcb01().get(FieldId::star), 0x1234U);
    for (FieldId f : arch::kVmloadFields) EXPECT_EQ(with.vcpu.vmcb01().get(f), without.vcpu.vmcb01().get(f));
    for (arch::Seg s : arch::kVmloadSegments)
        EXPECT_EQ(with.vcpu.vmcb01().segment(s), without.vcpu.vmcb01().segment(s));
    EXPECT_EQ(with.vcpu.vmcb01().get(FieldId::rip), without.vcpu.vmcb01().get(FieldId::rip));
    const auto c = with.vcpu.l1_vmsave(), d = without.vcpu.l1_vmsave();
    EXPECT_EQ(c.owner, nested::Owner::none);
    EXPECT_EQ(d.exit_code, ec::VMSAVE);
}

TEST(L1GifState, KvmGifSetFollowsVGifAndRoundTrips) {
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());  // the NMI opens the STGI window
    (void)m.vcpu.l1_clgi();
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);  // window open
    auto blob = m.vcpu.save_kvm_nested_state();
    EXPECT_EQ(arch::load_le(blob, nested::kvm_state::kFlagsAt, 2) & nested::kvm_state::kGifSet, 0U);
    const arch::Vmcb regs = m.vcpu.current_registers();
    ASSERT_TRUE(m.vcpu.restore_kvm_nested_state(blob, regs));
    EXPECT_EQ(m.vcpu.save_kvm_nested_state(), blob);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::STGI));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // GIF_SET in the blob puts GIF = 1 into vmcb01's V_GIF.
    blob[nested::kvm_state::kFlagsAt + 1] |= static_cast<std::uint8_t>(nested::kvm_state::kGifSet >> 8);
    ASSERT_TRUE(m.vcpu.restore_kvm_nested_state(blob, regs));
    EXPECT_EQ(int_ctl01(m) & kVGif, kVGif);
    EXPECT_TRUE(m.vcpu.gif());

    // In guest mode (GIF in vmcb02's V_GIF), after L2's CLGI: GIF_SET clear,
    // the native and KVM layouts both restore to the same bytes.
    Machine n;
    n.enter_l2_intercepting(ic::CPUID);
    ASSERT_EQ(n.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clgi, .insn_len = 3}).outcome, Outcome::no_exit);
    const auto native = n.vcpu.save_state();
    const auto kvm = n.vcpu.save_kvm_nested_state();
    EXPECT_EQ(arch::load_le(kvm, nested::kvm_state::kFlagsAt, 2) & nested::kvm_state::kGifSet, 0U);
    ASSERT_TRUE(n.vcpu.restore_state(native));
    EXPECT_EQ(n.vcpu.save_state(), native);
    const arch::Vmcb l2_regs = n.vcpu.current_registers();
    ASSERT_TRUE(n.vcpu.restore_kvm_nested_state(kvm, l2_regs));
    EXPECT_EQ(n.vcpu.save_kvm_nested_state(), kvm);
    EXPECT_FALSE(n.vcpu.gif());
    EXPECT_EQ(n.vcpu.vmcb02().get(FieldId::int_ctl) & kVGif, 0U);
    EXPECT_EQ(n.vcpu.check_invariants(), nullptr);
}
