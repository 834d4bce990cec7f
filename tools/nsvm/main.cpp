// nsvm: an executable model of AMD SVM and nested SVM.
// Each subcommand lives in its own cmd_*.cpp and registers itself.
#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "checked_stdout.hpp"
#include "cli.hpp"
#include "suggest.hpp"
#include "warnings.hpp"
#include "nsvm/version.h"

namespace {

/// Whether the command that ran was given --json (its answer is then JSON,
/// and so is an error that stops it).
bool json_requested(CLI::App& app) {
    for (CLI::App* sub : app.get_subcommands()) {
        const CLI::Option* json = sub->get_option_no_throw("--json");
        if ((json != nullptr && json->count() > 0) || json_requested(*sub)) return true;
    }
    return false;
}

/// The error object a --json command prints on stdout instead of its
/// answer (docs/formats.md "Errors under --json"): the message, and where
/// in the input when the error is about a place in it. On one line, so that
/// a reader of JSON lines (run, diff, oracle run) reads it as one too.
void print_json_error(const nsvm::cli::Exit& e) {
    nlohmann::json err{{"message", e.where ? e.where->message : e.message}};
    if (e.where && !e.where->file.empty()) err["file"] = e.where->file;
    if (e.where && e.where->line > 0) err["line"] = e.where->line;
    if (e.where && !e.where->field.empty()) err["field"] = e.where->field;
    std::cout << nlohmann::json{{"error", std::move(err)}, {"status", e.status}}.dump() << '\n';
}

/// Parses the command line and runs the subcommand; returns its status.
int run(CLI::App& app, int argc, char** argv, const int& status) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // Usage errors are exit status 2, like any bad input (docs/formats.md).
        // A mistyped command or option gets its closest known spelling.
        if (const auto unknown = nsvm::cli::unknown_word_message(app, argc, argv)) {
            std::cerr << "nsvm: " << *unknown << "\nRun with --help for more information.\n";
            return nsvm::cli::kBadInput;
        }
        app.exit(e);
        return nsvm::cli::kBadInput;
    } catch (const nsvm::cli::Exit& e) {
        if (!e.message.empty()) std::cerr << "nsvm: " << e.message << '\n';
        if (!e.message.empty() && json_requested(app)) print_json_error(e);
        return e.status;
    } catch (const std::exception& e) {
        std::cerr << "nsvm: internal error: " << e.what() << '\n';
        return 3;
    }
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "nsvm: an executable, exact model of AMD SVM and nested SVM.\n"
        "Why did my VMRUN fail? Run `nsvm check FILE` on a VMCB (raw, JSON, KVM or Xen dump) or on QEMU's\n"
        "register dump after 'KVM: entry failed'.",
        "nsvm"};
    app.require_subcommand(1);
    // Options of the top level (--color) are accepted after a subcommand too.
    app.fallthrough();
    nsvm::cli::add_color_option(app);
    nsvm::cli::add_verbosity_options(app);
    app.set_version_flag("--version", "nsvm " NSVM_VERSION_STRING);
    app.footer(
        "Exit status: 0 success, 1 the answer is no (VMRUN fails, a divergence, expectation unmet), 2 bad input\n"
        "or set-up the user can fix, 3 a bug in nsvm (docs/formats.md).\n"
        "Limits on input: at most 64 MiB per file or stdin (environment variable NSVM_MAX_INPUT, e.g. 256M,\n"
        "changes it) and JSON nested at most 64 levels deep; see docs/limits.md.");

    int status = nsvm::cli::kOk;
    auto& reg = nsvm::cli::registry();
    std::stable_sort(reg.begin(), reg.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [order, setup] : reg) setup(app, status);

    // Every command writes through std::cout: one checked buffer here makes
    // output that did not reach its destination (a full disk, /dev/full) a
    // failure, status 2, even when the command itself succeeded.
    nsvm::cli::CheckedStdout out;
    std::streambuf* const previous = std::cout.rdbuf(&out);
    const int result = run(app, argc, argv, status);
    const auto write_error = out.finish();
    std::cout.rdbuf(previous);
    if (write_error) {
        std::cerr << "nsvm: error writing to standard output: " << *write_error << '\n';
        return nsvm::cli::kBadInput;
    }
    return result;
}
