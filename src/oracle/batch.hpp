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

/// Runs `vectors` (one boot or more) and appends one result per vector to
/// `out`. Returns an error only if the emulator did not start or never
/// reached the image.
[[nodiscard]] nsvm::expected<void, std::string> run_batch(std::span<const Vector> vectors, std::span<std::uint8_t> region,
                                                          const BootFn& boot, std::string_view backend,
                                                          std::string_view cpu_model, std::vector<Result>& out,
                                                          RunStats& stats);

/// A vector whose EFER.LMA disagrees with EFER.LME && CR0.PG (APM 3.1.7).
/// QEMU 7.2 accepts it, and afterwards nested paging in later vectors of the
/// same boot stops faulting where it must (nsvm diff found it: a #NPF beyond
/// the nested tables became a successful load). Runners run such vectors
/// after all the others of a boot, so they cannot affect them.
[[nodiscard]] bool taints_later_vectors(const Vector& v) noexcept;

/// What both emulator runners share: splitting the vectors into batches of
/// RunnerOptions::batch_size (one boot or more each), results appended in
/// place (a Result holds a 4 KiB VMCB: copies cost more than the decoding).
class BatchedRunner : public Runner {
public:
    [[nodiscard]] nsvm::expected<std::vector<Result>, std::string> run(std::span<const Vector> vectors) final;
    [[nodiscard]] const RunStats& stats() const noexcept final { return stats_; }

protected:
    explicit BatchedRunner(RunnerOptions o) : o_(std::move(o)) {}
    /// Runs one batch, appending its results to `out`.
    [[nodiscard]] virtual nsvm::expected<void, std::string> run_chunk(std::span<const Vector> vectors,
                                                                      std::vector<Result>& out) = 0;
    RunnerOptions o_;
    RunStats stats_;
};

/// Little-endian header accessors.
[[nodiscard]] std::uint32_t hdr32(std::span<const std::uint8_t> region, std::size_t off) noexcept;
[[nodiscard]] std::uint64_t hdr64(std::span<const std::uint8_t> region, std::size_t off) noexcept;

}  // namespace nsvm::oracle::detail
