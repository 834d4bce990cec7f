// Hostile names echoed in messages: escaped (an escape sequence or a newline
// cannot forge output), cut with their length, and never worth quadratic
// time in "did you mean" (a 10 MB name returns at once: the ctest timeout,
// not a timer, catches a regression).
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/util/text.hpp"

using namespace nsvm;
using namespace nsvm::formats::test;

// ---------------------------------------------------------------- findings 4, 5: names

TEST(TextHardening, ClosestOfATenMegabyteNameIsEmpty) {
    const std::string huge(10'000'000, 'a');
    const std::vector<std::string> candidates = {"asid", "cr0", "intercepts", std::string(5'000'000, 'a')};
    EXPECT_EQ(util::closest(huge, candidates), "");
    EXPECT_EQ(util::closest("asdi", candidates), "asid");
    EXPECT_EQ(util::closest("intercept", candidates), "intercepts");
}

TEST(TextHardening, ClosestSkipsCandidatesOfAFarLength) {
    EXPECT_EQ(util::closest("cr0", std::vector<std::string>{"cr0_and_more"}), "");
    EXPECT_EQ(util::closest("efer", std::vector<std::string>{"eferx", "efr"}), "eferx");
}

TEST(TextHardening, PrintableEscapesControlsAndCutsLongText) {
    EXPECT_EQ(util::printable("a\x1b[31mb\nc"), "a\\x1b[31mb\\x0ac");
    const auto cut = util::printable(std::string(1'000'000, 'n'));
    EXPECT_EQ(cut, std::string(80, 'n') + "\u2026(1000000 bytes)");
}

TEST(TextHardening, UnknownNamesAreEchoedEscapedAndCut) {
    const std::string evil = "\x1b[2J\nforged line" + std::string(1'000'000, 'z');
    const auto model = checks::find_builtin_model(evil);
    ASSERT_FALSE(model.has_value());
    EXPECT_FALSE(contains(model.error(), "\x1b")) << model.error();
    EXPECT_FALSE(contains(model.error(), "\n")) << model.error();
    EXPECT_TRUE(contains(model.error(), "\\x1b[2J\\x0aforged line")) << model.error();
    EXPECT_LT(model.error().size(), 400U);
    const auto prof = checks::find_profile(evil);
    ASSERT_FALSE(prof.has_value());
    EXPECT_FALSE(contains(prof.error(), "\x1b"));
    EXPECT_LT(prof.error().size(), 400U);
    checks::CpuModel m = checks::default_model();
    const auto feat = checks::apply_feature_edits(m, "+" + evil);
    ASSERT_FALSE(feat.has_value());
    EXPECT_FALSE(contains(feat.error(), "\x1b"));
    EXPECT_LT(feat.error().size(), 400U);
}
