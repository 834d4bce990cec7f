// nsvm check: would VMRUN on this VMCB fail, and why (docs/formats.md).
#include <algorithm>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "warnings.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/formats/decode.hpp"
#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::cli {
namespace {

struct CheckOptions {
    std::string file;
    std::string format = "auto";
    bool json = false;
    bool partial = false;
    std::vector<std::string> set;  ///< FIELD=VALUE edits applied after reading
    ModelOptions model;
    std::string dump_text;             ///< --dump N, as given (checked by unsigned_option)
    CLI::Option* dump_opt = nullptr;
};

/// Dumps a log may name with --dump (far more than any host's vCPUs).
constexpr std::uint64_t kMaxDumpIndex = 1'000'000;

std::string verdict_line(const checks::Report& r) {
    switch (r.verdict) {
        case checks::Verdict::valid:
            if (!r.undecided.empty())
                return fmt::format("no check this input decides fails ({} not decided: the input does not give "
                                   "their fields)",
                                   r.undecided.size());
            return "VMRUN would succeed";
        case checks::Verdict::ud: return "VMRUN would raise #UD before reading the VMCB";
        case checks::Verdict::gp: return "VMRUN would raise #GP(0) before reading the VMCB";
        default: {
            const auto d = arch::exit_code::describe(r.exit_code);
            return fmt::format("VMRUN would fail: #VMEXIT({} = {:#018x})", d.name, r.exit_code);
        }
    }
}

/// What a dump's own exit code says (a dump records the last VMRUN's exit):
/// anything but VMEXIT_INVALID means that VMRUN succeeded and the guest ran
/// until this exit; VMEXIT_INVALID with no failing check must be said too,
/// never a bare "would succeed". Empty for a VMCB that is not a dump or whose
/// exit code the dump does not give.
struct DumpExit {
    bool given = false;
    std::uint64_t code = 0, info1 = 0, info2 = 0;
    [[nodiscard]] bool vmrun_failed() const { return arch::exit_code::is_vmrun_failure(code); }
};

DumpExit dump_exit(const formats::ReadResult& in) {
    DumpExit d;
    const bool dump = in.format == formats::Format::kvm_dump || in.format == formats::Format::xen_dump ||
                      in.format == formats::Format::qemu_dump;
    const auto given = [&](arch::FieldId f) {
        const auto i = static_cast<std::size_t>(f);
        return i < in.given.size() && in.given[i];
    };
    if (!dump || !given(arch::FieldId::exit_code)) return d;
    d.given = true;
    d.code = in.vmcb.get(arch::FieldId::exit_code);
    d.info1 = in.vmcb.get(arch::FieldId::exit_info_1);
    d.info2 = in.vmcb.get(arch::FieldId::exit_info_2);
    return d;
}

/// Xen's own verdict on this dump (its svm_vmcb_isvalid() lines in the
/// paste) set beside nsvm's, reason by reason.
struct XenReasonVerdict {
    const formats::XenIsvalidLine* line = nullptr;
    enum class Kind : std::uint8_t {
        agrees,      ///< nsvm fails a check the reason maps to
        disagrees,   ///< every check it maps to passes here
        undecided,   ///< the input does not give the fields (partial input)
        xen_only,    ///< a rule of Xen's own: no VMRUN check of the hardware
        other_vmcb,  ///< the value Xen printed is not this dump's: Xen validated another VMCB
    } kind = Kind::agrees;
    std::string detail;
};

struct XenCrossCheck {
    std::vector<XenReasonVerdict> reasons;
    std::vector<std::string> not_reported;  ///< nsvm failures of checks Xen's validator makes too
    [[nodiscard]] std::string_view agreement() const {
        bool differ = !not_reported.empty();
        for (const auto& r : reasons) {
            if (r.kind == XenReasonVerdict::Kind::other_vmcb) return "not_comparable";
            if (r.kind != XenReasonVerdict::Kind::agrees) differ = true;
        }
        return differ ? "disagree" : "agree";
    }
};

std::string_view kind_name(XenReasonVerdict::Kind k) {
    switch (k) {
        case XenReasonVerdict::Kind::agrees: return "agrees";
        case XenReasonVerdict::Kind::disagrees: return "disagrees";
        case XenReasonVerdict::Kind::undecided: return "undecided";
        case XenReasonVerdict::Kind::xen_only: return "xen_only";
        case XenReasonVerdict::Kind::other_vmcb: return "other_vmcb";
    }
    return "";
}

XenReasonVerdict judge_xen_reason(const formats::XenIsvalidLine& x, const checks::Report& r, const ResolvedModel& m,
                                  const formats::ReadResult& in) {
    using Kind = XenReasonVerdict::Kind;
    const auto failed = [&](std::string_view id) {
        return std::any_of(r.failures.begin(), r.failures.end(), [&](const auto& f) { return f.check->id == id; });
    };
    const auto undecided = [&](std::string_view id) {
        return std::any_of(r.undecided.begin(), r.undecided.end(), [&](const auto* c) { return c->id == id; });
    };
    std::string ids;
    for (const auto& c : x.checks) ids += (ids.empty() ? "" : ", ") + c;
    // The value in Xen's line tells whether this dump is the VMCB Xen judged:
    // nested SVM validates vmcb12 and then its own n2vmcb, neither of which
    // 'xl debug-keys v' dumps (it shows each vCPU's own VMCB).
    if (const auto id = arch::find_field(x.field); id && x.value) {
        const auto here = in.vmcb.get(*id);
        if (here != *x.value)
            return {&x, Kind::other_vmcb,
                    fmt::format("Xen printed {} = {:#x}, this dump holds {:#x}: Xen judged another VMCB{}", x.field,
                                *x.value, here, x.from.empty() ? "" : fmt::format(" (in {})", x.from))};
    }
    if (x.checks.empty()) return {&x, Kind::xen_only, "no nsvm check: " + x.note};
    for (const auto& c : x.checks)
        if (failed(c)) return {&x, Kind::agrees, fmt::format("nsvm fails {} too", c)};
    for (const auto& c : x.checks)
        if (undecided(c)) return {&x, Kind::undecided, fmt::format("nsvm cannot decide {} from this input", c)};
    return {&x, Kind::disagrees,
            fmt::format("nsvm's {} pass{} (cpu {}, profile {}){}", ids, x.checks.size() == 1 ? "es" : "", m.cpu.name,
                        m.profile->name, x.note.empty() ? "" : "; " + x.note)};
}

XenCrossCheck xen_cross_check(const checks::Report& r, const ResolvedModel& m, const formats::ReadResult& in) {
    XenCrossCheck out;
    if (in.xen_isvalid.empty()) return out;
    for (const auto& x : in.xen_isvalid) out.reasons.push_back(judge_xen_reason(x, r, m, in));
    const auto covered = formats::xen_isvalid_checks();
    for (const auto& f : r.failures) {
        const auto id = f.check->id;
        if (std::find(covered.begin(), covered.end(), id) == covered.end()) continue;
        const bool said = std::any_of(in.xen_isvalid.begin(), in.xen_isvalid.end(), [&](const auto& x) {
            return std::find(x.checks.begin(), x.checks.end(), id) != x.checks.end();
        });
        if (!said) out.not_reported.emplace_back(id);
    }
    return out;
}

nlohmann::json xen_cross_check_json(const XenCrossCheck& xc) {
    nlohmann::json j;
    j["agreement"] = std::string(xc.agreement());
    auto& list = j["reasons"] = nlohmann::json::array();
    for (const auto& r : xc.reasons) {
        nlohmann::json e;
        e["line"] = r.line->line;
        if (!r.line->vcpu.empty()) e["vcpu"] = r.line->vcpu;
        if (!r.line->from.empty()) e["from"] = r.line->from;
        e["reason"] = r.line->reason;
        e["checks"] = r.line->checks;
        e["nsvm"] = std::string(kind_name(r.kind));
        e["detail"] = r.detail;
        list.push_back(std::move(e));
    }
    j["not_reported_by_xen"] = xc.not_reported;
    return j;
}

void print_xen_cross_check(const XenCrossCheck& xc) {
    if (xc.reasons.empty()) return;
    std::cout << '\n' << "  " << bold("Xen's svm_vmcb_isvalid()") << " said, beside nsvm:\n";
    for (const auto& r : xc.reasons) {
        const auto& x = *r.line;
        std::string ids;
        for (const auto& c : x.checks) ids += (ids.empty() ? "" : ", ") + c;
        std::cout << fmt::format("    line {:<4} {}{}\n", x.line, x.vcpu.empty() ? "" : x.vcpu + ": ", x.reason);
        const auto word = kind_name(r.kind);
        std::cout << "              " << (ids.empty() ? std::string("-") : ids) << ": "
                  << (r.kind == XenReasonVerdict::Kind::agrees ? green(std::string(word)) : yellow(std::string(word)))
                  << " (" << r.detail << ")\n";
    }
    for (const auto& id : xc.not_reported)
        std::cout << "    " << yellow("not reported by Xen") << ": nsvm fails " << id
                  << ", a condition Xen's validator checks too\n";
    std::cout << "    verdicts: " << xc.agreement() << '\n';
}

/// What the reader said about the input, then what the checks said, as
/// every command prints and --json lists warnings (warnings.hpp).
std::vector<Warning> report_warnings(const checks::Report& r, const ResolvedModel& m, const formats::ReadResult& in,
                                     const std::string& file) {
    auto ws = input_warnings(in, {&r, m.profile});
    for (auto& w : check_warnings(file, r)) ws.push_back(std::move(w));
    return ws;
}

nlohmann::json report_json(const checks::Report& r, const ResolvedModel& m, const formats::ReadResult& in,
                           const std::string& file) {
    nlohmann::json j;
    j["verdict"] = r.verdict == checks::Verdict::valid ? "valid" : "invalid";
    if (r.verdict == checks::Verdict::vmexit_invalid || r.verdict == checks::Verdict::other_vmexit) {
        j["exit_code"] = fmt::format("{:#018x}", r.exit_code);
    } else if (r.verdict == checks::Verdict::ud) {
        j["exception"] = "#UD";
    } else if (r.verdict == checks::Verdict::gp) {
        j["exception"] = "#GP(0)";
    }
    j["cpu"] = m.cpu.name;
    j["profile"] = std::string(m.profile->name);
    j["format"] = std::string(formats::format_name(in.format));
    auto& failures = j["failures"] = nlohmann::json::array();
    for (const auto& f : r.failures) {
        nlohmann::json e;
        e["id"] = std::string(f.check->id);
        e["apm"] = std::string(f.check->apm);
        e["fields"] = nlohmann::json::array();
        for (auto field : f.check->fields) e["fields"].push_back(std::string(field));
        e["message"] = std::string(f.check->message);
        e["hint"] = std::string(f.check->hint);
        if (!f.detail.empty()) e["detail"] = f.detail;
        failures.push_back(std::move(e));
    }
    {  // checks the input cannot decide (partial input); empty for a whole VMCB
        auto& undecided = j["undecided"] = nlohmann::json::array();
        for (const auto* c : r.undecided) {
            nlohmann::json e;
            e["id"] = std::string(c->id);
            e["apm"] = std::string(c->apm);
            e["fields"] = nlohmann::json::array();
            for (auto field : c->fields) e["fields"].push_back(std::string(field));
            undecided.push_back(std::move(e));
        }
    }
    if (const auto d = dump_exit(in); d.given) {
        nlohmann::json e;
        e["exit_code"] = fmt::format("{:#x}", d.code);
        e["name"] = arch::exit_code::describe(d.code).name;
        e["vmrun"] = d.vmrun_failed() ? "failed" : "succeeded";
        if (!d.vmrun_failed()) e["decoded"] = formats::decode_exit_info_json(d.code, d.info1, d.info2);
        j["dump_exit"] = std::move(e);
    }
    if (const auto xc = xen_cross_check(r, m, in); !xc.reasons.empty()) j["xen_isvalid"] = xen_cross_check_json(xc);
    j["warnings"] = warnings_json(report_warnings(r, m, in, file));
    return j;
}

void print_dump_exit(const DumpExit& d, const checks::Report& r, const ResolvedModel& m) {
    if (!d.given) return;
    const auto desc = arch::exit_code::describe(d.code);
    if (!d.vmrun_failed()) {
        std::cout << '\n'
                  << "  " << bold("the dump's own exit code") << fmt::format(": {:#x} {}", d.code, desc.name)
                  << ": this VMRUN succeeded; the guest ran and exited with it\n";
        const auto parts = formats::decode_exit_info_parts(d.code, d.info1, d.info2);
        for (const auto& [k, v] : parts.info1) std::cout << fmt::format("      EXITINFO1 {:<14} {}\n", k, v);
        for (const auto& [k, v] : parts.info2) std::cout << fmt::format("      EXITINFO2 {:<14} {}\n", k, v);
        for (const auto& n : parts.notes) std::cout << "      " << n << '\n';
        std::cout << "    the checks judge the state at that exit as if VMRUN were run on it again\n";
        return;
    }
    if (!r.failures.empty()) return;
    const std::string undecided =
        r.undecided.empty() ? std::string("fields the dump reads as zero (--partial leaves the checks on them undecided)")
                            : fmt::format("{} check{} this input cannot decide", r.undecided.size(),
                                          r.undecided.size() == 1 ? "" : "s");
    std::cout << '\n'
              << "  " << yellow("the dump says the VMRUN failed")
              << fmt::format(" ({}) but no check nsvm decides fails here. What is left: {}; the conditions no VMCB "
                             "decides (docs/checks.md, 'Not decided'); the CPU model assumed ({}, MAXPHYADDR {}): "
                             "try --cpu with the host's model",
                             desc.name, undecided, m.cpu.name, m.cpu.maxphyaddr)
              << '\n';
}

/// The checks partial input cannot decide, by stage, so a clean report on a
/// register dump is never read as "every check passed".
void print_undecided(const checks::Report& r) {
    std::cout << '\n' << fmt::format("  not decided ({}): the input does not give the fields they read", r.undecided.size())
              << '\n';
    for (auto stage : {checks::Stage::instruction, checks::Stage::control, checks::Stage::save, checks::Stage::event,
                       checks::Stage::memory}) {
        std::string ids;
        for (const auto* c : r.undecided)
            if (c->stage == stage) ids += (ids.empty() ? "" : ", ") + std::string(c->id);
        if (!ids.empty()) std::cout << "    " << dim(fmt::format("{:<8}", checks::stage_name(stage))) << ' ' << ids << '\n';
    }
}

void print_human(const std::string& name, const checks::Report& r, const ResolvedModel& m,
                 const formats::ReadResult& in, const std::string& file) {
    const bool ok = r.verdict == checks::Verdict::valid;
    std::cout << bold(name) << ": " << (ok ? green(verdict_line(r)) : red(verdict_line(r))) << '\n';
    std::cout << dim(fmt::format("  cpu {} (MAXPHYADDR {}), profile {}, input {}", m.cpu.name, m.cpu.maxphyaddr,
                                 m.profile->name, formats::format_name(in.format)))
              << "\n";
    for (const auto& f : r.failures) {
        std::cout << '\n'
                  << "  " << red("x") << ' ' << bold(f.check->id) << dim(fmt::format("  [APM {}]", f.check->apm))
                  << "  " << f.check->message << '\n';
        std::string fields;
        for (auto field : f.check->fields) fields += (fields.empty() ? "" : ", ") + std::string(field);
        std::cout << "      fields: " << fields << '\n';
        // Labelled as the JSON members are (detail, hint): one name per thing.
        if (!f.detail.empty()) std::cout << "      detail: " << f.detail << '\n';
        std::cout << "      hint:   " << f.check->hint << '\n';
    }
    if (const auto ws = report_warnings(r, m, in, file); !ws.empty() && verbosity() != Verbosity::quiet) {
        std::cout << '\n';
        print_warnings(ws);
    }
    if (!r.undecided.empty()) print_undecided(r);
    print_xen_cross_check(xen_cross_check(r, m, in));
    print_dump_exit(dump_exit(in), r, m);
    if (!ok) {
        std::cout << '\n'
                  << fmt::format("{} check{} failed.", r.failures.size(), r.failures.size() == 1 ? "" : "s")
                  << '\n';
    }
}

/// --set FIELD=VALUE: try a fix without editing the file. The field then
/// counts as given (partial input decides the checks on it); run_check has
/// filled `given` for a whole VMCB before the edits.
void apply_set(const std::string& edit, formats::ReadResult& in) {
    const auto eq = edit.find('=');
    if (eq == std::string::npos || eq == 0)
        throw Exit{kBadInput, fmt::format("--set {}: expected FIELD=VALUE, e.g. save.cr0=0x80050033", util::printable(edit))};
    const std::string name = edit.substr(0, eq);
    const auto id = arch::find_field(name);
    if (!id) {
        std::vector<std::string_view> names;
        for (const auto& f : arch::kFields) names.push_back(f.name);
        const auto near = util::closest(name, names);
        throw Exit{kBadInput, fmt::format("--set {}: unknown VMCB field{}", util::printable(name),
                                          near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near))};
    }
    if (arch::info(*id).kind != arch::FieldKind::integer)
        throw Exit{kBadInput, fmt::format("--set {}: a byte run, not a number", util::printable(name))};
    const auto v = util::parse_u64(edit.substr(eq + 1));
    if (!v || !arch::Vmcb::fits(*id, *v))
        throw Exit{kBadInput, fmt::format("--set {}: '{}' is not a value that fits the field ({} bytes)",
                                          util::printable(name), util::printable(edit.substr(eq + 1)),
                                          arch::info(*id).width)};
    in.vmcb.set(*id, *v);
    in.given[static_cast<std::size_t>(*id)] = true;
}

