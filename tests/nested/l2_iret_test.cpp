// L2's IRET on the processor (APM Vol.3 IRET, APM 15.21.10; docs/nested.md
// "Virtual interrupts"): L1's IRET intercept takes it before it executes;
// otherwise it returns from L2's handler and, with nested vNMI, unmasks
// virtual NMIs. An IRET only L0 intercepts (KVM's iret_interception) is run
// by the processor after L0 saw it.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
namespace ictl = arch::int_ctl;

cpu::Event iretq() {
    cpu::Event e;
    e.kind = cpu::EventKind::iret;
    e.insn_len = 2;  // 48 CF
    return e;
}

/// valid_vmcb12 with L2's IDT, a GDT that also holds SS (IRETQ reloads it)
/// and nested vNMI with a virtual NMI pending.
arch::Vmcb with_pending_vnmi(Machine& m) {
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    EXPECT_TRUE(m.mem.write_u64(kGdt + 0x10, 0x00CF93000000FFFFULL));  // writable data, as vmcb12's SS
    v.set_segment(arch::Seg::gdtr, {0, 0, 0x17, kGdt});
    v.set_intercept(ic::NMI);  // V_NMI_ENABLE needs it (vnmi.nmi_intercept)
    v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_PENDING);
    return v;
}

std::uint64_t vnmi_bits(Machine& m) {
    return m.vcpu.vmcb02().get(FieldId::int_ctl) & (ictl::V_NMI_PENDING | ictl::V_NMI_BLOCKING);
}
}  // namespace

TEST(L2Iret, ReturnsFromTheNmiHandlerAndUnmasksVirtualNmis) {
    Machine m;
    const auto v = with_pending_vnmi(m);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::interrupt);
    ASSERT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(2));
    ASSERT_EQ(vnmi_bits(m), ictl::V_NMI_BLOCKING);

    const auto r = m.vcpu.l2_event(iretq());
    ASSERT_EQ(r.outcome, Outcome::no_exit) << r.note;
    EXPECT_FALSE(r.l0_exit);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), v.get(FieldId::rip));
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rsp), v.get(FieldId::rsp));
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rflags), v.get(FieldId::rflags));
    EXPECT_EQ(vnmi_bits(m), 0U);
}

TEST(L2Iret, L1sInterceptTakesItBeforeItExecutes) {
    Machine m;
    auto v = with_pending_vnmi(m);
    v.set_intercept(ic::IRET);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::interrupt);
    const auto r = m.vcpu.l2_event(iretq());
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
    EXPECT_EQ(r.exit_code, arch::exit_code::IRET);
    const arch::Vmcb out = m.vmcb12();
    EXPECT_EQ(out.get(FieldId::rip), l2_handler(2));  // at the IRET
    EXPECT_EQ(out.get(FieldId::next_rip), l2_handler(2) + 2);
    EXPECT_EQ(out.get(FieldId::int_ctl) & ictl::V_NMI_BLOCKING, ictl::V_NMI_BLOCKING);
}

TEST(L2Iret, L0sNmiMaskInterceptsItAndTheProcessorRunsItAfterL0SawIt) {
    // L0 without vNMI masks NMIs in software with the IRET intercept after
    // injecting L1's NMI (svm_inject_nmi); the mask is the vCPU's, so L2's
    // IRET is L0's exit, and KVM's iret_interception lets the guest execute
    // the IRET it stopped: it returns, NMIs are unmasked, and the NMI L0
    // held meanwhile is injected (masking again).
    Machine m(checks::ProfileId::kvm, {}, kvm_without_vnmi());
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::handled_by_l0);
    ASSERT_TRUE(m.vcpu.nmi_masked());
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    ASSERT_TRUE(m.mem.write_u64(kGdt + 0x10, 0x00CF93000000FFFFULL));  // writable data, as vmcb12's SS
    v.set_segment(arch::Seg::gdtr, {0, 0, 0x17, kGdt});
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_TRUE(m.vcpu.vmcb02().intercept(ic::IRET));  // L0's, through recalc_intercepts
    // INT3 in L2, not intercepted: L2's handler runs with the return frame.
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::exception, .index = 3, .insn_len = 1,
                                         .software = true})
                  .outcome,
              Outcome::no_exit);  // delivered through L2's IDT
    ASSERT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(3));
    ASSERT_EQ(m.vcpu.external(cpu::EventKind::nmi).outcome, Outcome::held_pending);  // masked

    const auto r = m.vcpu.l2_event(iretq());
    EXPECT_EQ(r.owner, nested::Owner::l0) << r.note;
    EXPECT_TRUE(r.l0_exit);
    EXPECT_EQ(r.exit_code, arch::exit_code::IRET);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), v.get(FieldId::rip) + 1);  // it returned past the INT3
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rsp), v.get(FieldId::rsp));
    EXPECT_EQ(m.vcpu.pending_events(), 0U);        // the held NMI was injected ...
    EXPECT_TRUE(m.vcpu.nmi_masked());              // ... and masks NMIs again
    EXPECT_TRUE(m.vcpu.vmcb02().intercept(ic::IRET));
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}
