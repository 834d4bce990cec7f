// evaluate_partial: checks whose fields the input does not give are not
// decided (never passed); with every field given it is evaluate().
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "nsvm/arch/bits.hpp"
#include "nsvm/checks/evaluate.hpp"

#include "fixtures.hpp"

namespace nsvm::checks::test {
namespace {

using arch::FieldId;

std::vector<bool> save_area_only() {
    std::vector<bool> g(arch::kFields.size(), false);
    for (const auto& f : arch::kFields) g[static_cast<std::size_t>(f.id)] = f.name.starts_with("save.");
    return g;
}

bool listed(const std::vector<const Check*>& cs, std::string_view id) {
    return std::any_of(cs.begin(), cs.end(), [&](const Check* c) { return c->id == id; });
}

TEST(EvaluatePartial, ControlChecksAreNotDecidedFromASaveArea) {
    auto v = valid_vmcb64();
    v.set(FieldId::cr0, v.get(FieldId::cr0) | arch::cr0::NW);  // CD = 0, NW = 1
    Scenario s;
    s.vmcb = v;
    const auto r = evaluate_partial(s.ctx(), save_area_only());
    EXPECT_EQ(r.verdict, Verdict::vmexit_invalid);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check->id, "cr0.cd_nw");
    EXPECT_TRUE(listed(r.undecided, "intercept.vmrun"));
    EXPECT_TRUE(listed(r.undecided, "asid.zero"));
    EXPECT_TRUE(listed(r.undecided, "event_inj.type"));
    EXPECT_FALSE(listed(r.undecided, "cr0.cd_nw"));
    EXPECT_FALSE(listed(r.undecided, "efer.svme"));
}

TEST(EvaluatePartial, ANamedFieldMissingIsNotDecidedEvenWhenTheSamplesAgree) {
    auto given = save_area_only();
    given[static_cast<std::size_t>(FieldId::cr0)] = false;
    Scenario s;
    const auto r = evaluate_partial(s.ctx(), given);
    EXPECT_TRUE(listed(r.undecided, "cr0.cd_nw"));
    EXPECT_TRUE(r.failures.empty());
    EXPECT_EQ(r.verdict, Verdict::valid);  // nothing decided fails; the caller says what is undecided
}

// Property: with every field given, the partial report is the full one, for
// many mutated VMCBs under every profile.
TEST(EvaluatePartial, EveryFieldGivenIsEvaluate) {
    std::mt19937_64 rng(20261206);
    const std::vector<bool> all(arch::kFields.size(), true);
    for (int n = 0; n < 300; ++n) {
        auto v = valid_vmcb64();
        for (int k = 0; k < 3; ++k) {
            const auto& f = arch::kFields[rng() % arch::kFields.size()];
            if (f.kind != arch::FieldKind::integer) continue;
            v.set(f.id, (v.get(f.id) ^ (std::uint64_t{1} << (rng() % (8 * f.width)))) & arch::width_mask(f.width));
        }
        for (auto p : kAllProfileIds) {
            Scenario s;
            s.vmcb = v;
            s.profile = p;
            const auto full = evaluate(s.ctx());
            const auto part = evaluate_partial(s.ctx(), all);
            ASSERT_TRUE(part.undecided.empty());
            ASSERT_EQ(part.verdict, full.verdict);
            ASSERT_EQ(part.failures.size(), full.failures.size());
            for (std::size_t i = 0; i < full.failures.size(); ++i)
                ASSERT_EQ(part.failures[i].check, full.failures[i].check);
        }
    }
}

}  // namespace
}  // namespace nsvm::checks::test
