// `nsvm diff --results FILE`: results produced elsewhere (here by `nsvm oracle
// run` on the reference exec backend) compared with the model as a live
// backend would be; a tampered result is a divergence naming its field, and
// a file that does not fit the vectors is exit 2 naming the line and member.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "cli/run_nsvm.hpp"

namespace {

using cli_test::nsvm;

const std::string kBackend = "'exec:" + std::string(NSVM_BINARY_DIR) + "/nsvm_exec_backend'";

[[nodiscard]] std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

[[nodiscard]] std::string joined(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
}

/// The boundary set without pairs, and its results on the reference backend.
struct Campaign {
    std::string vectors;  ///< path
    std::vector<std::string> results;
};

const Campaign& campaign() {
    static const Campaign c = [] {
        Campaign out;
        const auto gen = nsvm("gen --no-pairs");
        EXPECT_EQ(gen.status, 0) << gen.err;
        out.vectors = cli_test::write_temp("replay-vectors.jsonl", gen.out).string();
        const auto run = nsvm("oracle run --json --backend " + kBackend + " " + out.vectors);
        EXPECT_EQ(run.status, 0) << run.err;
        out.results = lines_of(run.out);
        return out;
    }();
    return c;
}

[[nodiscard]] cli_test::Result diff_with(const std::string& name, const std::vector<std::string>& results,
                                         const std::string& extra = "") {
    const auto file = cli_test::write_temp(name, joined(results)).string();
    return nsvm("diff --results " + file + " " + extra + " " + campaign().vectors);
}

TEST(ResultsReplayCli, ResultsOfTheReferenceBackendAgree) {
    ASSERT_GT(campaign().results.size(), 100U);
    const auto r = diff_with("replay-ok.jsonl", campaign().results);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(std::to_string(campaign().results.size()) +
                         " vectors: " + std::to_string(campaign().results.size()) + " agree, 0 differ (unexplained)"),
              std::string::npos)
        << r.out;
    // The backend is the one the results name (the reference backend's
    // handshake name), so the model is exec's: zen4 / apm.
    EXPECT_NE(r.out.find("profile apm; oracle: nsvm-model (results from"), std::string::npos) << r.out;
    const auto json = diff_with("replay-ok-json.jsonl", campaign().results, "--json");
    EXPECT_EQ(json.status, 0) << json.err;
    EXPECT_NE(json.out.find("\"backend\":\"nsvm-model\""), std::string::npos);
}

TEST(ResultsReplayCli, ResultsOutOfOrderAreMatchedById) {
    auto reversed = campaign().results;
    std::reverse(reversed.begin(), reversed.end());
    const auto r = diff_with("replay-reversed.jsonl", reversed);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("0 differ (unexplained)"), std::string::npos) << r.out;
}

TEST(ResultsReplayCli, TamperedResultIsADivergenceNamingTheField) {
    auto results = campaign().results;
    auto& line = results[4];
    const auto at = line.find("\"exit_code\":\"");
    ASSERT_NE(at, std::string::npos) << line;
    line.replace(at, line.find('"', at + 13) + 1 - at, "\"exit_code\":\"0x60\"");
    const auto r = diff_with("replay-tampered.jsonl", results);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.out.find("1 differ (unexplained)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("    exit_code "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("oracle 0x60"), std::string::npos) << r.out;
}

TEST(ResultsReplayCli, FileThatDoesNotFitTheVectorsIsExit2WithLineAndMember) {
    const auto& good = campaign().results;
    struct Case {
        std::string name;
        std::vector<std::string> results;
        std::string message;
    };
    auto malformed = good;
    malformed[6] = "{\"id\": broken";
    auto missing = good;
    missing.erase(missing.begin() + 6);
    auto duplicate = good;
    duplicate.insert(duplicate.begin() + 3, good[2]);
    auto late_duplicate = good;  // after every vector has its result
    late_duplicate.push_back(good[2]);
    auto unknown_member = good;
    unknown_member[3].insert(1, "\"colour\":1,");
    auto unknown_id = good;
    unknown_id.push_back("{\"id\":\"no-such-vector\",\"status\":\"cannot_run\",\"reason\":\"x\"}");
    auto long_line = good;
    long_line[2] = std::string(2u << 20, 'x');
    auto two_backends = good;
    two_backends[5].replace(two_backends[5].find("nsvm-model"), 10, "qemu");
    const std::vector<Case> cases = {
        {"malformed", malformed, "replay-malformed.jsonl:7: not a JSON object"},
        {"missing", missing, ": id: no result for vector"},
        {"duplicate", duplicate, "replay-duplicate.jsonl:4: id: duplicate result for"},
        {"late-duplicate", late_duplicate,
         fmt::format("replay-late-duplicate.jsonl:{}: id: duplicate result for", good.size() + 1)},
        {"member", unknown_member, "replay-member.jsonl:4: colour: unknown member"},
        {"unknown-id", unknown_id, ": id: result for \"no-such-vector\", which is no vector's"},
        {"long", long_line, "replay-long.jsonl:3: a line longer than 1048576 bytes"},
        {"backends", two_backends, "replay-backends.jsonl:6: backend: \"qemu\", but the results before it"},
    };
    for (const auto& c : cases) {
        const auto r = diff_with("replay-" + c.name + ".jsonl", c.results);
        EXPECT_EQ(r.status, 2) << c.name << ": " << r.err;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << c.name << ": " << r.err;
    }
    const auto none = nsvm("diff --results /nonexistent/results.jsonl --boundary");
    EXPECT_EQ(none.status, 2);
    EXPECT_NE(none.err.find("/nonexistent/results.jsonl: cannot open"), std::string::npos) << none.err;
}

TEST(ResultsReplayCli, HelpDocumentsTheOptions) {
    const auto help = nsvm("diff --help").out;
    EXPECT_NE(help.find("--results"), std::string::npos);
    EXPECT_NE(help.find("--vectors"), std::string::npos);
}

}  // namespace
