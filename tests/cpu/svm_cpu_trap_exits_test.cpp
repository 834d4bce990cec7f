// The single-step trap's DR6 (B0-B3 cleared, BS set), and nRIP on exits
// that are not an instruction's own: a single-step trap after
// the instruction retired (APM 13.1.4) and a #DF raised while delivering a
// #GP (APM 8.2.9). The APM writes nRIP only for instruction intercepts
// (15.7.1); Bochs 2.7 writes its RIP on every exit (profile
// nrip_on_every_exit), which at those exits is no instruction's end (found by
// nsvm diff: prog/nop_tf_db_intercepted, prog/load_df_intercepted).
#include "cpu/svm_cpu_fixture.hpp"
#include "nsvm/cpu/control_regs.hpp"

#include <functional>

namespace nsvm::cpu::test {
namespace {

using arch::FieldId;
namespace ec = arch::exit_code;
namespace ic = arch::intercept;

Event nop() {
    Event e;
    e.kind = EventKind::nop;
    e.insn_len = 1;
    return e;
}

/// A 2-byte load from a non-canonical address: #GP(0) (APM 4.12.3).
Event noncanonical_load() {
    Event e;
    e.kind = EventKind::memory;
    e.linear = true;
    e.value = 0x8000000000000000ULL;
    e.insn_len = 2;
    return e;
}

/// Under the APM and the Bochs profile: enter `g`, run `e`, and hand the
/// VMCB its #VMEXIT wrote and the RIP L2 started at to `check`.
void each_profile(arch::Vmcb g, const Event& e,
                  const std::function<void(checks::ProfileId, const arch::Vmcb&, std::uint64_t)>& check) {
    for (const auto p : {checks::ProfileId::apm, checks::ProfileId::bochs}) {
        SCOPED_TRACE(std::string(checks::profile(p).name));
        Machine m(p);
        ASSERT_EQ(m.enter(g).outcome, SvmOutcome::entered_guest);
        const auto r = m.cpu.guest_event(e);
        ASSERT_EQ(r.outcome, SvmOutcome::vmexit) << r.note;
        check(p, m.vmcb(), g.get(FieldId::rip));
    }
}

TEST(SvmCpuNrip, SingleStepTrapExitsWithDr6BsAndBochsNripIsTheNextInstruction) {
    auto g = guest64();
    g.set(FieldId::rflags, g.get(FieldId::rflags) | arch::rflags::TF);
    g.set(FieldId::dr6, 0xFFFFFFFF);  // B0-B3 set from an earlier breakpoint
    g.set_intercept(ic::exception(1));
    each_profile(g, nop(), [](checks::ProfileId p, const arch::Vmcb& after, std::uint64_t rip) {
        EXPECT_EQ(after.get(FieldId::exit_code), ec::EXCP_BASE + 1);
        EXPECT_EQ(after.get(FieldId::rip), rip + 1);  // a trap: past the NOP
        EXPECT_EQ(after.get(FieldId::dr6), 0xFFFFFFF0U);  // BS set, B0-B3 cleared
        EXPECT_EQ(after.get(FieldId::next_rip), p == checks::ProfileId::bochs ? rip + 1 : 0U);
    });
}

TEST(SvmCpuNrip, DoubleFaultWhileDeliveringIsAtTheInstructionStart) {
    auto g = guest64();
    // Gates 0-9 only: #GP's gate (13) is beyond the limit, so its delivery
    // faults with #GP again, a double fault (APM 8.2.9), intercepted.
    auto idtr = g.segment(arch::Seg::idtr);
    idtr.limit = 10 * 16 - 1;
    g.set_segment(arch::Seg::idtr, idtr);
    g.set_intercept(ic::exception(8));
    each_profile(g, noncanonical_load(), [](checks::ProfileId p, const arch::Vmcb& after, std::uint64_t rip) {
        EXPECT_EQ(after.get(FieldId::exit_code), ec::EXCP_BASE + 8);
        EXPECT_EQ(after.get(FieldId::exit_info_1), 0U);  // #DF's error code
        // APM 15.7.2: EXITINTINFO names the event being delivered when the
        // second fault hit: the load's #GP(0).
        EXPECT_EQ(after.get(FieldId::exit_int_info),
                  arch::event::V | arch::event::EV | (3U << arch::event::kTypeShift) | 13U);
        EXPECT_EQ(after.get(FieldId::exit_int_info_err), 0U);
        EXPECT_EQ(after.get(FieldId::rip), rip);
        EXPECT_EQ(after.get(FieldId::next_rip), p == checks::ProfileId::bochs ? rip : 0U);
    });
}

}  // namespace
}  // namespace nsvm::cpu::test
