#include "command_tree.hpp"

namespace nsvm::cli {
namespace {

/// `o`'s spellings as typed: --long and -s.
std::vector<std::string> spellings(const CLI::Option& o) {
    std::vector<std::string> words;
    for (const auto& n : o.get_lnames()) words.push_back("--" + n);
    for (const auto& n : o.get_snames()) words.push_back("-" + n);
    return words;
}

}  // namespace

std::string command_path(const CLI::App& app) {
    std::string path;
    for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) path = a->get_name() + (path.empty() ? "" : " ") + path;
    return path;
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
    return app.get_subcommands([](const CLI::App*) { return true; });
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
    std::vector<std::string> names;
    for (const CLI::App* s : subcommands_of(app)) names.push_back(s->get_name());
    return names;
}

const CLI::App* find_subcommand(const CLI::App& app, std::string_view word) {
    for (const CLI::App* s : subcommands_of(app))
        if (s->check_name(std::string(word))) return s;
    return nullptr;
}

std::vector<std::string> option_words(const CLI::App& app) {
    std::vector<std::string> words;
    for (const CLI::App* a = &app; a != nullptr; a = a->get_parent())
        for (const CLI::Option* o : a->get_options())
            for (auto& w : spellings(*o)) words.push_back(std::move(w));
    return words;
}

const CLI::Option* find_option(const CLI::App& app, std::string_view word) {
    for (const CLI::App* a = &app; a != nullptr; a = a->get_parent())
        for (const CLI::Option* o : a->get_options())
            for (const auto& w : spellings(*o))
                if (w == word) return o;
    return nullptr;
}

bool takes_value(const CLI::Option& o) { return !o.get_positional() && o.get_items_expected_max() != 0; }

}  // namespace nsvm::cli
