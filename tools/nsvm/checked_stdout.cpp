#include "checked_stdout.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nsvm::cli {

CheckedStdout::CheckedStdout() { setp(buf_.data(), buf_.data() + buf_.size()); }

CheckedStdout::~CheckedStdout() { drain(); }

std::optional<std::string> CheckedStdout::finish() {
    drain();
    if (error_ == 0) return std::nullopt;
    return std::string(std::strerror(error_));
}

CheckedStdout::int_type CheckedStdout::overflow(int_type ch) {
    drain();
    if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
    return ch;
}

int CheckedStdout::sync() {
    drain();
    return error_ == 0 ? 0 : -1;
}

void CheckedStdout::drain() {
    const char* p = pbase();
    while (p < pptr() && error_ == 0) {
        const ssize_t n = ::write(STDOUT_FILENO, p, static_cast<std::size_t>(pptr() - p));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error_ = errno;
            break;
        }
        p += n;
    }
    // After an error the rest is dropped: nsvm exits with status 2 anyway.
    setp(buf_.data(), buf_.data() + buf_.size());
}

}  // namespace nsvm::cli
