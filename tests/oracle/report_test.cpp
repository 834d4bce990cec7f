// The summary of a diff report reads back as written, and what the reader
// refuses it refuses with the line and the member (report.hpp).
#include <gtest/gtest.h>

#include "nsvm/oracle/report.hpp"

namespace nsvm::oracle {
namespace {

[[nodiscard]] Report sample() {
    Report r;
    r.summary.total = 10;
    r.summary.agree = 6;
    r.summary.differ = 1;
    r.summary.explained_only = 2;
    r.summary.cannot_run = 1;
    r.summary.whole_vmcb = 4;
    r.summary.per_check["asid.zero"] = CheckTally{3, 1, 0, 0};
    r.summary.per_check["(none)"] = CheckTally{3, 0, 2, 1};
    r.summary.per_known["qemu.exit_int_info_on_failure"] = 2;
    r.campaign = Campaign{"qemu", "qemu-tcg", "qemu", std::uint64_t{18446744073709551615ULL}, 1000, true,
                          {"a.jsonl", "b.jsonl"}, 2, 4};
    r.figures = RunFigures{2, 3, 1.5, 2.0};
    return r;
}

TEST(Report, SummaryReadsBackAsWritten) {
    const Report r = sample();
    const auto line = summary_json_line(r);
    auto back = parse_summary_line(line, "s.json", 11);
    ASSERT_TRUE(back) << formats::to_string(back.error());
    EXPECT_EQ(back->campaign, r.campaign);
    EXPECT_EQ(back->summary.total, 10U);
    EXPECT_EQ(back->summary.explained_only, 2U);
    EXPECT_EQ(back->summary.per_check.at("asid.zero").differ, 1U);
    EXPECT_EQ(back->summary.per_check.at("(none)").cannot_run, 1U);
    EXPECT_EQ(back->summary.per_known, r.summary.per_known);
    EXPECT_EQ(back->figures.boots, 3U);
    EXPECT_DOUBLE_EQ(back->figures.wall_seconds, 2.0);
    EXPECT_EQ(summary_json_line(*back), line);  // nothing lost
    EXPECT_NE(line.find("\"seed\":\"18446744073709551615\""), std::string::npos);  // 64 bits, as text
    EXPECT_NE(line.find("\"vectors_per_second\":5.0"), std::string::npos) << line;
}

TEST(Report, BadSummariesNameTheLineAndMember) {
    const auto line = summary_json_line(sample());
    const auto refused = [](const std::string& text, const std::string& want) {
        auto r = parse_summary_line(text, "s.json", 7);
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(formats::to_string(r.error()).rfind(want, 0), 0U) << formats::to_string(r.error());
    };
    auto with = [&line](const std::string& from, const std::string& to) {
        std::string s = line;
        s.replace(s.find(from), from.size(), to);
        return s;
    };
    refused(with("\"total\":10", "\"total\":-1"), "s.json:7: summary.total: missing or not an unsigned integer");
    refused(with("\"jobs\":2", "\"jobs\":2,\"colour\":1"), "s.json:7: summary.colour: unknown member");
    refused(with("\"shard\":\"2/4\"", "\"shard\":\"4/4\""), "s.json:7: summary.campaign.shard: --shard \"4/4\"");
    refused(with("\"seed\":\"18446744073709551615\"", "\"seed\":\"-1\""), "s.json:7: summary.campaign.seed");
    refused(with(",\"campaign\":", ",\"campaign_\":"), "s.json:7: summary.campaign_: unknown member");
    refused("{\"id\":\"x\"}", "s.json:7: summary: not a summary line");
    refused("{", "s.json:7: malformed JSON at column 2");
    refused("{\"summary\":{},\"summary\":{}}", "s.json:7: summary: ");  // a repeated member
}

TEST(Report, MergeWithoutReportsIsAnError) {
    EXPECT_FALSE(merge_reports({}));
    const std::vector<std::string> none = {"/nonexistent/shard-0.json"};
    auto r = merge_reports(none);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().file, "/nonexistent/shard-0.json");
    EXPECT_EQ(formats::to_string(r.error()).rfind("/nonexistent/shard-0.json: cannot open: ", 0), 0U)
        << formats::to_string(r.error());
}

}  // namespace
}  // namespace nsvm::oracle
