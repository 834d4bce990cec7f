// Reading a file line by line with a bound on the line length, so that a
// huge or hostile file (one endless line) costs at most that much memory.
// Used by the readers of results files and diff reports.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace nsvm::oracle {

enum class LineRead : std::uint8_t { ok, eof, too_long, io_error };

/// Lines of a file descriptor (closed at the end unless it is stdin), never
/// more than `max` bytes of one held.
class BoundedLines {
public:
    BoundedLines(int fd, std::size_t max) : fd_(fd), max_(max) {}
    BoundedLines(const BoundedLines&) = delete;
    BoundedLines& operator=(const BoundedLines&) = delete;
    ~BoundedLines() {
        if (fd_ > STDERR_FILENO) ::close(fd_);
    }

    [[nodiscard]] LineRead next(std::string& line) {
        line.clear();
        for (;;) {
            const auto nl = std::find(buf_.begin() + static_cast<std::ptrdiff_t>(pos_), buf_.end(), '\n');
            const std::size_t avail = static_cast<std::size_t>(nl - buf_.begin()) - pos_;
            if (line.size() + avail > max_) return LineRead::too_long;
            line.append(buf_, pos_, avail);
            if (nl != buf_.end()) {
                pos_ += avail + 1;
                return LineRead::ok;
            }
            pos_ = buf_.size();
            if (eof_) return line.empty() ? LineRead::eof : LineRead::ok;  // a last line without '\n'
            if (!fill()) return LineRead::io_error;
        }
    }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

private:
    [[nodiscard]] bool fill() {
        std::array<char, 1 << 16> chunk{};
        for (;;) {
            const ssize_t got = ::read(fd_, chunk.data(), chunk.size());
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) {
                error_ = std::strerror(errno);
                return false;
            }
            buf_.assign(chunk.data(), static_cast<std::size_t>(got));
            pos_ = 0;
            eof_ = got == 0;
            return true;
        }
    }

    int fd_;
    std::size_t max_;
    std::string buf_;
    std::size_t pos_ = 0;
    bool eof_ = false;
    std::string error_;
};

}  // namespace nsvm::oracle
