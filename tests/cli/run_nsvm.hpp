// Running the built nsvm binary from the CLI tests, as a user would: from the
// source directory, without colours, capturing status, stdout and stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace cli_test {

namespace fs = std::filesystem;

struct Result {
    int status = -1;
    std::string out;
    std::string err;
};

inline std::string nsvm_binary() {
    if (const char* env = std::getenv("NSVM")) return env;
    return std::string(NSVM_BINARY_DIR) + "/nsvm";
}

inline std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// Runs `ENV nsvm ARGS` from the source directory (examples are relative
/// paths). `env` holds shell assignments ("NSVM_MAX_INPUT=4K"); standard
/// output goes to `stdout_to` when given (e.g. /dev/full), else is captured.
inline Result nsvm_with(const std::string& env, const std::string& args, const std::string& stdout_to = "") {
    const fs::path tmp = fs::temp_directory_path() / ("nsvm-cli-" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    const std::string out = stdout_to.empty() ? (tmp / "out").string() : stdout_to;
    const std::string cmd = "cd '" + std::string(NSVM_SOURCE_DIR) + "' && NO_COLOR=1 " + env + " '" + nsvm_binary() +
                            "' " + args + " > '" + out + "' 2> '" + (tmp / "err").string() + "'";
    const int raw = std::system(cmd.c_str());
    Result r;
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    r.out = stdout_to.empty() ? slurp(tmp / "out") : std::string();
    r.err = slurp(tmp / "err");
    return r;
}

/// Runs `nsvm ARGS` from the source directory.
inline Result nsvm(const std::string& args) { return nsvm_with("", args); }

inline fs::path write_temp(const std::string& name, const std::string& content) {
    const fs::path p = fs::temp_directory_path() / ("nsvm-cli-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream(p, std::ios::binary) << content;
    return p;
}

}  // namespace cli_test

