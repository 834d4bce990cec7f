#include "cli.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "host_cpu.hpp"
#include "nsvm/formats/cpu_model_json.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::cli {

std::vector<std::pair<int, std::function<void(CLI::App&, int&)>>>& registry() {
    static std::vector<std::pair<int, std::function<void(CLI::App&, int&)>>> r;
    return r;
}

Registrar::Registrar(int order, std::function<void(CLI::App&, int& status)> setup) {
    registry().emplace_back(order, std::move(setup));
}

void fail_input(formats::Diagnostic d) {
    std::string text = formats::to_string(d);
    throw Exit{kBadInput, std::move(text), std::move(d)};
}

std::string input_name(const std::string& path) { return path == "-" ? "<stdin>" : util::printable(path, 200); }

std::optional<std::uint64_t> unsigned_option(const CLI::Option* given, std::string_view name,
                                             const std::string& text, std::uint64_t max) {
    if (given->count() == 0) return std::nullopt;
    auto v = oracle::parse_unsigned_option(name, text, max);
    if (!v) throw Exit{kBadInput, v.error()};
    return *v;
}

void add_model_options(CLI::App& sub, ModelOptions& opts) {
    sub.add_option("--cpu", opts.cpu, "CPU model: a built-in name (nsvm cpu list), host (this machine's CPUID, on AMD) or a JSON model file")
        ->capture_default_str();
    sub.add_option("--profile", opts.profile, "behaviour profile: apm, kvm, qemu, bochs, xen, hyperv (nsvm profile list)")
        ->capture_default_str();
    sub.add_option("--maxphyaddr", opts.maxphyaddr, "override the model's MAXPHYADDR")->check(CLI::Range(32, 52));
    sub.add_option("--features", opts.features, "feature edits on the model, e.g. +la57,-npt");
}

ResolvedModel resolve_model(const ModelOptions& opts) {
    ResolvedModel out{checks::default_model(), nullptr};
    if (opts.cpu == "host") {
        // CPUID of this machine (AMD only): an Intel host, one without
        // SVM (a VM without nested SVM) or a non-x86 one is an input error.
        auto host = host_model();
        if (!host) throw Exit{kBadInput, fmt::format("--cpu host: {}", host.error())};
        out.cpu = *host;
    } else if (auto builtin = checks::find_builtin_model(opts.cpu)) {
        out.cpu = *builtin;
    } else {
        std::ifstream f(opts.cpu);
        if (!f) throw Exit{kBadInput, fmt::format("--cpu {}: {}", util::printable(opts.cpu), builtin.error())};
        auto model = formats::read_cpu_model_json(read_input(opts.cpu), util::printable(opts.cpu, 200));
        if (!model) throw Exit{kBadInput, model.error()};
        out.cpu = *model;
    }
    if (opts.maxphyaddr != 0) out.cpu.maxphyaddr = static_cast<unsigned>(opts.maxphyaddr);
    if (!opts.features.empty()) {
        if (auto r = checks::apply_feature_edits(out.cpu, opts.features); !r) {
            throw Exit{kBadInput, fmt::format("--features: {}", r.error())};
        }
    }
    auto pid = checks::find_profile(opts.profile);
    if (!pid) throw Exit{kBadInput, fmt::format("--profile: {}", pid.error())};
    out.profile = &checks::profile(*pid);
    return out;
}

namespace {
ColorMode g_color_mode = ColorMode::automatic;
}  // namespace

void set_color_mode(ColorMode mode) noexcept { g_color_mode = mode; }

void add_color_option(CLI::App& app) {
    static const std::map<std::string, ColorMode> kModes = {
        {"auto", ColorMode::automatic}, {"always", ColorMode::always}, {"never", ColorMode::never}};
    app.add_option_function<std::string>(
           "--color", [](const std::string& when) { set_color_mode(kModes.at(when)); },
           "style the output: auto (only on a terminal, and not when NO_COLOR is set), always or never")
        ->check(CLI::IsMember(kModes))
        ->default_str("auto");
}

bool color_enabled() {
    switch (g_color_mode) {
        case ColorMode::always: return true;
        case ColorMode::never: return false;
        case ColorMode::automatic: break;
    }
    static const bool on = ::isatty(STDOUT_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr;
    return on;
}

namespace {
std::string wrap(std::string_view s, const char* code) {
    if (!color_enabled()) return std::string(s);
    return fmt::format("\033[{}m{}\033[0m", code, s);
}
}  // namespace

std::string bold(std::string_view s) { return wrap(s, "1"); }
std::string red(std::string_view s) { return wrap(s, "31;1"); }
std::string green(std::string_view s) { return wrap(s, "32;1"); }
std::string yellow(std::string_view s) { return wrap(s, "33"); }
std::string dim(std::string_view s) { return wrap(s, "2"); }

std::uint64_t max_input_bytes() {
    const char* env = std::getenv(kMaxInputEnv);
    if (env == nullptr || *env == '\0') return kDefaultMaxInput;
    std::string_view text(env);
    std::uint64_t unit = 1;
    switch (text.back()) {
        case 'k': case 'K': unit = std::uint64_t{1} << 10; break;
        case 'm': case 'M': unit = std::uint64_t{1} << 20; break;
        case 'g': case 'G': unit = std::uint64_t{1} << 30; break;
        default: break;
    }
    if (unit != 1) text.remove_suffix(1);
    const auto n = util::parse_u64(text);
    if (!n || *n == 0 || *n > (std::uint64_t{1} << 50) / unit)
        throw Exit{kBadInput, fmt::format("{}={}: expected a size in bytes such as 67108864, 64M or 1G", kMaxInputEnv,
                                          util::printable(env))};
    return *n * unit;
}

namespace {

/// Reads `fd` to its end, but never more than `limit` + 1 bytes: one byte
/// past the limit is enough to know the input is too large.
std::string read_bounded(int fd, const std::string& name, std::uint64_t limit) {
    std::string data;
    std::array<char, 1 << 16> chunk{};
    while (data.size() <= limit) {
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), limit + 1 - data.size()));
        const ssize_t got = ::read(fd, chunk.data(), want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) fail_input({name, 0, "", fmt::format("read error: {}", std::strerror(errno))});
        if (got == 0) return data;
        data.append(chunk.data(), static_cast<std::size_t>(got));
    }
    fail_input({name, 0, "",
                fmt::format("input larger than the limit of {} bytes; set {} to raise it (see docs/limits.md)", limit,
                            kMaxInputEnv)});
}

/// Closes a descriptor on every way out of read_input.
struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

std::string read_input(const std::string& path) {
    const std::uint64_t limit = max_input_bytes();
    const std::string name = input_name(path);
    if (path == "-") return read_bounded(STDIN_FILENO, name, limit);
    const Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) fail_input({name, 0, "", fmt::format("cannot open: {}", std::strerror(errno))});
    struct stat st {};
    if (::fstat(f.fd, &st) == 0 && S_ISDIR(st.st_mode)) fail_input({name, 0, "", "is a directory"});
    return read_bounded(f.fd, name, limit);
}

void write_output(const std::string& path, std::span<const char> bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();  // the last block is written here: check after it
    if (!f) throw Exit{kBadInput, fmt::format("{}: cannot write", util::printable(path, 200))};
}

}  // namespace nsvm::cli
