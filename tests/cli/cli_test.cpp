// End-to-end tests of the nsvm binary, run as a user would run it: exit
// statuses, the human and JSON outputs, and errors on bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "run_nsvm.hpp"

using cli_test::nsvm;
using cli_test::slurp;
using cli_test::nsvm_binary;
using cli_test::write_temp;
namespace fs = std::filesystem;

TEST(CliCheck, KvmDumpWithSeveralFailuresNamesEveryCheck) {
    const auto r = nsvm("check examples/kvm-dump-invalid.txt");
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_NE(r.out.find("VMEXIT_INVALID"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("efer.svme"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("fields:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n      detail: control.asid = 0x0\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n      hint:   give the guest a nonzero ASID"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("values:"), std::string::npos) << "the JSON's names, not another set";
    EXPECT_EQ(r.out.find("fix:"), std::string::npos) << r.out;
}

TEST(CliCheck, JsonOutputFollowsTheContract) {
    const auto r = nsvm("check --json examples/kvm-dump-invalid.txt");
    ASSERT_EQ(r.status, 1) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("verdict"), "invalid");
    EXPECT_EQ(j.at("exit_code"), "0xffffffffffffffff");
    EXPECT_EQ(j.at("profile"), "apm");
    ASSERT_GE(j.at("failures").size(), 3U);
    for (const auto& f : j.at("failures")) {
        EXPECT_FALSE(f.at("id").get<std::string>().empty());
        EXPECT_FALSE(f.at("apm").get<std::string>().empty());
        EXPECT_FALSE(f.at("fields").empty());
        EXPECT_FALSE(f.at("message").get<std::string>().empty());
        EXPECT_FALSE(f.at("hint").get<std::string>().empty());
        for (const auto& field : f.at("fields")) {
            const auto s = field.get<std::string>();
            EXPECT_TRUE(s.starts_with("control.") || s.starts_with("save.")) << s;
        }
    }
    EXPECT_TRUE(j.contains("warnings"));
}

// QEMU's dump after a failed KVM entry with SMM=1 and a CR3 with PCID bits
// and bit 32 set while paging is off: AMD hardware runs it; Hyper-V as L0
// rejects it. Control-area checks are listed as not decided, never passed.
TEST(CliCheck, QemuEntryFailureUnderSmmIsValidOnAmdAndInvalidUnderHyperV) {
    const std::string dump = "tests/formats/fixtures/qemu-entry-failed-smm.txt";
    const auto amd = nsvm("check " + dump);
    EXPECT_EQ(amd.status, 0) << amd.out << amd.err;
    EXPECT_NE(amd.out.find("no check this input decides fails"), std::string::npos) << amd.out;
    EXPECT_NE(amd.out.find("not decided"), std::string::npos) << amd.out;
    EXPECT_NE(amd.out.find("intercept.vmrun"), std::string::npos) << amd.out;
    EXPECT_NE(amd.err.find("SMM=1"), std::string::npos) << amd.err;  // a warning: on stderr
    const auto hv = nsvm("check --profile hyperv " + dump);
    EXPECT_EQ(hv.status, 1) << hv.out << hv.err;
    EXPECT_NE(hv.out.find("cr3.mbz"), std::string::npos) << hv.out;
    EXPECT_NE(hv.out.find("Hyper-V checks this format with paging off"), std::string::npos) << hv.out;
    const auto j = nsvm("check --json " + dump);
    ASSERT_EQ(j.status, 0) << j.err;
    const auto doc = nlohmann::json::parse(j.out);
    EXPECT_EQ(doc.at("verdict"), "valid");
    EXPECT_EQ(doc.at("format"), "qemu-dump");
    bool vmrun_undecided = false;
    for (const auto& u : doc.at("undecided")) vmrun_undecided |= u.at("id") == "intercept.vmrun";
    EXPECT_TRUE(vmrun_undecided) << j.out;
}

// A dump records the last VMRUN's exit: 0x400 means that VMRUN succeeded
// and the guest took a #NPF, here on an instruction fetch at GPA 0xfc000.
TEST(CliCheck, DumpWithAnExitCodeSaysTheVmrunSucceededAndDecodesTheExit) {
    const auto r = nsvm("check tests/formats/fixtures/kvm-exit-npf.txt");
    EXPECT_NE(r.status, 2) << r.err;
    EXPECT_NE(r.out.find("0x400 VMEXIT_NPF: this VMRUN succeeded"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("0xfc000"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("instruction fetch"), std::string::npos) << r.out;
    const auto j = nsvm("check --json tests/formats/fixtures/kvm-exit-npf.txt");
    const auto doc = nlohmann::json::parse(j.out);
    EXPECT_EQ(doc.at("dump_exit").at("vmrun"), "succeeded");
    EXPECT_EQ(doc.at("dump_exit").at("name"), "VMEXIT_NPF");
    // The same dump with VMEXIT_INVALID: it says the VMRUN failed.
    const auto inv = nsvm("check --json tests/formats/fixtures/kvm-newest.txt");
    EXPECT_EQ(nlohmann::json::parse(inv.out).at("dump_exit").at("vmrun"), "failed") << inv.out;
    // And the exit code as a dump prints it is accepted by `nsvm exit-code`.
    const auto code = nsvm("exit-code ffffffff");
    EXPECT_EQ(code.status, 0) << code.err;
    EXPECT_NE(code.out.find("VMEXIT_INVALID"), std::string::npos) << code.out;
}

// Triage: try a fix without editing the file; look a check up by id.
TEST(CliCheck, SetTriesAFixAndChecksShowExplainsOne) {
    const auto before = nsvm("check --json examples/kvm-dump-invalid.txt");
    const auto after = nsvm("check --json --set control.intercepts[4]=0x6e7f --set control.asid=1 "
                            "examples/kvm-dump-invalid.txt");
    ASSERT_EQ(after.status, 1) << after.err;
    const auto ids = [](const std::string& out) {
        std::vector<std::string> v;
        const auto doc = nlohmann::json::parse(out);  // kept alive: the loop below iterates into it
        for (const auto& f : doc.at("failures")) v.push_back(f.at("id"));
        return v;
    };
    const auto b = ids(before.out), a = ids(after.out);
    EXPECT_EQ(b.size(), a.size() + 2) << before.out << after.out;
    EXPECT_EQ(std::count(a.begin(), a.end(), "intercept.vmrun"), 0);
    EXPECT_EQ(std::count(a.begin(), a.end(), "asid.zero"), 0);
    const auto bad = nsvm("check --set save.cr9=1 examples/valid-vmcb.json");
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("did you mean 'save.cr4'"), std::string::npos) << bad.err;
    EXPECT_EQ(nsvm("check --set save.cs.selector=0x10000 examples/valid-vmcb.json").status, 2);  // too wide
    EXPECT_EQ(nsvm("check --set nonsense examples/valid-vmcb.json").status, 2);
    const auto show = nsvm("checks show cr0.cd_nw");
    EXPECT_EQ(show.status, 0) << show.err;
    EXPECT_NE(show.out.find("APM 15.5.1"), std::string::npos) << show.out;
    EXPECT_NE(show.out.find("save.cr0"), std::string::npos) << show.out;
    // The hint under the name check --json and checks list --json give it.
    EXPECT_NE(show.out.find("\n  hint:     set CR0.CD or clear CR0.NW\n"), std::string::npos) << show.out;
    EXPECT_EQ(show.out.find("when VMRUN goes ahead"), std::string::npos) << show.out;
    // A warning check says it is one, and what happens when VMRUN runs its state.
    const auto warning = nsvm("checks show efer.lma_without_lme_pg");
    EXPECT_EQ(warning.status, 0) << warning.err;
    EXPECT_NE(warning.out.find("outcome:  warning (VMRUN goes ahead)"), std::string::npos) << warning.out;
    EXPECT_NE(warning.out.find("when VMRUN goes ahead: no processor can reach this state"), std::string::npos)
        << warning.out;
    const auto typo = nsvm("checks show cr0.cd_nx");
    EXPECT_EQ(typo.status, 2);
    EXPECT_NE(typo.err.find("did you mean 'cr0.cd_nw'"), std::string::npos) << typo.err;
}

TEST(CliCheck, PartialLeavesChecksOnMissingFieldsUndecided) {
    // A JSON VMCB gives every field; --partial changes nothing for it.
    const auto whole = nsvm("check --partial --json examples/valid-vmcb.json");
    ASSERT_EQ(whole.status, 0) << whole.err;
    EXPECT_TRUE(nlohmann::json::parse(whole.out).at("undecided").empty());
    // A KVM dump of an old kernel lacks fields: with --partial, the checks
    // that read them are listed as not decided.
    const auto dump = nsvm("check --partial --json tests/formats/fixtures/kvm-2024.txt");
    ASSERT_NE(dump.status, 2) << dump.err;
    EXPECT_TRUE(nlohmann::json::parse(dump.out).contains("undecided")) << dump.out;
}

TEST(CliCheck, ValidJsonVmcbPasses) {
    const auto r = nsvm("check examples/valid-vmcb.json");
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("VMRUN would succeed"), std::string::npos);
}

TEST(CliCheck, XenDumpIsRead) {
    const auto r = nsvm("check --json examples/xen-dump.txt");
    ASSERT_NE(r.status, 2) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("format"), "xen-dump");
}

TEST(CliCheck, ReadsStdin) {
    const auto r = nsvm("check - < examples/valid-vmcb.json");
    EXPECT_EQ(r.status, 0) << r.err;
}

TEST(CliCheck, ProfileChangesTheAnswerWhereImplementationsDiffer) {
    // CS.L and CS.D both set in a 32-bit guest: legal per the APM, rejected by Bochs 2.7.
    const auto p = write_temp("csld.json", R"({
      "control": {"intercepts": ["VMRUN"], "asid": 1},
      "save": {"cs": {"selector": "0x8", "attrib": "0x69b", "limit": "0xffffffff", "base": 0},
               "efer": "0x1000", "cr0": "0x11", "dr6": "0xffff0ff0", "dr7": "0x400", "rflags": "0x2"}})");
    EXPECT_EQ(nsvm("check --profile apm " + p.string()).status, 0);
    const auto bochs = nsvm("check --profile bochs --json " + p.string());
    EXPECT_EQ(bochs.status, 1) << bochs.out;
    EXPECT_NE(bochs.out.find("cs_l_d"), std::string::npos) << bochs.out;
}

