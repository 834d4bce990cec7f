// The consistency-check catalogue, as data (style.md "Checks as data").
// One entry per VMRUN condition of the APM (15.5.1's list and the feature
// sections) that a VMCB plus a CPU model can decide; the evaluator walks the
// table and reports every failure. docs/checks.md is generated from it.
#pragma once

#include <cstdint>
#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"

namespace nsvm::checks {

/// Where in VMRUN (APM 15.5.1) a check is decided.
enum class Stage : std::uint8_t {
    instruction,  ///< #UD / #GP gates before the VMCB is read (need the host state)
    control,      ///< control-area consistency checks
    save,         ///< guest-state consistency checks
    event,        ///< EVENTINJ legality (APM 15.20), after GIF = 1 in hardware
    memory,       ///< needs guest memory: PAE PDPEs, VMSA/RMP
};

/// What a failing check produces. `warning`: nothing architectural, VMRUN
/// goes ahead; the check exists to say that the state is one no processor can
/// reach and what implementations then do (evaluate() reports a warning with
/// the check's id, never a failure).
enum class Outcome : std::uint8_t {
    vmexit_invalid,
    ud,
    gp,
    vmexit_busy,
    vmexit_idle_required,
    vmexit_invalid_pmc,
    warning
};

/// The state of the processor that executes VMRUN, when the input gives it
/// (the instruction-level gates need it; QEMU's CR3 rule reads host LMA).
struct HostState {
    std::uint64_t efer = 0;
    std::uint64_t cr0 = 0;
    std::uint64_t cr4 = 0;
    std::uint64_t rflags = 0;
    std::uint8_t cpl = 0;
    std::uint64_t rax = 0;     ///< the VMCB physical address operand
    unsigned address_size = 64;
    std::uint64_t hwcr = 0;    ///< for SEV's SmmLock rule
    /// VM_HSAVE_PA MSR (C001_0117) when known; KVM raises #GP for 0.
    std::optional<std::uint64_t> vm_hsave_pa;
    bool smm = false;          ///< executing in SMM (VMRUN there: undefined per APM 15.5, #UD in KVM)
};

/// Reads guest-physical memory for the memory-stage checks; returns false
/// when the address is not backed.
struct GuestMemory {
    virtual ~GuestMemory() = default;
    [[nodiscard]] virtual bool read_u64(std::uint64_t gpa, std::uint64_t& out) const = 0;
};

/// Values of an SEV-ES guest's VMSA (APM Appendix B, Table B-4) that the
/// input gives in the clear: newer KVM's dump_vmcb prints them from the
/// decrypted VMSA (sev_decrypt_vmsa; SEV-ES guests whose VMSA KVM may
/// decrypt). Given at all, the VMSA page was read.
struct VmsaState {
    std::optional<std::uint64_t> sev_features;  ///< VMSA 3B0h, SEV_FEATURES
    std::optional<std::uint64_t> xcr0, xss, u_cet, pl0_ssp, pl1_ssp, pl2_ssp, pl3_ssp;
};

struct Context {
    const arch::Vmcb& vmcb;
    const CpuModel& cpu;
    const Profile& profile;
    const HostState* host = nullptr;      ///< nullptr: instruction gates are not evaluated
    const GuestMemory* memory = nullptr;  ///< nullptr: memory checks become "needs guest memory" warnings
    /// The VMSA's values the input gives (a KVM dump's decrypted VMSA lines);
    /// nullptr: the VMSA is read from `memory` at VMCB 108h, if at all.
    const VmsaState* vmsa = nullptr;
};

/// A boundary value of a check: a change to a valid guest (and, for checks on
/// the host, to a valid host) at the check's limit or just past it. The entry
/// lists both sides; the evaluator decides which side each is on.
enum class BaseGuest : std::uint8_t { long64, pae32, legacy32 };
enum class Op : std::uint8_t { none, assign, set, clear };
struct Poke {
    arch::FieldId field{};
    Op op = Op::none;
    std::uint64_t value = 0;
};
enum class HostReg : std::uint8_t { efer, cr0, cr4, rflags, cpl, rax, hsave_pa, smm, hwcr };
struct HostPoke {
    HostReg reg{};
    Op op = Op::none;
    std::uint64_t value = 0;
};
/// Guest memory for the memory stage: none given, or a PAE guest's PDPT (at
/// the CR3 of BaseGuest::pae32) valid, with reserved bits, or nothing backed.
enum class GuestMem : std::uint8_t { not_given, pdpt_valid, pdpt_reserved, nothing_backed };
struct Boundary {
    std::string_view name;
    BaseGuest base = BaseGuest::long64;
    std::array<Poke, 4> vmcb{};
    std::array<HostPoke, 2> host{};
    bool with_host = false;         ///< evaluate with a valid host (the gates need one)
    GuestMem memory = GuestMem::not_given;
    std::string_view features{};    ///< CPU model edits, e.g. "+sss_check"
    unsigned maxphyaddr = 0;        ///< 0: the model's
    std::optional<std::uint64_t> vmsa_sev_features{};  ///< the VMSA's SEV_FEATURES, when given
};
/// The guest of `b`: pokes b's VMCB changes into `vmcb` (a valid guest of
/// b.base). In place: a VMCB is 64-byte aligned, and passing one by value
/// changes ABI between compilers (g++ notes it).
void apply_boundary(const Boundary& b, arch::Vmcb& vmcb) noexcept;
/// The host of `b`: `base` (a valid host) with b's host pokes.
[[nodiscard]] HostState apply_boundary(const Boundary& b, HostState base) noexcept;

struct Check {
    std::string_view id;        ///< stable, e.g. "cr0.cd_nw"
    std::string_view apm;       ///< "15.5.1"
    std::string_view ref;       ///< row in the APM's lists: "C2" (15.5.1), "E3" (15.20), ...; docs/checks.md
    Stage stage;
    Outcome outcome;
    std::span<const std::string_view> fields;  ///< "save.cr0", "control.event_inj", ...
    std::string_view message;   ///< what is wrong, in words
    std::string_view hint;      ///< how to fix it
    /// Whether a profile applies this check: read from the profile's settings
    /// (the entry's applies() in src/checks/rules.hpp), never from its identity.
    bool (*applies)(const Profile&) noexcept;
    /// The built-in profiles that apply it, derived from `applies` (for display).
    ProfileMask profiles;
    /// true when the VMCB violates the check. Must not allocate.
    bool (*violated)(const Context&) noexcept;
    /// Optional: the offending values in words ("CR0 = 0x60000011"); may allocate.
    std::string (*detail)(const Context&) = nullptr;
    /// Memory-stage checks only: true when the VMCB triggers the check but
    /// ctx.memory is null, so the answer needs guest memory (a warning).
    bool (*needs_memory)(const Context&) noexcept = nullptr;
    /// True for rules the APM states as requirements without naming the exit
    /// (AVIC without NP, APM 15.29.4.1; SEV-ES without SEV or LBR
    /// virtualization, APM 15.35.2) or not at all; reported as
    /// VMEXIT_INVALID, marked "inferred".
    bool inferred = false;
    /// Values at and just past the check's limit (at least one each side).
    std::span<const Boundary> boundary{};
    /// The profile settings applies() and the predicate read: their rows in
    /// src/checks/profile.cpp hold each profile's value and reason, which are
    /// the check's per-profile reasons (`nsvm profile show NAME`).
    std::span<const std::string_view> settings{};
    /// For a check some profiles do not apply, and for every check whose
    /// outcome is Outcome::warning: what happens when VMRUN goes ahead on a
    /// VMCB that violates it. evaluate() then gives a warning with the
    /// check's id instead of a failure. Empty: nothing to say (a warning
    /// check must say it).
    std::string_view when_unchecked{};
    /// What a memory-stage check without its input needs, for its warning
    /// ("needs guest memory: ...").
    std::string_view needs_what = "guest memory";

