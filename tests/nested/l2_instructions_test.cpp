// L2's instructions that L0 sees first and L1 does not intercept: L0 emulates
// them for L2 (VMLOAD/VMSAVE as KVM's vmload_vmsave_interception, CR/DR
// writes as kvm_set_cr0 / kvm_set_dr) or makes them #UD in L2 (VMMCALL,
// SKINIT, RSM), and L2's STGI/CLGI with and without a virtual GIF (APM
// 15.33.2).
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

// L2's VMMCALL, SKINIT and RSM that L1 does not intercept exit only because
// L0 intercepts them for L1. L0 must not act on them for L2 (a VMMCALL would
// be a hypercall to L0 behind L1's back): KVM never handles L2's VMMCALL
// (KVM's recalc_intercepts; the 2026 series "nSVM: Fix #UD on VMMCALL
// issues"), SKINIT is
// #UD (not offered), RSM outside SMM is #UD. So L2 gets #UD, RIP unchanged.
TEST(L2Instructions, L2VmmcallSkinitRsmNotInterceptedByL1AreUdInL2) {
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

// L2 writing DR6/DR7 with bits 63:32 set. Only L0 intercepts the
// write (KVM's init_vmcb intercepts every DR access): L0 emulates it as
// kvm_set_dr does, #GP(0) into L2, and vmcb02 keeps its legal DR6/DR7 (a
// vmcb02 with those bits set is one the next VMRUN refuses). A legal value
// is written; L1 intercepting the write gets its #VMEXIT as before.
TEST(L2Instructions, L2DebugRegisterWriteWithUpperBitsIsGpInL2) {
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

// An exception L0's emulation raises for L2 (#UD for a VMMCALL L1 does not
// intercept, #GP(0) for an illegal DR7 value) is L1's when vmcb12 intercepts
// that vector: KVM's svm_check_nested_events turns the queued exception into
// #VMEXIT(EXCP_BASE + vector) (nested_svm_inject_exception_vmexit), with L2's
// RIP at the faulting instruction and nothing injected into L2.
TEST(L2Instructions, AnExceptionL0RaisesForL2GoesToL1WhenL1InterceptsItsVector) {
    for (const unsigned vector : {6U, 13U}) {
        Machine m;
        auto v = valid_vmcb12();
        v.set_intercept(ic::exception(vector));
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
        const cpu::Event e = vector == 6 ? cpu::Event{.kind = cpu::EventKind::vmmcall, .insn_len = 3}
                                         : cpu::Event{.kind = cpu::EventKind::dr_write, .index = 7,
                                                      .value = std::uint64_t{1} << 32};
        const auto r = m.vcpu.l2_event(e);
        ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << "vector " << vector << ": " << r.note;
        EXPECT_EQ(r.exit_code, ec::EXCP_BASE + vector);
        EXPECT_EQ(r.exit_info_1, 0U);
        EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
        const auto v12 = m.vmcb12();
        EXPECT_EQ(v12.get(FieldId::exit_code), ec::EXCP_BASE + vector);
        EXPECT_EQ(v12.get(FieldId::rip), rip) << "a fault: L2's RIP at the instruction";
        EXPECT_EQ(v12.get(FieldId::event_inj) & arch::event::V, 0U) << "nothing left to inject";
        EXPECT_FALSE(m.vcpu.gif());
    }
    // The vector L1 does not intercept still reaches L2.
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::exception(13));
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmmcall, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 6);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
}

