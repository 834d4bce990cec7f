// Peer timing: how long one VMRUN + #VMEXIT round trip, and one failing
// VMRUN, take inside an emulator (issue 5: nsvm's speed side by side with
// QEMU and Bochs, `nsvm oracle timing`, `make bench`).
//
// The image runs a vector's VMRUN back to back (HostKnobs::repeat). Emulated
// TSCs are not wall time (Bochs derives its TSC from the instruction count),
// so the host measures: two boots that differ only in the repeat count, and
// (t_long - t_short) / (repeat_long - repeat_short) is the cost of one VMRUN,
// free of boot and batch overheads.
#pragma once

#include <cstdint>

#include "nsvm/oracle/runner.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::oracle {

struct PeerTiming {
    Backend backend = Backend::qemu;
    std::uint64_t iterations = 0;  ///< extra VMRUNs of the long boot over the short one
    double roundtrip_ns = 0;       ///< VMRUN, L2 VMMCALL, #VMEXIT(VMMCALL)
    double failed_vmrun_ns = 0;    ///< VMRUN on a VMCB with ASID 0: #VMEXIT(VMEXIT_INVALID)
};

/// The round-trip vector: the image's long-mode base running VMMCALL.
[[nodiscard]] Vector timing_roundtrip_vector();
/// The failing vector: the same with ASID 0 (APM 15.5.1, every implementation checks it).
[[nodiscard]] Vector timing_failed_vector();

/// Runs both loops on `opts.backend`. Fails when the emulator cannot run or
/// a loop does not end in the expected exit.
[[nodiscard]] nsvm::expected<PeerTiming, std::string> measure_peer(const RunnerOptions& opts, std::uint64_t iterations);

}  // namespace nsvm::oracle
