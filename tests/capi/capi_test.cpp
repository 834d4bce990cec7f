// The C API through its C++ callers: reading, checking, the fast verdict,
// fields, repair, the engine, and errors that never escape as exceptions.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/nsvm.h"
#include "support/valid_vmcb.hpp"

namespace {

struct Free {
    void operator()(nsvm_vmcb* p) const { nsvm_vmcb_free(p); }
    void operator()(nsvm_checker* p) const { nsvm_checker_free(p); }
    void operator()(nsvm_report* p) const { nsvm_report_free(p); }
    void operator()(nsvm_repair* p) const { nsvm_repair_free(p); }
    void operator()(nsvm_machine* p) const { nsvm_machine_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

std::string slurp(const std::string& rel) {
    std::ifstream in(std::string(NSVM_SOURCE_DIR) + "/" + rel, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Owned<nsvm_vmcb> read(const std::string& data, nsvm_format f = NSVM_FORMAT_AUTO) {
    nsvm_vmcb* v = nullptr;
    EXPECT_EQ(nsvm_vmcb_read(data.data(), data.size(), f, "test", &v), NSVM_OK) << nsvm_last_error();
    return Owned<nsvm_vmcb>(v);
}

Owned<nsvm_vmcb> from_page(const nsvm::arch::Vmcb& vmcb) {
    const auto& p = vmcb.page();
    return read(std::string(reinterpret_cast<const char*>(p.data()), p.size()), NSVM_FORMAT_RAW);
}

Owned<nsvm_checker> checker(const char* cpu = nullptr, const char* profile = nullptr) {
    nsvm_checker* c = nullptr;
    EXPECT_EQ(nsvm_checker_new(cpu, profile, &c), NSVM_OK) << nsvm_last_error();
    return Owned<nsvm_checker>(c);
}

TEST(CApi, VersionMatchesTheHeader) { EXPECT_STREQ(nsvm_version(), NSVM_VERSION_STRING); }

TEST(CApi, ReadsJsonAndAutoDetectsTheFormat) {
    const auto v = read(slurp("examples/valid-vmcb.json"));
    ASSERT_TRUE(v);
    EXPECT_EQ(nsvm_vmcb_format(v.get()), NSVM_FORMAT_JSON);
    std::uint64_t cr0 = 0;
    ASSERT_EQ(nsvm_vmcb_get(v.get(), "save.cr0", &cr0), NSVM_OK);
    EXPECT_EQ(cr0, 0x80050033U);
    EXPECT_EQ(nsvm_vmrun_would_succeed(checker().get(), v.get()), 1);
}

TEST(CApi, ReadsKvmDumpsAndReportsEveryFailure) {
    const auto v = read(slurp("examples/kvm-dump-invalid.txt"));
    ASSERT_TRUE(v);
    EXPECT_EQ(nsvm_vmcb_format(v.get()), NSVM_FORMAT_KVM_DUMP);
    const auto c = checker("zen4", "kvm");
    EXPECT_EQ(nsvm_vmrun_would_succeed(c.get(), v.get()), 0);
    nsvm_report* raw = nullptr;
    ASSERT_EQ(nsvm_check(c.get(), v.get(), &raw), NSVM_OK);
    const Owned<nsvm_report> r(raw);
    EXPECT_NE(nsvm_report_verdict(r.get()), NSVM_VERDICT_VALID);
    ASSERT_GT(nsvm_report_failure_count(r.get()), 0U);
    nsvm_failure f{};
    ASSERT_EQ(nsvm_report_failure(r.get(), 0, &f), NSVM_OK);
    EXPECT_GT(std::strlen(f.id), 0U);
    EXPECT_GT(std::strlen(f.apm), 0U);
    EXPECT_GT(std::strlen(f.message), 0U);
    EXPECT_GT(std::strlen(f.hint), 0U);
    ASSERT_GT(f.field_count, 0U);
    EXPECT_EQ(std::string(f.fields[0]).find('.') != std::string::npos, true);
    EXPECT_EQ(nsvm_report_failure(r.get(), 1000, &f), NSVM_E_INVALID_ARGUMENT);
}

TEST(CApi, ParseErrorsNameTheSourceAndLine) {
    const std::string bad = "{\n  \"save\": {\"cr0\": \"zebra\"}\n}\n";
    nsvm_vmcb* v = reinterpret_cast<nsvm_vmcb*>(0x1);
    EXPECT_EQ(nsvm_vmcb_read(bad.data(), bad.size(), NSVM_FORMAT_JSON, "bad.json", &v), NSVM_E_PARSE);
    EXPECT_EQ(v, nullptr);
    EXPECT_NE(std::string(nsvm_last_error()).find("bad.json"), std::string::npos) << nsvm_last_error();
    EXPECT_NE(std::string(nsvm_last_error()).find("cr0"), std::string::npos) << nsvm_last_error();
}

// QEMU's register dump: the same verdicts as `nsvm check`, with the checks
// it cannot decide listed.
TEST(CApi, QemuDumpIsPartialInputWithUndecidedChecks) {
    std::ifstream f(std::string(NSVM_SOURCE_DIR) + "/tests/formats/fixtures/qemu-entry-failed-smm.txt");
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(text.empty());
    nsvm_vmcb* v = nullptr;
    ASSERT_EQ(nsvm_vmcb_read(text.data(), text.size(), NSVM_FORMAT_AUTO, "qemu.txt", &v), NSVM_OK) << nsvm_last_error();
    EXPECT_EQ(nsvm_vmcb_format(v), NSVM_FORMAT_QEMU_DUMP);
    for (const char* profile : {"apm", "hyperv"}) {
        nsvm_checker* c = nullptr;
        ASSERT_EQ(nsvm_checker_new(nullptr, profile, &c), NSVM_OK);
        nsvm_report* r = nullptr;
        ASSERT_EQ(nsvm_check(c, v, &r), NSVM_OK);
        EXPECT_EQ(nsvm_report_verdict(r), std::string(profile) == "apm" ? NSVM_VERDICT_VALID : NSVM_VERDICT_VMEXIT_INVALID);
        bool vmrun_undecided = false;
        for (size_t i = 0; i < nsvm_report_undecided_count(r); ++i)
            vmrun_undecided |= std::string(nsvm_report_undecided_id(r, i)) == "intercept.vmrun";
        EXPECT_TRUE(vmrun_undecided) << profile;
        EXPECT_EQ(nsvm_report_undecided_id(r, nsvm_report_undecided_count(r)), nullptr);
        nsvm_report_free(r);
        nsvm_checker_free(c);
    }
    nsvm_vmcb_free(v);
}

TEST(CApi, UnknownNamesAreErrorsNotCrashes) {
    nsvm_checker* c = nullptr;
    EXPECT_EQ(nsvm_checker_new("pentium", nullptr, &c), NSVM_E_UNKNOWN_NAME);
    EXPECT_NE(std::string(nsvm_last_error()), "");
    EXPECT_EQ(nsvm_checker_new(nullptr, "vmware", &c), NSVM_E_UNKNOWN_NAME);
    // "host" is a name of the CLI only: the library never executes CPUID.
    EXPECT_EQ(nsvm_checker_new("host", nullptr, &c), NSVM_E_UNKNOWN_NAME);
    EXPECT_EQ(nsvm_checker_new("zen5", "hyperv", &c), NSVM_OK);  // names nsvm.h lists too
    nsvm_checker_free(c);
    c = nullptr;
    const auto v = from_page(nsvm::test_support::valid_vmcb64());
    std::uint64_t x = 0;
    EXPECT_EQ(nsvm_vmcb_get(v.get(), "save.nonsense", &x), NSVM_E_UNKNOWN_NAME);
    EXPECT_EQ(nsvm_vmcb_get(nullptr, "save.cr0", &x), NSVM_E_INVALID_ARGUMENT);
    EXPECT_EQ(nsvm_vmrun_would_succeed(nullptr, v.get()), -1);
    EXPECT_EQ(nsvm_vmcb_read(nullptr, 0, static_cast<nsvm_format>(NSVM_FORMAT_QEMU_DUMP + 1), nullptr, nullptr), NSVM_E_INVALID_ARGUMENT);
}

TEST(CApi, SetRefusesValuesWiderThanTheField) {
    const auto v = from_page(nsvm::test_support::valid_vmcb64());
    EXPECT_EQ(nsvm_vmcb_set(v.get(), "control.asid", 0x1'0000'0000ULL), NSVM_E_INVALID_ARGUMENT);
    ASSERT_EQ(nsvm_vmcb_set(v.get(), "control.asid", 0), NSVM_OK);
    EXPECT_EQ(nsvm_vmrun_would_succeed(checker().get(), v.get()), 0);
    std::uint8_t page[NSVM_VMCB_SIZE];
    EXPECT_EQ(nsvm_vmcb_page(v.get(), page, sizeof page - 1), NSVM_E_BUFFER_TOO_SMALL);
    ASSERT_EQ(nsvm_vmcb_page(v.get(), page, sizeof page), NSVM_OK);
    EXPECT_EQ(page[0x58], 0);  // control.asid
}

TEST(CApi, JsonReportsTheSizeItNeeds) {
    const auto v = from_page(nsvm::test_support::valid_vmcb64());
    std::size_t needed = 0;
    EXPECT_EQ(nsvm_vmcb_to_json(v.get(), nullptr, 0, &needed), NSVM_E_BUFFER_TOO_SMALL);
    ASSERT_GT(needed, 10U);
    std::vector<char> buf(needed);
    ASSERT_EQ(nsvm_vmcb_to_json(v.get(), buf.data(), buf.size(), &needed), NSVM_OK);
    const auto back = read(std::string(buf.data()), NSVM_FORMAT_AUTO);
    EXPECT_EQ(nsvm_vmcb_format(back.get()), NSVM_FORMAT_JSON);
    EXPECT_EQ(nsvm_vmrun_would_succeed(checker().get(), back.get()), 1);
}

TEST(CApi, RepairListsEachChangeWithTheCheckItFixes) {
    auto bad = nsvm::test_support::valid_vmcb64();
    bad.set(nsvm::arch::FieldId::cr0, (0x80050033ULL | (1ULL << 29)) & ~(1ULL << 30));  // NW without CD
    bad.set(nsvm::arch::FieldId::asid, 0);
    const auto v = from_page(bad);
    const auto c = checker("zen4", "kvm");
    ASSERT_EQ(nsvm_vmrun_would_succeed(c.get(), v.get()), 0);
    nsvm_repair* raw = nullptr;
    ASSERT_EQ(nsvm_repair_vmcb(c.get(), v.get(), &raw), NSVM_OK);
    const Owned<nsvm_repair> r(raw);
    EXPECT_EQ(nsvm_repair_valid(r.get()), 1);
    EXPECT_EQ(nsvm_repair_unrepaired_count(r.get()), 0U);
    EXPECT_EQ(nsvm_vmrun_would_succeed(c.get(), v.get()), 1);
    ASSERT_EQ(nsvm_repair_change_count(r.get()), 2U);
    nsvm_change ch{};
    ASSERT_EQ(nsvm_repair_change(r.get(), 0, &ch), NSVM_OK);
    EXPECT_STREQ(ch.field, "control.asid");
    EXPECT_STREQ(ch.check_id, "asid.zero");
    EXPECT_EQ(ch.old_value, 0U);
    EXPECT_EQ(ch.new_value, 1U);
    ASSERT_EQ(nsvm_repair_change(r.get(), 1, &ch), NSVM_OK);
    EXPECT_STREQ(ch.field, "save.cr0");
    EXPECT_STREQ(ch.check_id, "cr0.cd_nw");
    EXPECT_EQ(ch.new_value, 0x80050033U);  // only NW cleared
}

TEST(CApi, RepairOfAnAllZeroVmcbReachesValid) {
    nsvm_vmcb* raw = nullptr;
    ASSERT_EQ(nsvm_vmcb_new(&raw), NSVM_OK);
    const Owned<nsvm_vmcb> v(raw);
    for (const char* profile : {"apm", "kvm", "qemu", "bochs", "xen"}) {
        const auto c = checker("zen4", profile);
        nsvm_repair* r = nullptr;
        ASSERT_EQ(nsvm_repair_vmcb(c.get(), v.get(), &r), NSVM_OK);
        const Owned<nsvm_repair> owned(r);
        EXPECT_EQ(nsvm_repair_valid(r), 1) << profile << ": " << (nsvm_repair_unrepaired(r, 0) ? nsvm_repair_unrepaired(r, 0) : "");
        EXPECT_EQ(nsvm_vmrun_would_succeed(c.get(), v.get()), 1) << profile;
    }
}

TEST(CApi, RepairReportsInstructionGatesAsUnrepaired) {
    // Host EFER.SVME = 0: VMRUN is #UD whatever the VMCB holds.
    const std::string json = R"({"host": {"efer": "0x500", "cr0": "0x80000011"},
                                 "control": {"intercepts": ["VMRUN"], "asid": 1}})";
    const auto v = read(json);
    const auto c = checker();
    nsvm_repair* r = nullptr;
    ASSERT_EQ(nsvm_repair_vmcb(c.get(), v.get(), &r), NSVM_OK);
    const Owned<nsvm_repair> owned(r);
    EXPECT_EQ(nsvm_repair_valid(r), 0);
    ASSERT_GE(nsvm_repair_unrepaired_count(r), 1U);
    EXPECT_STREQ(nsvm_repair_unrepaired(r, 0), "gate.efer_svme");
    EXPECT_EQ(nsvm_repair_unrepaired(r, 99), nullptr);
}

constexpr std::uint64_t kVmcb12 = 0x20000, kHsave = 0x50000;

Owned<nsvm_machine> machine_with_vmcb12(const nsvm::arch::Vmcb& v12) {
    nsvm_machine* m = nullptr;
    EXPECT_EQ(nsvm_machine_new("zen4", "kvm", &m), NSVM_OK) << nsvm_last_error();
    Owned<nsvm_machine> owned(m);
    EXPECT_EQ(nsvm_machine_map(m, kVmcb12, 0x1000), NSVM_OK);
    EXPECT_EQ(nsvm_machine_map(m, kHsave, 0x1000), NSVM_OK);
    EXPECT_EQ(nsvm_machine_map(m, nsvm::test_support::kIopmBase, 0x3000), NSVM_OK);
    EXPECT_EQ(nsvm_machine_map(m, nsvm::test_support::kMsrpmBase, 0x2000), NSVM_OK);
    EXPECT_EQ(nsvm_machine_write(m, kVmcb12, v12.page().data(), v12.page().size()), NSVM_OK);
    EXPECT_EQ(nsvm_machine_set_hsave(m, kHsave), NSVM_OK);
    EXPECT_EQ(nsvm_machine_vmcb01_set(m, "save.rax", kVmcb12), NSVM_OK);
    return owned;
}

TEST(CApi, MachineEntersL2AndReflectsAnInterceptedExit) {
    auto v12 = nsvm::test_support::valid_vmcb64();
    v12.set_intercept(nsvm::arch::intercept::CPUID);
    const auto m = machine_with_vmcb12(v12);
    nsvm_step s{};
    ASSERT_EQ(nsvm_machine_l1(m.get(), NSVM_L1_VMRUN, &s), NSVM_OK) << nsvm_last_error();
    EXPECT_STREQ(s.outcome, "entered_l2");
    EXPECT_EQ(nsvm_machine_mode(m.get()), NSVM_MODE_L2);
    std::uint64_t asid02 = 0;
    ASSERT_EQ(nsvm_machine_vmcb_get(m.get(), NSVM_VMCB02, "control.asid", &asid02), NSVM_OK);
    EXPECT_NE(asid02, 0U);
    EXPECT_EQ(nsvm_machine_l1(m.get(), NSVM_L1_STGI, &s), NSVM_E_STATE);
    ASSERT_EQ(nsvm_machine_event(m.get(), "cpuid", 0, 0, &s), NSVM_OK) << nsvm_last_error();
    EXPECT_STREQ(s.outcome, "vmexit_to_l1");
    EXPECT_EQ(s.exit_code, 0x72U);  // VMEXIT_CPUID
    std::uint64_t code = 0;
    ASSERT_EQ(nsvm_machine_vmcb_get(m.get(), NSVM_VMCB12, "control.exit_code", &code), NSVM_OK);
    EXPECT_EQ(code, 0x72U);
    EXPECT_EQ(nsvm_machine_check_invariants(m.get()), nullptr);
}

TEST(CApi, MachineFailedVmrunNamesTheCheckAndClearsGif) {
    auto v12 = nsvm::test_support::valid_vmcb64();
    v12.set(nsvm::arch::FieldId::asid, 0);
    const auto m = machine_with_vmcb12(v12);
    EXPECT_EQ(nsvm_machine_gif(m.get()), 1);
    nsvm_step s{};
    ASSERT_EQ(nsvm_machine_l1(m.get(), NSVM_L1_VMRUN, &s), NSVM_OK);
    EXPECT_STREQ(s.outcome, "vmrun_failed");
    EXPECT_STREQ(s.failed_check, "asid.zero");
    EXPECT_EQ(s.exit_code, ~0ULL);  // VMEXIT_INVALID
    EXPECT_EQ(nsvm_machine_gif(m.get()), 0);
    EXPECT_EQ(nsvm_machine_check_invariants(m.get()), nullptr);
    EXPECT_EQ(nsvm_machine_event(m.get(), "warp", 0, 0, &s), NSVM_E_UNKNOWN_NAME);
}

}  // namespace
