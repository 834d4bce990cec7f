// A long `nsvm diff` on a terminal: one updating progress line on stderr
// (forced here with --progress; off when stderr is not a terminal), and
// vectors that a known divergence explains only counted in the summary
// unless --verbose.
#include <gtest/gtest.h>

#include "cli/run_nsvm.hpp"

namespace {

using cli_test::nsvm;

const std::string kExec = std::string(NSVM_BINARY_DIR) + "/nsvm_exec_backend";

TEST(ProgressCli, ProgressLineShowsDoneRateUnexplainedAndTimeLeft) {
    // About 1,300 vectors/s through the exec backend here: well past the
    // line's first update at 250 ms.
    const auto r = nsvm("diff --progress --backend 'exec:" + kExec + "' --seed 5 --count 1500");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("\r\033[K"), std::string::npos) << r.err;
    const auto at = r.err.find("/1500 vectors (");
    ASSERT_NE(at, std::string::npos) << r.err;
    const auto line = r.err.substr(at, r.err.find('\r', at) - at);
    EXPECT_NE(line.find("/s, 0 unexplained, "), std::string::npos) << line;
    EXPECT_NE(line.find(" left"), std::string::npos) << line;
    // The report itself (stdout) has none of it.
    EXPECT_EQ(r.out.find('\r'), std::string::npos);
}

TEST(ProgressCli, NoProgressLineWhenStderrIsNotATerminal) {
    const auto r = nsvm("diff --backend 'exec:" + kExec + "' --seed 5 --count 400");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
    const auto forced_off = nsvm("diff --no-progress --backend 'exec:" + kExec + "' --seed 5 --count 400");
    EXPECT_EQ(forced_off.err.find('\r'), std::string::npos);
    EXPECT_EQ(nsvm("diff --progress --no-progress --boundary").status, 2);  // they exclude each other
}

TEST(ProgressCli, ExplainedVectorsAreCountedNotListedUnlessVerbose) {
    // QEMU's INT3 (qemu.int3_not_bp_intercept) replayed: the reference
    // backend as the qemu profile, with the exit QEMU gives instead of #BP's.
    const auto gen = nsvm("gen --no-pairs --cpu qemu-tcg --profile qemu");
    ASSERT_EQ(gen.status, 0) << gen.err;
    const auto vectors = cli_test::write_temp("progress-vectors.jsonl", gen.out).string();
    const auto run = nsvm("oracle run --json --backend 'exec:" + kExec + " --cpu qemu-tcg --profile qemu' " + vectors);
    ASSERT_EQ(run.status, 0) << run.err;
    std::string results = run.out;
    const auto id = results.find("{\"id\":\"prog/int3_intercepted\"");
    ASSERT_NE(id, std::string::npos);
    const auto code = results.find("\"exit_code\":\"0x0000000000000043\"", id);
    ASSERT_NE(code, std::string::npos);
    results.replace(code, 32, "\"exit_code\":\"0x0000000000000081\"");
    const auto file = cli_test::write_temp("progress-results.jsonl", results).string();
    const auto quiet = nsvm("diff --backend qemu --results " + file + " " + vectors);
    EXPECT_EQ(quiet.status, 0) << quiet.err;
    EXPECT_EQ(quiet.out.find("prog/int3_intercepted"), std::string::npos) << quiet.out;
    EXPECT_NE(quiet.out.find("1 differ (explained only)"), std::string::npos) << quiet.out;
    EXPECT_NE(quiet.out.find("known divergences seen:\n  qemu.int3_not_bp_intercept"), std::string::npos)
        << quiet.out;
    const auto verbose = nsvm("diff -v --backend qemu --results " + file + " " + vectors);
    EXPECT_EQ(verbose.status, 0) << verbose.err;
    EXPECT_NE(verbose.out.find("prog/int3_intercepted: differ (explained: qemu.int3_not_bp_intercept)"),
              std::string::npos)
        << verbose.out;
}

}  // namespace
