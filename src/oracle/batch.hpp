// The batch engine shared by the emulator runners (internal): lays vectors
// into slots, boots, reads the batch header back, and restarts after the
// vector that crashed, hung or panicked the emulator.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "nsvm/oracle/runner.hpp"
#include "process.hpp"

namespace nsvm::oracle::detail {

/// Guest memory from NSVM_OR_BATCH_PA on: header page, then the slots.
[[nodiscard]] constexpr std::size_t region_size(std::size_t n) noexcept {
    return static_cast<std::size_t>(NSVM_OR_SLOTS_PA - NSVM_OR_BATCH_PA + n * NSVM_OR_SLOT_SIZE);
}

struct BootOutcome {
    ExitInfo exit;
    std::string log_tail;
    /// False when the backend could not read guest memory back at all
    /// (e.g. Bochs stopped before its memory dump); `progress_hint` then
    /// says which vector was running, if known.
    bool memory_valid = true;
    std::optional<std::uint32_t> progress_hint;
};

/// A backend's way to boot once over a region (`region` is what the guest
/// sees at NSVM_OR_BATCH_PA; after the boot it must hold what the guest left).
using BootFn = std::function<BootOutcome(std::span<std::uint8_t> region, std::size_t count)>;

/// Runs `vectors` (one boot or more) and fills `out` (same size). Returns an
/// error only if the emulator did not start or never reached the image.
[[nodiscard]] nsvm::expected<void, std::string> run_batch(std::span<const Vector> vectors, std::span<std::uint8_t> region,
                                                          const BootFn& boot, std::string_view backend,
                                                          std::string_view cpu_model, std::vector<Result>& out,
                                                          RunStats& stats);

/// Little-endian header accessors.
[[nodiscard]] std::uint32_t hdr32(std::span<const std::uint8_t> region, std::size_t off) noexcept;
[[nodiscard]] std::uint64_t hdr64(std::span<const std::uint8_t> region, std::size_t off) noexcept;

}  // namespace nsvm::oracle::detail
