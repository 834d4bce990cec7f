// The repair loop: evaluate, fix every failing check, evaluate again.
#include "nsvm/repair/repair.hpp"

#include <map>
#include <string_view>

#include "editor.hpp"

namespace nsvm::repair {
namespace {

/// One round's fix for one failing check. The first attempt at a check uses
/// its specific fixer when it has one; a check that is still failing (or
/// has none) gets the reference values of its fields.
bool fix_one(arch::Vmcb& v, const checks::Context& ctx, const checks::Check& check, unsigned attempt,
             const arch::Vmcb& reference, std::vector<Change>& changes) {
    detail::Editor ed(v, changes, check.id);
    const detail::Fixer specific = detail::find_fixer(check.id);
    if (specific != nullptr && attempt == 0 && specific(ed, ctx)) return true;
    if (detail::vmcb_cannot_fix_rest(check)) return false;  // the rest is the VMSA's SEV_FEATURES
    return detail::generic_fix(ed, check, reference);
}

}  // namespace

Result repair(const arch::Vmcb& vmcb, const checks::CpuModel& cpu, const checks::Profile& profile,
              const checks::HostState* host, const checks::VmsaState* vmsa) {
    Result out{vmcb, {}, {}, checks::Verdict::valid, 0};
    const arch::Vmcb reference = reference_vmcb();
    std::map<std::string_view, unsigned> attempts;  // per check id: how often it was fixed already
    const checks::Context ctx{out.vmcb, cpu, profile, host, nullptr, vmsa};
    checks::Report report = checks::evaluate(ctx);
    while (report.verdict != checks::Verdict::valid && out.rounds < kMaxRounds) {
        ++out.rounds;
        bool changed = false;
        for (const auto& f : report.failures) {
            // The checks read out.vmcb through ctx, so a fix seen by one
            // check is seen by the next within the same round too.
            changed |= fix_one(out.vmcb, ctx, *f.check, attempts[f.check->id]++, reference, out.changes);
        }
        if (!changed) break;  // nothing left that a field edit can do
        report = checks::evaluate(ctx);
    }
    out.verdict = report.verdict;
    for (const auto& f : report.failures) out.unrepaired.emplace_back(f.check->id);
    return out;
}

}  // namespace nsvm::repair
