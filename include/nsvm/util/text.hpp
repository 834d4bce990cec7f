// Small text utilities shared by the readers and the CLI: number parsing in
// the forms docs/formats.md "VMCB as JSON" allows, and "did you mean" suggestions.
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

/// User text (a name, key, label or value from an input file or the command
/// line) made safe to echo in a message: printable ASCII is kept, every other
/// byte becomes \xNN (so an escape sequence or a newline cannot forge output),
/// and text longer than `max` characters is cut, saying how long it was.
[[nodiscard]] inline std::string printable(std::string_view s, std::size_t max = 80) {
    constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (out.size() >= max) {
            out += "\u2026(" + std::to_string(s.size()) + " bytes)";
            break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F) {
            out.push_back(static_cast<char>(c));
        } else {
            out += "\\x";
            out.push_back(digits[c >> 4]);
            out.push_back(digits[c & 0xF]);
        }
    }
    return out;
}

/// Names longer than this get no "did you mean": no known name is that long,
/// and the edit distance costs O(name * candidate).
inline constexpr std::size_t kMaxSuggestLength = 64;

/// The largest edit distance that still reads as a typo of `name`.
[[nodiscard]] inline std::size_t typo_limit(std::string_view name) {
    return std::max<std::size_t>(2, name.size() / 3);
}

/// Levenshtein distance (case-insensitive), for suggestions. O(|a| * |b|):
/// callers bound both lengths (see closest()).
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
/// typo (distance <= typo_limit(name)); empty otherwise. Bounded time for
/// hostile input: a name longer than kMaxSuggestLength gets no suggestion,
/// and a candidate whose length alone differs by more than the limit is
/// skipped without computing its distance.
template <class Range>
[[nodiscard]] std::string closest(std::string_view name, const Range& candidates) {
    if (name.size() > kMaxSuggestLength) return {};
    const std::size_t limit = typo_limit(name);
    std::string best;
    std::size_t best_d = limit + 1;
    for (const auto& c : candidates) {
        const std::string_view cv(c);
        const std::size_t diff = cv.size() > name.size() ? cv.size() - name.size() : name.size() - cv.size();
        if (diff > limit) continue;  // the distance is at least the length difference
        const auto d = edit_distance(name, cv);
        if (d < best_d) {
            best_d = d;
            best = std::string(cv);
        }
    }
    return best;
}

}  // namespace nsvm::util