TEST(CliBadInput, MissingFileIsStatus2NamingTheFile) {
    const auto r = nsvm("check /nonexistent/vmcb.bin");
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("/nonexistent/vmcb.bin"), std::string::npos) << r.err;
}

TEST(CliBadInput, EmptyFileIsStatus2) {
    const auto p = write_temp("empty.bin", "");
    const auto r = nsvm("check " + p.string());
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.err.find(p.filename().string()), std::string::npos) << r.err;
}

TEST(CliBadInput, TruncatedRawIsStatus2) {
    const auto p = write_temp("short.bin", std::string(4000, '\0'));
    const auto r = nsvm("check --format raw " + p.string());
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("4000"), std::string::npos) << r.err;
}

TEST(CliBadInput, UnknownJsonMemberSuggestsTheClosestName) {
    const auto p = write_temp("typo.json", R"({"control": {"asid": 1}, "save": {"cr00": "0x11"}})");
    const auto r = nsvm("check " + p.string());
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("cr00"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("cr0"), std::string::npos) << r.err;
}

TEST(CliBadInput, TooWideNumberNamesTheField) {
    const auto p = write_temp("wide.json", R"({"control": {"asid": "0x100000000"}})");
    const auto r = nsvm("check " + p.string());
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("asid"), std::string::npos) << r.err;
}