/// "dump 2 of 3 (line 60): SVM vCPU3 VMCB 00000000c7fcd4f6, last attempted
/// VMRUN on CPU 5": which dump of a log a report is about.
std::string dump_heading(const formats::DumpOrigin& d) {
    std::string s = fmt::format("dump {} of {}", d.index, d.count);
    if (d.line > 0) s += fmt::format(" (line {})", d.line);
    if (!d.header.empty()) s += ": " + util::printable(d.header, 200);
    return s;
}

nlohmann::json origin_json(const formats::DumpOrigin& d) {
    nlohmann::json j;
    j["index"] = d.index;
    j["count"] = d.count;
    j["line"] = d.line;
    if (!d.header.empty()) j["header"] = util::printable(d.header, 200);
    if (!d.type.empty()) j["type"] = util::printable(d.type, 40);
    if (d.domain) j["domain"] = *d.domain;
    if (d.vcpu) j["vcpu"] = *d.vcpu;
    if (!d.vmcb.empty()) j["vmcb"] = util::printable(d.vmcb, 40);
    if (d.cpu) j["cpu"] = *d.cpu;
    return j;
}

/// Reads the input: every dump of a log, or the one --dump names.
std::vector<formats::DumpRead> read_check_input(const CheckOptions& o, formats::Format fmt_id) {
    const auto only = unsigned_option(o.dump_opt, "--dump", o.dump_text, kMaxDumpIndex);
    if (only && *only == 0) throw Exit{kBadInput, "--dump 0: dumps are numbered from 1"};
    const std::string data = read_input(o.file);
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    auto in = formats::read_dumps(bytes, fmt_id, input_name(o.file),
                                  only ? std::optional<std::size_t>(*only) : std::nullopt);
    if (!in) {
        auto d = in.error();
        if (only && d.line == 0 && d.message.starts_with("there is no dump")) d.message = "--dump: " + d.message;
        fail_input(std::move(d));
    }
    return std::move(*in);
}

