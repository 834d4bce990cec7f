// Test-vector generation for the oracle (`nsvm gen`).
//
// The boundary set: for every consistency check a vector can express, the
// last passing and the first failing value, one violation at a time and in
// pairs, plus one vector per L2 program. Random vectors: mutations of the
// bases from a seed. Every vector names the check ids it exercises; its note
// says whether the chosen CPU model and profile expect VMRUN to pass.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/oracle/vector.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::oracle {

/// The guest modes the image supports without extra memory setup.
enum class BaseMode : std::uint8_t { long64, prot32, pae32, legacy32 };

/// A valid VMCB for the image's L2 environment (layout.h), running `p`.
[[nodiscard]] Vector base_vector(BaseMode mode, Program p = Program::vmmcall);

struct GenOptions {
    checks::CpuModel cpu;
    const checks::Profile* profile = nullptr;
    bool boundary = true;                 ///< the boundary set
    bool pairs = true;                    ///< pairs of violations
    std::optional<std::uint64_t> seed;    ///< random vectors (with count)
    std::size_t count = 0;
    std::size_t shard_index = 0;          ///< --shard i/n: keep boundary vector b when b % n == i
    std::size_t shard_count = 1;          ///< and random vector k when k % n == i
};

/// The boundary set (bases, programs, one violation at a time, pairs), sharded.
[[nodiscard]] std::vector<Vector> generate_boundary(const GenOptions& o);
/// Random vectors first..first+count-1 of the seed (those of this shard).
/// Vector k depends only on (seed, k), so a campaign can run in chunks.
[[nodiscard]] std::vector<Vector> generate_random(const GenOptions& o, std::uint64_t first, std::uint64_t count);
/// The boundary set (if o.boundary) then random vectors 0..count-1 (if o.seed).
[[nodiscard]] std::vector<Vector> generate(const GenOptions& o);
/// The same vectors in the same order, handed to `sink` one at a time as
/// they are made: memory stays flat however large o.count is (nsvm gen).
void generate_each(const GenOptions& o, const std::function<void(const Vector&)>& sink);

/// Most random vectors one campaign or `nsvm gen` accepts (--count): about
/// a year of QEMU time, and far from wrapping any index.
inline constexpr std::uint64_t kMaxCount = 1'000'000'000'000ULL;
/// A --seed or --count value: decimal or 0x-hex, no sign, at most `max`.
/// The error names the option ("--count: ...").
[[nodiscard]] nsvm::expected<std::uint64_t, std::string> parse_unsigned_option(std::string_view option,
                                                                              std::string_view text,
                                                                              std::uint64_t max);

/// "i/n" with 0 <= i < n.
[[nodiscard]] nsvm::expected<std::pair<std::size_t, std::size_t>, std::string> parse_shard(std::string_view s);

/// Keeps the vectors of shard i of n (k % n == i), in order.
[[nodiscard]] std::vector<Vector> shard(std::vector<Vector> all, std::size_t index, std::size_t count);

}  // namespace nsvm::oracle
