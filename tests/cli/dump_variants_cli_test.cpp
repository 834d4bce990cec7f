// `nsvm check` on the dump variants users post (issue 11): hex dumps of the
// page (xxd, hexdump -C, od), pre-5.10 KVM dumps, mail-wrapped dumps and logs
// holding several dumps. End to end through the binary: exit statuses, the
// text and the JSON output.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report_helpers.hpp"
#include "run_nsvm.hpp"

using cli_test::contains;
using cli_test::failure_ids;
using cli_test::kFix;
using cli_test::nsvm;
using cli_test::write_temp;

// ------------------------------------------------------------ hex dumps

TEST(CliHexdump, EveryToolsDumpGivesTheVerdictOfThePage) {
    const auto want = nsvm("check --json examples/kvm-dump-invalid.txt");
    ASSERT_EQ(want.status, 1) << want.err;
    const auto want_ids = failure_ids(nlohmann::json::parse(want.out));
    ASSERT_TRUE(want_ids.contains("efer.svme"));
    for (const char* f : {"vmcb-invalid.xxd.txt", "vmcb-invalid.hexdump-C.txt", "vmcb-invalid.od.txt"}) {
        const auto text = nsvm("check " + kFix + f);
        EXPECT_EQ(text.status, 1) << f << text.err;
        EXPECT_TRUE(contains(text.out, "input hexdump")) << text.out;
        EXPECT_TRUE(contains(text.out, "VMEXIT_INVALID")) << text.out;
        const auto json = nsvm("check --json " + kFix + f);
        ASSERT_EQ(json.status, 1) << json.err;
        const auto j = nlohmann::json::parse(json.out);
        EXPECT_EQ(j.at("format"), "hexdump");
        EXPECT_EQ(j.at("verdict"), "invalid");
        EXPECT_EQ(failure_ids(j), want_ids) << f;
        EXPECT_FALSE(j.contains("dump_exit"));  // a page, not a hypervisor's dump
    }
}

TEST(CliHexdump, FromStdinAndValidPage) {
    const auto ok = cli_test::nsvm_with("", "convert examples/valid-vmcb.json --to raw | od -A x -t x1 | '" +
                                                cli_test::nsvm_binary() + "' check -");
    EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
    EXPECT_TRUE(contains(ok.out, "VMRUN would succeed")) << ok.out;
    EXPECT_TRUE(contains(ok.out, "input hexdump")) << ok.out;
}

TEST(CliHexdump, BadDumpsAreExit2WithFileLineAndField) {
    const std::string od = cli_test::slurp(std::string(NSVM_SOURCE_DIR) + "/" + kFix + "vmcb-invalid.od.txt");
    auto lines = [&](std::size_t from, std::size_t n) {
        std::string out;
        std::size_t k = 0, p = 0;
        while (p < od.size()) {
            const auto e = od.find('\n', p);
            if (k >= from && k < from + n) out += od.substr(p, e - p + 1);
            ++k;
            p = e + 1;
        }
        return out;
    };
    struct Case {
        const char* name;
        std::string text;
        std::string needle;
    };
    const std::vector<Case> cases = {
        {"nonhex.txt", lines(0, 1) + "000010 7e 6e xx 00\n" + lines(2, 100), ":2: control.intercepts[4]: "},
        {"order.txt", lines(0, 3) + lines(1, 1), ":4: "},
        {"gap.txt", lines(0, 2) + lines(3, 100), ":3: "},
        {"beyond.txt", od.substr(0, od.rfind("001000")) + "002000\n", "more than the 4 KiB page"},
        {"short.txt", lines(0, 10), ":10: "},
        {"star.txt", lines(0, 13) + "*\n", "'*' with no offset after it"},
    };
    for (const auto& c : cases) {
        const auto f = write_temp(c.name, c.text);
        const auto r = nsvm("check '" + f.string() + "'");
        EXPECT_EQ(r.status, 2) << c.name << r.out << r.err;
        EXPECT_TRUE(contains(r.err, f.string())) << c.name << r.err;
        EXPECT_TRUE(contains(r.err, c.needle)) << c.name << ": expected '" << c.needle << "' in " << r.err;
        EXPECT_FALSE(contains(r.err, "internal error")) << r.err;
        EXPECT_TRUE(r.out.empty()) << c.name << r.out;
    }
}

// ------------------------------------------------------------ pre-5.10 KVM

TEST(CliKvmPre510, SixtyFourBitInterceptsDecideTheVmrunCheck) {
    const auto r = nsvm("check --json " + kFix + "kvm-5.4-u64-intercepts.txt");
    ASSERT_EQ(r.status, 1) << r.out << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("format"), "kvm-dump");
    EXPECT_EQ(failure_ids(j), (std::set<std::string>{"intercept.vmrun"}));
    EXPECT_EQ(j.at("failures").at(0).at("detail"), "control.intercepts[4] = 0x6e7e");
    const auto t = nsvm("check " + kFix + "kvm-5.4-u64-intercepts.txt");
    EXPECT_EQ(t.status, 1);
    EXPECT_TRUE(contains(t.out, "intercept.vmrun")) << t.out;
}

