// Triage at the speed of a debugging session (docs/formats.md "The command
// line"): "did you mean" for mistyped commands and options, --color, and
// `run --json` carrying each expectation's result and how the run ended.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "run_nsvm.hpp"

using cli_test::nsvm;

namespace {

std::vector<nlohmann::json> json_lines(const std::string& text) {
    std::vector<nlohmann::json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
}

TEST(CliDidYouMean, UnknownCommandNamesTheClosestAndListsTheCommands) {
    const auto r = nsvm("chek examples/valid-vmcb.json");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("unknown command 'chek' (did you mean 'check'?)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("commands: "), std::string::npos) << r.err;
}

TEST(CliDidYouMean, UnknownSubcommandOfAGroup) {
    const auto r = nsvm("checks shwo cr0.cd_nw");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("unknown command 'shwo' for 'nsvm checks' (did you mean 'show'?)"), std::string::npos) << r.err;
}

TEST(CliDidYouMean, NothingCloseSuggestsNothing) {
    const auto r = nsvm("frobnicate");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("unknown command 'frobnicate'; commands:"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("did you mean"), std::string::npos) << r.err;
}

TEST(CliDidYouMean, UnknownOptionAfterOptionsWithValues) {
    // --cpu's value is skipped, not taken for a command.
    const auto r = nsvm("check --cpu zen4 --profle kvm examples/valid-vmcb.json");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("unknown option '--profle' for 'nsvm check'; did you mean '--profile'?"), std::string::npos)
        << r.err;
}

TEST(CliDidYouMean, ATransposedOptionName) {
    const auto r = nsvm("check --jsno examples/valid-vmcb.json");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("did you mean '--json'?"), std::string::npos) << r.err;
}

TEST(CliDidYouMean, ADirectoryIsBadInputNamingIt) {
    const auto r = nsvm("check examples");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("examples: is a directory"), std::string::npos) << r.err;
}

TEST(CliColor, AlwaysStylesEvenIntoAFileAndNeverDoesNot) {
    const auto on = nsvm("check --color=always examples/valid-vmcb.json");
    EXPECT_EQ(on.status, 0);
    EXPECT_NE(on.out.find("\033["), std::string::npos);
    const auto before = nsvm("--color always check examples/valid-vmcb.json");
    EXPECT_EQ(before.out, on.out) << "--color before the subcommand is the same option";
    const auto off = cli_test::nsvm_with("", "check --color=never examples/valid-vmcb.json");
    EXPECT_EQ(off.status, 0);
    EXPECT_EQ(off.out.find("\033["), std::string::npos);
    const auto automatic = nsvm("check examples/valid-vmcb.json");
    EXPECT_EQ(automatic.out, off.out) << "auto: no styling when stdout is not a terminal";
}

TEST(CliColor, AnUnknownWhenIsBadInput) {
    const auto r = nsvm("check --color=sometimes examples/valid-vmcb.json");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--color"), std::string::npos) << r.err;
}

TEST(CliRunJson, EachStepCarriesItsExpectationsAndTheLastLineTheSummary) {
    const auto r = nsvm("run --json --check-invariants examples/scenarios/seed-gif.yaml");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto lines = json_lines(r.out);
    ASSERT_EQ(lines.size(), 2U);
    const auto& step = lines[0];
    ASSERT_TRUE(step["expect"].is_array());
    EXPECT_EQ(step["expect"].size(), 11U);
    for (const auto& e : step["expect"]) {
        EXPECT_TRUE(e["holds"].get<bool>()) << e.dump();
        EXPECT_FALSE(e.contains("got")) << e.dump();
        EXPECT_TRUE(e["line"].is_number_unsigned());
    }
    EXPECT_EQ(step["expect"][0]["key"], "outcome");
    EXPECT_EQ(step["invariants"], "hold");
    // A bit of state is a number, as GIF is.
    EXPECT_TRUE(step["gif"].is_number());
    EXPECT_TRUE(step["smm"].is_number());
    const auto& summary = lines[1]["summary"];
    EXPECT_EQ(summary["status"], "pass");
    EXPECT_EQ(summary["steps"], 1);
    EXPECT_EQ(summary["steps_run"], 1);
    EXPECT_FALSE(summary.contains("message"));
}

TEST(CliRunJson, AFailedExpectationSaysWhatWasGotAndEndsTheRun) {
    std::string text = cli_test::slurp(std::string(NSVM_SOURCE_DIR) + "/examples/scenarios/seed-gif.yaml");
    const auto at = text.find("check: cr0.cd_nw");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 16, "check: cr0.upper");
    const auto path = cli_test::write_temp("wrong-check.yaml", text);
    // Relative VMCB paths would start at the temp directory; seed-gif has none.
    const auto r = nsvm("run --json " + path.string());
    EXPECT_EQ(r.status, 1);
    const auto lines = json_lines(r.out);
    ASSERT_EQ(lines.size(), 2U);
    const auto& expect = lines[0]["expect"];
    ASSERT_EQ(expect.size(), 2U) << "the run stops at the first expectation that does not hold";
    EXPECT_TRUE(expect[0]["holds"].get<bool>());
    EXPECT_FALSE(expect[1]["holds"].get<bool>());
    EXPECT_EQ(expect[1]["wanted"], "cr0.upper");
    EXPECT_EQ(expect[1]["got"], "cr0.cd_nw");
    const auto& summary = lines[1]["summary"];
    EXPECT_EQ(summary["status"], "fail");
    EXPECT_NE(summary["message"].get<std::string>().find("expect check: wanted cr0.upper, got cr0.cd_nw"),
              std::string::npos);
    EXPECT_NE(r.err.find("expect check: wanted cr0.upper, got cr0.cd_nw"), std::string::npos) << r.err;
}

}  // namespace
