// `--shard i/n` on vector files: `nsvm oracle run` and `nsvm diff` keep
// vector k of the input when k % n == i, so the shards together are the whole
// input once; the shards' results, concatenated, replay as one run.
#include <gtest/gtest.h>

#include <sstream>
#include <vector>

#include "cli/run_nsvm.hpp"

namespace {

using cli_test::nsvm;

const std::string kBackend = "'exec:" + std::string(NSVM_BINARY_DIR) + "/nsvm_exec_backend'";

[[nodiscard]] std::vector<std::string> ids_of(const std::string& jsonl) {
    std::vector<std::string> ids;
    std::istringstream in(jsonl);
    for (std::string l; std::getline(in, l);) {
        const auto at = l.find("\"id\":\"") + 6;
        ids.push_back(l.substr(at, l.find('"', at) - at));
    }
    return ids;
}

TEST(ShardCli, OracleRunKeepsVectorKOfTheInputInShardKModN) {
    const auto gen = nsvm("gen --no-pairs");
    ASSERT_EQ(gen.status, 0) << gen.err;
    const auto all = ids_of(gen.out);
    const auto file = cli_test::write_temp("shard-vectors.jsonl", gen.out).string();
    std::string concatenated;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto r = nsvm("oracle run --json --shard " + std::to_string(i) + "/4 --backend " + kBackend + " " + file);
        ASSERT_EQ(r.status, 0) << r.err;
        const auto ids = ids_of(r.out);
        std::vector<std::string> want;
        for (std::size_t k = i; k < all.size(); k += 4) want.push_back(all[k]);
        EXPECT_EQ(ids, want) << "shard " << i;
        concatenated += r.out;
    }
    // Shard by shard is out of the vectors' order: matched by id all the same.
    const auto results = cli_test::write_temp("shard-results.jsonl", concatenated).string();
    const auto replay = nsvm("diff --results " + results + " " + file);
    EXPECT_EQ(replay.status, 0) << replay.err;
    EXPECT_NE(replay.out.find(std::to_string(all.size()) + " vectors: " + std::to_string(all.size()) + " agree"),
              std::string::npos)
        << replay.out;
    // diff shards its files by the same rule.
    const auto part = nsvm("diff --json --shard 3/4 --backend " + kBackend + " " + file);
    EXPECT_EQ(part.status, 0) << part.err;
    EXPECT_NE(part.out.find("\"total\":" + std::to_string((all.size() + 4 - 1 - 3) / 4) + ","), std::string::npos)
        << part.out.substr(part.out.rfind('\n', part.out.size() - 2));
    // More shards than vectors: an empty shard prints nothing.
    const auto empty = nsvm("oracle run --json --shard 999/1000 --backend " + kBackend + " " + file);
    EXPECT_EQ(empty.status, 0) << empty.err;
    EXPECT_TRUE(empty.out.empty());
    EXPECT_EQ(nsvm("oracle run --shard 4/4 " + file).status, 2);
}

// A campaign with fewer vectors than shards: the shards that get none still
// write their report and exit 0, and the merge is the single run.
TEST(ShardCli, DiffShardWithNoVectorMergesAsPartOfTheCampaign) {
    const auto gen = nsvm("gen --no-pairs");
    ASSERT_EQ(gen.status, 0) << gen.err;
    std::istringstream in(gen.out);
    std::string three;
    std::string line;
    for (int k = 0; k < 3 && std::getline(in, line); ++k) three += line + "\n";
    const auto file = cli_test::write_temp("shard-three.jsonl", three).string();
    std::vector<std::string> reports;
    for (std::size_t i = 0; i < 5; ++i) {
        const auto r = nsvm("diff --json --shard " + std::to_string(i) + "/5 --backend " + kBackend + " " + file);
        EXPECT_EQ(r.status, 0) << "shard " << i << ": " << r.err;
        if (i >= 3) {
            EXPECT_NE(r.err.find("shard " + std::to_string(i) + "/5 has no vector"), std::string::npos) << r.err;
        }
        reports.push_back(cli_test::write_temp("shard-three-" + std::to_string(i) + ".json", r.out).string());
    }
    std::string args;
    for (const auto& r : reports) args += " " + r;
    const auto merged = nsvm("diff merge" + args);
    EXPECT_EQ(merged.status, 0) << merged.err;
    EXPECT_NE(merged.out.find("3 vectors: 3 agree"), std::string::npos) << merged.out;
}

}  // namespace
