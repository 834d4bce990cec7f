// One updating line on the terminal for a long run (nsvm diff): vectors
// done of the total, rate, unexplained divergences so far, time left.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace nsvm::cli {

class ProgressLine {
public:
    /// `enabled` false makes every call a no-op (not a terminal, --no-progress).
    ProgressLine(bool enabled, std::uint64_t total);
    ProgressLine(const ProgressLine&) = delete;
    ProgressLine& operator=(const ProgressLine&) = delete;
    ~ProgressLine();

    /// Redraws the line, at most four times a second (a terminal that gets
    /// more only costs the run time). `done` never goes back: the emulator's
    /// side (whole chunks) and the reporting side (vector by vector) both
    /// call it, from their own threads.
    void update(std::uint64_t done, std::uint64_t unexplained);
    /// Erases the line, before other output on the same terminal.
    void clear();
    [[nodiscard]] bool enabled() const noexcept { return enabled_; }

    /// The line's text, for tests: "1234/20000 vectors (6%), 5321/s, 0 unexplained, 3 s left".
    [[nodiscard]] static std::string text(std::uint64_t done, std::uint64_t total, std::uint64_t unexplained,
                                          double seconds);

private:
    bool enabled_;
    std::uint64_t total_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_;
    bool shown_ = false;
    std::uint64_t done_ = 0;
    std::mutex mutex_;
};

/// Whether progress is shown by default: stderr is a terminal, and stdout is
/// not that terminal carrying --json (the two would mix on the screen).
[[nodiscard]] bool progress_by_default(bool json_on_stdout);

}  // namespace nsvm::cli