// ------------------------------------------------------------ several dumps

TEST(CliSeveralDumps, OneReportPerDumpHeadedWithItsVcpu) {
    const auto r = nsvm("check " + kFix + "kvm-multi-vcpu.txt");
    EXPECT_EQ(r.status, 1) << r.out << r.err;  // some dump fails
    const auto h1 = r.out.find("== dump 1 of 3 (line 1): SVM vCPU0 VMCB 00000000c7fcd4f6, last attempted VMRUN on CPU 5");
    const auto h2 = r.out.find("== dump 2 of 3 (line 73): SVM vCPU3 VMCB 000000001f2e3d4c");
    const auto h3 = r.out.find("== dump 3 of 3 (line 145): SEV-ES vCPU1 VMCB 00000000a1b2c3d4");
    ASSERT_NE(h1, std::string::npos) << r.out;
    ASSERT_NE(h2, std::string::npos) << r.out;
    ASSERT_NE(h3, std::string::npos) << r.out;
    EXPECT_LT(h1, h2);
    EXPECT_LT(h2, h3);
    // Each report under its own heading.
    const auto part = [&](std::size_t a, std::size_t b) { return r.out.substr(a, b - a); };
    EXPECT_TRUE(contains(part(h1, h2), "(dump 1 of 3): VMRUN would succeed")) << part(h1, h2);
    EXPECT_TRUE(contains(part(h1, h2), "VMEXIT_NPF")) << part(h1, h2);
    EXPECT_TRUE(contains(part(h2, h3), "(dump 2 of 3): VMRUN would fail")) << part(h2, h3);
    EXPECT_TRUE(contains(part(h2, h3), "efer.svme")) << part(h2, h3);
    EXPECT_FALSE(contains(part(h2, h3), "asid.zero")) << part(h2, h3);
    EXPECT_TRUE(contains(r.out.substr(h3), "asid.zero"));
    EXPECT_FALSE(contains(r.out.substr(h3), "efer.svme"));
    EXPECT_TRUE(contains(r.out, "3 dumps: 2 with a failing check (dumps 2, 3), 1 without")) << r.out;
    EXPECT_FALSE(contains(r.out, "more than one dump")) << r.out;
}

TEST(CliSeveralDumps, JsonIsAnObjectWithTheListOfReports) {
    const auto r = nsvm("check --json " + kFix + "kvm-multi-vcpu.txt");
    ASSERT_EQ(r.status, 1) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("verdict"), "invalid");
    EXPECT_EQ(j.at("format"), "kvm-dump");
    EXPECT_EQ(j.at("dump_count"), 3);
    const auto& d = j.at("dumps");
    ASSERT_EQ(d.size(), 3U);
    EXPECT_EQ(d[0].at("verdict"), "valid");
    EXPECT_EQ(d[0].at("dump_exit").at("name"), "VMEXIT_NPF");
    EXPECT_EQ(d[1].at("verdict"), "invalid");
    EXPECT_EQ(failure_ids(d[1]), (std::set<std::string>{"efer.svme"}));
    EXPECT_EQ(failure_ids(d[2]), (std::set<std::string>{"asid.zero"}));
    EXPECT_EQ(d[1].at("dump").at("index"), 2);
    EXPECT_EQ(d[1].at("dump").at("line"), 73);
    EXPECT_EQ(d[1].at("dump").at("vcpu"), 3);
    EXPECT_EQ(d[1].at("dump").at("vmcb"), "000000001f2e3d4c");
    EXPECT_EQ(d[1].at("dump").at("cpu"), 2);
    EXPECT_EQ(d[1].at("dump").at("type"), "SVM");
    EXPECT_EQ(d[2].at("dump").at("type"), "SEV-ES");
    for (const auto& x : d) EXPECT_EQ(x.at("format"), "kvm-dump");
}

