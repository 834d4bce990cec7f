// A line-oriented child process for the exec backend (internal to
// nsvm_oracle): `/bin/sh -c CMD` in its own process group, its stdin and
// stdout on pipes, its stderr shared with ours. Every read and write has a
// deadline and every line a length cap, so a backend that hangs, dies or
// floods us costs one bounded wait, never our memory or our life (SIGPIPE).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace nsvm::oracle::detail {

enum class LineStatus : std::uint8_t {
    ok,
    timeout,   ///< no complete line before the deadline
    eof,       ///< the child closed its stdout (exited or crashed)
    too_long,  ///< the line exceeded the cap
    io_error,
};

class LineChild {
public:
    LineChild() = default;
    ~LineChild();
    LineChild(const LineChild&) = delete;
    LineChild& operator=(const LineChild&) = delete;

    /// Starts `/bin/sh -c command`. False (and `error`) when fork or the
    /// pipes fail; a command that does not exist starts (the shell runs) and
    /// then ends with status 127, seen as eof on the first read.
    [[nodiscard]] bool start(const std::string& command, std::string& error);
    [[nodiscard]] bool running() const noexcept { return pid_ > 0; }

    /// Writes `line` and a newline; false on timeout or a closed pipe.
    [[nodiscard]] bool write_line(const std::string& line, std::chrono::milliseconds timeout);
    /// Reads one line (without its newline) of at most `max_bytes`.
    [[nodiscard]] LineStatus read_line(std::string& line, std::size_t max_bytes, std::chrono::milliseconds timeout);

    /// Kills the process group and reaps the child; returns how it ended
    /// ("exited with status 3", "killed by signal 11"), empty if not running.
    std::string kill_and_reap();
    /// Closes its stdin and gives it `grace` to exit on its own, then kills it.
    std::string stop(std::chrono::milliseconds grace);

private:
    [[nodiscard]] std::string reap(bool block);
    void close_pipes() noexcept;

    pid_t pid_ = -1;
    int to_child_ = -1;
    int from_child_ = -1;
    std::string pending_;  ///< bytes read past the last returned line
};

}  // namespace nsvm::oracle::detail
