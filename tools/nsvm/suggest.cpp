#include "suggest.hpp"

#include "command_tree.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace nsvm::cli {
namespace {

/// Optimal string alignment distance (Levenshtein plus adjacent
/// transpositions, the commonest typo), stopping early past `limit`.
std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t limit) {
    if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
    std::vector<std::size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
        }
        std::swap(prev2, prev);
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::size_t typo_budget(std::string_view word) { return word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3; }

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
    return out;
}

}  // namespace

std::optional<std::string> closest_word(std::string_view word, std::span<const std::string> candidates) {
    if (word.empty()) return std::nullopt;
    const std::size_t budget = typo_budget(word);
    std::optional<std::string> best;
    std::size_t best_distance = budget + 1;
    for (const auto& c : candidates) {
        const std::size_t d = c.starts_with(word) ? 0 : edit_distance(word, c, budget);
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    return best;
}

std::optional<std::string> unknown_word_message(const CLI::App& app, int argc, const char* const* argv) {
    // Walk the words as CLI11 does for subcommands: the first word that is
    // not an option selects a subcommand of the current app, if it has any.
    const CLI::App* cur = &app;
    for (int i = 1; i < argc; ++i) {
        const std::string_view word = argv[i];
        if (word == "--") break;
        if (word.starts_with("--")) {
            const std::string name(word.substr(0, word.find('=')));
            if (const CLI::Option* o = find_option(*cur, name)) {
                // Its value, when given as the next word, is not a command.
                if (takes_value(*o) && word.find('=') == std::string_view::npos) ++i;
                continue;
            }
            std::vector<std::string> names = option_words(*cur);
            std::erase_if(names, [](const std::string& w) { return !w.starts_with("--"); });
            const auto guess = closest_word(name, names);
            return fmt::format("unknown option '{}' for '{}'{}", name, command_path(*cur),
                               guess ? fmt::format("; did you mean '{}'?", *guess) : "");
        }
        if (word.starts_with("-")) continue;
        const auto subs = subcommand_names(*cur);
        if (subs.empty()) continue;  // a positional argument of a leaf command
        if (const CLI::App* s = find_subcommand(*cur, word); s != nullptr) {
            cur = s;
            continue;
        }
        // A word where a subcommand is expected: unknown unless the current
        // command also takes positionals (none of nsvm's groups does).
        if (!cur->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty()) continue;
        const auto guess = closest_word(word, subs);
        return fmt::format("unknown command '{}'{}{}; {} {}", word,
                           cur == &app ? "" : fmt::format(" for '{}'", command_path(*cur)),
                           guess ? fmt::format(" (did you mean '{}'?)", *guess) : "",
                           cur == &app ? "commands:" : "its commands:", join(subs));
    }
    return std::nullopt;
}

}  // namespace nsvm::cli