TEST(CliBadInput, UnknownOptionsAndProfilesAreStatus2) {
    EXPECT_EQ(nsvm("check --bogus examples/valid-vmcb.json").status, 2);
    EXPECT_EQ(nsvm("check --profile nope examples/valid-vmcb.json").status, 2);
    EXPECT_EQ(nsvm("check --cpu nope examples/valid-vmcb.json").status, 2);
    EXPECT_EQ(nsvm("check --features +nosuchfeature examples/valid-vmcb.json").status, 2);
    EXPECT_EQ(nsvm("").status, 2);
}

TEST(CliConvert, JsonRawJsonRoundTrip) {
    const fs::path raw = fs::temp_directory_path() / ("nsvm-cli-rt-" + std::to_string(::getpid()) + ".bin");
    ASSERT_EQ(nsvm("convert --to raw -o " + raw.string() + " examples/valid-vmcb.json").status, 0);
    EXPECT_EQ(fs::file_size(raw), 4096U);
    const auto a = nsvm("convert --to json examples/valid-vmcb.json");
    const auto b = nsvm("convert --to json " + raw.string());
    ASSERT_EQ(a.status, 0);
    ASSERT_EQ(b.status, 0);
    EXPECT_EQ(a.out, b.out);
    EXPECT_EQ(nsvm("check " + raw.string()).status, 0);
}