// Found by the vmcb02 hardware-check invariant: L2 clearing CR0.PG, emulated
// by L0, left EFER.LMA = 1 with paging off in vmcb02 (efer.lma_without_lme_pg).
// In 64-bit mode that write is #GP(0); from compatibility mode it leaves long
// mode and the processor clears EFER.LMA. Clearing CR4.PAE in long mode is
// #GP(0) too. vmcb02 stays one the processor's VMRUN accepts.
TEST(L2Instructions, L2LeavingLongModeKeepsVmcb02Legal) {
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
    // Back to L1 by INIT (not intercepted: guest mode left): L2's VMRUN at
    // CPL 3 is #GP(0) before its intercept (APM Table 15-7).
    const auto leave = [&] {
        (void)m.vcpu.external(cpu::EventKind::init);
        ASSERT_EQ(m.vcpu.mode(), nested::Mode::l1);
    };
    enter(0x70000, 3);
    auto r = m.vcpu.l2_event(vmload);
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);  // CPL 3
    leave();
    enter(0x70008, 0);
    EXPECT_EQ(m.vcpu.l2_event(vmload).vector, 13);  // not 4 KiB aligned
    leave();
    enter(0x900000, 0);
    r = m.vcpu.l2_event(vmload);  // aligned, legal, but L0 backs nothing there
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    leave();
    // L2 turns paging off (L0 emulates the CR0 write; from compatibility
    // mode, as leaving long mode requires): VMLOAD is #UD in L2.
    auto cs = v.segment(arch::Seg::cs);
    cs.attrib = static_cast<std::uint16_t>((cs.attrib & ~arch::seg_attr::L) | arch::seg_attr::DB);
    v.set_segment(arch::Seg::cs, cs);
    enter(0x70000, 0);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = 0, .value = 0x11}).outcome,
              Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.l2_event(vmload).vector, 6);
    // L2's VMRUN: the processor's gates have no paging rule (that #UD is
    // KVM's, for what it emulates), so it exits, and L1 intercepts it.
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun}).outcome, Outcome::vmexit_to_l1);
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
    // L0 uses virtual VMLOAD/VMSAVE for L1 itself (KVM's vls=1, its default
    // on a CPU with the feature): vmcb01 does not intercept them, so vmcb02
    // need not either.
    Machine m;
    ASSERT_TRUE(m.cpu.has(checks::Feature::v_vmsave_vmload));
    ASSERT_FALSE(m.vcpu.vmcb01().intercept(ic::VMLOAD));
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
    EXPECT_EQ(m.vcpu.hardware().regs().star, 0x0023001000000000U);  // loaded into L2's registers
    // The next #VMEXIT: L0 VMSAVEs the VMLOAD state into vmcb01 (KVM's
    // __svm_vcpu_run), where L1 and L2 share it.
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::star), 0x0023001000000000U);
    // An L2 address L1's tables do not map: #NPF to L1.
    v.set(FieldId::rax, 0x6000);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmload, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::NPF);
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_info_2), 0x6000U);
}

// L2's CLGI/STGI that L1 does not intercept. With a virtual GIF of its own
// (vgif offered, V_GIF_ENABLE in vmcb12) they change vmcb02.V_GIF only;
// without, they change L1's GIF. Here L0 does not use vGIF (KVM's vgif=0),
// intercepts them and emulates them with svm_set_gif: an INTR is then held
// while L2 runs, and taken by L2's STGI (here: a #VMEXIT(INTR) to L1, which
// intercepts INTR).
TEST(L2Gif, ClgiWithoutNestedVgifClearsTheGifAndStgiTakesWhatItHeld) {
    auto no_vgif = nested::L0Config::kvm_default();
    no_vgif.vgif = false;
    Machine m(checks::ProfileId::kvm, {}, no_vgif);
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
// KVM's default on a CPU with vGIF): L2's CLGI/STGI run in hardware on
// vmcb02's V_GIF, which is L1's GIF then (KVM's get_vgif_vmcb); the held NMI
// opens L0's STGI window (svm_enable_nmi_window), so L2's STGI exits to L0,
// which takes what the GIF held. (With vnmi = 0; under vNMI the NMI the exit
// leaves pending waits in vmcb01's V_NMI_PENDING: l1_vnmi_test.cpp.)
TEST(L2Gif, NotInterceptedAtAllStgiStillTakesWhatTheGifHeld) {
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    auto v = valid_vmcb12();
    v.set_intercept(ic::NMI);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_FALSE(m.vcpu.vmcb02().intercept(ic::CLGI));
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clgi, .insn_len = 3}).outcome, Outcome::no_exit);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & arch::int_ctl::V_GIF, 0U);
    EXPECT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);
    EXPECT_TRUE(m.vcpu.vmcb02().intercept(ic::STGI));  // the window, through recalc_intercepts
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::stgi, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::NMI);
    // The NMI stays pending for L1 with GIF = 0 after the #VMEXIT: the
    // window is open again, for L1's STGI.
    EXPECT_NE(m.vcpu.pending_events() & (1U << static_cast<unsigned>(cpu::EventKind::nmi)), 0U);
    EXPECT_TRUE(m.vcpu.vmcb01().intercept(ic::STGI));
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

// L2's WRMSR that L1 does not intercept and L0 does (KVM intercepts EFER and
// PAT for every guest): L0 emulates it on L2's state (KVM's svm_set_msr).
// The write takes effect in vmcb02 and the next #VMEXIT writes it to vmcb12;
// EFER.LMA stays the processor's, SVME stays in the hardware VMCB.
TEST(L2Msr, EferWriteTakesEffectAndTheExitWritesItBack) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::HLT);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const std::uint64_t before = m.vcpu.vmcb02().get(FieldId::efer);
    ASSERT_NE(before & arch::efer::NXE, 0U);
    ASSERT_NE(before & arch::efer::LMA, 0U);
    // NXE off, SCE on; LMA written as 0 (WRMSR does not change it).
    const std::uint64_t written = arch::efer::SVME | arch::efer::LME | arch::efer::SCE;
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::wrmsr, .index = arch::msr::EFER, .value = written});
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0);
    EXPECT_EQ(r.exit_code, ec::MSR);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::efer), written | arch::efer::LMA);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::hlt}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vmcb12().get(FieldId::efer), written | arch::efer::LMA);
}

