// `nsvm check` on Xen pastes (issue 11, item 2), end to end through the
// binary: 'xl debug-keys v' with several domains and vCPUs (one report each,
// named d1v0 ...), older svm_dump_vmcb output, and Xen's own validator lines
// set beside nsvm's verdict.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "report_helpers.hpp"
#include "run_nsvm.hpp"

using cli_test::contains;
using cli_test::failure_ids;
using cli_test::kFix;
using cli_test::nsvm;
using cli_test::write_temp;

TEST(CliXenDebugKeys, OneReportPerVcpuNamedByDomainAndVcpu) {
    const auto r = nsvm("check " + kFix + "xen-debug-keys-v.txt");
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.out, "== dump 1 of 3 (line 6): d1v0, dumped at key_handler")) << r.out;
    EXPECT_TRUE(contains(r.out, ": d1v1, dumped at key_handler")) << r.out;
    EXPECT_TRUE(contains(r.out, ": d2v0, dumped at key_handler")) << r.out;
    EXPECT_FALSE(contains(r.out, "d2v1")) << r.out;  // not initialised: Xen dumps nothing
    EXPECT_TRUE(contains(r.out, "3 dumps: 1 with a failing check (dump 2), 2 without")) << r.out;
    EXPECT_TRUE(contains(r.out, "cr0.cd_nw")) << r.out;

    const auto js = nsvm("check --json " + kFix + "xen-debug-keys-v.txt");
    ASSERT_EQ(js.status, 1) << js.err;
    const auto j = nlohmann::json::parse(js.out);
    EXPECT_EQ(j.at("verdict"), "invalid");
    EXPECT_EQ(j.at("format"), "xen-dump");
    EXPECT_EQ(j.at("dump_count"), 3);
    ASSERT_EQ(j.at("dumps").size(), 3U);
    const auto& d2 = j.at("dumps").at(1);
    EXPECT_EQ(d2.at("dump").at("domain"), 1);
    EXPECT_EQ(d2.at("dump").at("vcpu"), 1);
    EXPECT_EQ(d2.at("dump").at("header"), "d1v1, dumped at key_handler");
    EXPECT_EQ(failure_ids(d2), std::set<std::string>{"cr0.cd_nw"});
    EXPECT_EQ(j.at("dumps").at(0).at("verdict"), "valid");
    EXPECT_EQ(j.at("dumps").at(2).at("dump").at("domain"), 2);
}

TEST(CliXenDebugKeys, DumpNChecksOne) {
    const auto ok = nsvm("check --json --dump 3 " + kFix + "xen-debug-keys-v.txt");
    ASSERT_EQ(ok.status, 0) << ok.out << ok.err;
    const auto j = nlohmann::json::parse(ok.out);
    EXPECT_EQ(j.at("verdict"), "valid");
    EXPECT_EQ(j.at("dump").at("index"), 3);
    EXPECT_EQ(j.at("dump").at("domain"), 2);
    EXPECT_EQ(j.at("dump").at("vcpu"), 0);
    const auto bad = nsvm("check --dump 4 " + kFix + "xen-debug-keys-v.txt");
    EXPECT_EQ(bad.status, 2);
    EXPECT_TRUE(contains(bad.err, "--dump: there is no dump 4: the input holds 3 dumps")) << bad.err;
}

TEST(CliXenOlder, Xen41DumpIsCheckedAndBadValuesExitTwoWithLineAndField) {
    const auto r = nsvm("check " + kFix + "xen-4.1.txt");
    EXPECT_EQ(r.status, 0) << r.out << r.err;  // a valid guest; the dump says VMEXIT_INVALID
    EXPECT_TRUE(contains(r.out, "the dump says the VMRUN failed")) << r.out;
    std::string t = cli_test::slurp(std::string(NSVM_SOURCE_DIR) + "/" + kFix + "xen-4.1.txt");
    t.replace(t.find("attr=0x0a9b"), 11, "attr=0x0a9z");
    const auto p = write_temp("xen41-bad.txt", t);
    const auto e = nsvm("check " + p.string());
    EXPECT_EQ(e.status, 2);
    EXPECT_TRUE(contains(e.err, p.string() + ":19: save.cs.attrib: '0x0a9z' is not a hexadecimal number")) << e.err;
}

