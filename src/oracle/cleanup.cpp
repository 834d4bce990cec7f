// Removal of temporary files and child emulators on fatal signals (cleanup.hpp).
#include "cleanup.hpp"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <atomic>
#include <cstring>
#include <mutex>

namespace nsvm::oracle::detail {
namespace {

// Fixed tables: the handler may not allocate or lock. Entry states: 0 free,
// 1 being written, 2 live (the handler acts only on live entries).
constexpr std::size_t kPaths = 2048;  // 256 jobs x 8 Bochs files is the most at once
constexpr std::size_t kPathBytes = 512;
constexpr std::size_t kChildren = 512;

struct PathEntry {
    std::atomic<int> state{0};
    bool directory = false;
    char path[kPathBytes] = {};
};
PathEntry g_paths[kPaths];
std::atomic<pid_t> g_children[kChildren];

static_assert(std::atomic<int>::is_always_lock_free && std::atomic<pid_t>::is_always_lock_free,
              "the signal handler reads these tables");

constexpr std::array kSignals = {SIGINT, SIGTERM, SIGHUP};

void on_fatal_signal(int sig) {
    const int saved_errno = errno;
    for (auto& c : g_children) {
        const pid_t pg = c.load(std::memory_order_acquire);
        if (pg <= 0) continue;
        kill(-pg, SIGKILL);
        kill(pg, SIGKILL);  // in case the child has not made its group yet
    }
    // Files first, then their (now empty) directories.
    for (const bool dirs : {false, true}) {
        for (auto& e : g_paths) {
            if (e.state.load(std::memory_order_acquire) != 2 || e.directory != dirs) continue;
            if (dirs)
                rmdir(e.path);
            else
                unlink(e.path);
        }
    }
    errno = saved_errno;
    // SA_RESETHAND restored the default action: the signal, pending until
    // the handler returns, now ends the process as it would have.
    raise(sig);
}

}  // namespace

void install_signal_cleanup() noexcept {
    static std::once_flag once;
    std::call_once(once, [] {
        for (int sig : kSignals) {
            struct sigaction old {};
            if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
            struct sigaction sa {};
            sa.sa_handler = on_fatal_signal;
            sigemptyset(&sa.sa_mask);
            for (int other : kSignals) sigaddset(&sa.sa_mask, other);  // one cleanup at a time
            sa.sa_flags = SA_RESETHAND;
            sigaction(sig, &sa, nullptr);
        }
    });
}

TempPath::TempPath(const std::filesystem::path& p, bool directory) noexcept {
    const auto& s = p.native();
    if (s.size() >= kPathBytes) return;
    for (std::size_t i = 0; i < kPaths; ++i) {
        int expected = 0;
        if (!g_paths[i].state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
        g_paths[i].directory = directory;
        std::memcpy(g_paths[i].path, s.c_str(), s.size() + 1);
        g_paths[i].state.store(2, std::memory_order_release);
        slot_ = static_cast<int>(i);
        return;
    }
}

TempPath::~TempPath() {
    if (slot_ >= 0) g_paths[static_cast<std::size_t>(slot_)].state.store(0, std::memory_order_release);
}

TempPath& TempPath::operator=(TempPath&& o) noexcept {
    if (this != &o) {
        if (slot_ >= 0) g_paths[static_cast<std::size_t>(slot_)].state.store(0, std::memory_order_release);
        slot_ = o.slot_;
        o.slot_ = -1;
    }
    return *this;
}

void register_child(pid_t pgid) noexcept {
    for (auto& c : g_children) {
        pid_t expected = 0;
        if (c.compare_exchange_strong(expected, pgid, std::memory_order_acq_rel)) return;
    }
}

void unregister_child(pid_t pgid) noexcept {
    for (auto& c : g_children) {
        pid_t expected = pgid;
        if (c.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return;
    }
}

}  // namespace nsvm::oracle::detail
