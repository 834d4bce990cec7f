// `--backend exec:CMD` through the CLI: nsvm diff against the reference
// backend (the model behind the protocol) has nothing unexplained, a lost
// vector is one cannot_run line, and a command that cannot start is exit 2.
#include <gtest/gtest.h>

#include <sstream>

#include "cli/run_nsvm.hpp"

namespace {

using cli_test::nsvm;

const std::string kBackend = std::string(NSVM_BINARY_DIR) + "/nsvm_exec_backend";

[[nodiscard]] std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

/// The first `n` vectors nsvm gen makes, one per line.
[[nodiscard]] std::string first_vectors(int n) {
    const auto gen = nsvm("gen --no-pairs");
    EXPECT_EQ(gen.status, 0) << gen.err;
    std::istringstream in(gen.out);
    std::string lines, line;
    for (int i = 0; i < n && std::getline(in, line); ++i) lines += line + "\n";
    return lines;
}

TEST(ExecBackendCli, DiffAgainstTheModelBackedBackendHasNoDivergence) {
    const auto r = nsvm("diff --backend 'exec:" + kBackend + "' --boundary");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("0 differ (unexplained), 0 differ (explained only), 0 oracle cannot run"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("profile apm"), std::string::npos);  // exec's default model
}

TEST(ExecBackendCli, HangLosesOneVectorAndTheRunGoesOn) {
    const std::string lines = first_vectors(6);
    const auto file = cli_test::write_temp("exec-vectors.jsonl", lines);
    // Ids are JSON strings: the one on the third line, found by its member.
    const auto third = lines.find('\n', lines.find('\n') + 1) + 1;
    const auto id_at = lines.find("\"id\":\"", third) + 6;
    const std::string id = lines.substr(id_at, lines.find('"', id_at) - id_at);
    // 2 s, not less: --stall-ms bounds the backend's handshake too, and an
    // ASan build on a loaded machine has been seen to miss 300 ms.
    const auto r = nsvm("oracle run --json --stall-ms 2000 --backend 'exec:" + kBackend + " --hang " + id + "' " +
                        file.string());
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(count(r.out, "\n"), 6U) << r.out;
    EXPECT_EQ(count(r.out, "\"status\":\"cannot_run\""), 1U) << r.out;
    EXPECT_NE(r.out.find("\"id\":\"" + id + "\""), std::string::npos);
    EXPECT_NE(r.out.find("timeout: no answer within 2000 ms"), std::string::npos) << r.out;
}

TEST(ExecBackendCli, CommandThatCannotStartIsExit2) {
    const auto file = cli_test::write_temp("exec-start.jsonl", first_vectors(2)).string();
    for (const std::string sub : {"oracle run", "diff"}) {
        const auto r = nsvm(sub + " --backend 'exec:/nonexistent/svm-backend' " + file);
        EXPECT_EQ(r.status, 2) << sub << ": " << r.err;
        EXPECT_NE(r.err.find("cannot be started"), std::string::npos) << r.err;
    }
    const auto empty = nsvm("oracle run --backend exec: " + file);
    EXPECT_EQ(empty.status, 2);
    EXPECT_NE(empty.err.find("needs a command"), std::string::npos) << empty.err;
    EXPECT_EQ(nsvm("oracle timing --backend exec:true").status, 2);
}

TEST(ExecBackendCli, HelpNamesTheBackend) {
    EXPECT_NE(nsvm("oracle run --help").out.find("exec:CMD"), std::string::npos);
    EXPECT_NE(nsvm("diff --help").out.find("exec:CMD"), std::string::npos);
}

}  // namespace