TEST(CliDecode, NamesFieldsAndBits) {
    const auto r = nsvm("decode examples/kvm-dump-invalid.txt");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("save.efer"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("control.exit_code"), std::string::npos) << r.out;
    const auto j = nsvm("decode --json examples/valid-vmcb.json");
    ASSERT_EQ(j.status, 0);
    const auto doc = nlohmann::json::parse(j.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(doc.is_discarded()) << j.out;
}

TEST(CliExitCode, NamesAndDecodesIoio) {
    const auto r = nsvm("exit-code 0x7b --info1 0x3f80210 --info2 0x1000");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("VMEXIT_IOIO"), std::string::npos);
    EXPECT_NE(r.out.find("0x3f8"), std::string::npos) << r.out;
    const auto inv = nsvm("exit-code -1");
    EXPECT_EQ(inv.status, 0) << inv.err;
    EXPECT_NE(inv.out.find("VMEXIT_INVALID"), std::string::npos);
    const auto j = nsvm("exit-code --json npf --info1 0x100000006 --info2 0xfee00000");
    ASSERT_EQ(j.status, 0) << j.err;
    EXPECT_EQ(nlohmann::json::parse(j.out).at("code"), "0x400");
    EXPECT_EQ(nsvm("exit-code bogus").status, 2);
    EXPECT_EQ(nsvm("exit-code 0x7b --info1 zz").status, 2);
}

TEST(CliModels, CpuAndProfileListings) {
    const auto cpus = nsvm("cpu list");
    EXPECT_EQ(cpus.status, 0);
    for (const char* m : {"zen4", "qemu-tcg", "bochs-ryzen"}) EXPECT_NE(cpus.out.find(m), std::string::npos) << m;
    const auto show = nsvm("cpu show --json qemu-tcg");
    ASSERT_EQ(show.status, 0) << show.err;
    EXPECT_EQ(nlohmann::json::parse(show.out).at("maxphyaddr"), 40);
    const auto profiles = nsvm("profile list --json");
    ASSERT_EQ(profiles.status, 0);
    EXPECT_EQ(nlohmann::json::parse(profiles.out).size(), 6U);
    const auto kvm = nsvm("profile show --json kvm");
    ASSERT_EQ(kvm.status, 0);
    const auto choices = nlohmann::json::parse(kvm.out).at("choices");
    ASSERT_GE(choices.size(), 5U);
    for (const auto& c : choices) EXPECT_FALSE(c.at("reason").get<std::string>().empty());
    EXPECT_EQ(nsvm("profile show nope").status, 2);
}

