// One way to parse untrusted JSON for every reader (VMCB, CPU model, and any
// other file a user hands nsvm): nlohmann::json alone keeps the last of
// duplicate keys silently, recurses without bound when a value is printed,
// and throws an out_of_range without a position for numbers beyond a
// double. parse_json_strict refuses all of these with a Diagnostic that
// names the file, the line, the column and the member path.
//
// Limits (docs/limits.md): at most JsonLimits::max_depth nested arrays and
// objects (64 by default; the deepest nsvm format needs 4).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::formats {

/// Default bound on nesting: far above what any nsvm format needs, far below
/// what would exhaust a stack in code that walks a value recursively.
inline constexpr std::size_t kMaxJsonDepth = 64;

struct JsonLimits {
    std::size_t max_depth = kMaxJsonDepth;
    bool allow_comments = true;  ///< "//" and "/* */" between tokens, as nlohmann's ignore_comments
};

/// Parses one JSON document. Refuses, naming file, line, column and path:
/// malformed JSON, nesting deeper than `limits.max_depth`, a member given
/// twice in one object (after decoding escapes, so "a" and "\u0061" clash),
/// and numbers beyond the range of a double (1e999). Never throws.
[[nodiscard]] nsvm::expected<nlohmann::json, Diagnostic> parse_json_strict(std::string_view text,
                                                                           std::string_view source,
                                                                           const JsonLimits& limits = {});

/// A short description of a JSON value for an error message: "an object of 3
/// members", "an array of 2", "the string \"ab..\"" (escaped and cut),
/// numbers and literals as written. Never dumps a container, so it costs
/// O(1) whatever the value's size or depth.
[[nodiscard]] std::string describe_json(const nlohmann::json& v);

}  // namespace nsvm::formats
