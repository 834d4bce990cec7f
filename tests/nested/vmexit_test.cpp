// Leaving L2: the #VMEXIT that writes vmcb12 back and restores L1 (KVM's
// nested_svm_vmexit; APM 15.6), and the routing that decides whether an exit
// from L2 goes to L1 or stays with L0 (KVM's nested_svm_exit_special and
// nested_svm_intercept).
#include <gtest/gtest.h>

#include <array>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

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

TEST(Vmexit, ClearingSvmeWhileL2RunsForcesExitWithGif1) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    (void)m.vcpu.host_set_efer(0xD00);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_TRUE(m.vcpu.gif());
}

TEST(Routing, L2VmrunIsReflectedToL1) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmrun, .insn_len = 3});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(r.exit_code, ec::VMRUN);
}

// L1 intercepts only the selective CR0 write; L0 (kvm_default) intercepts
// every CR0 write, so the hardware exit from L2 is WRITE_CR0 and L0 sees it
// first. L0 must still reflect it to L1 as CR0_SEL_WRITE when bits other
// than TS/MP change (APM 15.9.2; KVM check_selective_cr0_intercepted,
// and the 2025 series "nSVM: Fixes for SVM_EXIT_CR0_SEL_WRITE injection").
TEST(Routing, SelectiveCr0InterceptOfL1IsHonouredWhenL0InterceptsCr0Writes) {
    Machine m;
    m.enter_l2_intercepting(ic::SELECTIVE_CR0);
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

// LMSW and CLTS are CR0 writes for the intercepts (APM 15.9.1); LMSW, not
// CLTS, also for the selective one (15.9.2; kvm-unit-tests' selective CR0
// and LMSW tests). With decode assists EXITINFO1 bit 63 is clear (not a MOV).
TEST(Routing, LmswAndCltsAreCr0WritesAndOnlyLmswIsSelective) {
    constexpr std::uint64_t kCr0 = 0x80050033;  // PE MP ET NE WP AM PG
    Machine m;
    m.enter_l2_intercepting(ic::SELECTIVE_CR0);
    const auto lmsw = [](std::uint64_t src) { return cpu::Event{.kind = cpu::EventKind::lmsw, .value = src, .insn_len = 3}; };
    // TS set, MP cleared (LMSW loads CR0[3:0] but cannot clear PE): no
    // bit beyond TS/MP changes, L0 emulates.
    auto r = m.vcpu.l2_event(lmsw(arch::cr0::TS));
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0) << r.note;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::cr0), (kCr0 & ~arch::cr0::MP) | arch::cr0::TS);
    // CLTS clears TS and is never selective.
    r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clts});
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0) << r.note;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::cr0), kCr0 & ~arch::cr0::MP);
    // EM changes: L1's selective intercept.
    r = m.vcpu.l2_event(lmsw(arch::cr0::PE | arch::cr0::MP | arch::cr0::EM));
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
    EXPECT_EQ(r.exit_code, ec::CR0_SEL_WRITE);
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_info_1) >> 63, 0U) << "LMSW is not a MOV CRn";
    EXPECT_EQ(m.vmcb12().get(FieldId::cr0), kCr0 & ~arch::cr0::MP) << "the write did not happen";

    // L1 intercepting every CR0 write gets CLTS as WRITE_CR0.
    Machine n;
    n.enter_l2_intercepting(ic::cr_write(0));
    r = n.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clts});
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
    EXPECT_EQ(r.exit_code, ic::cr_write(0));
}

TEST(Routing, LmswCannotClearPeAndIsGpAboveCpl0) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::lmsw, .value = 0, .insn_len = 3}).outcome,
              Outcome::handled_by_l0);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::cr0) & 0xF, arch::cr0::PE) << "PE stays, MP/EM/TS cleared";
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);

    Machine u;
    auto v = valid_vmcb12();
    at_cpl3(v);
    u.put(v);
    ASSERT_EQ(u.vmrun().outcome, Outcome::entered_l2);
    for (auto k : {cpu::EventKind::lmsw, cpu::EventKind::clts}) {
        const auto r = u.vcpu.l2_event(cpu::Event{.kind = k, .insn_len = 3});
        EXPECT_EQ(r.outcome, Outcome::exception) << cpu::event_name(k) << ": " << r.note;
        EXPECT_EQ(r.vector, 13) << cpu::event_name(k);
    }
}

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
};
}  // namespace

// L0 passes port 0x80 through to L1; L1 intercepts it for L2 in its IOPM.
// vmcb02 runs on L0's IOPM, so without a merge L2's OUT 0x80 would never
// exit and L1's intercept would be bypassed (APM 15.10.1: with IOIO_PROT the
// port's bit in *L1's* IOPM must intercept; L0's own ports stay intercepted).
TEST(Routing, PortL0PassesThroughIsStillInterceptedForL1) {
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