TEST(CliHelp, EverySubcommandHasHelp) {
    for (const char* sub : {"check", "decode", "convert", "exit-code", "cpu", "profile", "checks", "run"}) {
        const auto r = nsvm(std::string(sub) + " --help");
        EXPECT_EQ(r.status, 0) << sub;
        EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub;
    }
}

TEST(CliRun, EveryExampleScenarioHolds) {
    const fs::path dir = fs::path(NSVM_SOURCE_DIR) / "examples/scenarios";
    int count = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto ext = e.path().extension();
        if (ext != ".yaml" && ext != ".yml" && ext != ".json") continue;
        const auto r = nsvm("run " + e.path().string());
        EXPECT_EQ(r.status, 0) << e.path() << "\n" << r.out << r.err;
        ++count;
    }
    EXPECT_GE(count, 7);
}

// `run -` reads the scenario from stdin: the same trace as from the file,
// errors named <stdin> with their line, exit 2 for bad input.
TEST(CliRun, ScenarioFromStdin) {
    const auto file = nsvm("run examples/scenarios/seed-gif.yaml");
    ASSERT_EQ(file.status, 0) << file.err;
    const auto piped = nsvm("run - < examples/scenarios/seed-gif.yaml");
    EXPECT_EQ(piped.status, 0) << piped.err;
    // The first line names the source; every step after it is the same.
    ASSERT_NE(piped.out.find('\n'), std::string::npos);
    EXPECT_EQ(piped.out.substr(piped.out.find('\n')), file.out.substr(file.out.find('\n')));
    EXPECT_NE(piped.out.find("<stdin>"), std::string::npos) << piped.out;
    const auto bad = nsvm("run - < " + write_temp("bad-scenario.yaml", "steps:\n  - l1: nosuchinsn\n").string());
    EXPECT_EQ(bad.status, 2) << bad.out;
    EXPECT_NE(bad.err.find("<stdin>:"), std::string::npos) << bad.err;
}

// The nested state in KVM's layout through files: `run --save-kvm-state`
// writes what KVM_GET_NESTED_STATE would return (the bundled
// examples/scenarios/kvm-nested-state/l2.bin is exactly that for
// save-restore.yaml), and a restore_kvm_state step reads it back byte for
// byte. A file that is missing or too large is bad input (exit 2, key named).
TEST(CliRun, KvmNestedStateFilesRoundTrip) {
    const std::string bundled = slurp(fs::path(NSVM_SOURCE_DIR) / "examples/scenarios/kvm-nested-state/l2.bin");
    ASSERT_EQ(bundled.size(), 4224U);
    const fs::path saved = write_temp("saved.kvmstate", "");
    const auto made = nsvm("run --save-kvm-state '" + saved.string() + "' examples/scenarios/save-restore.yaml");
    ASSERT_EQ(made.status, 0) << made.err;
    EXPECT_EQ(slurp(saved), bundled);

    const std::string restore =
        "memory:\n  - gpa: 0x20000\n    vmcb: examples/valid-vmcb.json\n  - {gpa: 0x50000, size: 0x1000}\n"
        "l1: {rax: 0x20000, rip: 0x1000, gif: false, hsave: 0x50000}\n"
        "steps:\n  - l1: vmrun\n  - restore_kvm_state: examples/scenarios/kvm-nested-state/l2.bin\n";
    const fs::path again = write_temp("again.kvmstate", "");
    const auto r = nsvm("run --save-kvm-state '" + again.string() + "' - < " + write_temp("restore.yaml", restore).string());
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(slurp(again), bundled);

    const auto missing = nsvm("run - < " + write_temp("missing.yaml", "steps:\n  - restore_kvm_state: no/such.bin\n").string());
    EXPECT_EQ(missing.status, 2);
    EXPECT_NE(missing.err.find("restore_kvm_state"), std::string::npos) << missing.err;
    const fs::path huge = write_temp("huge.kvmstate", std::string(65537, '\0'));
    const auto too_big = nsvm("run - < " + write_temp("huge.yaml", "steps:\n  - restore_kvm_state: " + huge.string() + "\n").string());
    EXPECT_EQ(too_big.status, 2);
    EXPECT_NE(too_big.err.find("more than the 65536 allowed"), std::string::npos) << too_big.err;
}

