// SIGINT/SIGTERM while an emulator runs: nsvm dies of the signal, and
// leaves neither its files in /dev/shm nor the emulator behind.
#include "hardening_support.hpp"

#include <signal.h>

#include <thread>

namespace nsvm::oracle::hardening {
namespace {

using namespace std::chrono_literals;

/// Our leftovers in /dev/shm (QEMU's RAM file and log, Bochs' directory).
std::vector<std::string> shm_leftovers(pid_t pid) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/dev/shm", ec)) {
        const auto name = e.path().filename().string();
        for (const std::string prefix : {"nsvm-oracle-", "nsvm-bochs-"})
            if (name.rfind(prefix + std::to_string(pid) + "-", 0) == 0) out.push_back(name);
    }
    return out;
}

/// Processes whose command line names our files (the emulators).
std::vector<pid_t> emulators_of(pid_t pid) {
    std::vector<pid_t> out;
    const std::string mark = "-" + std::to_string(pid) + "-";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        const auto name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        auto cmd = slurp(e.path() / "cmdline");
        for (auto& c : cmd)
            if (c == '\0') c = ' ';
        if (cmd.find("nsvm-oracle" + mark) != std::string::npos || cmd.find("nsvm-bochs" + mark) != std::string::npos)
            out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

/// Starts `nsvm oracle run` on a batch that hangs, waits until its
/// emulator runs, sends `sig`, and checks what is left.
void interrupt_a_run(const std::string& backend, int sig) {
    const auto f = write_temp("hang-" + backend + ".jsonl",
                              lines({named(base_vector(BaseMode::long64), "first"), hanging("hang")}));
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(nsvm_binary().c_str(), "nsvm", "oracle", "run", "--backend", backend.c_str(), "--stall-ms", "600000",
              f.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    const auto t0 = std::chrono::steady_clock::now();
    while ((shm_leftovers(pid).empty() || emulators_of(pid).empty()) && std::chrono::steady_clock::now() - t0 < 60s)
        std::this_thread::sleep_for(50ms);
    ASSERT_FALSE(shm_leftovers(pid).empty()) << "the run never created its files";
    ASSERT_FALSE(emulators_of(pid).empty()) << "the run never started its emulator";
    std::this_thread::sleep_for(500ms);  // into the boot
    ASSERT_EQ(kill(pid, sig), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        EXPECT_EQ(WTERMSIG(status), sig);
    }
    EXPECT_TRUE(shm_leftovers(pid).empty()) << shm_leftovers(pid).front();
    // SIGKILL to the group is immediate, but the zombie needs its reaper.
    const auto t1 = std::chrono::steady_clock::now();
    while (!emulators_of(pid).empty() && std::chrono::steady_clock::now() - t1 < 5s) std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(emulators_of(pid).empty()) << "emulator " << emulators_of(pid).front() << " outlived nsvm";
}

TEST(Signals, SigtermLeavesNoRamFileAndNoQemu) {
    NEED("qemu-system-x86_64");
    interrupt_a_run("qemu", SIGTERM);
}

TEST(Signals, SigintLeavesNoBochsDirectoryAndNoBochs) {
    NEED("bochs");
    interrupt_a_run("bochs", SIGINT);
}

}  // namespace
}  // namespace nsvm::oracle::hardening
