#include "suggest.hpp"

#include "command_tree.hpp"
#include "nsvm/util/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace nsvm::cli {
namespace {

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
    return out;
}

}  // namespace

std::optional<std::string> closest_word(std::string_view word, std::span<const std::string> candidates) {
    std::string best = util::closest(word, candidates);
    if (best.empty()) return std::nullopt;
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
