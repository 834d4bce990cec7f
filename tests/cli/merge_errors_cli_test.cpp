// `nsvm diff merge` refuses what it cannot merge with exit status 2 and names
// the offending report: in the text on stderr ("FILE:LINE: FIELD: message")
// and in the --json error object (file, line, field), as every other input
// error of nsvm.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "report_helpers.hpp"
#include "run_nsvm.hpp"

namespace {

using cli_test::contains;
using cli_test::nsvm;
using cli_test::write_temp;

const std::string kBackend = "'exec:" + std::string(NSVM_BINARY_DIR) + "/nsvm_exec_backend'";

/// The --json reports of a 2-shard campaign over a few vectors, under
/// `profile`; written once for every test.
struct Campaign {
    std::string shard0;
    std::string shard1;
};

[[nodiscard]] Campaign make_campaign(const std::string& tag, const std::string& profile) {
    const auto gen = nsvm("gen --no-pairs");
    EXPECT_EQ(gen.status, 0) << gen.err;
    std::istringstream in(gen.out);
    std::string four;
    std::string line;
    for (int k = 0; k < 4 && std::getline(in, line); ++k) four += line + "\n";
    const auto vectors = write_temp("merge-err-vectors.jsonl", four).string();
    Campaign c;
    for (int i = 0; i < 2; ++i) {
        const auto r = nsvm("diff --json --profile " + profile + " --shard " + std::to_string(i) + "/2 --backend " +
                            kBackend + " " + vectors);
        EXPECT_LE(r.status, 1) << r.err;
        (i == 0 ? c.shard0 : c.shard1) =
            write_temp("merge-err-" + tag + "-" + std::to_string(i) + ".json", r.out).string();
    }
    return c;
}

const Campaign& apm() {
    static const Campaign c = make_campaign("apm", "apm");
    return c;
}

/// What both forms of a refused merge say: the status, stderr, and the
/// --json error object.
struct Refusal {
    std::string text;
    nlohmann::json error;
};

/// Runs `diff merge REPORTS` and `diff merge --json REPORTS`; both must exit 2.
[[nodiscard]] Refusal refuse(const std::vector<std::string>& reports) {
    std::string args;
    for (const auto& r : reports) args += " '" + r + "'";
    const auto text = nsvm("diff merge" + args);
    EXPECT_EQ(text.status, 2) << text.out << text.err;
    EXPECT_TRUE(text.out.empty()) << text.out;
    const auto json = nsvm("diff merge --json" + args);
    EXPECT_EQ(json.status, 2) << json.out << json.err;
    EXPECT_EQ(json.err, text.err);  // the same message on stderr either way
    const auto j = nlohmann::json::parse(json.out, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << json.out;
    if (j.is_object() && j.contains("status")) {
        EXPECT_EQ(j.at("status"), 2);
    }
    return Refusal{text.err, j.is_object() && j.contains("error") ? j.at("error") : nlohmann::json::object()};
}

TEST(MergeErrorsCli, TheCampaignMergesAsIs) {
    const auto ok = nsvm("diff merge " + apm().shard0 + " " + apm().shard1);
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_TRUE(contains(ok.out, "2 shards merged")) << ok.out;
}

TEST(MergeErrorsCli, AnUnreadableReportIsNamed) {
    const std::string gone = "/nonexistent/nsvm-shard-1.json";
    const auto r = refuse({apm().shard0, gone});
    EXPECT_TRUE(contains(r.text, "nsvm: " + gone + ": cannot open: ")) << r.text;
    EXPECT_EQ(r.error.value("file", ""), gone) << r.error;
    EXPECT_TRUE(contains(r.error.value("message", ""), "cannot open")) << r.error;
    // A directory opens, and is named for what it is.
    const auto dir = refuse({apm().shard0, "/"});
    EXPECT_TRUE(contains(dir.text, "nsvm: /: is a directory")) << dir.text;
    EXPECT_EQ(dir.error.value("file", ""), "/") << dir.error;
}

TEST(MergeErrorsCli, MalformedJsonNamesTheFileLineAndColumn) {
    const auto bad = write_temp("merge-err-malformed.json", "{\"id\":\"v0\",\"outcome\":\"agree\"}\n{\"summary\": {\n");
    const auto r = refuse({apm().shard0, bad.string()});
    EXPECT_TRUE(contains(r.text, "nsvm: " + bad.string() + ":2: malformed JSON at column ")) << r.text;
    EXPECT_EQ(r.error.value("file", ""), bad.string()) << r.error;
    EXPECT_EQ(r.error.value("line", 0), 2) << r.error;
    EXPECT_TRUE(contains(r.error.value("message", ""), "malformed JSON at column ")) << r.error;
    // A repeated member is refused too, with its member path.
    const auto twice = write_temp("merge-err-twice.json", "{\"id\":\"v0\",\"id\":\"v1\",\"outcome\":\"agree\"}\n");
    const auto t = refuse({twice.string(), apm().shard1});
    EXPECT_TRUE(contains(t.text, twice.string() + ":1: id: member given twice")) << t.text;
    EXPECT_EQ(t.error.value("field", ""), "id") << t.error;
}

TEST(MergeErrorsCli, AReportOfAnotherCampaignIsNamedWithTheMemberThatDiffers) {
    const auto kvm = make_campaign("kvm", "kvm");
    const auto r = refuse({apm().shard0, kvm.shard1});
    EXPECT_TRUE(contains(r.text, "nsvm: " + kvm.shard1 + ":")) << r.text;
    EXPECT_TRUE(contains(r.text, ": summary.profile: not a shard of the campaign of " + apm().shard0 +
                                     ": model zen4/apm vs zen4/kvm"))
        << r.text;
    EXPECT_EQ(r.error.value("file", ""), kvm.shard1) << r.error;
    EXPECT_EQ(r.error.value("field", ""), "summary.profile") << r.error;
    EXPECT_GT(r.error.value("line", 0), 0) << "the line of the summary: " << r.error;
}

TEST(MergeErrorsCli, ADuplicateShardNamesTheSecondCopy) {
    const auto copy = write_temp("merge-err-copy.json", cli_test::slurp(apm().shard0)).string();
    const auto r = refuse({apm().shard0, copy, apm().shard1});
    EXPECT_TRUE(contains(r.text, "nsvm: " + copy + ":")) << r.text;
    EXPECT_TRUE(contains(r.text, ": summary.campaign.shard: shard 0/2 again (" + apm().shard0 + " has it)")) << r.text;
    EXPECT_EQ(r.error.value("file", ""), copy) << r.error;
    EXPECT_EQ(r.error.value("field", ""), "summary.campaign.shard") << r.error;
}

TEST(MergeErrorsCli, AMissingShardNamesTheReportThatCountsTheShards) {
    const auto r = refuse({apm().shard1});
    EXPECT_TRUE(contains(r.text, "nsvm: " + apm().shard1 + ":")) << r.text;
    EXPECT_TRUE(contains(r.text, ": summary.campaign.shard: a campaign of 2 shards: shard 0/2 missing")) << r.text;
    EXPECT_EQ(r.error.value("file", ""), apm().shard1) << r.error;
    EXPECT_EQ(r.error.value("field", ""), "summary.campaign.shard") << r.error;
}

TEST(MergeErrorsCli, ACutReportNamesItsLastLine) {
    const std::string whole = cli_test::slurp(apm().shard1);
    const auto cut = write_temp("merge-err-cut.json", whole.substr(0, whole.find('\n') + 1)).string();
    const auto r = refuse({apm().shard0, cut});
    EXPECT_TRUE(contains(r.text, "nsvm: " + cut + ":1: summary: missing")) << r.text;
    EXPECT_EQ(r.error.value("file", ""), cut) << r.error;
    EXPECT_EQ(r.error.value("line", 0), 1) << r.error;
    EXPECT_EQ(r.error.value("field", ""), "summary") << r.error;
}

}  // namespace
