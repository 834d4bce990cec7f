// Helpers of the oracle's hardening tests (tests/oracle/*_test.cpp): the
// nsvm binary as a user runs it, temporary vector files, and vectors that
// hang. The emulator tests boot QEMU or Bochs (installed by `make deps`) and
// skip only when the binary is not on PATH.
#pragma once

#include "cli/run_nsvm.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "nsvm/arch/intercepts.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/runner.hpp"
#include "nsvm/oracle/vector.hpp"

namespace nsvm::oracle::hardening {

namespace fs = std::filesystem;

// The runners find the image sources through NSVM_SOURCE_DIR wherever the
// test runs from (and the nsvm children inherit it).
inline const bool g_source_dir_set = setenv("NSVM_SOURCE_DIR", NSVM_SOURCE_DIR, 0) == 0;

using cli_test::nsvm_binary;
using cli_test::slurp;

struct Run {
    int status = -1;
    std::string out, err;
};

/// `nsvm ARGS` through the shell (ARGS may start with VAR=value assignments
/// for nsvm's environment only).
inline Run nsvm(const std::string& args, const std::string& env = "") {
    const fs::path tmp = fs::temp_directory_path() / ("nsvm-hardening-" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    const std::string cmd = env + " '" + nsvm_binary() + "' " + args + " > '" + (tmp / "out").string() + "' 2> '" +
                            (tmp / "err").string() + "'";
    const int raw = std::system(cmd.c_str());
    Run r;
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    r.out = slurp(tmp / "out");
    r.err = slurp(tmp / "err");
    return r;
}

inline fs::path write_temp(const std::string& name, const std::string& content) {
    const fs::path p = fs::temp_directory_path() / ("nsvm-hardening-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream(p, std::ios::binary) << content;
    return p;
}

inline std::string lines(const std::vector<Vector>& vs) {
    std::string s;
    for (const auto& v : vs) s += to_json_line(v) + "\n";
    return s;
}

inline Vector named(Vector v, std::string id) {
    v.id = std::move(id);
    return v;
}

/// L2 spins in HLT: no intercept and no interrupt to come.
inline Vector hanging(std::string id) {
    auto v = named(base_vector(BaseMode::long64, Program::hlt), std::move(id));
    v.vmcb.set_intercept(arch::intercept::HLT, false);
    return v;
}

inline std::unique_ptr<Runner> runner(Backend b, std::chrono::milliseconds stall) {
    RunnerOptions o;
    o.backend = b;
    o.stall_timeout = stall;
    auto r = make_runner(o);
    return r ? std::move(*r) : nullptr;
}

inline bool on_path(const char* exe) {
    return std::system((std::string("command -v ") + exe + " > /dev/null 2>&1").c_str()) == 0;
}

#define NEED(exe) \
    if (!on_path(exe)) GTEST_SKIP() << exe << " is not on PATH"

}  // namespace nsvm::oracle::hardening
