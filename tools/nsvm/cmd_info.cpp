// nsvm exit-code / cpu / profile / checks: reference look-ups.
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/formats/decode.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::cli {
namespace {

std::uint64_t parse_number_option(const std::string& name, const std::string& text) {
    auto v = util::parse_u64(text);
    if (!v) throw Exit{kBadInput, fmt::format("{} {}: not a number (use 0x.., decimal or 0b..)", name, util::printable(text))};
    return *v;
}

struct ExitCodeOptions {
    std::string code;
    std::string info1, info2;
    bool json = false;
};

int run_exit_code(const ExitCodeOptions& o) {
    auto code = arch::exit_code::parse(o.code);
    if (!code) throw Exit{kBadInput, fmt::format("'{}' is neither an exit code number nor a known exit name", util::printable(o.code))};
    const auto d = arch::exit_code::describe(*code);
    const std::uint64_t i1 = o.info1.empty() ? 0 : parse_number_option("--info1", o.info1);
    const std::uint64_t i2 = o.info2.empty() ? 0 : parse_number_option("--info2", o.info2);
    const bool have_info = !o.info1.empty() || !o.info2.empty();
    if (o.json) {
        nlohmann::json j{{"code", fmt::format("{:#x}", *code)},
                         {"name", d.name},
                         {"kvm_name", d.kvm_name},
                         {"meaning", d.meaning},
                         {"known", d.known}};
        if (have_info) j["exit_info"] = formats::decode_exit_info_json(*code, i1, i2);
        std::cout << j.dump(2) << '\n';
    } else {
        std::cout << bold(d.name) << "  " << dim(fmt::format("{:#x}", *code))
                  << (d.kvm_name.empty() ? "" : "  " + dim(d.kvm_name)) << '\n'
                  << "  " << d.meaning << '\n';
        if (have_info) std::cout << formats::decode_exit_info(*code, i1, i2);
    }
    return d.known ? kOk : kFailed;
}

struct NameOptions {
    std::string name;
    bool json = false;
};

nlohmann::json model_json(const checks::CpuModel& m) {
    nlohmann::json f = nlohmann::json::array();
    for (std::size_t i = 0; i < checks::kFeatureCount; ++i) {
        const auto feat = static_cast<checks::Feature>(i);
        if (m.has(feat)) f.push_back(std::string(checks::feature_name(feat)));
    }
    return {{"name", m.name},       {"description", m.description}, {"maxphyaddr", m.maxphyaddr},
            {"va_width", m.va_width}, {"num_asids", m.num_asids},   {"num_encrypted_guests", m.num_encrypted_guests},
            {"features", f}};
}

int run_cpu_list(bool json) {
    if (json) {
        auto a = nlohmann::json::array();
        for (const auto& m : checks::builtin_models()) a.push_back(model_json(m));
        std::cout << a.dump(2) << '\n';
        return kOk;
    }
    for (const auto& m : checks::builtin_models()) {
        const bool def = &m == &checks::default_model() || m.name == checks::default_model().name;
        std::cout << fmt::format("{:<14} {}{}\n", m.name, m.description, def ? " (default)" : "");
    }
    return kOk;
}

int run_cpu_show(const NameOptions& o) {
    ModelOptions mo;
    mo.cpu = o.name;
    const auto m = resolve_model(mo).cpu;
    if (o.json) {
        std::cout << model_json(m).dump(2) << '\n';
        return kOk;
    }
    std::cout << bold(m.name) << "  " << m.description << '\n'
              << fmt::format("  MAXPHYADDR        {}\n  virtual address   {} bits\n  ASIDs             {}\n"
                             "  encrypted guests  {}\n",
                             m.maxphyaddr, m.va_width, m.num_asids, m.num_encrypted_guests)
              << fmt::format("  CR4 reserved      {:#x}\n  EFER reserved     {:#x}\n", m.cr4_reserved_bits(),
                             m.efer_reserved_bits())
              << "  features         ";
    for (std::size_t i = 0; i < checks::kFeatureCount; ++i) {
        const auto feat = static_cast<checks::Feature>(i);
        if (m.has(feat)) std::cout << ' ' << checks::feature_name(feat);
    }
    std::cout << "\n  absent           ";
    for (std::size_t i = 0; i < checks::kFeatureCount; ++i) {
        const auto feat = static_cast<checks::Feature>(i);
        if (!m.has(feat)) std::cout << ' ' << dim(checks::feature_name(feat));
    }
    std::cout << '\n';
    return kOk;
}

int run_profile_list(bool json) {
    if (json) {
        auto a = nlohmann::json::array();
        for (const auto& p : checks::all_profiles())
            a.push_back({{"name", std::string(p.name)}, {"description", std::string(p.description)}});
        std::cout << a.dump(2) << '\n';
        return kOk;
    }
    for (const auto& p : checks::all_profiles()) {
        std::cout << fmt::format("{:<7} {}{}\n", p.name, p.description, p.id == checks::ProfileId::apm ? " (default)" : "");
    }
    return kOk;
}

int run_profile_show(const NameOptions& o) {
    auto pid = checks::find_profile(o.name);
    if (!pid) throw Exit{kBadInput, pid.error()};
    const auto& p = checks::profile(*pid);
    if (o.json) {
        nlohmann::json choices = nlohmann::json::array();
        for (const auto& c : p.choices())
            choices.push_back({{"key", std::string(c.key)}, {"value", c.value}, {"reason", std::string(c.reason)}});
        std::cout << nlohmann::json{{"name", std::string(p.name)}, {"description", std::string(p.description)},
                                    {"choices", choices}}
                         .dump(2)
                  << '\n';
        return kOk;
    }
    std::cout << bold(p.name) << "  " << p.description << "\n\n";
    for (const auto& c : p.choices()) {
        std::cout << "  " << bold(c.key) << " = " << c.value << '\n' << "      " << dim(c.reason) << '\n';
    }
    return kOk;
}

std::string profiles_of(checks::ProfileMask m, std::string_view sep = ",") {
    std::string out;
    for (const auto& p : checks::all_profiles()) {
        if (m & checks::mask_of(p.id)) out += (out.empty() ? "" : std::string(sep)) + std::string(p.name);
    }
    return out;
}

int run_checks_list(bool json) {
    if (json) {
        auto a = nlohmann::json::array();
        for (const auto& c : checks::catalogue()) {
            nlohmann::json fields = nlohmann::json::array();
            for (auto f : c.fields) fields.push_back(std::string(f));
            nlohmann::json profiles = nlohmann::json::array();
            for (const auto& p : checks::all_profiles())
                if (c.profiles & checks::mask_of(p.id)) profiles.push_back(std::string(p.name));
            nlohmann::json e;
            e["id"] = std::string(c.id);
            e["apm"] = std::string(c.apm);
            e["ref"] = std::string(c.ref);
            e["stage"] = std::string(checks::stage_name(c.stage));
            e["fields"] = fields;
            e["message"] = std::string(c.message);
            e["hint"] = std::string(c.hint);
            e["profiles"] = profiles;
            e["inferred"] = c.inferred;
            nlohmann::json settings = nlohmann::json::array();
            for (auto k : c.settings) settings.push_back(std::string(k));
            e["settings"] = settings;
            a.push_back(std::move(e));
        }
        std::cout << a.dump(2) << '\n';
        return kOk;
    }
    for (const auto& c : checks::catalogue()) {
        std::cout << fmt::format("{:<28} {:<10} {:<11} {}\n", c.id, "APM " + std::string(c.apm), std::string(checks::stage_name(c.stage)),
                                 c.message)
                  << dim(fmt::format("{:<28} profiles: {}", "", profiles_of(c.profiles))) << '\n';
    }
    std::cout << fmt::format("{} checks.\n", checks::catalogue().size());
    return kOk;
}

/// docs/checks.md, generated from the catalogue so that the reference cannot
/// drift from the code (tests/cli checks that the file equals this output).
/// Plain text only: no colour, no terminal-dependent widths.
int run_checks_markdown() {
    const auto cat = checks::catalogue();
    std::string out;
    out += "# The consistency-check catalogue\n\n";
    out += "<!-- Generated by `nsvm checks list --markdown`. Do not edit: regenerate with\n"
           "     build/nsvm checks list --markdown > docs/checks.md -->\n\n";
    out += fmt::format(
        "Every check nsvm evaluates for VMRUN, {} in all, in the order VMRUN decides them. This page is the\n"
        "output of `nsvm checks list --markdown` (the entries live in `src/checks/rules.hpp`); a CLI test fails\n"
        "when it differs from the code. `nsvm check` reports each failure with the same id, APM section,\n"
        "fields, message and hint.\n\n",
        cat.size());
    out += "- **APM**: section of AMD's APM vol. 2 (pub. 24593) that states the rule.\n"
           "- **row**: the condition's place in the APM's lists: C1-C21 number the illegal guest state of\n"
           "  APM 15.5.1 in the manual's order, E1-E4 event injection (15.20, 15.35.8), N1-N4 nested paging\n"
           "  (15.25), V1 virtual NMI (15.21.10), A1-A4 AVIC (15.29), S1-S5 SEV and SEV-ES (15.34, 15.35),\n"
           "  P1-P12 SEV-SNP (15.36-15.38), X1-X3 the other VMRUN exits; `gate` is one of VMRUN's own\n"
           "  #UD/#GP conditions, `extra` a rule some implementation applies that no APM list has.\n"
           "- **stage**: `instruction` (#UD/#GP before the VMCB is read; needs the host state), `control`,\n"
           "  `save` (guest state), `event` (EVENTINJ, after GIF=1), `memory` (needs guest memory: PAE PDPEs,\n"
           "  the SEV-ES VMSA page and its SEV_FEATURES, which a KVM dump's decrypted VMSA lines also give).\n"
           "  Without them a memory check the VMCB triggers is a warning, not decided.\n"
           "- **profiles**: the behaviour profiles that apply the check, derived from the profile settings\n"
           "  it reads (**settings**); `nsvm profile show NAME` gives each setting's value and reason.\n"
           "- **inferred**: the APM states the rule without naming an exit, or not at all; nsvm reports it\n"
           "  as VMEXIT_INVALID and says so in the failure's detail.\n\n";
    out += "## Summary\n\n| id | APM | row | stage | outcome |";
    for (const auto& p : checks::all_profiles()) out += fmt::format(" {} |", p.name);
    out += "\n|---|---|---|---|---|";
    for (std::size_t i = 0; i < checks::all_profiles().size(); ++i) out += "---|";
    out += '\n';
    for (const auto& c : cat) {
        out += fmt::format("| `{}` | {} | {} | {} | {}{} |", c.id, c.apm, c.ref, checks::stage_name(c.stage),
                           checks::outcome_name(c.outcome), c.inferred ? " (inferred)" : "");
        for (const auto& p : checks::all_profiles()) out += (c.profiles & checks::mask_of(p.id)) ? " yes |" : " - |";
        out += '\n';
    }
    out += "\n## Not decided\n\n"
           "Conditions of the APM that nsvm has no check for, because they depend on state it does not model;\n"
           "a VMCB that passes every check above can still fail VMRUN for one of these.\n\n"
           "| row | APM | condition | depends on |\n|---|---|---|---|\n";
    for (const auto& u : checks::undecided()) out += fmt::format("| {} | {} | {} | {} |\n", u.ref, u.apm, u.condition, u.why);
    out += "\n## How to add a check\n\n"
           "A check is one entry in `src/checks/rules.hpp`, and nothing else:\n\n"
           "1. Write the entry with `NSVM_RULE(Name, id, APM section, row, stage, outcome, applies, fields,\n"
           "   message, hint, ...) { predicate }` in its stage's place (the catalogue order is the order VMRUN\n"
           "   decides). `applies` is an expression over the profile `p` that reads its settings (`true` when\n"
           "   every implementation applies the check); never a profile's name. The predicate reads the VMCB\n"
           "   through `View v`, must not allocate, and is `noexcept`.\n"
           "2. After the hint, in the same entry: `NSVM_BOUNDARY(...)`, the values at the check's limit and\n"
           "   just past it (at least one passing and one failing), and where needed `NSVM_DETAIL(render::x)`\n"
           "   (the offending values in words), `NSVM_NEEDS(fn)` (memory-stage checks: when the answer needs\n"
           "   guest memory) and `NSVM_INFERRED` (the APM names no exit); `NSVM_SETTINGS(...)` names the\n"
           "   profile settings `applies` and the predicate read, whose rows are the per-profile reasons\n"
           "   (`Catalogue.EachCheckNamesTheSettingsItReads` compares them with what flipping each setting\n"
           "   changes on the boundary values). A state VMRUN runs but no processor can reach is a warning\n"
           "   check: outcome `warning`, applies `true`, and `NSVM_WHEN_UNCHECKED(...)` saying what\n"
           "   implementations then do (its warning's text); a check some profiles skip may say the same.\n"
           "3. Add the entry's name to `rules::AllRules`. A rule defined but not listed fails\n"
           "   `Catalogue.EveryDefinedRuleIsInTheCatalogue`; boundary values that do not straddle the limit fail\n"
           "   `Catalogue.BoundaryValuesStraddleEveryCheck`.\n"
           "4. Where implementations differ, add a profile setting: a row in `src/checks/profile.cpp` with\n"
           "   every profile's value beside its reason and source, read by the entry's `applies` or predicate.\n"
           "   A setting nothing reads fails `ProfileSettings.EverySettingIsReadBySomething`.\n"
           "5. Regenerate this page: `build/nsvm checks list --markdown > docs/checks.md`.\n";
    out += "\n## Checks\n";
    for (const auto& c : cat) {
        std::string fields;
        for (auto f : c.fields) fields += (fields.empty() ? "`" : ", `") + std::string(f) + "`";
        if (fields.empty()) fields = "none: decided on the host state (`HostState`) before the VMCB is read";
        out += fmt::format("\n### `{}`\n\n", c.id);
        out += fmt::format("- APM {}, row {}, stage `{}`, outcome {}{}\n", c.apm, c.ref, checks::stage_name(c.stage),
                           checks::outcome_name(c.outcome), c.inferred ? " (inferred)" : "");
        out += fmt::format("- profiles: {}\n", profiles_of(c.profiles, ", "));
        out += fmt::format("- fields: {}\n", fields);
        if (!c.settings.empty()) {
            std::string keys;
            for (auto k : c.settings) keys += (keys.empty() ? "`" : ", `") + std::string(k) + "`";
            out += fmt::format("- settings: {}\n", keys);
        }
        out += fmt::format("- message: {}\n", c.message);
        out += fmt::format("- hint: {}\n", c.hint);
        if (!c.when_unchecked.empty()) out += fmt::format("- when VMRUN goes ahead: {}\n", c.when_unchecked);
    }
    std::cout << out;
    return kOk;
}

/// One check, whole: what `checks list` shows in a line, and where it comes from.
int run_checks_show(const std::string& id) {
    const auto* c = checks::find_check(id);
    if (c == nullptr) {
        std::vector<std::string_view> ids;
        for (const auto& k : checks::catalogue()) ids.push_back(k.id);
        const auto near = util::closest(id, ids);
        throw Exit{kBadInput, fmt::format("unknown check '{}'{} (nsvm checks list)", util::printable(id),
                                          near.empty() ? "" : fmt::format(", did you mean '{}'?", near))};
    }
    std::string fields;
    for (auto f : c->fields) fields += (fields.empty() ? "" : ", ") + std::string(f);
    std::cout << bold(c->id) << fmt::format("  [APM {}, row {}]\n", c->apm, c->ref)
              << fmt::format("  stage:    {}\n  outcome:  {}{}\n", checks::stage_name(c->stage),
                             checks::outcome_name(c->outcome), c->inferred ? " (inferred: the APM names no exit)" : "")
              << fmt::format("  profiles: {}\n", profiles_of(c->profiles, ", "))
              << fmt::format("  fields:   {}\n", fields.empty() ? "none (the host state, before the VMCB is read)" : fields)
              << fmt::format("  message:  {}\n  hint:     {}\n", c->message, c->hint);
    if (!c->when_unchecked.empty()) std::cout << fmt::format("  when VMRUN goes ahead: {}\n", c->when_unchecked);
    return kOk;
}

const Registrar reg_checks{55, [](CLI::App& app, int& status) {
    static bool json = false;
    static bool markdown = false;
    static std::string show_id;
    auto* sub = app.add_subcommand("checks", "The consistency-check catalogue: every check nsvm knows.");
    sub->require_subcommand(1);
    auto* list = sub->add_subcommand("list", "List every check: id, APM section, stage, message, profiles");
    auto* j = list->add_flag("--json", json, "JSON output");
    list->add_flag("--markdown", markdown, "Markdown reference (the text of docs/checks.md)")->excludes(j);
    list->callback([&status] { status = markdown ? run_checks_markdown() : run_checks_list(json); });
    auto* show = sub->add_subcommand("show", "One check: APM section, stage, outcome, profiles, fields, message, fix");
    show->add_option("id", show_id, "check id, e.g. cr3.mbz (nsvm checks list)")->required();
    show->callback([&status] { status = run_checks_show(show_id); });
}};

const Registrar reg_exit{50, [](CLI::App& app, int& status) {
    static ExitCodeOptions o;
    auto* sub = app.add_subcommand("exit-code", "Name and explain an SVM exit code; decode its EXITINFO1/2 "
                                                "(IOIO, MSR, NPF, #PF, CR/DR access).");
    sub->add_option("code", o.code, "exit code: 0x7b, 123, -1, or a name such as VMEXIT_NPF / SVM_EXIT_MSR")
        ->required()
        ->allow_extra_args(false);
    sub->add_option("--info1", o.info1, "EXITINFO1 value");
    sub->add_option("--info2", o.info2, "EXITINFO2 value");
    sub->add_flag("--json", o.json, "JSON output");
    sub->callback([&status] { status = run_exit_code(o); });
}};

const Registrar reg_cpu{60, [](CLI::App& app, int& status) {
    static NameOptions show;
    static bool list_json = false;
    auto* sub = app.add_subcommand("cpu", "CPU models the checks depend on (MAXPHYADDR, features).");
    sub->require_subcommand(1);
    auto* list = sub->add_subcommand("list", "List the built-in models");
    list->add_flag("--json", list_json, "JSON output");
    list->callback([&status] { status = run_cpu_list(list_json); });
    auto* s = sub->add_subcommand("show", "Show one model (built-in name, host, or JSON file)");
    s->add_option("name", show.name, "model name, host (this machine's CPUID) or file")->required();
    s->add_flag("--json", show.json, "JSON output");
    s->callback([&status] { status = run_cpu_show(show); });
}};

const Registrar reg_profile{61, [](CLI::App& app, int& status) {
    static NameOptions show;
    static bool list_json = false;
    auto* sub = app.add_subcommand("profile", "Behaviour profiles: each choice where the APM is silent or "
                                              "implementations differ, with its reason.");
    sub->require_subcommand(1);
    auto* list = sub->add_subcommand("list", "List the profiles");
    list->add_flag("--json", list_json, "JSON output");
    list->callback([&status] { status = run_profile_list(list_json); });
    auto* s = sub->add_subcommand("show", "Show every choice of one profile");
    s->add_option("name", show.name, "apm, kvm, qemu, bochs, xen or hyperv")->required();
    s->add_flag("--json", show.json, "JSON output");
    s->callback([&status] { status = run_profile_show(show); });
}};

}  // namespace
}  // namespace nsvm::cli
