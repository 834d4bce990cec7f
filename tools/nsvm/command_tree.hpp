// Reading the CLI11 command tree nsvm builds: what "did you mean", the man
// page and the shell completion all need to know about commands and options.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace nsvm::cli {

/// "nsvm oracle run" for the `run` under `oracle`.
[[nodiscard]] std::string command_path(const CLI::App& app);
/// The subcommands of `app`, in the order they were defined.
[[nodiscard]] std::vector<const CLI::App*> subcommands_of(const CLI::App& app);
[[nodiscard]] std::vector<std::string> subcommand_names(const CLI::App& app);
/// The subcommand of `app` that `word` names, or null.
[[nodiscard]] const CLI::App* find_subcommand(const CLI::App& app, std::string_view word);
/// The option spellings a user can type at `app` ("--json", "-o"): its own
/// and those of the commands above it (options fall through, as --color does).
[[nodiscard]] std::vector<std::string> option_words(const CLI::App& app);
/// The option of `app` or of a command above it spelled `word` ("--json"), or null.
[[nodiscard]] const CLI::Option* find_option(const CLI::App& app, std::string_view word);
/// Whether the word after `o` on a command line is its value (an option that
/// is neither a flag nor a positional).
[[nodiscard]] bool takes_value(const CLI::Option& o);

}  // namespace nsvm::cli
