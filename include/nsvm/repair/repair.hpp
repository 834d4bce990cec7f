// Repair: the nearest VMCB that VMRUN accepts, and why each change was made.
//
// A loop over the catalogue: evaluate, give every failing check a minimal
// fix of its own fields, evaluate again, for a bounded number of rounds. A
// check with a specific fixer (clear the reserved bits the check names, set
// the one bit it misses) gets that first; when that is not enough, or the
// check has none, each of its fields takes the value it has in
// reference_vmcb(), a VMCB every check of every profile accepts. Checks no
// VMCB field can satisfy (the instruction gates on the host state; the
// SEV-SNP checks once their VMCB half is fixed, the rest being the VMSA's
// SEV_FEATURES) are reported as unrepaired, never hidden.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/evaluate.hpp"

namespace nsvm::repair {

/// One field written by the repair.
struct Change {
    std::string field;     ///< arch field name, "save.cr0"; "control.intercepts[4]" style for intercept bits
    std::uint64_t old_value = 0;
    std::uint64_t new_value = 0;
    std::string check_id;  ///< the failing check this change addresses
};

struct Result {
    arch::Vmcb vmcb;                        ///< the repaired VMCB
    std::vector<Change> changes;            ///< in the order they were made
    std::vector<std::string> unrepaired;    ///< ids of checks that still fail
    checks::Verdict verdict = checks::Verdict::valid;  ///< of the repaired VMCB
    unsigned rounds = 0;                    ///< evaluate/fix rounds used
    [[nodiscard]] bool valid() const noexcept { return verdict == checks::Verdict::valid; }
};

/// Upper bound on evaluate/fix rounds: a fix may uncover another check
/// (long mode needs PAE, which needs ...), but never more than a few deep.
inline constexpr unsigned kMaxRounds = 8;

/// Repairs `vmcb` for (cpu, profile), with the host state when known (the
/// instruction gates need it; they cannot be repaired in the VMCB) and the
/// VMSA's values when known (a KVM dump's decrypted VMSA: the SEV-SNP checks
/// on SEV_FEATURES read it; it is never edited, only the VMCB is).
[[nodiscard]] Result repair(const arch::Vmcb& vmcb, const checks::CpuModel& cpu, const checks::Profile& profile,
                            const checks::HostState* host = nullptr, const checks::VmsaState* vmsa = nullptr);

/// A 64-bit long-mode guest (CPL 0, paging, ASID 1, VMRUN and VMMCALL
/// intercepted, permission maps at 0x10000/0x14000) that passes every check
/// of every profile on every built-in CPU model: the generic repair's source
/// of known-good field values. Equal to tests/support's valid_vmcb64().
[[nodiscard]] arch::Vmcb reference_vmcb() noexcept;

}  // namespace nsvm::repair
