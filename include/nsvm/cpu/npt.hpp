// The nested page-table walker (APM 15.25): 4-level long-mode format tables
// rooted at nCR3, 2 MiB and 1 GiB pages, reserved bits, P/RW/US/NX, and the
// accessed/dirty updates. A fault yields #VMEXIT(NPF) with EXITINFO1 as a
// #PF-style error code plus bit 32 (fault on the final GPA translation) or
// bit 33 (fault while walking the guest's own page tables), and EXITINFO2 =
// the faulting guest-physical address (APM 15.25.6).
#pragma once

#include <cstdint>

#include "nsvm/arch/bits.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/memory.hpp"

namespace nsvm::cpu {

/// EXITINFO1's bits (the architecture's names, arch::npf).
namespace npf = arch::npf;

/// The host controls a nested walk follows (APM 15.25.5: the nested tables
/// are walked in the host's paging mode).
struct NestedPagingMode {
    bool nxe = false;   ///< host EFER.NXE: the NX bit exists (reserved without it)
    bool smep = false;  ///< host CR4.SMEP
    bool gmet = false;  ///< Guest Mode Execute Trap in effect (APM 15.25.13)
};

/// The mode of the nested walks of a guest run with `nested_ctl` (VMCB 090h)
/// by a host with `host_efer` and `host_cr4`. GMET needs the CPU's GMET
/// (CPUID Fn8000_000A_EDX[17]); on a CPU without it the bit is ignored.
[[nodiscard]] NestedPagingMode nested_paging_mode(const checks::CpuModel& cpu, std::uint64_t nested_ctl,
                                                  std::uint64_t host_efer, std::uint64_t host_cr4) noexcept;

/// The nested access a guest access `a` (a.user: the guest's CPL is 3) makes:
/// a user access whatever the guest's CPL (APM 15.25.5), except that with
/// GMET an instruction fetch at CPL < 3 is a supervisor fetch (15.25.13).
[[nodiscard]] constexpr Access nested_access(Access a, NestedPagingMode m) noexcept {
    return Access{a.write, a.user || !(m.gmet && a.fetch), a.fetch};
}

/// EXITINFO1 bits 4:1 for a nested access: RW for a write, US for a user
/// access, ID for a fetch only when the host's EFER.NXE or CR4.SMEP is set
/// (as the #PF error code's I/D, APM 8.4.2; KVM paging_tmpl.h
/// walk_addr_generic reports the fetch only under is_efer_nx || is_cr4_smep).
[[nodiscard]] constexpr std::uint64_t npf_access_bits(Access a, NestedPagingMode m) noexcept {
    return (a.write ? npf::RW : 0) | (a.user ? npf::US : 0) | (a.fetch && (m.nxe || m.smep) ? npf::ID : 0);
}

/// A page-translation entry as the walk that used it leaves it (APM 5.4.2):
/// A set; D set too on the leaf of a permitted write. Same bits in 4-byte
/// legacy entries, 8-byte PAE/long-mode entries and nested entries.
[[nodiscard]] constexpr std::uint64_t accessed_dirty(std::uint64_t entry, bool dirty) noexcept {
    return entry | arch::pte::A | (dirty ? arch::pte::D : 0);
}

struct NptResult {
    bool ok = false;
    std::uint64_t hpa = 0;     ///< translated address when ok
    std::uint64_t info1 = 0;   ///< EXITINFO1 when !ok
    std::uint64_t info2 = 0;   ///< EXITINFO2 (the GPA) when !ok
    unsigned level = 0;        ///< level where the walk stopped (4..1)
};

/// Walks the nested tables for `gpa` with the nested access `a`
/// (nested_access). `guest_pt_access` marks walks done on behalf of the
/// guest's own page-table reads. Sets A on every entry used, D on the leaf
/// of a permitted write. Without GMET every access needs the user right
/// (US = 1 at every level); a supervisor fetch under GMET needs a
/// supervisor page (US = 0 at some level) and faults on a user page.
[[nodiscard]] NptResult npt_walk(GuestMemory& mem, std::uint64_t ncr3, std::uint64_t gpa, Access a,
                                 NestedPagingMode mode, bool guest_pt_access = false) noexcept;

}  // namespace nsvm::cpu
