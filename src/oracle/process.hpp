// Child processes for the oracle runners (internal to nsvm_oracle).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nsvm::oracle::detail {

struct SpawnOptions {
    std::vector<std::string> argv;
    std::filesystem::path log;                 ///< stdout+stderr go here; stdin is /dev/null
    std::vector<std::string> env;              ///< extra NAME=VALUE entries
    bool new_session = false;                  ///< setsid() in the child (Bochs' term display)
    std::optional<std::filesystem::path> cwd;
};

struct ExitInfo {
    bool started = false;
    bool killed = false;       ///< we killed it (timeout or stall)
    std::string kill_reason;
    int status = -1;           ///< exit status when it exited normally
    int signal = 0;            ///< terminating signal otherwise
    double seconds = 0;
};

/// Runs a child to completion. `poll` is called about every 10 ms while the
/// child runs; returning a non-empty string kills the child (SIGKILL to its
/// process group) with that reason.
ExitInfo run_process(const SpawnOptions& opts, const std::function<std::string()>& poll);

/// The last `max_bytes` of a file, for error messages.
std::string tail_of(const std::filesystem::path& p, std::size_t max_bytes = 600);

/// True if an executable of that name is on PATH.
bool on_path(const std::string& name);

}  // namespace nsvm::oracle::detail
