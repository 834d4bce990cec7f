#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace nsvm::cli {

namespace {

constexpr auto kInterval = std::chrono::milliseconds(250);
/// Erase the line: carriage return, then erase to its end (ECMA-48 EL).
constexpr const char* kErase = "\r\033[K";

[[nodiscard]] std::string duration(double s) {
    if (!std::isfinite(s)) return "?";
    const auto t = static_cast<std::uint64_t>(s + 0.5);
    if (t < 60) return fmt::format("{} s", t);
    if (t < 3600) return fmt::format("{} min {:02} s", t / 60, t % 60);
    return fmt::format("{} h {:02} min", t / 3600, t / 60 % 60);
}

}  // namespace

ProgressLine::ProgressLine(bool enabled, std::uint64_t total)
    : enabled_(enabled), total_(total), start_(std::chrono::steady_clock::now()), last_(start_) {}

ProgressLine::~ProgressLine() { clear(); }

std::string ProgressLine::text(std::uint64_t done, std::uint64_t total, std::uint64_t unexplained, double seconds) {
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    const double left = rate > 0 ? static_cast<double>(total > done ? total - done : 0) / rate : NAN;
    const auto percent = total > 0 ? done * 100 / total : 100;
    return fmt::format("{}/{} vectors ({}%), {:.0f}/s, {} unexplained, {} left", done, total, percent, rate,
                       unexplained, duration(left));
}

void ProgressLine::update(std::uint64_t done, std::uint64_t unexplained) {
    if (!enabled_) return;
    const std::lock_guard lock(mutex_);
    done_ = std::max(done_, done);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < kInterval) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    std::fputs((kErase + text(done_, total_, unexplained, seconds)).c_str(), stderr);
    std::fflush(stderr);
    shown_ = true;
}

void ProgressLine::clear() {
    const std::lock_guard lock(mutex_);
    if (!shown_) return;
    std::fputs(kErase, stderr);
    std::fflush(stderr);
    shown_ = false;
}

bool progress_by_default(bool json_on_stdout) {
    if (::isatty(STDERR_FILENO) == 0) return false;
    return !(json_on_stdout && ::isatty(STDOUT_FILENO) != 0);
}

}  // namespace nsvm::cli
