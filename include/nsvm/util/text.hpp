// Small text utilities shared by the readers and the CLI: number parsing in
// the forms interfaces.md §1 allows, and "did you mean" suggestions.
#pragma once

#include "nsvm/util/cxx_standard.hpp"  // a clear #error below C++20

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nsvm::util {

/// Parses "0x1f", "31", "0b101" (optionally with '_' separators) into a
/// 64-bit unsigned value. nullopt on junk or overflow: never a silent zero.
[[nodiscard]] inline std::optional<std::uint64_t> parse_u64(std::string_view s) {
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    } else if (s.size() > 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
        base = 2;
        s.remove_prefix(2);
    }
    std::string digits;
    digits.reserve(s.size());
    for (char c : s) {
        if (c == '_') continue;
        digits.push_back(c);
    }
    if (digits.empty()) return std::nullopt;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (ec != std::errc{} || p != digits.data() + digits.size()) return std::nullopt;
    return v;
}

/// Levenshtein distance, for suggestions.
[[nodiscard]] inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                              std::tolower(static_cast<unsigned char>(b[j - 1]));
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (same ? 0 : 1)});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

/// The candidate closest to `name`, if it is close enough to be a plausible
/// typo (distance <= max(2, len/3)); empty otherwise.
template <class Range>
[[nodiscard]] std::string closest(std::string_view name, const Range& candidates) {
    std::string best;
    std::size_t best_d = ~std::size_t{0};
    for (const auto& c : candidates) {
        const std::string_view cv(c);
        const auto d = edit_distance(name, cv);
        if (d < best_d) {
            best_d = d;
            best = std::string(cv);
        }
    }
    const std::size_t limit = std::max<std::size_t>(2, name.size() / 3);
    return best_d <= limit ? best : std::string{};
}

}  // namespace nsvm::util
