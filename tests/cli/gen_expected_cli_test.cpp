// `nsvm gen` writes the model's expected outcome into each vector as data
// (`expected`: verdict, exit code and name, failing check ids); it matches
// what the reference exec backend gives for the whole boundary set, the
// reader takes it back unchanged, and refuses a malformed one.
#include <gtest/gtest.h>

#include <map>

#include "cli/run_nsvm.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/oracle/vector.hpp"

namespace {

using cli_test::nsvm;
using nsvm::oracle::Status;
using nsvm::oracle::Verdict;

const std::string kBackend = "'exec:" + std::string(NSVM_BINARY_DIR) + "/nsvm_exec_backend'";
constexpr std::uint64_t kVmexitInvalid = ~std::uint64_t{0};

TEST(GenExpectedCli, ExpectationMatchesTheReferenceBackendOnTheBoundarySet) {
    const auto gen = nsvm("gen");  // zen4 / apm, as the reference backend
    ASSERT_EQ(gen.status, 0) << gen.err;
    const auto file = cli_test::write_temp("expected-vectors.jsonl", gen.out).string();
    const auto run = nsvm("oracle run --json --backend " + kBackend + " " + file);
    ASSERT_EQ(run.status, 0) << run.err;
    auto vectors = nsvm::oracle::parse_vectors(gen.out, "gen");
    auto results = nsvm::oracle::parse_results(run.out, "run");
    ASSERT_TRUE(vectors) << nsvm::formats::to_string(vectors.error());
    ASSERT_TRUE(results) << nsvm::formats::to_string(results.error());
    ASSERT_EQ(vectors->size(), results->size());
    ASSERT_GT(vectors->size(), 300U);
    std::map<Verdict, std::size_t> seen;
    for (std::size_t i = 0; i < vectors->size(); ++i) {
        const auto& v = (*vectors)[i];
        const auto& r = (*results)[i];
        ASSERT_EQ(v.id, r.id);
        ASSERT_TRUE(v.expected) << v.id;
        const auto& x = *v.expected;
        EXPECT_EQ(x.cpu, "zen4");
        EXPECT_EQ(x.profile, "apm");
        ++seen[x.verdict];
        switch (x.verdict) {
            case Verdict::enters:
                EXPECT_EQ(r.status, Status::vmexit) << v.id;
                EXPECT_NE(r.exit_code(), kVmexitInvalid) << v.id;
                if (x.exit_code) {
                    EXPECT_EQ(*x.exit_code, r.exit_code()) << v.id;
                }
                EXPECT_TRUE(x.failing_checks.empty()) << v.id;
                break;
            case Verdict::vmrun_fails:
                EXPECT_EQ(r.status, Status::vmexit) << v.id;
                ASSERT_TRUE(x.exit_code) << v.id;
                EXPECT_EQ(*x.exit_code, kVmexitInvalid) << v.id;
                EXPECT_EQ(r.exit_code(), kVmexitInvalid) << v.id;
                EXPECT_FALSE(x.failing_checks.empty()) << v.id;
                break;
            case Verdict::exception:
                EXPECT_EQ(r.status, Status::exception) << v.id;
                ASSERT_TRUE(x.exception_vector) << v.id;
                EXPECT_EQ(*x.exception_vector, r.exception_vector) << v.id;
                EXPECT_FALSE(x.failing_checks.empty()) << v.id;
                break;
            case Verdict::hangs: EXPECT_EQ(r.status, Status::cannot_run) << v.id; break;
            case Verdict::not_predicted: break;
        }
    }
    // The boundary set has vectors of every kind the image can show.
    EXPECT_GT(seen[Verdict::enters], 50U);
    EXPECT_GT(seen[Verdict::vmrun_fails], 50U);
    EXPECT_GT(seen[Verdict::exception], 0U);
    EXPECT_LT(seen[Verdict::not_predicted], vectors->size() / 10);
    // As data and as the name beside it: VMMCALL's exit in the first vector.
    EXPECT_NE(gen.out.find("\"expected\":{\"cpu\":\"zen4\",\"profile\":\"apm\",\"verdict\":\"enters\","
                           "\"exit_code\":\"0x0000000000000081\",\"exit_name\":\"" +
                           nsvm::arch::exit_code::describe(0x81).name + "\",\"failing_checks\":[]}"),
              std::string::npos)
        << gen.out.substr(0, 2000);
}

TEST(GenExpectedCli, ReaderTakesTheExpectationBackUnchanged) {
    const auto gen = nsvm("gen --no-pairs");
    ASSERT_EQ(gen.status, 0) << gen.err;
    auto vectors = nsvm::oracle::parse_vectors(gen.out, "gen");
    ASSERT_TRUE(vectors) << nsvm::formats::to_string(vectors.error());
    std::string again;
    for (const auto& v : *vectors) again += nsvm::oracle::to_json_line(v) + "\n";
    EXPECT_EQ(again, gen.out);
}

TEST(GenExpectedCli, MalformedExpectationIsExit2WithLineAndMember) {
    const auto gen = nsvm("gen --no-pairs");
    ASSERT_EQ(gen.status, 0) << gen.err;
    const std::string first = gen.out.substr(0, gen.out.find('\n'));
    const auto with = [&](const std::string& from, const std::string& to) {
        std::string line = first;
        const auto at = line.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return line.replace(at, from.size(), to);
    };
    const struct {
        std::string line, message;
    } cases[] = {
        {with("\"verdict\":\"enters\"", "\"verdict\":\"entres\""), ":2: expected.verdict: unknown member \"entres\""},
        {with("\"failing_checks\":[]", "\"failing_checks\":[],\"confidence\":1"),
         ":2: expected.confidence: unknown member"},
        {with("\"exit_code\":\"0x0000000000000081\"", "\"exit_code\":\"soon\""), ":2: expected.exit_code: not a number"},
    };
    for (const auto& c : cases) {
        const auto file = cli_test::write_temp("expected-bad.jsonl", "# one good line, one bad\n" + c.line + "\n");
        const auto r = nsvm("diff --backend " + kBackend + " " + file.string());
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_NE(r.err.find(file.string() + c.message), std::string::npos) << r.err;
    }
}

}  // namespace
