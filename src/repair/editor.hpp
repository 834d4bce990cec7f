// Internal to the repair layer: writes fields of the VMCB under repair and
// records each write as a Change, so no fix can change a field silently.
#pragma once

#include <string_view>
#include <vector>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/repair/repair.hpp"

namespace nsvm::repair::detail {

class Editor {
public:
    Editor(arch::Vmcb& vmcb, std::vector<Change>& changes, std::string_view check_id) noexcept
        : vmcb_(vmcb), changes_(changes), check_id_(check_id) {}

    [[nodiscard]] std::uint64_t get(arch::FieldId id) const noexcept { return vmcb_.get(id); }
    /// Writes `value` (truncated to the field) and records it; false when the
    /// field already held it.
    bool set(arch::FieldId id, std::uint64_t value);
    bool set_bits(arch::FieldId id, std::uint64_t bits) { return set(id, get(id) | bits); }
    bool clear_bits(arch::FieldId id, std::uint64_t bits) { return set(id, get(id) & ~bits); }
    /// Sets intercept `bit`, recorded as the whole intercept word.
    bool set_intercept(unsigned bit);

private:
    arch::Vmcb& vmcb_;
    std::vector<Change>& changes_;
    std::string_view check_id_;
};

/// A minimal fix for one check: true when it changed something.
using Fixer = bool (*)(Editor&, const checks::Context&);

/// The specific fixer for `check_id`, or nullptr.
[[nodiscard]] Fixer find_fixer(std::string_view check_id) noexcept;

/// True for checks on the VMSA's SEV_FEATURES: beyond their specific fix,
/// no VMCB edit satisfies them (the generic fix must not be tried).
[[nodiscard]] bool vmcb_cannot_fix_rest(const checks::Check& check) noexcept;

/// Every field the check names takes reference_vmcb()'s value; intercept
/// vectors named as "control.intercepts[N]" take the reference's word N.
bool generic_fix(Editor& ed, const checks::Check& check, const arch::Vmcb& reference);

}  // namespace nsvm::repair::detail
