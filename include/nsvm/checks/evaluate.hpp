// Evaluating the catalogue: pure functions of (VMCB, CPU model, profile).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nsvm/checks/catalogue.hpp"

namespace nsvm::checks {

enum class Verdict : std::uint8_t { valid, vmexit_invalid, ud, gp, other_vmexit };

struct Failure {
    const Check* check = nullptr;
    std::string detail;  ///< values involved, may be empty
};
struct Warning {
    std::string id;
    std::vector<std::string> fields;
    std::string message;
};

struct Report {
    Verdict verdict = Verdict::valid;
    std::uint64_t exit_code = 0;      ///< when verdict is a VMEXIT (-1 .. -4)
    std::vector<Failure> failures;    ///< every failing check, catalogue order
    std::vector<Warning> warnings;    ///< e.g. "needs guest memory"
    /// evaluate_partial only: checks the input cannot decide (they read a
    /// field it does not give), catalogue order. Never counted as passed.
    std::vector<const Check*> undecided;
};

/// Fast path: would VMRUN succeed? No allocation, stops at the first failure.
/// Memory-stage checks run only when ctx.memory is set.
[[nodiscard]] bool vmrun_would_succeed(const Context& ctx) noexcept;

/// Whether a scan counts the warning checks (Outcome::warning): VMRUN never
/// fails on them, but a state they flag is one no processor can reach, which
/// a VMCB L0 built itself must not hold (nested's vmcb02 invariant).
enum class Warnings : std::uint8_t { excluded, included };

/// The first failing check (catalogue order) whose stage is in [first, last],
/// or nullptr; `skip`, when given, is passed over (KVM finds some failures
/// later than the checks, see nested's load_l2_cr3). Used by the cpu and
/// nested layers: no allocation, the VMCB decoded once.
[[nodiscard]] const Check* first_failure(const Context& ctx, Stage first, Stage last, const Check* skip = nullptr,
                                         Warnings warnings = Warnings::excluded) noexcept;

/// The first instruction gate (Stage::instruction) that fails. The gates read
/// ctx.host and the address width only; ctx.vmcb is not read.
[[nodiscard]] const Check* first_gate_failure(const Context& ctx) noexcept;

/// Full report: every failure with details, plus warnings.
[[nodiscard]] Report evaluate(const Context& ctx);

/// The report for partial input: `given[i]` tells whether the input gave
/// field arch::FieldId(i) (a register dump without a control area, a quote of
/// a few dump lines). A check is decided only when every field it names is
/// given and its verdict is the same whatever the fields not given hold
/// (tried with them all zeros, all ones and two alternating patterns);
/// every other check goes to Report::undecided. ctx.vmcb holds the given
/// fields (the others are ignored).
[[nodiscard]] Report evaluate_partial(const Context& ctx, const std::vector<bool>& given);

}  // namespace nsvm::checks
