// std::cout for the whole run of nsvm, with its write errors kept: a command
// whose output is lost (a full disk, `> /dev/full`) must not exit 0. stdio
// sets only a flag when it drops a buffer it could not write, and errno is
// long gone by the time main() looks; this buffer remembers the first error.
#pragma once

#include <array>
#include <optional>
#include <streambuf>
#include <string>

namespace nsvm::cli {

class CheckedStdout : public std::streambuf {
public:
    CheckedStdout();
    CheckedStdout(const CheckedStdout&) = delete;
    CheckedStdout& operator=(const CheckedStdout&) = delete;
    ~CheckedStdout() override;

    /// Writes what is buffered; the first write error's text
    /// ("No space left on device"), if any write failed during the run.
    [[nodiscard]] std::optional<std::string> finish();

protected:
    int_type overflow(int_type ch) override;
    int sync() override;

private:
    void drain();  ///< write(2)s the buffer to fd 1; on error keeps errno and drops the data

    std::array<char, std::size_t{1} << 16> buf_{};
    int error_ = 0;
};

}  // namespace nsvm::cli