// docs/checks.md is generated from the catalogue; it must never drift.
TEST(CliDocs, ChecksMdEqualsTheGeneratedReference) {
    const auto r = nsvm("checks list --markdown");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto json = nsvm("checks list --json");
    ASSERT_EQ(json.status, 0) << json.err;
    const auto all = nlohmann::json::parse(json.out);
    // Every check has its own section with its id, message and hint.
    for (const auto& c : all) {
        const auto id = c.at("id").get<std::string>();
        EXPECT_NE(r.out.find("### `" + id + "`"), std::string::npos) << id;
        EXPECT_NE(r.out.find("- message: " + c.at("message").get<std::string>()), std::string::npos) << id;
        EXPECT_NE(r.out.find("- hint: " + c.at("hint").get<std::string>()), std::string::npos) << id;
    }
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "no colour in generated Markdown";
    EXPECT_EQ(nsvm("checks list --markdown --json").status, 2);

    const auto doc = slurp(fs::path(NSVM_SOURCE_DIR) / "docs/checks.md");
    if (doc != r.out) {
        std::istringstream a(doc), b(r.out);
        std::string la, lb;
        int line = 0;
        while (true) {
            ++line;
            const bool ga = static_cast<bool>(std::getline(a, la)), gb = static_cast<bool>(std::getline(b, lb));
            if (!ga) la = "(end of file)";
            if (!gb) lb = "(end of output)";
            if (!ga || !gb || la != lb) break;
        }
        ADD_FAILURE() << "docs/checks.md is out of date with the check catalogue. Regenerate it with\n"
                      << "    build/nsvm checks list --markdown > docs/checks.md\n"
                      << "first difference at line " << line << ":\n  docs/checks.md: " << la
                      << "\n  generated:      " << lb;
    }
}

// Every `$ nsvm ...` example in README.md shows the command's real output
// (and `$ echo $?` its real exit status): the README cannot drift either.
TEST(CliDocs, ReadmeExamplesAreRealOutput) {
    const auto readme = slurp(fs::path(NSVM_SOURCE_DIR) / "README.md");
    std::istringstream in(readme);
    std::string line;
    bool in_block = false, in_run = false;
    std::vector<std::pair<std::string, std::string>> runs;  // command, expected output
    while (std::getline(in, line)) {
        if (line.rfind("```", 0) == 0) {
            in_block = !in_block;
            in_run = false;  // a block's end closes its last example
            continue;
        }
        if (!in_block) continue;
        if (line.rfind("$ ", 0) == 0) {
            runs.emplace_back(line.substr(2), "");
            in_run = true;
        } else if (in_run) {
            runs.back().second += line + "\n";
        }
    }
    int checked = 0;
    int last_status = -1;
    bool last_was_nsvm = false;
    for (const auto& [cmd, expected] : runs) {
        if (cmd == "echo $?") {
            if (!last_was_nsvm) continue;
            EXPECT_EQ(expected, std::to_string(last_status) + "\n") << "exit status of the previous README example";
            continue;
        }
        // Only commands that run nsvm (possibly at the end of a pipe).
        std::string shell = cmd;
        const auto at = shell.rfind("nsvm ");
        last_was_nsvm = at != std::string::npos && (at == 0 || shell.compare(at - 2, 2, "| ") == 0);
        if (!last_was_nsvm) continue;
        shell.replace(at, 4, "'" + nsvm_binary() + "'");
        const fs::path out = write_temp("readme-out", "");
        const fs::path script = write_temp("readme.sh", "cd '" + std::string(NSVM_SOURCE_DIR) + "' || exit 99\n" +
                                                            shell + "\n");
        const int raw = std::system(("NO_COLOR=1 sh '" + script.string() + "' > '" + out.string() + "' 2>&1").c_str());
        last_status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
        EXPECT_EQ(slurp(out), expected) << "README.md example `" << cmd
                                        << "` no longer matches its output: rerun it and paste the output";
        ++checked;
    }
    EXPECT_GE(checked, 5);
}

