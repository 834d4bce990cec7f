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
