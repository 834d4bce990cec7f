#include "cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "nsvm/formats/cpu_model_json.hpp"

namespace nsvm::cli {

std::vector<std::pair<int, std::function<void(CLI::App&, int&)>>>& registry() {
    static std::vector<std::pair<int, std::function<void(CLI::App&, int&)>>> r;
    return r;
}

Registrar::Registrar(int order, std::function<void(CLI::App&, int& status)> setup) {
    registry().emplace_back(order, std::move(setup));
}

void add_model_options(CLI::App& sub, ModelOptions& opts) {
    sub.add_option("--cpu", opts.cpu, "CPU model: a built-in name (nsvm cpu list) or a JSON model file")
        ->capture_default_str();
    sub.add_option("--profile", opts.profile, "behaviour profile: apm, kvm, qemu, bochs, xen, hyperv (nsvm profile list)")
        ->capture_default_str();
    sub.add_option("--maxphyaddr", opts.maxphyaddr, "override the model's MAXPHYADDR")->check(CLI::Range(32, 52));
    sub.add_option("--features", opts.features, "feature edits on the model, e.g. +la57,-npt");
}

ResolvedModel resolve_model(const ModelOptions& opts) {
    ResolvedModel out{checks::default_model(), nullptr};
    if (auto builtin = checks::find_builtin_model(opts.cpu)) {
        out.cpu = *builtin;
    } else {
        std::ifstream f(opts.cpu);
        if (!f) throw Exit{kBadInput, fmt::format("--cpu {}: {}", opts.cpu, builtin.error())};
        auto model = formats::read_cpu_model_json(read_input(opts.cpu), opts.cpu);
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

bool color_enabled() {
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

std::string read_input(const std::string& path) {
    if (path == "-") {
        std::ostringstream ss;
        ss << std::cin.rdbuf();
        return ss.str();
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Exit{kBadInput, fmt::format("{}: cannot open: {}", path, std::strerror(errno))};
    std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw Exit{kBadInput, fmt::format("{}: read error", path)};
    return data;
}

}  // namespace nsvm::cli