// A reserved EFER bit, and a PAT entry with a reserved memory type, are
// #GP(0) in L2 (cpu/msr_rules.hpp, the processor's WRMSR rules): L0 injects
// it, vmcb02 keeps its values and RIP stays on the WRMSR.
TEST(L2Msr, IllegalEferOrPatWriteIsGpInL2) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const std::uint64_t efer = m.vcpu.vmcb02().get(FieldId::efer), pat = m.vcpu.vmcb02().get(FieldId::g_pat);
    const std::uint64_t rip = m.vcpu.vmcb02().get(FieldId::rip);
    for (const auto& [msr, value] : {std::pair{arch::msr::EFER, efer | (std::uint64_t{1} << 63)},
                                     std::pair{arch::msr::PAT, std::uint64_t{0x0007040600070402}}}) {
        const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::wrmsr, .index = msr, .value = value});
        EXPECT_EQ(r.outcome, Outcome::exception) << std::hex << msr;
        EXPECT_EQ(r.vector, 13) << std::hex << msr;
        EXPECT_TRUE(r.l0_exit);
    }
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::efer), efer);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::g_pat), pat);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip);
}

// Without nested paging L1 and L2 share one PAT (KVM with the
// NESTED_SVM_SHARED_PAT quirk off; selftest svm_nested_pat_test): L2's write
// is L1's PAT too. With nested paging L2 has its own (vmcb02's G_PAT), which
// the exit writes to vmcb12 while L1's PAT comes back unchanged.
TEST(L2Msr, PatWriteIsSharedWithoutNestedPagingAndL2sOwnWithIt) {
    constexpr std::uint64_t kPat = 0x0006060606060606;  // all WB, a legal PAT
    for (const bool npt : {false, true}) {
        Machine m;
        auto v = valid_vmcb12();
        v.set_intercept(ic::HLT);
        if (npt) {
            v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
            v.set(FieldId::nested_cr3, 0x30000);
        }
        m.put(v);
        const std::uint64_t l1_pat = m.vcpu.vmcb01().get(FieldId::g_pat);
        ASSERT_NE(l1_pat, kPat);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2) << "npt " << npt;
        const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::wrmsr, .index = arch::msr::PAT, .value = kPat});
        EXPECT_EQ(r.outcome, Outcome::handled_by_l0) << "npt " << npt;
        EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::g_pat), kPat) << "npt " << npt;
        ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::hlt}).outcome, Outcome::vmexit_to_l1);
        EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::g_pat), npt ? l1_pat : kPat) << "npt " << npt;
        EXPECT_EQ(m.vmcb12().get(FieldId::g_pat), npt ? kPat : v.get(FieldId::g_pat)) << "npt " << npt;
    }
}

// L2 clearing EFER.SVME that L1 does not intercept: undefined by the APM;
// KVM leaves guest mode and triple-faults L1 since 2026 (commit cdc69269b18a,
// selftest svm_nested_clear_efer_svme): the vCPU shuts down, vmcb12 gets no
// #VMEXIT. L1 intercepting EFER writes in its MSRPM gets the #VMEXIT instead.
TEST(L2Msr, ClearingEferSvmeShutsL1DownUnlessL1InterceptsTheWrite) {
    for (const bool l1_intercepts : {false, true}) {
        Machine m;
        auto v = valid_vmcb12();
        if (l1_intercepts) {
            std::array<std::uint8_t, cpu::kMsrpmSize> l1{};
            const std::uint32_t bit = *cpu::msrpm_bit(arch::msr::EFER) + 1;  // the write bit
            l1[bit / 8] = static_cast<std::uint8_t>(1U << (bit % 8));
            ASSERT_TRUE(m.mem.write(kMsrpm, l1));
            v.set(FieldId::msrpm_base_pa, kMsrpm);
            v.set_intercept(ic::MSR_PROT);
        }
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const std::uint64_t exit_code_before = m.vmcb12().get(FieldId::exit_code);
        const std::uint64_t cleared = m.vcpu.vmcb02().get(FieldId::efer) & ~arch::efer::SVME;
        const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::wrmsr, .index = arch::msr::EFER, .value = cleared});
        if (l1_intercepts) {
            EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
            EXPECT_EQ(r.exit_code, ec::MSR);
            EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
            continue;
        }
        EXPECT_EQ(r.outcome, Outcome::shutdown);
        EXPECT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
        EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), exit_code_before);
        EXPECT_EQ(m.vcpu.l1_vmrun().outcome, Outcome::shutdown);  // nothing runs any more
    }
}

