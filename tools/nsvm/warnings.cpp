#include "warnings.hpp"

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "nsvm/arch/vmcb_fields.hpp"
#include "nsvm/checks/catalogue.hpp"

namespace nsvm::cli {
namespace {

Verbosity g_verbosity = Verbosity::normal;

/// The VMCB fields a catalogue name stands for: itself, or every field it
/// heads ("control.intercepts" for its words, "save.cs" for its members).
std::vector<arch::FieldId> fields_named(std::string_view name) {
    if (const auto id = arch::find_field(name)) return {*id};
    std::vector<arch::FieldId> out;
    for (const auto& f : arch::kFields)
        if (f.name.size() > name.size() && f.name.starts_with(name) &&
            (f.name[name.size()] == '.' || f.name[name.size()] == '['))
            out.push_back(f.id);
    return out;
}

/// The fields the input does not give that a check nsvm decided (passed or
/// failed) reads, in VMCB order: the ones whose zero could change a verdict.
std::vector<std::string> missing_read_by_checks(const formats::ReadResult& in, const Evaluated& by) {
    std::vector<bool> read(arch::kFields.size());
    for (const auto& c : checks::catalogue()) {
        if (!c.applies(*by.profile)) continue;
        const auto& u = by.report->undecided;
        if (std::find(u.begin(), u.end(), &c) != u.end()) continue;
        for (auto name : c.fields)
            for (auto id : fields_named(name)) read[static_cast<std::size_t>(id)] = true;
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < arch::kFields.size(); ++i)
        if (read[i] && i < in.given.size() && !in.given[i]) out.emplace_back(arch::kFields[i].name);
    return out;
}

std::string joined(const std::vector<std::string>& words) {
    std::string s;
    for (const auto& w : words) s += (s.empty() ? "" : ", ") + w;
    return s;
}

/// "this KVM dump_vmcb() text does not give 40 VMCB fields (read as zero);
/// 2 of them are read by the checks nsvm ran: ... (--verbose lists all)".
/// The reader's message up to ';' is its summary (formats::missing_fields_warning).
std::string missing_fields_brief(const formats::Diagnostic& d, const std::vector<std::string>& read,
                                 const Evaluated& by) {
    const std::string summary = d.message.substr(0, d.message.find(';'));
    if (by.report == nullptr) return fmt::format("{} (read as zero; --verbose lists them)", summary);
    // Partial input (--partial, a QEMU dump): a check that reads a field
    // not given is not decided, so no verdict rests on those zeros.
    if (read.empty() && !by.report->undecided.empty())
        return fmt::format("{}; the checks that read them are not decided (--verbose lists them)", summary);
    if (read.empty())
        return fmt::format("{} (read as zero); no check nsvm ran reads them (--verbose lists them)", summary);
    return fmt::format("{} (read as zero); {} of them {} read by the checks nsvm ran: {} (--verbose lists all)",
                       summary, read.size(), read.size() == 1 ? "is" : "are", joined(read));
}

}  // namespace

void set_verbosity(Verbosity v) noexcept { g_verbosity = v; }
Verbosity verbosity() noexcept { return g_verbosity; }

void add_verbosity_options(CLI::App& app) {
    auto* quiet = app.add_flag_callback(
        "-q,--quiet", [] { set_verbosity(Verbosity::quiet); },
        "print no warnings (the verdict, failures and errors still print; exit statuses are unchanged)");
    app.add_flag_callback(
           "-v,--verbose", [] { set_verbosity(Verbosity::verbose); },
           "print every warning in full (by default a dump's missing fields are counted and only those the checks "
           "read are named)")
        ->excludes(quiet);
}

std::vector<Warning> input_warnings(const formats::ReadResult& in, Evaluated by) {
    std::vector<Warning> out;
    for (const auto& d : in.warnings) {
        Warning w;
        w.file = d.file;
        w.line = d.line;
        w.id = d.id.empty() ? "input" : d.id;
        w.subject = d.field;
        w.fields = !d.fields.empty() ? d.fields : d.field.empty() ? std::vector<std::string>{} : std::vector{d.field};
        w.message = d.message;
        if (d.id == "input.missing_fields") {
            if (by.report != nullptr) w.read_by_checks = missing_read_by_checks(in, by);
            w.brief = missing_fields_brief(d, w.read_by_checks, by);
        }
        out.push_back(std::move(w));
    }
    return out;
}

std::vector<Warning> check_warnings(const std::string& file, const checks::Report& r) {
    std::vector<Warning> out;
    for (const auto& cw : r.warnings)
        out.push_back(Warning{file, 0, cw.id, cw.id, cw.fields, cw.message, "", {}});
    return out;
}

void print_warnings(const std::vector<Warning>& ws) {
    if (ws.empty() || verbosity() == Verbosity::quiet) return;
    std::cout.flush();
    for (const auto& w : ws) {
        const auto& text = verbosity() == Verbosity::verbose || w.brief.empty() ? w.message : w.brief;
        std::cerr << yellow("warning") << ": " << w.file << (w.line > 0 ? fmt::format(":{}", w.line) : "") << ": "
                  << (w.subject.empty() ? "" : w.subject + ": ") << text << '\n';
    }
}

nlohmann::json warnings_json(const std::vector<Warning>& ws) {
    auto a = nlohmann::json::array();
    for (const auto& w : ws) {
        nlohmann::json j{{"id", w.id}, {"fields", w.fields}, {"message", w.message}, {"file", w.file}};
        if (w.line > 0) j["line"] = w.line;
        if (w.id == "input.missing_fields") j["read_by_checks"] = w.read_by_checks;
        a.push_back(std::move(j));
    }
    return a;
}

}  // namespace nsvm::cli
