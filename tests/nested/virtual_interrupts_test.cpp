// Virtual interrupts in L2 (APM 15.21.4, 15.21.10): vmcb12's V_IRQ and
// virtual NMI reach vmcb02 (KVM's nested_vmcb02_prepare_control), and the
// processor takes them at L2's instruction boundaries: through L2's IDT, or
// as #VMEXIT(VINTR) to L1 when L1 intercepts it. STI, CLI and the interrupt
// shadow decide when that boundary comes.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
namespace ictl = arch::int_ctl;
constexpr std::uint8_t kVector = 0x41;

/// valid_vmcb12 with an IDT, V_IRQ for kVector with `int_ctl` bits, and RFLAGS.IF = `if_set`.
arch::Vmcb with_virq(Machine& m, std::uint64_t int_ctl, bool if_set) {
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    v.set(FieldId::int_ctl, ictl::V_IRQ | int_ctl);
    v.set(FieldId::int_vector, kVector);
    v.set(FieldId::rflags, arch::rflags::FIXED1 | (if_set ? arch::rflags::IF : 0));
    return v;
}

cpu::Event l2(cpu::EventKind k) {
    cpu::Event e;
    e.kind = k;
    e.insn_len = cpu::default_insn_len(k);
    return e;
}

std::uint64_t vmcb02_int_ctl(Machine& m) { return m.vcpu.vmcb02().get(FieldId::int_ctl); }

constexpr std::uint64_t prio(std::uint64_t p) { return p << 16; }

/// L2's MOV to CR8 of `value`.
cpu::Event cr8_write(std::uint64_t value) {
    cpu::Event e = l2(cpu::EventKind::cr_write);
    e.index = 8;
    e.value = value;
    return e;
}
}  // namespace

TEST(VirtualInterrupts, VIrqAtVmrunGoesThroughL2sIdtBeforeItsFirstInstruction) {
    Machine m;
    auto v = with_virq(m, ictl::V_IGN_TPR, true);
    const auto entry_rip = v.get(FieldId::rip);
    m.put(v);
    const auto r = m.vmrun();
    ASSERT_EQ(r.outcome, Outcome::interrupt) << r.note;
    EXPECT_EQ(r.vector, kVector);
    ASSERT_EQ(m.vcpu.mode(), nested::Mode::l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(kVector));
    EXPECT_EQ(vmcb02_int_ctl(m) & ictl::V_IRQ, 0U) << "V_IRQ clears when the interrupt is taken";
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rflags) & arch::rflags::IF, 0U) << "an interrupt gate clears IF";
    std::uint64_t pushed_rip = 0;
    ASSERT_TRUE(m.mem.read_u64(kStackTop - 40, pushed_rip));
    EXPECT_EQ(pushed_rip, entry_rip) << "an interrupt returns to the instruction it came before";
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // The next #VMEXIT writes V_IRQ = 0 back to vmcb12 (nested_sync_control_from_vmcb02).
    const auto x = m.vcpu.l2_event(l2(cpu::EventKind::vmrun));
    ASSERT_EQ(x.outcome, Outcome::vmexit_to_l1) << x.note;
    EXPECT_EQ(m.vmcb12().get(FieldId::int_ctl) & ictl::V_IRQ, 0U);
}

TEST(VirtualInterrupts, PriorityMustBeAboveVTprUnlessIgnored) {
    // APM 15.21.4: V_INTR_PRIO > V_TPR. At equal priority it stays pending.
    {
        Machine m;
        m.put(with_virq(m, prio(5) | 5, true));
        const auto r = m.vmrun();
        EXPECT_EQ(r.outcome, Outcome::entered_l2) << r.note;
        EXPECT_NE(vmcb02_int_ctl(m) & ictl::V_IRQ, 0U);
    }
    {
        Machine m;
        m.put(with_virq(m, prio(6) | 5, true));
        const auto r = m.vmrun();
        EXPECT_EQ(r.outcome, Outcome::interrupt) << r.note;
        EXPECT_EQ(r.vector, kVector);
    }
    {
        Machine m;
        m.put(with_virq(m, prio(0) | ictl::V_IGN_TPR | 0xF, true));
        EXPECT_EQ(m.vmrun().outcome, Outcome::interrupt);
    }
}

