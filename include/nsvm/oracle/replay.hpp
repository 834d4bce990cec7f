// Results produced elsewhere, replayed as an oracle (`nsvm diff --results`).
//
// A results file is the JSON-lines output of `nsvm oracle run --json` (on
// another machine, on AMD hardware through qemu-kvm, or by a tool of the
// user's own) for the vectors the diff runs. The replay is a Runner: the diff
// predicts, compares and reports exactly as with a live backend, and only
// where the results come from changes. The file is read as a stream, one
// bounded line at a time, so memory does not grow with its size.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "nsvm/oracle/runner.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::oracle {

/// Longest result line accepted (a result with the whole VMCB is some
/// 10 KiB), the exec protocol's limit too.
inline constexpr std::size_t kMaxResultLineBytes = std::size_t{1} << 20;
/// Results read ahead of their vector: how far out of the vectors' order a
/// results file may be (the concatenated outputs of sharded runs are).
inline constexpr std::size_t kMaxResultsAhead = 65536;
/// Matched ids remembered (by a 64-bit hash, some 16 bytes each) to name a
/// late second result for one of them a duplicate.
inline constexpr std::size_t kMaxMatchedIdsRemembered = std::size_t{1} << 22;

class ResultsReplay : public Runner {
public:
    /// Opens `path` ("-": stdin) and reads its first result, which names the
    /// backend. Fails (with "file:line: member: why") on an unreadable file or
    /// a first line that is not a result.
    [[nodiscard]] static nsvm::expected<std::unique_ptr<ResultsReplay>, std::string> open(const std::string& path);
    /// The `backend` member of the results ("" when they do not say).
    [[nodiscard]] virtual const std::string& backend() const noexcept = 0;
    /// After the last vector: every result in the file was some vector's.
    /// Fails naming the line of the first result left over.
    [[nodiscard]] virtual nsvm::expected<void, std::string> finish() = 0;
};

}  // namespace nsvm::oracle
