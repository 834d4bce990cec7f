// Every warning nsvm prints goes through here: one stream (stderr, so that
// stdout stays the answer a pipe reads), one line format
// "warning: <file>[:line]: <field or id>: <message>", one JSON shape
// {id, fields, message, file, line} for --json, and one verbosity
// (-q/--quiet, -v/--verbose: docs/formats.md "Warnings").
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "nsvm/checks/evaluate.hpp"
#include "nsvm/formats/vmcb_io.hpp"

namespace nsvm::cli {

/// -q: no warnings; normal: short ones (a count and what the checks read);
/// -v: every warning in full.
enum class Verbosity : std::uint8_t { quiet, normal, verbose };
void set_verbosity(Verbosity v) noexcept;
[[nodiscard]] Verbosity verbosity() noexcept;
/// Adds -q/--quiet and -v/--verbose to the top-level app (every command
/// accepts them, as --color; a command's own -v, diff's, also lists more).
void add_verbosity_options(CLI::App& app);

struct Warning {
    std::string file;  ///< the input as the readers name it ("<stdin>", cut and escaped)
    int line = 0;      ///< 0: the whole input
    std::string id;    ///< stable: "input", "input.missing_fields", a check's id, "dump.hardware_vmcb"
    std::string subject;  ///< what the text line names before the message: a field or the id; may be empty
    std::vector<std::string> fields;
    std::string message;  ///< in full (--verbose, JSON)
    std::string brief;    ///< the default text when shorter than `message`; empty: `message`
    std::vector<std::string> read_by_checks;  ///< input.missing_fields: those the checks nsvm ran read
};

/// What evaluated the input: the report and profile of the checks nsvm ran
/// on it (both, or neither: decode and convert run none).
struct Evaluated {
    const checks::Report* report = nullptr;
    const checks::Profile* profile = nullptr;
};

/// The reader's warnings about `in`, as Warnings; the missing-fields one
/// gets its short form, which names only the missing fields the checks in
/// `by` read.
[[nodiscard]] std::vector<Warning> input_warnings(const formats::ReadResult& in, Evaluated by = {});
/// The checks' warnings (a check's id, dump.hardware_vmcb) about input `file`.
[[nodiscard]] std::vector<Warning> check_warnings(const std::string& file, const checks::Report& r);

/// Prints the warnings to stderr, after what stdout holds so far (so that
/// 2>&1 keeps their place in the report); nothing under -q.
void print_warnings(const std::vector<Warning>& ws);
/// The warnings as --json shows them, whatever the verbosity: every one,
/// in full.
[[nodiscard]] nlohmann::json warnings_json(const std::vector<Warning>& ws);

}  // namespace nsvm::cli
