// Child processes for the oracle runners: fork/exec with a log file, a
// polling watchdog and a process-group kill (the emulator never outlives us).
#include "process.hpp"

#include "cleanup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace nsvm::oracle::detail {

ExitInfo run_process(const SpawnOptions& opts, const std::function<std::string()>& poll) {
    ExitInfo info;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<char*> argv;
    for (const auto& a : opts.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::string log = opts.log.string();
    const pid_t pid = fork();
    if (pid < 0) return info;
    if (pid == 0) {
        // Child: own process group (or session), stdin /dev/null, output to the log.
        if (opts.new_session)
            setsid();
        else
            setpgid(0, 0);
        const int in = open("/dev/null", O_RDONLY);
        const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in >= 0) dup2(in, 0);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        for (const auto& e : opts.env) putenv(const_cast<char*>(e.c_str()));
        if (opts.cwd && chdir(opts.cwd->c_str()) != 0) _exit(126);
        execvp(argv[0], argv.data());
        _exit(127);
    }
    if (!opts.new_session) setpgid(pid, pid);  // both sides, to avoid the race
    register_child(pid);  // a fatal signal to us kills it (cleanup.hpp)
    info.started = true;
    int status = 0;
    for (;;) {
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) break;
        if (poll) {
            auto why = poll();
            if (!why.empty()) {
                info.killed = true;
                info.kill_reason = std::move(why);
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                }
                break;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    unregister_child(pid);
    if (WIFEXITED(status)) info.status = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) info.signal = WTERMSIG(status);
    info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return info;
}

std::string tail_of(const std::filesystem::path& p, std::size_t max_bytes) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return {};
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
    // Keep it printable: the Bochs term display writes escape sequences.
    for (auto& c : s)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\n') || static_cast<unsigned char>(c) >= 0x7f) c = '.';
    return s;
}

bool on_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    if (!path) return false;
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        if (dir.empty()) continue;
        if (access((std::filesystem::path(dir) / name).c_str(), X_OK) == 0) return true;
    }
    return false;
}

}  // namespace nsvm::oracle::detail
