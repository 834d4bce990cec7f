// The nested page-table walker (APM 15.25): 4-level long-mode format tables
// rooted at nCR3, 2 MiB and 1 GiB pages, reserved bits, P/RW/US/NX, and the
// accessed/dirty updates. A fault yields #VMEXIT(NPF) with EXITINFO1 as a
// #PF-style error code plus bit 32 (fault on the final GPA translation) or
// bit 33 (fault while walking the guest's own page tables), and EXITINFO2 =
// the faulting guest-physical address (APM 15.25.6).
#pragma once

#include <cstdint>

#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/memory.hpp"

namespace nsvm::cpu {

namespace npf {
inline constexpr std::uint64_t P = 1, RW = 2, US = 4, RSV = 8, ID = 16, FINAL_GPA = std::uint64_t{1} << 32,
                               GUEST_PT = std::uint64_t{1} << 33;
}

struct NptResult {
    bool ok = false;
    std::uint64_t hpa = 0;     ///< translated address when ok
    std::uint64_t info1 = 0;   ///< EXITINFO1 when !ok
    std::uint64_t info2 = 0;   ///< EXITINFO2 (the GPA) when !ok
    unsigned level = 0;        ///< level where the walk stopped (4..1)
};

/// Walks the nested tables for `gpa`. `nxe`: the host EFER.NXE (NX bit is
/// reserved without it). `guest_pt_access` marks walks done on behalf of the
/// guest's own page-table reads. Sets A (and D for writes at the leaf).
[[nodiscard]] NptResult npt_walk(GuestMemory& mem, std::uint64_t ncr3, std::uint64_t gpa, Access a, bool nxe,
                                 bool guest_pt_access = false) noexcept;

}  // namespace nsvm::cpu