TEST(CliSeveralDumps, DumpNPicksOne) {
    const auto t = nsvm("check --dump 2 " + kFix + "kvm-multi-vcpu.txt");
    EXPECT_EQ(t.status, 1) << t.err;
    EXPECT_TRUE(contains(t.out, "== dump 2 of 3 (line 73): SVM vCPU3")) << t.out;
    EXPECT_TRUE(contains(t.out, "efer.svme"));
    EXPECT_FALSE(contains(t.out, "dump 1 of 3")) << t.out;
    EXPECT_FALSE(contains(t.out, "asid.zero"));
    const auto ok = nsvm("check --dump 1 " + kFix + "kvm-multi-vcpu.txt");
    EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
    const auto j = nsvm("check --json --dump 3 " + kFix + "kvm-multi-vcpu.txt");
    ASSERT_EQ(j.status, 1) << j.err;
    const auto doc = nlohmann::json::parse(j.out);
    EXPECT_FALSE(doc.contains("dumps"));  // one report, as for a single dump
    EXPECT_EQ(failure_ids(doc), (std::set<std::string>{"asid.zero"}));
    EXPECT_EQ(doc.at("dump").at("index"), 3);
    EXPECT_EQ(doc.at("dump").at("vcpu"), 1);
    for (const std::string bad : {"4", "0", "x", "-1"}) {
        const auto e = nsvm("check --dump " + bad + " " + kFix + "kvm-multi-vcpu.txt");
        EXPECT_EQ(e.status, 2) << bad << e.out;
        EXPECT_TRUE(contains(e.err, "--dump")) << e.err;
    }
    EXPECT_TRUE(contains(nsvm("check --dump 4 " + kFix + "kvm-multi-vcpu.txt").err,
                         "there is no dump 4: the input holds 3 dumps"));
    EXPECT_EQ(nsvm("check --dump 2 examples/valid-vmcb.json").status, 2);
}

TEST(CliSeveralDumps, ASingleDumpPrintsWhatItAlwaysPrinted) {
    // No heading, no "dump" member, no count line: the single-dump contract.
    for (const char* f : {"examples/kvm-dump-invalid.txt", "tests/formats/fixtures/kvm-2024.txt"}) {
        const auto t = nsvm(std::string("check ") + f);
        EXPECT_EQ(t.out.rfind(std::string(f) + ": ", 0), 0U) << t.out;
        EXPECT_FALSE(contains(t.out, "== dump")) << t.out;
        EXPECT_FALSE(contains(t.out, " dumps: ")) << t.out;
        const auto j = nlohmann::json::parse(nsvm(std::string("check --json ") + f).out);
        EXPECT_FALSE(j.contains("dump"));
        EXPECT_FALSE(j.contains("dumps"));
    }
}

// ------------------------------------------------------------ wrapped mail

TEST(CliWrappedMail, WrappedDumpIsReadAndItsWrappedEferDecides) {
    const auto r = nsvm("check --json " + kFix + "kvm-wrapped-mail.txt");
    ASSERT_EQ(r.status, 1) << r.out << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(failure_ids(j), (std::set<std::string>{"efer.svme"}));
    bool said = false;
    for (const auto& w : j.at("warnings")) said |= contains(w.at("message").get<std::string>(), "mail client had wrapped");
    EXPECT_TRUE(said) << r.out;
}

TEST(CliWrappedMail, AmbiguousWrapIsExit2WithFileAndLine) {
    const auto f = write_temp("ambiguous-wrap.txt",
                              "SVM: VMCB Control Area:\nSVM: asid:               1\nSVM: VMCB State Save Area:\n"
                              "SVM: cr3:            00000001\n03a4e00\n");
    const auto r = nsvm("check '" + f.string() + "'");
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, f.string() + ":5: save.cr3: line 4 ends with 8 of the 16 hex digits")) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

// ------------------------------------------------------------ SEV-ES VMSA, Zen 5

// The decrypted VMSA's sev_features feeds snp.allowed_sev_features (APM
// 15.36.20), which only a CPU with ALLOWED_SEV_FEATURES (zen5) checks.
TEST(CliSevEsVmsa, Zen5ChecksTheVmsaSevFeaturesAgainstTheMask) {
    const auto z5 = nsvm("check --cpu zen5 " + kFix + "kvm-sev-es-vmsa.txt");
    EXPECT_EQ(z5.status, 1) << z5.out << z5.err;
    EXPECT_TRUE(contains(z5.out, "snp.allowed_sev_features")) << z5.out;
    EXPECT_TRUE(contains(z5.out, "SEV_FEATURES = 0x60 (VMSA 3B0h, from the dump's decrypted VMSA)")) << z5.out;
    EXPECT_TRUE(contains(z5.out, "not allowed: 0x40")) << z5.out;
    // The VMSA was read: no "needs guest memory" for it, no ignored values.
    EXPECT_FALSE(contains(z5.out + z5.err, "needs guest memory")) << z5.out << z5.err;
    for (const char* v : {"sev_features", "pl0_ssp", "u_cet", "xcr0"}) EXPECT_FALSE(contains(z5.err, v)) << z5.err;
    const auto j = nlohmann::json::parse(nsvm("check --json --cpu zen5 " + kFix + "kvm-sev-es-vmsa.txt").out);
    EXPECT_EQ(failure_ids(j), (std::set<std::string>{"snp.allowed_sev_features"}));
    // Zen 4 has no ALLOWED_SEV_FEATURES: VMCB 138h is not checked.
    const auto z4 = nsvm("check --cpu zen4 " + kFix + "kvm-sev-es-vmsa.txt");
    EXPECT_EQ(z4.status, 0) << z4.out << z4.err;
    EXPECT_FALSE(contains(z4.out + z4.err, "snp.allowed_sev_features")) << z4.out << z4.err;
}

