// The evaluator: the fast verdict (one decode, every predicate inlined), the
// first failure of a stage range, and the full report.
#include "nsvm/checks/evaluate.hpp"

#include <span>
#include <utility>

#include <fmt/format.h>

#include "nsvm/arch/exit_codes.hpp"
#include "rules.hpp"

namespace nsvm::checks {
namespace {

template <class... R>
bool none_violated(const rules::View& v, ProfileMask pm, rules::List<R...>) noexcept {
    // A fold over the rule types: each predicate is a direct, inlinable call;
    // no table, no indirect call, no allocation.
    return (... && (((R::mask & pm) == 0) || !R::test(v)));
}

/// The first rule of `rules` (catalogue index I) that applies to the profile,
/// belongs to a stage in [first, last], is not `skip` and is violated. One
/// View for the whole scan: the VMCB is decoded once, not once per check.
template <class... R, std::size_t... I>
const Check* first_violated(const rules::View& v, ProfileMask pm, Stage first, Stage last, const Check* skip,
                            rules::List<R...>, std::index_sequence<I...>) noexcept {
    const std::span<const Check> all = catalogue();
    const Check* found = nullptr;
    (void)(... || ((R::mask & pm) != 0 && R::stage >= first && R::stage <= last && &all[I] != skip && R::test(v) &&
                   (found = &all[I]) != nullptr));
    return found;
}

template <class... R>
constexpr auto index_sequence_of(rules::List<R...>) noexcept {
    return std::index_sequence_for<R...>{};
}

bool applies(const Check& c, const Profile& p) noexcept { return (c.profiles & mask_of(p.id)) != 0; }

std::string generic_detail(const Context& ctx, const Check& c) {
    std::string out;
    for (auto f : c.fields) {
        const auto id = arch::find_field(f);
        if (!id) continue;
        out += fmt::format("{}{} = {:#x}", out.empty() ? "" : ", ", f, ctx.vmcb.get(*id));
    }
    return out;
}

}  // namespace

bool vmrun_would_succeed(const Context& ctx) noexcept {
    const rules::View v(ctx);
    return none_violated(v, mask_of(ctx.profile.id), rules::AllRules{});
}

const Check* first_failure(const Context& ctx, Stage first, Stage last, const Check* skip) noexcept {
    const rules::View v(ctx);
    return first_violated(v, mask_of(ctx.profile.id), first, last, skip, rules::AllRules{},
                          index_sequence_of(rules::AllRules{}));
}

Report evaluate(const Context& ctx) {
    Report r;
    bool invalid = false;
    for (const auto& c : catalogue()) {
        if (!applies(c, ctx.profile)) continue;
        if (c.violated(ctx)) {
            std::string detail = c.detail != nullptr ? c.detail(ctx) : generic_detail(ctx, c);
            if (c.inferred) detail += detail.empty() ? "inferred rule (APM names no exit)" : "; inferred rule (APM names no exit)";
            r.failures.push_back(Failure{&c, std::move(detail)});
            invalid |= c.outcome == Outcome::vmexit_invalid;
        } else if (c.needs_memory != nullptr && c.needs_memory(ctx)) {
            Warning w;
            w.id = std::string(c.id);
            for (auto f : c.fields) w.fields.emplace_back(f);
            w.message = fmt::format("needs guest memory: {} (APM {}); this check was not decided", c.message, c.apm);
            r.warnings.push_back(std::move(w));
        }
    }
    // The instruction gates come first in the catalogue, in the order the
    // processor (or KVM) raises them: the first failing gate decides the
    // exception, and the VMCB is then never read.
    if (!r.failures.empty() && r.failures.front().check->stage == Stage::instruction) {
        r.verdict = r.failures.front().check->outcome == Outcome::ud ? Verdict::ud : Verdict::gp;
    } else if (invalid) {
        r.verdict = Verdict::vmexit_invalid;
        r.exit_code = ctx.profile.exit_code_32bit ? arch::exit_code::INVALID_32 : arch::exit_code::INVALID;
    }
    return r;
}

}  // namespace nsvm::checks