/// A hypervisor's dump shows a VMCB the processor ran: KVM's dump_vmcb()
/// prints vmcb01 or vmcb02 (never L1's vmcb12), QEMU prints the state KVM
/// entered, Xen's svm_vmcb_dump() its own VMCB. A profile that models a
/// hypervisor's checks on vmcb12 (or an emulator's) leaves out checks the
/// processor makes on such a VMCB: say so, name them, and say which of them
/// fail here under the hardware's rules (the apm profile). Warning id
/// "dump.hardware_vmcb"; nothing when the profile applies every check apm does.
void warn_hardware_vmcb(const checks::Context& ctx, const formats::ReadResult& in, bool partial,
                        checks::Report& report) {
    const bool ran = in.format == formats::Format::kvm_dump || in.format == formats::Format::xen_dump ||
                     in.format == formats::Format::qemu_dump;
    const auto& hw = checks::profile(checks::ProfileId::apm);
    if (!ran || &ctx.profile == &hw) return;
    std::vector<const checks::Check*> skipped;
    for (const auto& c : checks::catalogue())
        if (c.stage != checks::Stage::instruction && c.applies(hw) && !c.applies(ctx.profile)) skipped.push_back(&c);
    if (skipped.empty()) return;
    const checks::Context hw_ctx{ctx.vmcb, ctx.cpu, hw, ctx.host, ctx.memory, ctx.vmsa};
    const auto hw_report = partial ? checks::evaluate_partial(hw_ctx, in.given) : checks::evaluate(hw_ctx);
    std::string ids, failing;
    checks::Warning w;
    w.id = "dump.hardware_vmcb";
    for (const auto* c : skipped) {
        ids += (ids.empty() ? "" : ", ") + std::string(c->id);
        const bool fails = std::any_of(hw_report.failures.begin(), hw_report.failures.end(),
                                       [&](const checks::Failure& f) { return f.check == c; });
        if (!fails) continue;
        failing += (failing.empty() ? "" : ", ") + std::string(c->id);
        for (auto f : c->fields)
            if (std::find(w.fields.begin(), w.fields.end(), std::string(f)) == w.fields.end()) w.fields.emplace_back(f);
    }
    w.message = fmt::format(
        "this {} shows a VMCB the processor ran ({}), not L1's vmcb12; profile {} models a hypervisor's or an "
        "emulator's checks and skips {} hardware check{} the processor makes on it: {}. {}",
        formats::format_name(in.format),
        in.format == formats::Format::xen_dump ? "Xen's own VMCB"
        : in.format == formats::Format::qemu_dump ? "the state KVM entered"
                                                  : "KVM's vmcb01 or vmcb02",
        ctx.profile.name, skipped.size(), skipped.size() == 1 ? "" : "s", ids,
        failing.empty() ? "None of them fails on this VMCB under the hardware's rules (--profile apm)."
                        : fmt::format("Under the hardware's rules (--profile apm) {} fail{} here.", failing,
                                      failing.find(',') == std::string::npos ? "s" : ""));
    report.warnings.push_back(std::move(w));
}

