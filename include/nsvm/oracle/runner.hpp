// Running test vectors on an emulator (the oracle side of `nsvm diff`).
//
// Vectors go in, and results come out, through guest memory: the runner lays
// out the batch header and one 8 KiB slot per vector (layout.h) and
//   qemu / qemu-kvm: in a file that backs the guest RAM
//                    (-object memory-backend-file,share=on), read back after exit;
//   bochs:           in a disk image the image reads over ATA PIO; the results
//                    are dumped by the Bochs debugger (writemem) at the end.
//   exec:CMD:        any SVM implementation behind a line protocol: one
//                    vector per line on CMD's stdin, one result per line on
//                    its stdout (docs/oracle.md "The exec backend").
// Many vectors per boot; a crash, panic or hang loses only the vector that
// was running (the header's progress counter says which): it is reported as
// cannot_run and the emulator is restarted with the rest.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nsvm/oracle/vector.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::oracle {

enum class Backend : std::uint8_t { qemu, bochs, qemu_kvm, exec };
[[nodiscard]] std::string_view backend_name(Backend b) noexcept;
/// "qemu", "bochs", "qemu-kvm", or "exec:CMD" (Backend::exec; the command is
/// exec_command_of(name)). An empty CMD is an error.
[[nodiscard]] nsvm::expected<Backend, std::string> find_backend(std::string_view name);
/// CMD of an "exec:CMD" backend name; empty for any other name.
[[nodiscard]] std::string_view exec_command_of(std::string_view name) noexcept;

struct RunnerOptions {
    Backend backend = Backend::qemu;
    /// Emulator CPU model: qemu "max" (TCG), bochs "ryzen", qemu-kvm "host".
    /// Empty: the backend's default.
    std::string cpu_model;
    /// Where the built image lives (nsvm-oracle.bin, floppy.img). Empty: build
    /// it on demand (see find_or_build_image).
    std::filesystem::path image_dir;
    /// Scratch files (RAM backing file, logs). Empty: /dev/shm or the temp dir.
    std::filesystem::path work_dir;
    std::size_t batch_size = 16384;  ///< vectors per boot (qemu); bochs uses fewer
    /// Emulator processes at once: run() splits its vectors into this many
    /// contiguous parts, one backend runner (and process) per part.
    std::size_t jobs = 1;
    /// A boot is killed when the progress counter does not move for this long.
    /// 0: the backend's default. QEMU: 0.5 s without progress once the image
    /// runs (a vector takes tens of microseconds; the boot itself is covered
    /// by boot_timeout, so a loaded machine does not fail slow boots). Bochs:
    /// 5 s, counted from the start (its progress is the port-0xE9 log).
    /// exec: the answer to one vector (and to the handshake) must come within
    /// this long, else the backend is killed and restarted and the vector is
    /// lost; default 10 s.
    std::chrono::milliseconds stall_timeout{0};
    /// Upper bound for one boot (also covers a hang before the first vector).
    std::chrono::milliseconds boot_timeout{120000};
    bool keep_files = false;
    /// exec: the command, run as `/bin/sh -c CMD`.
    std::string exec_command;
    /// Progress callback (vectors done, total); may be empty. With jobs > 1
    /// it is called from the jobs' threads, per part.
    std::function<void(std::size_t, std::size_t)> progress;
};

struct RunStats {
    std::size_t boots = 0;
    std::size_t cannot_run = 0;
    double seconds = 0;  ///< wall time of all boots
};

class Runner {
public:
    virtual ~Runner() = default;
    /// One result per vector, in order. An error only when the oracle cannot
    /// run at all (emulator missing, image does not build); per-vector
    /// trouble is a cannot_run result.
    [[nodiscard]] virtual nsvm::expected<std::vector<Result>, std::string> run(std::span<const Vector> vectors) = 0;
    [[nodiscard]] virtual const RunStats& stats() const noexcept = 0;
};

/// Fails cleanly when the backend cannot run here (qemu-kvm without
/// /dev/kvm on an AMD host, emulator binary missing).
[[nodiscard]] nsvm::expected<std::unique_ptr<Runner>, std::string> make_runner(RunnerOptions opts);

/// The directory holding a built image: $NSVM_ORACLE_IMAGE if set, else
/// builds it with `make -C <source>/oracle/image OUT=<dir>` (source from
/// $NSVM_SOURCE_DIR or this library's build location), dir =
/// $NSVM_ORACLE_OUT or <source>/oracle/out/image.
[[nodiscard]] nsvm::expected<std::filesystem::path, std::string> find_or_build_image();

/// Writes the descriptor inputs of `v` for a slot (the 4 KiB page at +0x1000);
/// exposed for tests. `slot` must hold NSVM_OR_SLOT_SIZE bytes.
[[nodiscard]] nsvm::expected<void, std::string> encode_slot(const Vector& v, std::span<std::uint8_t> slot);
/// Reads the result the image left in a slot.
[[nodiscard]] Result decode_slot(const Vector& v, std::span<const std::uint8_t> slot);
/// The same, into an existing result (no 4 KiB temporary).
void decode_slot_into(const Vector& v, std::span<const std::uint8_t> slot, Result& r);

}  // namespace nsvm::oracle