// Clearing SVME with a reserved bit set is the reserved bit's #GP first:
// KVM's set_efer checks the value before svm_set_efer looks at SVME.
TEST(L2Msr, ClearingEferSvmeWithAReservedBitIsGpNotShutdown) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const std::uint64_t value = (m.vcpu.vmcb02().get(FieldId::efer) & ~arch::efer::SVME) | (std::uint64_t{1} << 63);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::wrmsr, .index = arch::msr::EFER, .value = value});
    EXPECT_EQ(r.outcome, Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
}

// L1 clearing its own EFER.SVME (out of guest mode) leaves GIF as it is:
// clearing SVME is not architected to set GIF (KVM commit 8312f1b9dd71).
TEST(L1Msr, ClearingEferSvmeLeavesGifAlone) {
    Machine m;
    ASSERT_EQ(m.vcpu.l1_clgi().outcome, Outcome::l1_continues);
    ASSERT_FALSE(m.vcpu.gif());
    const std::uint64_t efer = m.vcpu.vmcb01().get(FieldId::efer) & ~arch::efer::SVME;
    ASSERT_EQ(m.vcpu.l1_wrmsr(arch::msr::EFER, efer).outcome, Outcome::l1_continues);
    EXPECT_EQ(m.vcpu.vmcb01().get(FieldId::efer) & arch::efer::SVME, 0U);
    EXPECT_FALSE(m.vcpu.gif());
}

// An instruction missing from L1's CPUID (the vCPU's CPU model) is #UD in L2
// even where L1 intercepts it (KVM; kvm-unit-tests, Dec 2025): the processor
// raises #UD before the intercept check (APM 15.7), L0 intercepts #UD for
// itself and gives it back to L2. With the feature, L1 gets its #VMEXIT.
TEST(L2Instructions, AnInstructionMissingFromL1sCpuidIsUdEvenWhereL1InterceptsIt) {
    for (const auto& [kind, bit, feature] :
         {std::tuple{cpu::EventKind::rdtscp, ic::RDTSCP, checks::Feature::rdtscp},
          std::tuple{cpu::EventKind::rdpru, ic::RDPRU, checks::Feature::rdpru},
          std::tuple{cpu::EventKind::invpcid, ic::INVPCID, checks::Feature::invpcid}}) {
        for (const bool has : {false, true}) {
            Machine m;
            m.cpu.set(feature, has);
            m.enter_l2_intercepting(bit);
            const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
            const auto r = m.vcpu.l2_event(cpu::Event{.kind = kind, .insn_len = 3});
            if (has) {
                EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1) << cpu::event_name(kind) << ": " << r.note;
                EXPECT_EQ(r.exit_code, bit);
            } else {
                EXPECT_EQ(r.outcome, Outcome::exception) << cpu::event_name(kind) << ": " << r.note;
                EXPECT_EQ(r.vector, 6) << cpu::event_name(kind);
                EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
                EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip) << "a fault: RIP stays";
            }
        }
    }
}

// RDPRU that L1 does not intercept: KVM intercepts it for itself and makes
// it #UD (it offers no RDPRU to guests), whatever the CPU has.
TEST(L2Instructions, RdpruL1DoesNotInterceptIsUdFromL0) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::rdpru, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::exception) << r.note;
    EXPECT_EQ(r.vector, 6);
    EXPECT_EQ(r.exit_code, ec::RDPRU);
    EXPECT_TRUE(r.l0_exit);
}

// An x87 instruction in L2 with CR0.TS (lazy FPU switching) is #NM (APM
// 8.2.8): through L2's IDT, or #VMEXIT(EXCP_BASE + 7) to L1 when it intercepts
// #NM; L0 (KVM) does not intercept #NM.
TEST(L2Instructions, X87WithCr0TsIsNmInL2OrL1sWhenItInterceptsNm) {
    for (const bool l1_wants : {false, true}) {
        Machine m;
        auto v = valid_vmcb12();
        v.set(FieldId::cr0, v.get(FieldId::cr0) | arch::cr0::TS);
        if (l1_wants) v.set_intercept(ic::exception(7));
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::fpu});
        if (l1_wants) {
            EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
            EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 7);
        } else {
            EXPECT_EQ(r.outcome, Outcome::exception) << r.note;
            EXPECT_EQ(r.vector, 7);
            EXPECT_FALSE(r.l0_exit);
        }
    }
    // CLTS clears TS: the same instruction runs.
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::cr0, v.get(FieldId::cr0) | arch::cr0::TS);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clts}).outcome, Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::fpu}).outcome, Outcome::no_exit);
}
