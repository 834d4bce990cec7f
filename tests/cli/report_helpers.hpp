// What the CLI tests read back from nsvm's output: substrings, and the ids of
// the failures in a `check --json` report.
#pragma once

#include <nlohmann/json.hpp>

#include <set>
#include <string>

namespace cli_test {

inline bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

inline std::set<std::string> failure_ids(const nlohmann::json& report) {
    std::set<std::string> ids;
    for (const auto& f : report.at("failures")) ids.insert(f.at("id").get<std::string>());
    return ids;
}

/// The dump fixtures, relative to the source directory the tests run nsvm in.
inline const std::string kFix = "tests/formats/fixtures/";

}  // namespace cli_test
