// The summary of a `nsvm diff --json` report, and merging the reports of the
// shards of one campaign (`nsvm diff merge`, docs/oracle.md "Campaigns past
// one machine").
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/oracle/diff.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::oracle {

/// What a report ran: every shard of one campaign has the same, apart from
/// its shard index.
struct Campaign {
    std::string backend;  ///< as given to --backend (or named by the results file)
    std::string cpu;      ///< the model's CPU and profile
    std::string profile;
    std::optional<std::uint64_t> seed;
    std::uint64_t count = 0;
    bool boundary = false;
    std::vector<std::string> files;  ///< vector files, as given
    std::size_t shard_index = 0;
    std::size_t shard_count = 1;
    friend bool operator==(const Campaign&, const Campaign&) = default;
};

/// How the run went, not what it found: summed or recomputed by a merge.
struct RunFigures {
    std::size_t jobs = 1;
    std::size_t boots = 0;
    double emulator_seconds = 0;
    double wall_seconds = 0;
};

struct Report {
    Summary summary;
    Campaign campaign;
    RunFigures figures;
};

/// The summary object closing `nsvm diff --json`: {"summary": {...}}.
[[nodiscard]] std::string summary_json_line(const Report& r);
/// Reads a summary line back; errors name source, line and member.
[[nodiscard]] nsvm::expected<Report, formats::Diagnostic> parse_summary_line(std::string_view line,
                                                                             std::string_view source, int lineno);

/// Merges the `nsvm diff --json` reports of the n shards of one campaign into
/// the report a single run would have given: totals, per-check tallies and
/// known-divergence counts added; jobs, boots and emulator seconds summed;
/// wall time the longest shard's (the shards ran side by side). Each file is
/// read as a stream; its vector lines are counted against its summary (a cut
/// report is refused). Fails on reports of different campaigns (backend,
/// model, seed, count, boundary, files, shard count), a shard given twice or
/// missing, or anything unreadable. The error names the offending file, the
/// line (of a syntax error, of the summary whose campaign or shard is wrong)
/// and the summary member where there is one; for missing shards, the first
/// file, whose summary says how many shards there are.
[[nodiscard]] nsvm::expected<Report, formats::Diagnostic> merge_reports(std::span<const std::string> paths);

}  // namespace nsvm::oracle
