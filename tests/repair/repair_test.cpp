// The repair loop: minimal specific fixes first, the reference VMCB's
// values when they are not enough, honest about what cannot be fixed.
#include <gtest/gtest.h>

#include <random>

#include "nsvm/checks/evaluate.hpp"
#include "nsvm/repair/repair.hpp"
#include "support/valid_vmcb.hpp"

namespace {
using namespace nsvm;
using arch::FieldId;

TEST(Repair, ReferenceVmcbPassesEveryCheckOfEveryProfile) {
    // The values the generic repair copies must themselves be valid, on the
    // default model under every profile, with its maps where the tests back them.
    const auto v = repair::reference_vmcb();
    EXPECT_EQ(v.get(FieldId::iopm_base_pa), test_support::kIopmBase);
    EXPECT_EQ(v.get(FieldId::msrpm_base_pa), test_support::kMsrpmBase);
    const auto model = checks::default_model();
    for (const auto& p : checks::all_profiles()) {
        const checks::Context ctx{v, model, p, nullptr, nullptr};
        EXPECT_TRUE(checks::evaluate(ctx).failures.empty()) << p.name;
    }
}

TEST(Repair, AValidVmcbIsLeftAlone) {
    const auto v = test_support::valid_vmcb64();
    const auto r = repair::repair(v, checks::default_model(), checks::profile(checks::ProfileId::apm));
    EXPECT_TRUE(r.valid());
    EXPECT_TRUE(r.changes.empty());
    EXPECT_EQ(r.rounds, 0U);
    EXPECT_EQ(r.vmcb, v);
}

TEST(Repair, ClearsOnlyTheReservedCr4Bits) {
    auto v = test_support::valid_vmcb64();
    v.set(FieldId::cr4, 0x6F8 | (1ULL << 15) | (1ULL << 13));  // bit 15 reserved, VMXE Intel-only
    const auto r = repair::repair(v, checks::default_model(), checks::profile(checks::ProfileId::apm));
    ASSERT_TRUE(r.valid());
    ASSERT_EQ(r.changes.size(), 1U);
    EXPECT_EQ(r.changes[0].field, "save.cr4");
    EXPECT_EQ(r.changes[0].check_id, "cr4.mbz");
    EXPECT_EQ(r.changes[0].new_value, 0x6F8U);
}

TEST(Repair, LongModeWithoutPaeGetsPae) {
    auto v = test_support::valid_vmcb64();
    v.set(FieldId::cr4, 0x6F8 & ~0x20ULL);
    const auto r = repair::repair(v, checks::default_model(), checks::profile(checks::ProfileId::kvm));
    ASSERT_TRUE(r.valid());
    ASSERT_EQ(r.changes.size(), 1U);
    EXPECT_EQ(r.changes[0].check_id, "long_mode.pae");
    EXPECT_EQ(r.vmcb.get(FieldId::cr4), 0x6F8U);
}

TEST(Repair, UnfixableChecksAreReportedNotHidden) {
    const auto v = test_support::valid_vmcb64();
    checks::HostState host;
    host.cr0 = 0x80000011;  // EFER.SVME clear: #UD before the VMCB is read
    const auto r = repair::repair(v, checks::default_model(), checks::profile(checks::ProfileId::apm), &host);
    EXPECT_FALSE(r.valid());
    ASSERT_EQ(r.unrepaired.size(), 1U);
    EXPECT_EQ(r.unrepaired[0], "gate.efer_svme");
    EXPECT_TRUE(r.changes.empty());
}

TEST(Repair, RandomPagesBecomeValidOnEveryModelAndProfile) {
    // Property: whatever the bytes, the repaired VMCB passes every check
    // (without host state and guest memory, nothing is out of a field's reach).
    std::mt19937_64 rng(1234);
    for (const auto& cpu : checks::builtin_models()) {
        for (const auto& profile : checks::all_profiles()) {
            for (int i = 0; i < 40; ++i) {
                arch::Vmcb v;
                for (auto& b : v.page()) b = static_cast<std::uint8_t>(rng() & (i % 2 ? 0xFF : 0x01));
                const auto r = repair::repair(v, cpu, profile);
                EXPECT_TRUE(r.valid()) << cpu.name << "/" << profile.name << " #" << i << ": "
                                       << (r.unrepaired.empty() ? "" : r.unrepaired[0]);
                const checks::Context ctx{r.vmcb, cpu, profile, nullptr, nullptr};
                EXPECT_EQ(checks::vmrun_would_succeed(ctx), r.valid());
            }
        }
    }
}

}  // namespace
