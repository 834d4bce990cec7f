// The evaluator: the fast verdict (one decode, every predicate inlined), the
// first failure of a stage range, and the full report.
#include "nsvm/checks/evaluate.hpp"

#include <array>
#include <optional>
#include <span>
#include <utility>

#include <fmt/format.h>

#include "nsvm/arch/exit_codes.hpp"
#include "rules.hpp"

namespace nsvm::checks {
namespace {

/// No catalogue index: nothing skipped, nothing found.
constexpr std::size_t kNoRule = ~std::size_t{0};

template <class... R>
bool none_violated(const rules::View& v, rules::List<R...>) noexcept {
    // A fold over the rule types: each predicate is a direct, inlinable call;
    // no table, no indirect call, no allocation.
    return (... && (R::outcome == Outcome::warning || !R::applies(v.p) || !R::test(v)));
}

/// The stage range, warning choice and skip of one scan, fixed at compile
/// time for the scans the VMRUN path makes on every entry (L0's of the
/// vmcb12 cache, the processor's of the VMCB it runs), so that each rule
/// costs its profile's applies() and its test alone; Scan::any takes them
/// at run time for every other caller.
struct Scan {
    Stage first, last;
    Warnings warnings;
    bool may_skip;  ///< a rule may be passed over (`skip`)
    bool exact;     ///< the run-time range and warnings are these
    static constexpr Scan any() noexcept {
        return {Stage::instruction, Stage::memory, Warnings::included, true, false};
    }
};

/// The first rule of `rules` (catalogue index I) that applies to the profile,
/// belongs to a stage in [first, last], is not the one at index `skip` and is
/// violated; a warning rule only when `warnings` says so. One View for the
/// whole scan: the VMCB is decoded once, not once per check. `S` bounds the
/// run-time arguments at compile time: a rule outside S's range, a warning
/// S excludes, a skip S rules out, cost nothing. The instruction gates
/// (every SVM instruction) instantiate only their rules.
template <Scan S, class... R, std::size_t... I>
const Check* first_violated(const rules::View& v, Stage first, Stage last, std::size_t skip, Warnings warnings,
                            rules::List<R...>, std::index_sequence<I...>) noexcept {
    std::size_t found = kNoRule;
    (void)(... || (R::stage >= S.first && R::stage <= S.last &&
                   (S.exact || (R::stage >= first && R::stage <= last)) &&
                   (R::outcome != Outcome::warning ||
                    (S.warnings == Warnings::included && (S.exact || warnings == Warnings::included))) &&
                   R::applies(v.p) && (!S.may_skip || I != skip) && R::test(v) && ((found = I), true)));
    return found == kNoRule ? nullptr : &catalogue()[found];
}

template <class... R>
constexpr auto index_sequence_of(rules::List<R...>) noexcept {
    return std::index_sequence_for<R...>{};
}


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
    return none_violated(v, rules::AllRules{});
}

const Check* first_failure(const Context& ctx, Stage first, Stage last, const Check* skip,
                           Warnings warnings) noexcept {
    const rules::View v(ctx);
    const std::size_t skip_index = skip != nullptr ? static_cast<std::size_t>(skip - catalogue().data()) : kNoRule;
    constexpr auto all = rules::AllRules{};
    constexpr auto seq = index_sequence_of(all);
    // The VMRUN path's two scans: L0's of the vmcb12 cache (control to
    // event, maybe passing over one rule) and the processor's (control to
    // memory, all of them).
    constexpr Scan l0_cache{Stage::control, Stage::event, Warnings::excluded, true, true};
    constexpr Scan processor{Stage::control, Stage::memory, Warnings::excluded, false, true};
    if (warnings == Warnings::excluded && first == Stage::control) {
        if (last == Stage::event) return first_violated<l0_cache>(v, first, last, skip_index, warnings, all, seq);
        if (last == Stage::memory && skip == nullptr)
            return first_violated<processor>(v, first, last, skip_index, warnings, all, seq);
    }
    return first_violated<Scan::any()>(v, first, last, skip_index, warnings, all, seq);
}

const Check* first_gate_failure(const Context& ctx) noexcept {
    const rules::View v(ctx, rules::View::GatesOnly{});
    constexpr Scan gates{Stage::instruction, Stage::instruction, Warnings::excluded, false, true};
    return first_violated<gates>(v, Stage::instruction, Stage::instruction, kNoRule, Warnings::excluded,
                                 rules::AllRules{}, index_sequence_of(rules::AllRules{}));
}

namespace {

/// The decision of one check on partial input.
enum class Decision : std::uint8_t { passes, fails, undecided };
using Decide = Decision (*)(const Check&, const Context&, const void*);

Decision decide_whole(const Check& c, const Context& ctx, const void*) {
    return c.violated(ctx) ? Decision::fails : Decision::passes;
}

/// The VMCB with every field the input did not give set to `fill` (cut to
/// the field's width); byte-run fields stay as they are.
arch::Vmcb filled(const arch::Vmcb& in, const std::vector<bool>& given, std::uint64_t fill) {
    arch::Vmcb v = in;
    for (const auto& f : arch::kFields) {
        const auto i = static_cast<std::size_t>(f.id);
        if (i < given.size() && given[i]) continue;
        if (f.kind != arch::FieldKind::integer) continue;
        v.set(f.id, fill & arch::width_mask(f.width));
    }
    return v;
}

/// The fills evaluate_partial tries for the fields the input did not give.
constexpr std::array<std::uint64_t, 4> kFills{0, ~std::uint64_t{0}, 0x5555555555555555ULL, 0xAAAAAAAAAAAAAAAAULL};

struct PartialInput {
    const std::vector<bool>* given;
    std::array<arch::Vmcb, kFills.size()> samples;
};

bool names_missing_field(const Check& c, const std::vector<bool>& given) {
    for (auto name : c.fields) {
        const auto id = arch::find_field(name);
        if (!id) continue;  // a name for several fields ("control.intercepts"): the samples decide
        const auto i = static_cast<std::size_t>(*id);
        if (i >= given.size() || !given[i]) return true;
    }
    return false;
}

Decision decide_partial(const Check& c, const Context& ctx, const void* p) {
    const auto& in = *static_cast<const PartialInput*>(p);
    if (names_missing_field(c, *in.given)) return Decision::undecided;
    std::optional<bool> verdict;
    for (const auto& sample : in.samples) {
        const Context sctx{sample, ctx.cpu, ctx.profile, ctx.host, ctx.memory, ctx.vmsa};
        const bool v = c.violated(sctx);
        if (verdict && *verdict != v) return Decision::undecided;
        verdict = v;
    }
    return *verdict ? Decision::fails : Decision::passes;
}

/// A check the profile does not apply, or a warning check, on a VMCB that
/// violates it: VMRUN goes ahead, and the entry's `when_unchecked` says what
/// then happens (warning id = the check's id).
void warn_unchecked(const Check& c, const Context& ctx, bool violated, Report& r) {
    if (c.when_unchecked.empty() || !violated) return;
    Warning w;
    w.id = std::string(c.id);
    for (auto f : c.fields) w.fields.emplace_back(f);
    const std::string values = c.detail != nullptr ? fmt::format(" ({})", c.detail(ctx)) : std::string();
    w.message = c.outcome == Outcome::warning
                    ? fmt::format("{}{}: {}", c.message, values, c.when_unchecked)
                    : fmt::format("{}{}; profile {} does not check it: {}", c.message, values, ctx.profile.name,
                                  c.when_unchecked);
    r.warnings.push_back(std::move(w));
}

Report evaluate_with(const Context& ctx, Decide decide, const void* extra) {
    Report r;
    bool invalid = false;
    for (const auto& c : catalogue()) {
        if (c.outcome == Outcome::warning || !c.applies(ctx.profile)) {
            warn_unchecked(c, ctx, decide(c, ctx, extra) == Decision::fails, r);
            continue;
        }
        const Decision d = decide(c, ctx, extra);
        if (d == Decision::undecided) {
            r.undecided.push_back(&c);
        } else if (d == Decision::fails) {
            std::string detail = c.detail != nullptr ? c.detail(ctx) : generic_detail(ctx, c);
            if (c.inferred) detail += detail.empty() ? "inferred rule (APM names no exit)" : "; inferred rule (APM names no exit)";
            r.failures.push_back(Failure{&c, std::move(detail)});
            invalid |= c.outcome == Outcome::vmexit_invalid;
        } else if (c.needs_memory != nullptr && c.needs_memory(ctx)) {
            Warning w;
            w.id = std::string(c.id);
            for (auto f : c.fields) w.fields.emplace_back(f);
            w.message =
                fmt::format("needs {}: {} (APM {}); this check was not decided", c.needs_what, c.message, c.apm);
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

}  // namespace

Report evaluate(const Context& ctx) { return evaluate_with(ctx, decide_whole, nullptr); }

Report evaluate_partial(const Context& ctx, const std::vector<bool>& given) {
    PartialInput in{&given, {}};
    for (std::size_t k = 0; k < kFills.size(); ++k) in.samples[k] = filled(ctx.vmcb, given, kFills[k]);
    // The report's details and the memory checks read the input as given
    // (fields not given as zero, the first sample).
    const Context zero{in.samples[0], ctx.cpu, ctx.profile, ctx.host, ctx.memory, ctx.vmsa};
    return evaluate_with(zero, decide_partial, &in);
}

}  // namespace nsvm::checks
