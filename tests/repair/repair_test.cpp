// The repair loop: minimal specific fixes first, the reference VMCB's
// values when they are not enough, honest about what cannot be fixed.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "nsvm/arch/bits.hpp"
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

// The SEV-SNP checks read the VMSA's SEV_FEATURES (VMSA 3B0h, APM Appendix B
// Table B-4), which the repair never edits: the VMCB half of a conflict is
// fixed (AVIC_ENABLE, SSSCheckEn), a conflict inside SEV_FEATURES itself is
// reported unrepaired, and SEV-ES is never switched off to hide it.
TEST(Repair, SnpChecksFixTheVmcbHalfAndReportTheVmsaHalf) {
    auto es = test_support::valid_vmcb64();
    es.set(FieldId::misc_ctl, 7);  // NP, SEV, SEV-ES
    es.set(FieldId::misc_ctl2, 1);  // LBR virtualization
    es.set(FieldId::nested_cr3, 0x5000);
    const auto& apm = checks::profile(checks::ProfileId::apm);
    const auto model = checks::default_model();
    checks::VmsaState none;
    none.sev_features = 0;
    ASSERT_TRUE(checks::evaluate(checks::Context{es, model, apm, nullptr, nullptr, &none}).failures.empty());

    // Restricted Injection (bit 3) with the VMCB's AVIC: AVIC_ENABLE goes.
    checks::VmsaState restricted;
    restricted.sev_features = 1ULL << 3;
    auto avic = es;
    avic.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE);
    const auto a = repair::repair(avic, model, apm, nullptr, &restricted);
    EXPECT_TRUE(a.valid());
    ASSERT_EQ(a.changes.size(), 1U);
    EXPECT_EQ(a.changes[0].check_id, "snp.restricted_with_avic");
    EXPECT_EQ(a.changes[0].field, "control.int_ctl");
    EXPECT_EQ(a.vmcb.get(FieldId::int_ctl) & arch::int_ctl::AVIC_ENABLE, 0U);

    // Both injection modes (bits 3 and 4): nothing in the VMCB fixes that.
    checks::VmsaState both;
    both.sev_features = (1ULL << 3) | (1ULL << 4);
    const auto b = repair::repair(es, model, apm, nullptr, &both);
    EXPECT_FALSE(b.valid());
    EXPECT_EQ(b.unrepaired, (std::vector<std::string>{"snp.restricted_and_alternate"}));
    EXPECT_TRUE(b.changes.empty());
    EXPECT_EQ(b.vmcb.get(FieldId::misc_ctl), 7U);

    // P9 on Zen 5: the mask (bit 63) without DebugSwap (bit 5), which the
    // VMSA enables: the mask gains bit 5; SEV-ES stays on.
    checks::VmsaState debug_swap;
    debug_swap.sev_features = 1ULL << 5;
    auto masked = es;
    masked.set(FieldId::allowed_sev_features, 1ULL << 63);
    const auto p9 = repair::repair(masked, *checks::find_builtin_model("zen5"), apm, nullptr, &debug_swap);
    EXPECT_TRUE(p9.valid()) << (p9.unrepaired.empty() ? "" : p9.unrepaired[0]);
    ASSERT_EQ(p9.changes.size(), 1U);
    EXPECT_EQ(p9.changes[0].check_id, "snp.allowed_sev_features");
    EXPECT_EQ(p9.vmcb.get(FieldId::allowed_sev_features), (1ULL << 63) | (1ULL << 5));
    EXPECT_EQ(p9.vmcb.get(FieldId::misc_ctl), 7U);

    // Without the VMSA the check is not decided: nothing to repair.
    const auto u = repair::repair(es, model, apm);
    EXPECT_TRUE(u.valid());
    EXPECT_TRUE(u.changes.empty());
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