checks::Report check_one(const CheckOptions& o, const ResolvedModel& model, formats::ReadResult& in) {
    checks::Context ctx{in.vmcb, model.cpu, *model.profile, in.host ? &*in.host : nullptr, nullptr,
                        in.vmsa ? &*in.vmsa : nullptr};
    // A dump that is not a whole VMCB (QEMU's register dump), or --partial:
    // checks on fields the input does not give are not decided, never passed.
    if (in.given.empty()) in.given.assign(arch::kFields.size(), true);  // a whole VMCB (raw, JSON)
    for (const auto& e : o.set) apply_set(e, in);
    const bool partial = in.partial || o.partial;
    auto report = partial ? checks::evaluate_partial(ctx, in.given) : checks::evaluate(ctx);
    warn_hardware_vmcb(ctx, in, partial, report);
    return report;
}

/// Several dumps in one log: one report each, headed by which dump it is,
/// then a line counting the verdicts (docs/formats.md "Several dumps").
int report_each(const CheckOptions& o, const ResolvedModel& model, std::vector<formats::DumpRead>& dumps) {
    nlohmann::json list = nlohmann::json::array();
    std::vector<std::size_t> failing;
    for (auto& d : dumps) {
        const auto report = check_one(o, model, d.result);
        if (report.verdict != checks::Verdict::valid) failing.push_back(d.origin.index);
        if (o.json) {
            auto j = report_json(report, model, d.result, input_name(o.file));
            j["dump"] = origin_json(d.origin);
            list.push_back(std::move(j));
            continue;
        }
        if (d.origin.index > 1) std::cout << '\n';
        std::cout << bold("== " + dump_heading(d.origin)) << '\n';
        print_human(fmt::format("{} (dump {} of {})", o.file, d.origin.index, d.origin.count), report, model,
                    d.result, input_name(o.file));
    }
    const bool all_valid = failing.empty();
    if (o.json) {
        nlohmann::json j;
        j["verdict"] = all_valid ? "valid" : "invalid";
        j["format"] = list.front().at("format");
        j["dump_count"] = dumps.size();
        j["dumps"] = std::move(list);
        std::cout << j.dump(2) << '\n';
    } else {
        // The failing dumps by number; a long log's list is cut after ten.
        constexpr std::size_t kListed = 10;
        std::string which;
        for (std::size_t i = 0; i < std::min(failing.size(), kListed); ++i)
            which += (which.empty() ? "" : ", ") + std::to_string(failing[i]);
        if (failing.size() > kListed) which += fmt::format(" and {} more", failing.size() - kListed);
        std::cout << '\n'
                  << fmt::format("{} dumps: {} with a failing check{}, {} without", dumps.size(), failing.size(),
                                 failing.empty() ? "" : fmt::format(" (dump{} {})", failing.size() == 1 ? "" : "s", which), dumps.size() - failing.size())
                  << '\n';
    }
    return all_valid ? kOk : kFailed;
}