TEST(CliDocs, OracleMdListsEveryKnownDivergenceAsNsvmOracleKnownPrintsIt) {
    const auto r = nsvm("oracle known --markdown");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto doc = slurp(fs::path(NSVM_SOURCE_DIR) / "docs/oracle.md");
    const std::string begin = "<!-- known-divergences:begin -->\n", end = "<!-- known-divergences:end -->";
    const auto a = doc.find(begin), b = doc.find(end);
    ASSERT_NE(a, std::string::npos);
    ASSERT_NE(b, std::string::npos);
    EXPECT_EQ(doc.substr(a + begin.size(), b - a - begin.size()), r.out)
        << "docs/oracle.md's known-divergence table is out of date: replace the lines between the markers with "
           "the output of `build/nsvm oracle known --markdown`";
}

TEST(CliOracle, BadVectorFilesNameTheFileLineAndMember) {
    const auto f = write_temp("bad.jsonl", "{\"id\": \"a\", \"vmcb\": {}}\n{\"id\": \"b\", \"vmcb\": {}, \"hots\": {}}\n");
    for (const std::string cmd : {"oracle run --backend qemu ", "diff --backend qemu "}) {
        const auto r = nsvm(cmd + f.string());
        EXPECT_EQ(r.status, 2) << cmd << r.err;
        EXPECT_NE(r.err.find(":2:"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("host"), std::string::npos) << "the closest member is suggested: " << r.err;
    }
    const auto repeat = write_temp("rep.jsonl", "{\"id\": \"a\", \"vmcb\": {}, \"host\": {\"repeat\": 0}}\n");
    const auto rr = nsvm("oracle run --backend qemu " + repeat.string());
    EXPECT_EQ(rr.status, 2);
    EXPECT_NE(rr.err.find("host.repeat"), std::string::npos) << rr.err;
}

TEST(CliOracle, CampaignArgumentsAreChecked) {
    EXPECT_EQ(nsvm("diff --backend qemu").status, 2);                          // no vectors at all
    EXPECT_EQ(nsvm("diff --backend qemu --count 10").status, 2);               // --count without --seed
    EXPECT_EQ(nsvm("diff --backend qemu --boundary --shard 2/2").status, 2);   // shard out of range
    EXPECT_EQ(nsvm("diff --backend nosuch --boundary").status, 2);
    EXPECT_EQ(nsvm("gen --shard 1").status, 2);
}

TEST(CliOracle, GenShardsPartitionTheBoundarySet) {
    const auto whole = nsvm("gen --cpu qemu-tcg --profile qemu");
    ASSERT_EQ(whole.status, 0) << whole.err;
    std::multiset<std::string> want, got;
    std::istringstream w(whole.out);
    for (std::string l; std::getline(w, l);) want.insert(l);
    ASSERT_GT(want.size(), 300U);
    for (int i = 0; i < 3; ++i) {
        const auto part = nsvm("gen --cpu qemu-tcg --profile qemu --shard " + std::to_string(i) + "/3");
        ASSERT_EQ(part.status, 0) << part.err;
        std::istringstream p(part.out);
        for (std::string l; std::getline(p, l);) got.insert(l);
    }
    EXPECT_EQ(got, want);
}
