// A hypervisor's dump shows a VMCB the processor ran, never L1's vmcb12
// (issue 11, item 6): checking it with a profile that models a hypervisor's
// checks on vmcb12 says so, names the hardware checks the profile skips, and
// which of them fail here under the hardware's rules (warning
// dump.hardware_vmcb, text and JSON).
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "report_helpers.hpp"
#include "run_nsvm.hpp"

using cli_test::contains;
using cli_test::nsvm;

namespace {

const nlohmann::json* find_warning(const nlohmann::json& report, const std::string& id) {
    for (const auto& w : report.at("warnings"))
        if (w.at("id") == id) return &w;
    return nullptr;
}

const std::string kDump = "tests/formats/fixtures/kvm-2024.txt";

}  // namespace

TEST(CliHardwareVmcb, KvmProfileOnADumpNamesTheHardwareChecksItSkips) {
    const auto r = nsvm("check --json --profile kvm " + kDump);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto* w = find_warning(j, "dump.hardware_vmcb");
    ASSERT_NE(w, nullptr) << r.out;
    const auto msg = w->at("message").get<std::string>();
    EXPECT_TRUE(contains(msg, "not L1's vmcb12")) << msg;
    EXPECT_TRUE(contains(msg, "profile kvm")) << msg;
    EXPECT_TRUE(contains(msg, "np.g_pat")) << msg;  // a check KVM's nested code does not make, the processor does
    EXPECT_FALSE(contains(msg, "efer.lma_without_lme_pg")) << msg;  // a warning under every profile, not skipped
    EXPECT_TRUE(contains(msg, "None of them fails on this VMCB")) << msg;
    EXPECT_EQ(w->at("fields"), nlohmann::json::array());
    EXPECT_TRUE(contains(nsvm("check --profile kvm " + kDump).err,
                         "warning: " + kDump + ": dump.hardware_vmcb: this kvm-dump"));
}

TEST(CliHardwareVmcb, SaysWhichSkippedCheckFailsUnderTheHardwareRules) {
    // An undefined G_PAT memory type with nested paging on: the profile kvm
    // lets it through, the processor rejects it (APM 15.25.4).
    const std::string set = " --set save.g_pat=0x2 ";
    const auto kvm = nsvm("check --json --profile kvm" + set + kDump);
    ASSERT_EQ(kvm.status, 0) << kvm.out << kvm.err;
    const auto j = nlohmann::json::parse(kvm.out);
    const auto* w = find_warning(j, "dump.hardware_vmcb");
    ASSERT_NE(w, nullptr) << kvm.out;
    EXPECT_TRUE(contains(w->at("message").get<std::string>(),
                         "Under the hardware's rules (--profile apm) np.g_pat fails here."))
        << w->at("message");
    EXPECT_EQ(w->at("fields"), nlohmann::json::array({"save.g_pat", "control.misc_ctl"}));
    const auto apm = nsvm("check --json" + set + kDump);
    EXPECT_EQ(apm.status, 1) << apm.out;
    EXPECT_EQ(find_warning(nlohmann::json::parse(apm.out), "dump.hardware_vmcb"), nullptr);
}

TEST(CliHardwareVmcb, NoWarningForTheHardwareRulesOrForAVmcbFile) {
    // hyperv applies every check apm does: nothing skipped.
    EXPECT_EQ(find_warning(nlohmann::json::parse(nsvm("check --json --profile hyperv " + kDump).out),
                           "dump.hardware_vmcb"),
              nullptr);
    // A JSON VMCB is whatever the user says it is (vmcb12 included).
    EXPECT_EQ(find_warning(nlohmann::json::parse(nsvm("check --json --profile kvm examples/valid-vmcb.json").out),
                           "dump.hardware_vmcb"),
              nullptr);
    // Xen's and QEMU's dumps are VMCBs the processor ran too.
    EXPECT_NE(find_warning(nlohmann::json::parse(
                               nsvm("check --json --profile xen tests/formats/fixtures/xen-new.txt").out),
                           "dump.hardware_vmcb"),
              nullptr);
}