TEST(CliSevEsVmsa, WithoutTheVmsaLinesTheCheckIsNotDecided) {
    std::string text = cli_test::slurp(std::string(NSVM_SOURCE_DIR) + "/" + kFix + "kvm-sev-es-vmsa.txt");
    const auto at = text.find("sev_features    ");
    ASSERT_NE(at, std::string::npos);
    text.erase(text.rfind('\n', at) + 1, text.find('\n', at) - text.rfind('\n', at));
    const auto path = write_temp("sev-es-no-vmsa.txt", text);
    const auto r = nsvm("check --cpu zen5 '" + path.string() + "'");
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, "snp.allowed_sev_features")) << r.err;
    EXPECT_TRUE(contains(r.err, "needs the VMSA's SEV_FEATURES")) << r.err;
    EXPECT_TRUE(contains(r.err, "not decided")) << r.err;
}

// ------------------------------------------------------------ SEV-SNP VMSA, P5

// snp.restricted_and_alternate (APM 15.36.16) reads SEV_FEATURES where VMRUN
// reads it, the VMSA (3B0h): the fixture's decrypted VMSA gives 0x19
// (SNPActive, Restricted and Alternate Injection) while VMCB 140h
// (GUEST_SEV_FEATURES) holds 0x1.
TEST(CliSnpVmsa, RestrictedAndAlternateIsDecidedFromTheVmsaSevFeatures) {
    const std::string fix = kFix + "kvm-snp-vmsa-injection.txt";
    const auto r = nsvm("check --cpu zen5 " + fix);
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "snp.restricted_and_alternate")) << r.out;
    EXPECT_TRUE(contains(r.out, "SEV_FEATURES = 0x19 (VMSA 3B0h, from the dump's decrypted VMSA)")) << r.out;
    EXPECT_FALSE(contains(r.err, "needs the VMSA's SEV_FEATURES")) << r.err;
    const auto j = nlohmann::json::parse(nsvm("check --json --cpu zen5 " + fix).out);
    EXPECT_EQ(failure_ids(j), (std::set<std::string>{"snp.restricted_and_alternate"}));
}

TEST(CliSnpVmsa, OnlyTheVmsaValueDecidesNotVmcb140h) {
    const std::string text = cli_test::slurp(std::string(NSVM_SOURCE_DIR) + "/" + kFix + "kvm-snp-vmsa-injection.txt");
    const auto replaced = [&](std::string_view from, std::string_view to) {
        std::string t = text;
        const auto at = t.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) t.replace(at, from.size(), to);
        return t;
    };
    // The VMSA with Restricted Injection alone (0x09): valid, though 140h is unchanged.
    const auto below = write_temp("snp-vmsa-restricted.txt",
                                  replaced("sev_features    0000000000000019", "sev_features    0000000000000009"));
    const auto b = nsvm("check --cpu zen5 '" + below.string() + "'");
    EXPECT_EQ(b.status, 0) << b.out << b.err;
    EXPECT_FALSE(contains(b.out + b.err, "snp.restricted_and_alternate")) << b.out << b.err;
    // VMCB 140h with both modes, the VMSA with one: still valid.
    std::string both140 = replaced("sev_features    0000000000000019", "sev_features    0000000000000009");
    const auto at = both140.find("guest_sev_features: 0000000000000001");
    ASSERT_NE(at, std::string::npos);
    both140.replace(at, 36, "guest_sev_features: 0000000000000019");
    const auto g = nsvm("check --cpu zen5 '" + write_temp("snp-140h-both.txt", both140).string() + "'");
    EXPECT_EQ(g.status, 0) << g.out << g.err;
    EXPECT_FALSE(contains(g.out + g.err, "snp.restricted_and_alternate")) << g.out << g.err;
    // Without the decrypted VMSA's sev_features line: not decided, a warning.
    std::string none = text;
    const auto line = none.find("sev_features    ");
    ASSERT_NE(line, std::string::npos);
    none.erase(none.rfind('\n', line) + 1, none.find('\n', line) - none.rfind('\n', line));
    const auto n = nsvm("check --cpu zen5 '" + write_temp("snp-no-vmsa.txt", none).string() + "'");
    EXPECT_EQ(n.status, 0) << n.out << n.err;
    EXPECT_TRUE(contains(n.err, "snp.restricted_and_alternate")) << n.err;
    EXPECT_TRUE(contains(n.err, "needs the VMSA's SEV_FEATURES")) << n.err;
    EXPECT_TRUE(contains(n.err, "not decided")) << n.err;
}
