// Shared plumbing of the nsvm command line: one file per subcommand
// registers itself here; main.cpp builds the CLI11 app from the registry.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <span>
#include <string>
#include <vector>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/formats/vmcb_io.hpp"

namespace nsvm::cli {

/// Exit statuses shared by every subcommand (docs/formats.md "nsvm check --json").
inline constexpr int kOk = 0;
inline constexpr int kFailed = 1;   ///< the answer is "no" (VMRUN fails, an expectation does not hold, ...)
inline constexpr int kBadInput = 2; ///< bad input or usage

/// Thrown by a subcommand to stop with a status; main prints `message`
/// (if any) to stderr as "nsvm: <message>", and under --json also the error
/// object on stdout (docs/formats.md "Errors under --json"), with `where`'s
/// file, line and field when the error is about a place in the input.
struct Exit {
    int status;
    std::string message;
    std::optional<formats::Diagnostic> where{};
};
/// Stops with status 2 on an error a reader reports (its file, line, field).
[[noreturn]] void fail_input(formats::Diagnostic d);

/// An input's name as errors and warnings show it: "<stdin>" for "-", else
/// the path escaped and cut to 200 characters.
[[nodiscard]] std::string input_name(const std::string& path);

/// A subcommand registers a setup function that adds itself to the app and
/// sets a callback. The callback returns the exit status.
struct Registrar {
    Registrar(int order, std::function<void(CLI::App&, int& status)> setup);
};
std::vector<std::pair<int, std::function<void(CLI::App&, int&)>>>& registry();

/// --cpu / --profile / --maxphyaddr / --features, shared by check, run, diff, gen.
struct ModelOptions {
    std::string cpu = "zen4";
    std::string profile = "apm";
    int maxphyaddr = 0;     ///< 0: the model's own
    std::string features;   ///< "+x,-y"
};
void add_model_options(CLI::App& sub, ModelOptions& opts);
/// Resolves a built-in name or a JSON model file, applies the overrides.
/// Throws Exit{kBadInput, ...} with a clear message on failure.
struct ResolvedModel {
    checks::CpuModel cpu;
    const checks::Profile* profile;
};
[[nodiscard]] ResolvedModel resolve_model(const ModelOptions& opts);

/// `--color=WHEN`, an option of every command: auto (the default) styles
/// output only when stdout is a terminal and NO_COLOR is unset.
enum class ColorMode : std::uint8_t { automatic, always, never };
void set_color_mode(ColorMode mode) noexcept;
/// Adds `--color` to the top-level app (every subcommand accepts it too).
void add_color_option(CLI::App& app);

/// Terminal styling in force, by `--color`.
[[nodiscard]] bool color_enabled();
[[nodiscard]] std::string bold(std::string_view s);
[[nodiscard]] std::string red(std::string_view s);
[[nodiscard]] std::string green(std::string_view s);
[[nodiscard]] std::string yellow(std::string_view s);
[[nodiscard]] std::string dim(std::string_view s);

/// Limit on the size of any one input (file or stdin), so that /dev/zero or
/// a runaway log cannot exhaust memory: 64 MiB, raised or lowered with the
/// environment variable NSVM_MAX_INPUT (bytes, or with a K, M or G suffix).
/// docs/limits.md lists every limit on input.
inline constexpr std::uint64_t kDefaultMaxInput = std::uint64_t{64} << 20;
inline constexpr const char* kMaxInputEnv = "NSVM_MAX_INPUT";
/// The limit in force. Throws Exit{kBadInput} when NSVM_MAX_INPUT is not a size.
[[nodiscard]] std::uint64_t max_input_bytes();

/// An unsigned option's value (given as text so that "-1" and 2^64 are
/// refused rather than wrapped), or nullopt when the option was not given.
/// Throws Exit{kBadInput} naming the option.
[[nodiscard]] std::optional<std::uint64_t> unsigned_option(const CLI::Option* given, std::string_view name,
                                                           const std::string& text, std::uint64_t max);

/// Reads a whole file, or stdin for "-", up to max_input_bytes(). Throws
/// Exit{kBadInput} naming the file on error: cannot open, a directory, a
/// read error, or larger than the limit.
[[nodiscard]] std::string read_input(const std::string& path);

/// Writes `bytes` to the file `path` (created or truncated). Throws
/// Exit{kBadInput} naming the file when it cannot be written.
void write_output(const std::string& path, std::span<const char> bytes);
inline void write_output(const std::string& path, std::span<const std::uint8_t> bytes) {
    write_output(path, std::span<const char>(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace nsvm::cli
