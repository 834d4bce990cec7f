// Temporary files and child emulators on SIGINT/SIGTERM/SIGHUP (internal to
// nsvm_oracle): a guest-RAM file is as large as the guest, and an emulator in
// its own process group does not see the terminal's Ctrl-C, so both would
// outlive an interrupted `nsvm diff`. The runners register what they create;
// a signal handler removes the files and kills the children with
// async-signal-safe calls only, then lets the signal take its default course
// (the exit status still says which signal ended the process).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>

namespace nsvm::oracle::detail {

/// Installs the handler for SIGINT, SIGTERM and SIGHUP, once, and only where
/// the disposition is the default (a caller's own handler, or an ignored
/// signal under nohup, is left alone).
void install_signal_cleanup() noexcept;

/// A registration: while it lives, the signal handler removes the path (a
/// file with unlink, or, if `directory`, an empty directory with rmdir; files
/// are removed before directories). Paths longer than the table's entries are
/// not registered.
class TempPath {
public:
    TempPath() = default;
    explicit TempPath(const std::filesystem::path& p, bool directory = false) noexcept;
    ~TempPath();
    TempPath(TempPath&& o) noexcept : slot_(o.slot_) { o.slot_ = -1; }
    TempPath& operator=(TempPath&& o) noexcept;
    TempPath(const TempPath&) = delete;
    TempPath& operator=(const TempPath&) = delete;
    [[nodiscard]] bool registered() const noexcept { return slot_ >= 0; }

private:
    int slot_ = -1;
};

/// A child process group the handler kills (SIGKILL) before it removes files.
void register_child(pid_t pgid) noexcept;
void unregister_child(pid_t pgid) noexcept;

}  // namespace nsvm::oracle::detail
