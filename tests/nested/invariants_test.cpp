// The Vcpu's invariants (Vcpu::check_invariants): a property test over random
// vmcb12s and L2 event sequences under every profile, and the invariants
// catching the states they exist for.
#include <gtest/gtest.h>

#include <iterator>
#include <random>
#include <string>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

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
