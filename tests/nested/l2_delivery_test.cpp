// Exceptions L2 raises go through L2's IDT on the processor (APM 8.2.9,
// 8.9, 15.7.2): a fault while delivering one becomes the next event,
// contributory pairs and #PF make #DF, a fault while delivering #DF is a
// triple fault, which is #VMEXIT(SHUTDOWN) (KVM's L0 always intercepts it)
// and L1's only when L1 intercepts SHUTDOWN; an intercepted fault during
// delivery exits with EXITINTINFO naming the event being delivered.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
/// Clears the present bit of `vector`'s gate in the IDT give_l2_an_idt wrote.
void gate_not_present(Machine& m, unsigned vector) {
    std::uint64_t lo = 0;
    ASSERT_TRUE(m.mem.read_u64(kIdt + vector * 16, lo));
    ASSERT_TRUE(m.mem.write_u64(kIdt + vector * 16, lo & ~(std::uint64_t{1} << 47)));
}

cpu::Event gp() { return cpu::Event{.kind = cpu::EventKind::exception, .index = 13, .error_code = 0}; }

/// The #NP a not-present gate raises: selector index = vector, IDT bit, EXT.
constexpr std::uint32_t idt_error(unsigned vector) { return vector * 8 + 2 + 1; }
}  // namespace

TEST(L2Delivery, TwoContributoryFaultsMakeADoubleFaultThroughL2sIdt) {
    Machine m;
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    gate_not_present(m, 13);  // #GP's gate: #NP while delivering #GP
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(gp());
    EXPECT_EQ(r.outcome, Outcome::no_exit) << r.note;
    EXPECT_EQ(r.vector, 8) << "#GP then #NP: both contributory, #DF";
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(8));
    std::uint64_t error = ~0ULL;
    ASSERT_TRUE(m.mem.read_u64(kStackTop - 48, error));
    EXPECT_EQ(error, 0U) << "#DF pushes error code 0";
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L2Delivery, AnInterceptedFaultDuringDeliveryCarriesTheEventInExitIntInfo) {
    // #BP (benign) whose gate is not present: #NP while delivering it, no
    // #DF (APM 8.2.9, Table 8-7); L1 intercepts #NP.
    Machine m;
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    gate_not_present(m, 3);
    v.set_intercept(ic::exception(11));
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::exception, .index = 3});
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 11);
    EXPECT_EQ(r.exit_info_1, idt_error(3));
    // APM 15.7.2: EXITINTINFO is the #BP being delivered: V, TYPE 3
    // (exception), no error code.
    EXPECT_EQ(m.vmcb12().get(FieldId::exit_int_info), arch::event::V | (3U << arch::event::kTypeShift) | 3U);
}

TEST(L2Delivery, ATripleFaultShutsTheVcpuDownUnlessL1InterceptsShutdown) {
    for (const bool l1_wants : {false, true}) {
        Machine m;
        auto v = valid_vmcb12();
        give_l2_an_idt(m, v);
        gate_not_present(m, 13);
        gate_not_present(m, 8);  // #NP while delivering #DF: triple fault
        if (l1_wants) v.set_intercept(ic::SHUTDOWN);
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const auto r = m.vcpu.l2_event(gp());
        EXPECT_EQ(r.exit_code, ec::SHUTDOWN) << r.note;
        if (l1_wants) {
            ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
            EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
            // EXITINTINFO: the #DF whose delivery failed (error code 0).
            EXPECT_EQ(m.vmcb12().get(FieldId::exit_int_info),
                      arch::event::V | arch::event::EV | (3U << arch::event::kTypeShift) | 8U);
        } else {
            EXPECT_EQ(r.outcome, Outcome::shutdown) << r.note;
            EXPECT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
        }
    }
}

// Single step (APM 13.1.4): an L2 instruction that starts with RFLAGS.TF
// and completes is followed by #DB with DR6.BS, RIP past it. KVM's L0
// intercepts #DB: it gives the trap back to L2 (its IDT) or, when L1
// intercepts #DB, to L1. An instruction L0 emulates gets the same trap
// (kvm_skip_emulated_instruction); an instruction L1 intercepts none.
TEST(L2Delivery, SingleStepTrapsAfterEachCompletedInstruction) {
    constexpr std::uint64_t kBs = std::uint64_t{1} << 14;
    for (const bool l1_wants : {false, true}) {
        Machine m;
        auto v = valid_vmcb12();
        give_l2_an_idt(m, v);
        v.set(FieldId::rflags, arch::rflags::FIXED1 | arch::rflags::TF);
        v.set_intercept(ic::HLT);
        if (l1_wants) v.set_intercept(ic::exception(1));
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
        const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::nop, .insn_len = 1});
        if (l1_wants) {
            ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
            EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 1);
            EXPECT_EQ(m.vmcb12().get(FieldId::rip), rip + 1) << "a trap: RIP past the instruction";
            EXPECT_NE(m.vmcb12().get(FieldId::dr6) & kBs, 0U);
            continue;
        }
        ASSERT_EQ(r.outcome, Outcome::exception) << r.note;
        EXPECT_EQ(r.vector, 1);
        EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(1));
        EXPECT_NE(m.vcpu.vmcb02().get(FieldId::dr6) & kBs, 0U);
        std::uint64_t pushed_rip = 0;
        ASSERT_TRUE(m.mem.read_u64(kStackTop - 40, pushed_rip));
        EXPECT_EQ(pushed_rip, rip + 1);
        EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rflags) & arch::rflags::TF, 0U) << "the gate clears TF";
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    }
}

TEST(L2Delivery, SingleStepFollowsL0sEmulationButNotL1sIntercept) {
    Machine m;
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    v.set(FieldId::rflags, arch::rflags::FIXED1 | arch::rflags::TF);
    v.set_intercept(ic::HLT);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    // An intercepted HLT does not complete in L2: L1 gets HLT, no #DB.
    auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::hlt, .insn_len = 1});
    ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
    EXPECT_EQ(r.exit_code, ec::HLT);
    // CPUID, which only L0 intercepts (KVM emulates it): then the trap.
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
    r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid, .insn_len = 2});
    ASSERT_EQ(r.outcome, Outcome::exception) << r.note;
    EXPECT_EQ(r.vector, 1);
    EXPECT_EQ(r.exit_code, ec::CPUID);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(1));
    std::uint64_t pushed_rip = 0;
    ASSERT_TRUE(m.mem.read_u64(kStackTop - 40, pushed_rip));
    EXPECT_EQ(pushed_rip, rip + 2);
}
