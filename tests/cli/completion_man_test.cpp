// The bash completion and the man page are generated from the command
// definitions (`nsvm completion bash`, `nsvm man`): they must know every
// command and option nsvm accepts, complete the way a user types, and the
// man page must be clean roff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "run_nsvm.hpp"

using cli_test::nsvm;

namespace {

/// COMPREPLY after completing `words` (the last one is being typed), with
/// the generated script sourced into a bash without the user's profile.
std::string complete(const std::string& words) {
    const auto script = cli_test::write_temp("completion.bash", nsvm("completion bash").out);
    const auto out = cli_test::write_temp("completion.out", "");
    const std::string cmd = "cd '" + std::string(NSVM_SOURCE_DIR) + "' && bash --norc --noprofile -c 'source \"" +
                            script.string() + "\"; COMP_WORDS=(" + words +
                            "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _nsvm; echo \"${COMPREPLY[*]}\"' > '" +
                            out.string() + "' 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::string text = cli_test::slurp(out);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

TEST(CliCompletion, CommandsOptionsAndSubcommandsComplete) {
    EXPECT_EQ(complete("nsvm che"), "check checks");
    EXPECT_EQ(complete("nsvm check --js"), "--json");
    EXPECT_EQ(complete("nsvm oracle r"), "run");
    EXPECT_EQ(complete("nsvm --color never checks s"), "show") << "--color's value is not a command";
    EXPECT_EQ(complete("nsvm diff --bou"), "--boundary");
    // --color falls through from the top level, so every command offers it.
    EXPECT_EQ(complete("nsvm run --col"), "--color");
}

TEST(CliCompletion, FilesWhereAFileOrAValueGoes) {
    EXPECT_EQ(complete("nsvm check examples/valid-vmcb.js"), "examples/valid-vmcb.json");
    EXPECT_EQ(complete("nsvm check --cpu examples/valid-vmcb.js"), "examples/valid-vmcb.json");
}

TEST(CliMan, NamesEveryCommandAndOptionOfCheck) {
    const auto r = nsvm("man");
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* cmd : {"nsvm check file", "nsvm run file", "nsvm oracle run", "nsvm diff", "nsvm exit\\-code code",
                            "nsvm checks show", "nsvm completion shell"})
        EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
    for (const char* opt : {"\\-\\-format", "\\-\\-json", "\\-\\-partial", "\\-\\-set", "\\-\\-dump", "\\-\\-cpu",
                            "\\-\\-profile", "\\-\\-maxphyaddr", "\\-\\-features", "\\-\\-color"})
        EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
    EXPECT_NE(r.out.find(".SH EXIT STATUS"), std::string::npos);
    EXPECT_NE(r.out.find("(default: zen4)"), std::string::npos) << "defaults come from the definitions";
}

TEST(CliMan, IsCleanRoffAndTheBuildWroteTheSame) {
    const auto page = cli_test::write_temp("nsvm.1", nsvm("man").out);
    const auto err = cli_test::write_temp("groff.err", "");
    const std::string cmd = "groff -man -Tutf8 -ww -z '" + page.string() + "' 2> '" + err.string() + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    EXPECT_EQ(cli_test::slurp(err), "") << "groff warnings";
    EXPECT_EQ(cli_test::slurp(std::string(NSVM_BINARY_DIR) + "/share/man/man1/nsvm.1"), nsvm("man").out);
    EXPECT_EQ(cli_test::slurp(std::string(NSVM_BINARY_DIR) + "/share/bash-completion/completions/nsvm"),
              nsvm("completion bash").out);
}

TEST(CliMan, AnUnwritableOutputIsBadInput) {
    const auto r = nsvm("man -o /nonexistent-dir/nsvm.1");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("/nonexistent-dir/nsvm.1: cannot write"), std::string::npos) << r.err;
}

}  // namespace