TEST(CliXenIsvalid, XensVerdictBesideNsvms) {
    const auto r = nsvm("check " + kFix + "xen-isvalid-nested.txt");
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.out, "Xen's svm_vmcb_isvalid()")) << r.out;
    EXPECT_TRUE(contains(r.out, "line 2    d1v0: EFER: SVME bit not set (0x500)")) << r.out;
    EXPECT_TRUE(contains(r.out, "efer.svme: agrees (nsvm fails efer.svme too)")) << r.out;
    EXPECT_TRUE(contains(r.out, "cr4.mbz: disagrees (nsvm's cr4.mbz passes (cpu zen4, profile apm)")) << r.out;
    EXPECT_TRUE(contains(r.out, "verdicts: disagree")) << r.out;

    const auto js = nsvm("check --json " + kFix + "xen-isvalid-nested.txt");
    ASSERT_EQ(js.status, 1) << js.err;
    const auto j = nlohmann::json::parse(js.out);
    const auto& x = j.at("xen_isvalid");
    EXPECT_EQ(x.at("agreement"), "disagree");
    ASSERT_EQ(x.at("reasons").size(), 2U);
    EXPECT_EQ(x.at("reasons").at(0).at("nsvm"), "agrees");
    EXPECT_EQ(x.at("reasons").at(0).at("vcpu"), "d1v0");
    EXPECT_EQ(x.at("reasons").at(0).at("from"), "nsvm_vmcb_prepare4vmrun");
    EXPECT_EQ(x.at("reasons").at(0).at("checks"), nlohmann::json::array({"efer.svme"}));
    EXPECT_EQ(x.at("reasons").at(1).at("nsvm"), "disagrees");
    EXPECT_EQ(x.at("not_reported_by_xen"), nlohmann::json::array());
    EXPECT_EQ(failure_ids(j), std::set<std::string>{"efer.svme"});

    // A CPU model without PCID: nsvm fails CR4 too, and the verdicts agree.
    const auto nopcid = nsvm("check --json --features -pcid " + kFix + "xen-isvalid-nested.txt");
    ASSERT_EQ(nopcid.status, 1) << nopcid.err;
    const auto k = nlohmann::json::parse(nopcid.out);
    EXPECT_EQ(k.at("xen_isvalid").at("reasons").at(1).at("nsvm"), "agrees") << nopcid.out;
    EXPECT_EQ(k.at("xen_isvalid").at("agreement"), "agree");
}

TEST(CliXenIsvalid, ADumpOfAnotherVmcbIsNotCompared) {
    std::string t = cli_test::slurp(std::string(NSVM_SOURCE_DIR) + "/" + kFix + "xen-isvalid-nested.txt");
    t.replace(t.find("efer = 0x500"), 12, "efer = 0x1500");  // the dump is L1's VMCB, not vmcb12
    const auto p = write_temp("xen-other.txt", t);
    const auto js = nsvm("check --json " + p.string());
    const auto j = nlohmann::json::parse(js.out);
    EXPECT_EQ(js.status, 0) << js.err;  // this VMCB (SVME set) passes; Xen judged another
    EXPECT_EQ(j.at("xen_isvalid").at("agreement"), "not_comparable");
    EXPECT_EQ(j.at("xen_isvalid").at("reasons").at(0).at("nsvm"), "other_vmcb");
    EXPECT_TRUE(contains(j.at("xen_isvalid").at("reasons").at(0).at("detail").get<std::string>(),
                         "Xen printed save.efer = 0x500, this dump holds 0x1500"));
}

TEST(CliXenIsvalid, AFailureXenDidNotReportIsADisagreement) {
    std::string t = cli_test::slurp(std::string(NSVM_SOURCE_DIR) + "/" + kFix + "xen-isvalid-nested.txt");
    t.replace(t.find("DR6 = 0x00000000ffff0ff0"), 24, "DR6 = 0x00000001ffff0ff0");
    const auto p = write_temp("xen-unreported.txt", t);
    const auto js = nsvm("check --json " + p.string());
    ASSERT_EQ(js.status, 1) << js.err;
    const auto j = nlohmann::json::parse(js.out);
    EXPECT_EQ(j.at("xen_isvalid").at("not_reported_by_xen"), nlohmann::json::array({"dr6.upper"}));
    const auto r = nsvm("check " + p.string());
    EXPECT_TRUE(contains(r.out, "not reported by Xen: nsvm fails dr6.upper")) << r.out;
}

TEST(CliXenIsvalid, ReasonLinesWithoutADumpExitTwo) {
    const auto p = write_temp("xen-reasons-only.txt",
                              "(XEN) arch/x86/hvm/svm/nestedsvm.c:554:d1v0 hvm_set_cr4 failed, rc: 2\n"
                              "(XEN) d1v0[nsvm_vmcb_prepare4vmrun]: EFER: SVME bit not set (0x500)\n");
    const auto r = nsvm("check " + p.string());
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(contains(r.err, p.string() + ":2: this paste holds Xen's svm_vmcb_isvalid() verdict")) << r.err;
    EXPECT_TRUE(contains(r.err, "nsvm efer.svme")) << r.err;
}
