// The exec backend's child process: fork/exec, pipes, poll with deadlines.
#include "exec_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "cleanup.hpp"

namespace nsvm::oracle::detail {
namespace {

using Clock = std::chrono::steady_clock;

/// Milliseconds left until `deadline`, as poll() takes them (0 when past).
[[nodiscard]] int remaining_ms(Clock::time_point deadline) noexcept {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

/// Waits for `events` on `fd`; false on timeout or a poll error.
[[nodiscard]] bool wait_fd(int fd, short events, Clock::time_point deadline) noexcept {
    for (;;) {
        pollfd p{fd, events, 0};
        const int n = poll(&p, 1, remaining_ms(deadline));
        if (n > 0) return true;  // POLLHUP/POLLERR too: the read or write says what happened
        if (n == 0) return false;
        if (errno != EINTR) return false;
    }
}

/// A write to a pipe whose reader died raises SIGPIPE, which would end nsvm.
/// Blocked in this thread for the duration of the write, and a SIGPIPE the
/// write raised is taken off the pending set before the mask comes back.
class SigpipeBlock {
public:
    SigpipeBlock() noexcept {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeBlock() {
        if (raised_) {
            const timespec zero{0, 0};
            while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;
    void raised() noexcept { raised_ = true; }

private:
    sigset_t pipe_{}, old_{};
    bool raised_ = false;
};

[[nodiscard]] std::string describe_status(int status) {
    if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
    return "ended";
}

}  // namespace

LineChild::~LineChild() { (void)kill_and_reap(); }

bool LineChild::start(const std::string& command, std::string& error) {
    (void)kill_and_reap();
    std::array<int, 2> in{-1, -1}, out{-1, -1};
    // O_CLOEXEC: with several jobs, one backend must not inherit another's
    // pipes (it would keep them open past that backend's death).
    if (pipe2(in.data(), O_CLOEXEC) != 0 || pipe2(out.data(), O_CLOEXEC) != 0) {
        error = fmt::format("cannot create pipes: {}", std::strerror(errno));
        for (int fd : {in[0], in[1], out[0], out[1]})
            if (fd >= 0) close(fd);
        return false;
    }
    // Everything the child needs is built before fork: after it, in a
    // threaded process, only async-signal-safe calls are allowed.
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    const pid_t pid = fork();
    if (pid < 0) {
        error = fmt::format("cannot fork: {}", std::strerror(errno));
        for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
        return false;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(in[0], STDIN_FILENO);   // dup2 clears O_CLOEXEC on the copy
        dup2(out[1], STDOUT_FILENO);
        execv("/bin/sh", const_cast<char* const*>(argv));
        _exit(127);
    }
    setpgid(pid, pid);  // both sides, so the group exists before any kill
    register_child(pid);
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    pid_ = pid;
    to_child_ = in[1];
    from_child_ = out[0];
    pending_.clear();
    return true;
}

bool LineChild::write_line(const std::string& line, std::chrono::milliseconds timeout) {
    if (to_child_ < 0) return false;
    const auto deadline = Clock::now() + timeout;
    const std::string data = line + '\n';
    SigpipeBlock guard;
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = write(to_child_, data.data() + done, data.size() - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            if (!wait_fd(to_child_, POLLOUT, deadline)) return false;
            continue;
        }
        if (n < 0 && errno == EPIPE) guard.raised();
        return false;
    }
    return true;
}

LineStatus LineChild::read_line(std::string& line, std::size_t max_bytes, std::chrono::milliseconds timeout) {
    if (from_child_ < 0) return LineStatus::eof;
    const auto deadline = Clock::now() + timeout;
    std::array<char, 65536> buf{};
    for (;;) {
        if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
            if (nl > max_bytes) return LineStatus::too_long;
            line.assign(pending_, 0, nl);
            pending_.erase(0, nl + 1);
            return LineStatus::ok;
        }
        if (pending_.size() > max_bytes) return LineStatus::too_long;
        const ssize_t n = read(from_child_, buf.data(), buf.size());
        if (n > 0) {
            pending_.append(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) return LineStatus::eof;
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return LineStatus::io_error;
        if (!wait_fd(from_child_, POLLIN, deadline)) return LineStatus::timeout;
    }
}

void LineChild::close_pipes() noexcept {
    if (to_child_ >= 0) close(to_child_);
    if (from_child_ >= 0) close(from_child_);
    to_child_ = from_child_ = -1;
}

std::string LineChild::reap(bool block) {
    int status = 0;
    for (;;) {
        const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
        if (r == pid_) break;
        if (r == 0) return {};
        if (errno != EINTR) break;  // already reaped elsewhere: nothing to say
    }
    unregister_child(pid_);
    pid_ = -1;
    return describe_status(status);
}

std::string LineChild::kill_and_reap() {
    close_pipes();
    if (pid_ <= 0) return {};
    // The group: `sh -c` may have forked the real backend under it.
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    return reap(true);
}

std::string LineChild::stop(std::chrono::milliseconds grace) {
    if (to_child_ >= 0) {
        close(to_child_);
        to_child_ = -1;
    }
    if (pid_ <= 0) return {};
    const pid_t group = pid_;
    const auto deadline = Clock::now() + grace;
    while (Clock::now() < deadline) {
        if (auto how = reap(false); !how.empty()) {
            close_pipes();
            // The shell is gone; a backend it left behind in the group is not wanted.
            kill(-group, SIGKILL);
            return how;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return kill_and_reap();
}

}  // namespace nsvm::oracle::detail