    /// The check is decided by the VMSA's SEV_FEATURES (an SEV-SNP rule):
    /// no VMCB field can settle the rest of its conflict (nsvm repair).
    [[nodiscard]] constexpr bool decided_by_vmsa_sev_features() const noexcept;
};

/// What a check on SEV_FEATURES needs when it is not decided: VMRUN of an
/// SEV-SNP guest takes SEV_FEATURES from the guest's VMSA (offset 3B0h, APM
/// Appendix B Table B-4), never from the VMCB.
inline constexpr std::string_view kNeedsVmsaSevFeatures =
    "the VMSA's SEV_FEATURES (guest memory at control.vmsa_pa, or the sev_features line newer KVM prints from a "
    "decrypted VMSA)";

constexpr bool Check::decided_by_vmsa_sev_features() const noexcept { return needs_what == kNeedsVmsaSevFeatures; }

[[nodiscard]] constexpr std::string_view stage_name(Stage s) noexcept {
    switch (s) {
        case Stage::instruction: return "instruction";
        case Stage::control: return "control";
        case Stage::save: return "save";
        case Stage::event: return "event";
        case Stage::memory: return "memory";
    }
    return "?";
}

/// What a failing check produces, as the manual writes it.
[[nodiscard]] constexpr std::string_view outcome_name(Outcome o) noexcept {
    switch (o) {
        case Outcome::vmexit_invalid: return "VMEXIT_INVALID";
        case Outcome::ud: return "#UD";
        case Outcome::gp: return "#GP(0)";
        case Outcome::vmexit_busy: return "VMEXIT_BUSY";
        case Outcome::vmexit_idle_required: return "VMEXIT_IDLE_REQUIRED";
        case Outcome::vmexit_invalid_pmc: return "VMEXIT_INVALID_PMC";
        case Outcome::warning: return "warning (VMRUN goes ahead)";
    }
    return "?";
}

/// A VMRUN condition of the APM that a VMCB, a CPU model, the host state
/// nsvm models and guest memory cannot decide, so no check exists for it:
/// docs/checks.md lists them with the reason, so a clean report is never
/// read as "every VMRUN condition of the APM holds".
struct Undecided {
    std::string_view ref;        ///< row in the APM's lists (docs/checks.md "row")
    std::string_view apm;        ///< section
    std::string_view condition;  ///< in words
    std::string_view why;        ///< what it depends on that nsvm does not model
};
[[nodiscard]] std::span<const Undecided> undecided() noexcept;

/// How many rules src/checks/rules.hpp defines (counted where each is
/// defined): a rule defined but left out of the catalogue makes this differ
/// from catalogue().size(), which tests/checks/catalogue_test.cpp checks.
[[nodiscard]] std::size_t rules_defined() noexcept;

/// The whole catalogue, in evaluation order (deterministic).
[[nodiscard]] std::span<const Check> catalogue() noexcept;
[[nodiscard]] const Check* find_check(std::string_view id) noexcept;

}  // namespace nsvm::checks