int run_check(const CheckOptions& o) {
    const auto model = resolve_model(o.model);
    auto fmt_id = formats::parse_format(o.format);
    if (!fmt_id) throw Exit{kBadInput, fmt::format("--format {}: unknown format (auto, raw, json, kvm-dump, xen-dump, qemu-dump, hexdump)", util::printable(o.format))};
    auto dumps = read_check_input(o, *fmt_id);
    const bool several = dumps.front().origin.count > 1;
    if (dumps.size() > 1) return report_each(o, model, dumps);
    // One report: a single-dump input prints what it always printed; one
    // dump picked out of a log (--dump N) says which it is.
    auto& d = dumps.front();
    const auto report = check_one(o, model, d.result);
    if (o.json) {
        auto j = report_json(report, model, d.result, input_name(o.file));
        if (o.dump_opt->count() > 0) j["dump"] = origin_json(d.origin);
        std::cout << j.dump(2) << '\n';
    } else {
        if (several) std::cout << bold("== " + dump_heading(d.origin)) << '\n';
        print_human(several ? fmt::format("{} (dump {} of {})", o.file, d.origin.index, d.origin.count) : o.file,
                    report, model, d.result, input_name(o.file));
    }
    return report.verdict == checks::Verdict::valid ? kOk : kFailed;
}