TEST(VirtualInterrupts, StiOpensTheWindowOnlyAfterTheNextInstruction) {
    Machine m;
    m.put(with_virq(m, ictl::V_IGN_TPR, false));
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2) << "IF = 0 holds the virtual interrupt";
    const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
    const auto sti = m.vcpu.l2_event(l2(cpu::EventKind::sti));
    EXPECT_EQ(sti.outcome, Outcome::no_exit) << sti.note;
    EXPECT_NE(m.vcpu.vmcb02().get(FieldId::rflags) & arch::rflags::IF, 0U);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_state) & arch::int_state::INTERRUPT_SHADOW,
              arch::int_state::INTERRUPT_SHADOW);
    EXPECT_NE(vmcb02_int_ctl(m) & ictl::V_IRQ, 0U) << "the STI shadow holds it";
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip + 1);
    const auto nop = m.vcpu.l2_event(l2(cpu::EventKind::nop));
    ASSERT_EQ(nop.outcome, Outcome::interrupt) << nop.note;
    EXPECT_EQ(nop.vector, kVector);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(kVector));
    std::uint64_t pushed_rip = 0;
    ASSERT_TRUE(m.mem.read_u64(kStackTop - 40, pushed_rip));
    EXPECT_EQ(pushed_rip, rip + 2) << "after STI and NOP";
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(VirtualInterrupts, StiWithIfAlreadySetMakesNoShadow) {
    Machine m;
    m.put(with_virq(m, prio(2) | 3, true));  // held by V_TPR, not by IF
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.l2_event(l2(cpu::EventKind::sti)).outcome, Outcome::no_exit);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_state) & arch::int_state::INTERRUPT_SHADOW, 0U);
    EXPECT_EQ(m.vcpu.l2_event(l2(cpu::EventKind::cli)).outcome, Outcome::no_exit);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rflags) & arch::rflags::IF, 0U);
}

TEST(VirtualInterrupts, VintrInterceptedByL1ExitsToL1WithVIrqStillPending) {
    Machine m;
    auto v = with_virq(m, ictl::V_IGN_TPR, false);
    v.set_intercept(ic::VINTR);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_EQ(m.vcpu.l2_event(l2(cpu::EventKind::sti)).outcome, Outcome::no_exit);
    const auto r = m.vcpu.l2_event(l2(cpu::EventKind::nop));
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
    EXPECT_EQ(r.exit_code, ec::VINTR);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    const auto v12 = m.vmcb12();
    EXPECT_NE(v12.get(FieldId::int_ctl) & ictl::V_IRQ, 0U) << "not taken: still pending for L1 to see";
    EXPECT_EQ(v12.get(FieldId::rip), v.get(FieldId::rip) + 2);
    EXPECT_FALSE(m.vcpu.gif());
}

TEST(VirtualInterrupts, L2LoweringVTprThroughCr8LetsItIn) {
    // With V_INTR_MASKING (KVM always sets it in vmcb02) MOV to CR8 writes V_TPR.
    Machine m;
    m.put(with_virq(m, prio(4) | 4, true));
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.l2_event(cr8_write(4)).outcome, Outcome::handled_by_l0) << "V_TPR 4: still held";
    const auto r = m.vcpu.l2_event(cr8_write(3));
    ASSERT_EQ(r.outcome, Outcome::interrupt) << r.note;
    EXPECT_EQ(vmcb02_int_ctl(m) & ictl::V_TPR, 3U);
}

TEST(VirtualInterrupts, Cr8WithBitsAbove3IsGpInL2) {
    Machine m;
    m.put(with_virq(m, prio(4) | 4, true));
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto gp = m.vcpu.l2_event(cr8_write(0x13));  // APM 3.1.5: bits 63:4 are MBZ
    ASSERT_EQ(gp.outcome, Outcome::exception) << gp.note;
    EXPECT_EQ(gp.vector, 13);
    EXPECT_EQ(vmcb02_int_ctl(m) & ictl::V_TPR, 4U);
}

TEST(VirtualInterrupts, VirtualNmiIsTakenOnceAndBlocksTheNext) {
    // APM 15.21.10: V_NMI_PENDING -> V_NMI_BLOCKING, through vector 2.
    Machine m;
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    v.set_intercept(ic::NMI);  // vNMI needs L1's NMI intercept (consistency check vnmi.nmi_intercept)
    v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_PENDING);
    m.put(v);
    const auto r = m.vmrun();
    ASSERT_EQ(r.outcome, Outcome::interrupt) << r.note;
    EXPECT_EQ(r.vector, 2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(2));
    EXPECT_EQ(vmcb02_int_ctl(m) & (ictl::V_NMI_PENDING | ictl::V_NMI_BLOCKING), ictl::V_NMI_BLOCKING);
}

TEST(VirtualInterrupts, StiAndCliAboveIoplAreGpInL2) {
    Machine m;
    auto v = with_virq(m, prio(1) | 2, false);  // held by V_TPR whatever IF says
    at_cpl3(v);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(l2(cpu::EventKind::sti));
    EXPECT_EQ(r.outcome, Outcome::exception) << r.note;
    EXPECT_EQ(r.vector, 13);
}
