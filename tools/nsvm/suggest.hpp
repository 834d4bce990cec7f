// "Did you mean": the closest known word to a mistyped subcommand or option,
// so that `nsvm chek` or `nsvm check --jsn` says what the user meant instead
// of only that something was not expected.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nsvm::cli {

/// The candidate closest to `word`, if close enough to be a typo (the
/// project's one rule for suggestions, util::closest).
[[nodiscard]] std::optional<std::string> closest_word(std::string_view word, std::span<const std::string> candidates);

/// After a failed parse: the message naming the first unknown subcommand or
/// long option on the command line with its closest known spelling
/// ("unknown command 'chek'; did you mean 'check'?"), or nullopt when every
/// word is known (the parse failed for another reason).
[[nodiscard]] std::optional<std::string> unknown_word_message(const CLI::App& app, int argc, const char* const* argv);

}  // namespace nsvm::cli
