// Warnings and errors as every command gives them (issue 11 item 7): short by
// default (a dump's missing fields counted, only those the checks read
// named), every one in full under --verbose, none under -q; one stream
// (stderr) and one line format; under --json, warning objects and an error
// object on stdout with exit status 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "cli/report_helpers.hpp"
#include "cli/run_nsvm.hpp"
#include "nsvm/arch/vmcb_fields.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/formats/vmcb_io.hpp"

namespace {

using namespace cli_test;
using cli_test::nsvm;  // the function, not the namespace

const std::string kDump = kFix + "kvm-2024.txt";  // 45 fields missing, a dump of vmcb01
const std::string kL2 = kFix + "kvm-l2.txt";      // taken while L2 ran

const nlohmann::json* find_warning(const nlohmann::json& ws, const std::string& id) {
    for (const auto& w : ws)
        if (w.at("id") == id) return &w;
    return nullptr;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

/// The missing fields of the fixture that a check the apm profile applies
/// reads, worked out here from the catalogue and the reader (not from nsvm's
/// output): what the short warning must name.
std::set<std::string> missing_fields_checks_read(const std::string& fixture) {
    const std::string text = slurp(fs::path(NSVM_SOURCE_DIR) / fixture);
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    const auto in = ::nsvm::formats::read_vmcb(bytes, ::nsvm::formats::Format::auto_detect, fixture);
    EXPECT_TRUE(in.has_value());
    const auto& apm = ::nsvm::checks::profile(::nsvm::checks::ProfileId::apm);
    std::set<std::string> out;
    for (const auto& c : ::nsvm::checks::catalogue()) {
        if (!c.applies(apm)) continue;
        for (auto name : c.fields)
            for (const auto& f : ::nsvm::arch::kFields) {
                const bool named = f.name == name || (f.name.starts_with(name) && f.name.size() > name.size() &&
                                                      (f.name[name.size()] == '.' || f.name[name.size()] == '['));
                if (named && !in->given[static_cast<std::size_t>(f.id)]) out.emplace(f.name);
            }
    }
    return out;
}

TEST(CliWarnings, DefaultCountsTheMissingFieldsAndNamesOnlyThoseTheChecksRead) {
    const auto r = nsvm("check " + kDump);
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(nsvm("check --json " + kDump).out);
    const auto* w = find_warning(j.at("warnings"), "input.missing_fields");
    ASSERT_NE(w, nullptr) << j.dump(2);
    const auto all = w->at("fields").get<std::vector<std::string>>();
    EXPECT_EQ(all.size(), 45U);
    const auto read = w->at("read_by_checks").get<std::vector<std::string>>();
    EXPECT_EQ(std::set<std::string>(read.begin(), read.end()), missing_fields_checks_read(kDump));
    ASSERT_FALSE(read.empty());
    std::string names;
    for (const auto& f : read) names += (names.empty() ? "" : ", ") + f;
    EXPECT_TRUE(contains(r.err, "warning: " + kDump + ": this KVM dump_vmcb() text does not give 45 VMCB fields (read "
                                "as zero); " + std::to_string(read.size()) +
                                " of them are read by the checks nsvm ran: " + names + " (--verbose lists all)\n"))
        << r.err;
    // A field no check reads is not named by default.
    EXPECT_FALSE(contains(r.err, "save.perf_ctl0")) << r.err;
    // Under --partial no verdict rests on those zeros: the checks reading them are not decided.
    EXPECT_TRUE(contains(nsvm("check --partial " + kDump).err,
                         "does not give 45 VMCB fields; the checks that read them are not decided (--verbose lists "
                         "them)\n"));
    // decode runs no check: the count alone.
    EXPECT_TRUE(contains(nsvm("decode " + kDump).err, "does not give 45 VMCB fields (read as zero; --verbose lists them)\n"));
}

TEST(CliWarnings, VerboseListsEveryMissingField) {
    for (const std::string v : {"-v", "--verbose"}) {
        const auto r = nsvm("check " + v + " " + kDump);
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_TRUE(contains(r.err, "does not give 45 VMCB fields; they read as zero: control.intercepts[5], ")) << r.err;
        EXPECT_TRUE(contains(r.err, "save.perf_ctl0")) << r.err;
        EXPECT_FALSE(contains(r.err, "--verbose lists")) << r.err;
    }
}

TEST(CliWarnings, QuietPrintsNoWarningButTheSameReportAndStatus) {
    for (const std::string& cmd : {"check " + kDump, "check " + kL2, "decode " + kDump, "convert --to json " + kL2}) {
        const auto loud = nsvm(cmd);
        ASSERT_FALSE(loud.err.empty()) << cmd;
        for (const std::string q : {"-q ", "--quiet "}) {
            const auto quiet = nsvm(q + cmd);
            EXPECT_EQ(quiet.status, loud.status) << cmd;
            EXPECT_EQ(quiet.err, "") << cmd;
            // The answer stays: the verdict line, the decoded fields, the JSON.
            EXPECT_EQ(quiet.out.substr(0, quiet.out.find('\n')), loud.out.substr(0, loud.out.find('\n'))) << cmd;
        }
    }
    // Failures still print under -q, with exit status 1.
    const auto bad = nsvm("-q check examples/kvm-dump-invalid.txt");
    EXPECT_EQ(bad.status, 1);
    EXPECT_TRUE(contains(bad.out, "5 checks failed.")) << bad.out;
    EXPECT_EQ(bad.err, "");
    EXPECT_EQ(nsvm("check -q --verbose " + kDump).status, 2);  // one or the other
}

TEST(CliWarnings, EveryCommandWritesWarningsToStderrInOneFormat) {
    for (const std::string& cmd : {"check " + kL2, "decode " + kL2, "convert --to json " + kL2}) {
        const auto r = nsvm(cmd);
        ASSERT_EQ(r.status, 0) << cmd << r.err;
        EXPECT_FALSE(contains(r.out, "warning")) << cmd;
        const auto lines = lines_of(r.err);
        ASSERT_FALSE(lines.empty()) << cmd;
        for (const auto& l : lines) EXPECT_TRUE(l.starts_with("warning: " + kL2)) << cmd << ": " << l;
    }
    // A check's warning names the input too, and its id.
    const auto lma = nsvm("check --profile kvm --set save.cr0=0x50033 examples/valid-vmcb.json");
    EXPECT_TRUE(contains(lma.err, "warning: examples/valid-vmcb.json: efer.lma_without_lme_pg: EFER.LMA is 1"))
        << lma.err;
}

TEST(CliWarnings, Vmcb01MixOnlyWhenTheDumpLooksTakenWhileL2Ran) {
    const auto l2 = nsvm("check " + kL2);
    EXPECT_TRUE(contains(l2.err, "this dump looks taken while L2 ran")) << l2.err;
    EXPECT_TRUE(contains(l2.err, "RIP 0x401000")) << l2.err;
    for (const std::string v : {"", "--verbose "})
        EXPECT_FALSE(contains(nsvm("check " + v + kDump).err, "vmcb01")) << v;
    const auto j = nlohmann::json::parse(nsvm("check --json " + kL2).out);
    const auto* w = find_warning(j.at("warnings"), "input.vmcb01_fields");
    ASSERT_NE(w, nullptr) << j.dump(2);
    const auto fields = w->at("fields").get<std::vector<std::string>>();
    EXPECT_EQ(fields.size(), 12U);
    EXPECT_NE(std::find(fields.begin(), fields.end(), "save.lstar"), fields.end());
    EXPECT_EQ(find_warning(nlohmann::json::parse(nsvm("check --json " + kDump).out).at("warnings"),
                           "input.vmcb01_fields"),
              nullptr);
}

TEST(CliWarnings, JsonWarningsAreObjectsWithIdFieldsMessageAndFile) {
    const auto check = nlohmann::json::parse(nsvm("check --json " + kL2).out);
    const auto decode = nlohmann::json::parse(nsvm("decode --json " + kL2).out);
    ASSERT_TRUE(decode.contains("fields"));
    for (const auto* ws : {&check.at("warnings"), &decode.at("warnings")}) {
        ASSERT_FALSE(ws->empty());
        for (const auto& w : *ws) {
            EXPECT_TRUE(w.at("id").is_string() && w.at("fields").is_array() && w.at("message").is_string()) << w;
            EXPECT_EQ(w.at("file"), kL2);
        }
        const auto* exit = find_warning(*ws, "input");
        ASSERT_NE(exit, nullptr);
        EXPECT_EQ(exit->at("line"), 19);
        EXPECT_EQ(exit->at("fields"), nlohmann::json::array({"control.exit_code"}));
        EXPECT_NE(find_warning(*ws, "input.missing_fields"), nullptr);
    }
    // Under --json nothing goes to stderr: the warnings are in the object.
    EXPECT_EQ(nsvm("check --json " + kL2).err, "");
    EXPECT_EQ(nsvm("decode --json " + kL2).err, "");
}

void expect_error_object(const Result& r, const std::string& file, int line, const std::string& message_part) {
    EXPECT_EQ(r.status, 2) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("status"), 2);
    const auto& e = j.at("error");
    EXPECT_EQ(e.at("file"), file);
    if (line > 0) {
        EXPECT_EQ(e.at("line"), line);
    } else {
        EXPECT_FALSE(e.contains("line"));
    }
    EXPECT_TRUE(contains(e.at("message").get<std::string>(), message_part)) << e;
    EXPECT_TRUE(contains(r.err, "nsvm: " + file)) << r.err;  // the human line stays on stderr
}

TEST(CliWarnings, InputErrorsUnderJsonAreAnObjectOnStdoutWithStatus2) {
    const auto bad = write_temp("malformed.json", "{\n  \"control\": {\n    \"asid\": \n");
    for (const std::string cmd : {"check --json ", "decode --json "})
        expect_error_object(nsvm(cmd + bad.string()), bad.string(), 4, "malformed JSON");
    for (const std::string cmd : {"check --json ", "decode --json "})
        expect_error_object(nsvm(cmd + "no/such/file"), "no/such/file", 0, "cannot open");
    expect_error_object(nsvm("run --json no/such/file"), "no/such/file", 0, "");  // the scenario loader's words
    // A field the error is about is its own member.
    const auto wide = write_temp("wide.json", R"({"control": {"asid": "0x1ffffffff"}})");
    const auto w = nsvm("check --json " + wide.string());
    ASSERT_EQ(w.status, 2) << w.err;
    EXPECT_EQ(nlohmann::json::parse(w.out).at("error").at("field"), "control.asid") << w.out;
    // Without --json the error is text on stderr only, as before.
    const auto text = nsvm("check no/such/file");
    EXPECT_EQ(text.status, 2);
    EXPECT_EQ(text.out, "");
}

TEST(CliWarnings, OracleKnownJsonHoldsTheEntriesOfTheTextForm) {
    const auto text = nsvm("oracle known");
    const auto json = nsvm("oracle known --json");
    ASSERT_EQ(json.status, 0) << json.err;
    const auto j = nlohmann::json::parse(json.out);
    ASSERT_TRUE(j.is_array());
    std::vector<std::string> entries;  // the text form: "backend id field", then the reason indented
    for (const auto& l : lines_of(text.out))
        if (!l.starts_with(" ")) entries.push_back(l);
    ASSERT_EQ(j.size(), entries.size());
    ASSERT_FALSE(entries.empty());
    for (std::size_t i = 0; i < j.size(); ++i) {
        std::istringstream words(entries[i]);
        std::string backend, id, field;
        words >> backend >> id >> field;
        EXPECT_EQ(j[i].at("backend"), backend);
        EXPECT_EQ(j[i].at("id"), id);
        EXPECT_EQ(j[i].at("field"), field);
        EXPECT_TRUE(contains(text.out, j[i].at("reason").get<std::string>())) << j[i];
    }
    EXPECT_EQ(nsvm("oracle known --json --markdown").status, 2);
}

}  // namespace
