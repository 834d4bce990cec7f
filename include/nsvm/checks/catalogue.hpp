// The consistency-check catalogue, as data (style.md "Checks as data").
// One entry per condition of apm-svm.md §3 that a VMCB plus a CPU model can
// decide; the evaluator walks the table and reports every failure.
#pragma once

#include <cstdint>
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

/// What a failing check produces.
enum class Outcome : std::uint8_t { vmexit_invalid, ud, gp, vmexit_busy, vmexit_idle_required, vmexit_invalid_pmc };

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

struct Context {
    const arch::Vmcb& vmcb;
    const CpuModel& cpu;
    const Profile& profile;
    const HostState* host = nullptr;      ///< nullptr: instruction gates are not evaluated
    const GuestMemory* memory = nullptr;  ///< nullptr: memory checks become "needs guest memory" warnings
};

struct Check {
    std::string_view id;        ///< stable, e.g. "cr0.cd_nw"
    std::string_view apm;       ///< "15.5.1"
    std::string_view ref;       ///< row of apm-svm.md §3: "C2", "E3", ...
    Stage stage;
    Outcome outcome;
    std::span<const std::string_view> fields;  ///< "save.cr0", "control.event_inj", ...
    std::string_view message;   ///< what is wrong, in words
    std::string_view hint;      ///< how to fix it
    ProfileMask profiles;       ///< profiles that apply this check
    /// true when the VMCB violates the check. Must not allocate.
    bool (*violated)(const Context&) noexcept;
    /// Optional: the offending values in words ("CR0 = 0x60000011"); may allocate.
    std::string (*detail)(const Context&) = nullptr;
    /// Memory-stage checks only: true when the VMCB triggers the check but
    /// ctx.memory is null, so the answer needs guest memory (a warning).
    bool (*needs_memory)(const Context&) noexcept = nullptr;
    /// True for rules the APM states as requirements without naming the exit
    /// (apm-svm.md §16.8); reported as VMEXIT_INVALID, marked "inferred".
    bool inferred = false;
};

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
    }
    return "?";
}

/// A VMRUN condition of the APM that a VMCB, a CPU model, the host state
/// nsvm models and guest memory cannot decide, so no check exists for it:
/// docs/checks.md lists them with the reason, so a clean report is never
/// read as "all of apm-svm.md §3 holds".
struct Undecided {
    std::string_view ref;        ///< row of apm-svm.md §3
    std::string_view apm;        ///< section
    std::string_view condition;  ///< in words
    std::string_view why;        ///< what it depends on that nsvm does not model
};
[[nodiscard]] std::span<const Undecided> undecided() noexcept;

/// The whole catalogue, in evaluation order (deterministic).
[[nodiscard]] std::span<const Check> catalogue() noexcept;
[[nodiscard]] const Check* find_check(std::string_view id) noexcept;

}  // namespace nsvm::checks