const Registrar reg{10, [](CLI::App& app, int& status) {
    static CheckOptions o;
    auto* sub = app.add_subcommand("check", "Would VMRUN on this VMCB fail, and why? Every failing check, "
                                            "with its APM section, fields and a fix.");
    sub->add_option("file", o.file, "VMCB: raw 4 KiB page, JSON, KVM dump_vmcb(), Xen svm_vmcb_dump() or QEMU register dump text, or the page as xxd, hexdump -C or od -A x -t x1 print it; - for stdin")
        ->required();
    sub->add_option("--format", o.format, "auto, raw, json, kvm-dump, xen-dump, qemu-dump, hexdump")->capture_default_str();
    sub->add_flag("--json", o.json, "one JSON object for scripts (docs/formats.md)");
    sub->add_flag("--partial", o.partial,
                  "decide only the checks whose fields the input gives; list the others as not decided (always on "
                  "for QEMU register dumps)");
    sub->add_option("--set", o.set,
                    "FIELD=VALUE, repeatable: change a field after reading, to try a fix without editing the file "
                    "(e.g. --set save.cr0=0x80050033 --set control.asid=1)")
        ->allow_extra_args(false);  // one FIELD=VALUE per --set: the file after it stays the file
    o.dump_opt = sub->add_option("--dump", o.dump_text,
                                 "N: check only the Nth dump of a log holding several (1 = the first); without it "
                                 "every dump gets its own report");
    add_model_options(*sub, o.model);
    sub->callback([&status] { status = run_check(o); });
}};

}  // namespace
}  // namespace nsvm::cli
