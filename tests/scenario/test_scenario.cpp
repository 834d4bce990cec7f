// Every example scenario runs clean (with invariants), and bad input is
// reported with file, line, key and a suggestion.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "nsvm/scenario/scenario.hpp"

using namespace nsvm;

TEST(Scenario, EveryExampleHoldsWithInvariants) {
    int count = 0;
    for (const auto& f : std::filesystem::directory_iterator(std::string(NSVM_SOURCE_DIR) + "/examples/scenarios")) {
        if (f.path().extension() != ".yaml") continue;
        ++count;
        auto s = scenario::load_file(f.path().string());
        ASSERT_TRUE(s) << s.error().to_string();
        std::ostringstream out;
        const auto r = scenario::run(*s, {.json = false, .check_invariants = true}, out);
        EXPECT_EQ(r.status, 0) << f.path() << ": " << r.message << "\n" << out.str();
        EXPECT_GT(r.steps_run, 0U);
    }
    EXPECT_GE(count, 8);
}

TEST(Scenario, UnknownKeyNamesLineAndClosestKey) {
    auto s = scenario::load_text("profile: kvm\nstepz:\n  - l1: vmrun\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().line, 2);
    EXPECT_NE(s.error().message.find("'steps'"), std::string::npos);
}

TEST(Scenario, WrongTypesAndRangesAreErrors) {
    auto s = scenario::load_text("steps:\n  - l2: {event: io, port: 0x10000}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "l2.port");
    s = scenario::load_text("steps:\n  - l1: vmrun\n    expect: {gif: maybe}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().line, 3);
    s = scenario::load_text("steps:\n  - l1: vmrun\n    expect: {control.exit_cod: 1}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("control.exit_code"), std::string::npos);
}

TEST(Scenario, FailedExpectationNamesItAndReturns1) {
    auto s = scenario::load_text(
        "memory:\n  - {gpa: 0x20000, size: 0x1000}\nl1: {rax: 0x20000}\nsteps:\n  - l1: vmrun\n    expect: {exit_code: VMEXIT_NPF}\n",
        "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    const auto r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.message.find("x.yaml:6: expect exit_code"), std::string::npos) << r.message;
}

TEST(Scenario, MaskedExpectationComparesOnlyTheMaskedBits) {
    // VMRUN of an all-zero vmcb12 fails (no VMRUN intercept): EXITCODE -1.
    const std::string base =
        "memory:\n  - {gpa: 0x20000, size: 0x1000}\n  - {gpa: 0x50000, size: 0x1000}\n"
        "l1: {rax: 0x20000, hsave: 0x50000}\nsteps:\n  - l1: vmrun\n    expect: {control.exit_code: ";
    auto s = scenario::load_text(base + "{value: 0xff, mask: 0xff}}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    EXPECT_EQ(scenario::run(*s, {}, out).status, 0) << out.str();
    // One bit off under the mask: the message says what the masked bits were.
    s = scenario::load_text(base + "{value: 0xfe, mask: 0x1ff}}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    const auto r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.message.find("wanted 0xfe under mask 0x1ff, got 0xffffffffffffffff (0x1ff under the mask)"),
              std::string::npos)
        << r.message;
    // Only value and mask, both required; a mapping only for numeric keys.
    s = scenario::load_text(base + "{value: 1, mask: 1, shift: 2}}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "expect.control.exit_code.shift");
    s = scenario::load_text(base + "{value: 1}}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "expect.control.exit_code.mask");
    s = scenario::load_text("steps:\n  - external: intr\n    expect: {outcome: {value: 1, mask: 1}}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "expect.outcome");
}

TEST(Scenario, HostTscKeyAndProcessorRegisterExpectations) {
    // `tsc:` sets the processor's host TSC; `rdx` / `rcx` read the
    // processor's registers, which no VMCB holds (RDTSC, RDTSCP).
    auto s = scenario::load_text("tsc: 0x1234\nsteps:\n  - expect: {rdx: 0, rcx: {value: 0, mask: 0xff}}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    ASSERT_TRUE(s->host_tsc.has_value());
    EXPECT_EQ(*s->host_tsc, 0x1234U);
    std::ostringstream out;
    EXPECT_EQ(scenario::run(*s, {}, out).status, 0) << out.str();
    EXPECT_NE(out.str().find("host TSC 0x1234"), std::string::npos) << out.str();
    s = scenario::load_text("steps:\n  - expect: {rdx: 1}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    const auto r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.message.find("x.yaml:2: expect rdx: wanted 1, got 0x0"), std::string::npos) << r.message;
    // Bad input names the file, line and key (exit 2 from the CLI).
    s = scenario::load_text("name: t\ntsc: soon\nsteps:\n  - l1: vmrun\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "tsc");
    EXPECT_EQ(s.error().line, 2);
    s = scenario::load_text("steps:\n  - expect: {rcx: {value: 1}}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "expect.rcx.mask");
}

TEST(Scenario, PendingExpectationNamesHeldEvents) {
    auto s = scenario::load_text("steps:\n  - external: intr\n    expect: {pending: intrr}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "expect.pending");
    EXPECT_EQ(s.error().line, 3);
    EXPECT_NE(s.error().message.find("did you mean 'intr'"), std::string::npos) << s.error().message;
    // L1 runs with GIF = 1 and RFLAGS.IF = 0: the INTR is held, not the NMI.
    s = scenario::load_text("l1: {rflags: 0x2}\nsteps:\n  - external: intr\n  - external: nmi\n"
                            "    expect: {pending: \"nmi, intr\"}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    const auto r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.message.find("x.yaml:5: expect pending: wanted nmi, intr, got intr"), std::string::npos) << r.message;
}

TEST(Scenario, JsonLinesOnePerStepThenTheSummary) {
    auto s = scenario::load_file(std::string(NSVM_SOURCE_DIR) + "/examples/scenarios/seed-gif.yaml");
    ASSERT_TRUE(s);
    std::ostringstream out;
    ASSERT_EQ(scenario::run(*s, {.json = true}, out).status, 0);
    const auto text = out.str();
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
    EXPECT_NE(text.find("\n{\"summary\":"), std::string::npos);
    EXPECT_NE(text.find("\"gif\":0"), std::string::npos);
    EXPECT_NE(text.find("\"check\":\"cr0.cd_nw\""), std::string::npos);
}

// --- Hardening: no input crashes nsvm, exhausts the machine or corrupts a result ---

namespace {
std::string fixture(const std::string& name) { return std::string(NSVM_SOURCE_DIR) + "/tests/scenario/fixtures/" + name; }
std::string fmt_hex_item(int i) {
    std::ostringstream o;
    o << "  - {gpa: 0x" << std::hex << (static_cast<std::uint64_t>(i) << 32) << ", size: 0x100000000}\n";
    return o.str();
}
std::string examples_dir() { return std::string(NSVM_SOURCE_DIR) + "/examples/"; }

/// A scenario text whose vmcb12 (0x20000) is examples/valid-vmcb.json.
std::string with_valid_vmcb(const std::string& rest) {
    return "memory:\n  - gpa: 0x20000\n    vmcb: valid-vmcb.json\n" + rest;
}
}  // namespace

TEST(Hardening, StepsOnAShutDownVcpuReportShutdownWithoutFalseInvariants) {
    // RSM fails (vmcb12 made invalid during SMM): the vCPU shuts down; a
    // VMRUN after it read no vmcb12, which is no invariant violation.
    auto s = scenario::load_text(with_valid_vmcb(
        "  - {gpa: 0x38000, size: 0x8000}\n  - {gpa: 0x50000, size: 0x1000}\n"
        "l1: {rax: 0x20000, hsave: 0x50000}\nsteps:\n  - l1: vmrun\n  - external: smi\n"
        "  - write: {gpa: 0x20558, u64: 0xa0050033}\n  - l1: rsm\n    expect: {outcome: shutdown}\n"
        "  - l1: vmrun\n    expect: {outcome: shutdown, mode: shutdown}\n  - l2: cpuid\n    expect: {outcome: shutdown}\n"
        "  - external: init\n    expect: {outcome: shutdown, mode: shutdown}\n"
        "  - save_restore: true\n    expect: {mode: shutdown}\n"), examples_dir() + "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    const auto r = scenario::run(*s, {.check_invariants = true}, out);
    EXPECT_EQ(r.status, 0) << r.message << "\n" << out.str();
    EXPECT_EQ(r.steps_run, 8U);
}

TEST(Hardening, HostSetL1StateKvmRefusesIsBadInput) {
    struct Case {
        std::string l1, key, why;
    };
    const Case cases[] = {
        {"hsave: 0x50008", "l1.hsave", "page_address_valid"},                // not 4 KiB aligned
        {"vm_hsave_pa: 0x10000000000000", "l1.vm_hsave_pa", "MAXPHYADDR"},  // at MAXPHYADDR (52 on zen4)
        {"efer: 0x11d00", "l1.efer", "kvm_valid_efer"},                      // bit 16 reserved
        {"cr0: 0xa0050033", "l1.cr0", "kvm_is_valid_cr0"},                   // NW without CD
        {"cr0: 0x100000011", "l1.cr0", "kvm_is_valid_cr0"},                 // bit 32
        {"cr4: 0x10000000000", "l1.cr4", "kvm_is_valid_cr4"},                // bit 40 reserved
    };
    for (const auto& c : cases) {
        auto s = scenario::load_text("l1:\n  rax: 0x20000\n  " + c.l1 + "\nsteps:\n  - l1: vmrun\n", "x.yaml");
        ASSERT_FALSE(s) << c.l1;
        EXPECT_EQ(s.error().line, 3) << c.l1;
        EXPECT_EQ(s.error().key, c.key) << c.l1;
        EXPECT_NE(s.error().message.find(c.why), std::string::npos) << s.error().to_string();
    }
    auto s = scenario::load_text("steps:\n  - host_efer: 0x11d00\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "host_efer");
    EXPECT_EQ(s.error().line, 2);
    // The same values, legal, load.
    s = scenario::load_text("l1: {hsave: 0x50000, efer: 0x1d00, cr0: 0x80050033, cr4: 0x6f8}\nsteps:\n  - host_efer: 0x1d00\n",
                            "x.yaml");
    EXPECT_TRUE(s) << s.error().to_string();
}

TEST(Hardening, HugeMemoryItemsCostNothingUntilWritten) {
    // 4 GiB items, 16 of them: mapped, never stored.
    std::string text = "memory:\n";
    for (int i = 0; i < 16; ++i) text += fmt_hex_item(i);
    text += "steps:\n  - write: {gpa: 0x123456788, u64: 7}\n";
    auto s = scenario::load_text(text, "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(s->memory.stored_bytes(), 0U);
    std::uint64_t v = 1;
    ASSERT_TRUE(s->memory.read_u64(0x3FFFFFFF8, v));  // backed, never written: zero
    EXPECT_EQ(v, 0U);
    std::ostringstream out;
    ASSERT_EQ(scenario::run(*s, {}, out).status, 0) << out.str();
    EXPECT_EQ(s->memory.stored_bytes(), 4096U);  // the one page written
}

TEST(Hardening, WrittenMemoryBeyondTheBudgetIsBadInputAtLoadAndEndsTheRun) {
    // At load: an 8 KiB MSRPM and a 12 KiB IOPM under a 16 KiB budget.
    auto s = scenario::load_text("memory_budget: 0x4000\nmemory:\n  - {gpa: 0x14000, msrpm: {all: true}}\n"
                                 "  - {gpa: 0x10000, iopm: {all: true}}\nsteps:\n  - l1: vmrun\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().line, 4);
    EXPECT_NE(s.error().message.find("budget"), std::string::npos) << s.error().to_string();
    s = scenario::load_text("memory_budget: 0x20000000\nsteps:\n  - l1: vmrun\n", "x.yaml");
    ASSERT_FALSE(s);  // raising the budget is refused
    EXPECT_EQ(s.error().key, "memory_budget");
    // At run time: three pages allowed, the fourth written page ends the run.
    s = scenario::load_text("memory_budget: 0x3000\nmemory:\n  - {gpa: 0x100000, size: 0x100000}\nsteps:\n"
                            "  - write: {gpa: 0x100000, u8: 1}\n  - write: {gpa: 0x101000, u8: 1}\n"
                            "  - write: {gpa: 0x102000, u8: 1}\n  - write: {gpa: 0x102008, u8: 1}\n"
                            "  - write: {gpa: 0x103000, u8: 1}\n  - l1: vmrun\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    const auto r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.steps_run, 5U);
    EXPECT_NE(r.message.find("x.yaml:9: step 5: guest memory budget exhausted"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("0x103000"), std::string::npos) << r.message;
}

TEST(Hardening, DuplicateKeysAreRefusedWithBothLines) {
    auto s = scenario::load_text("profile: kvm\nsteps:\n  - l1: vmrun\nprofile: apm\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().line, 4);
    EXPECT_EQ(s.error().key, "profile");
    EXPECT_NE(s.error().message.find("first at line 1"), std::string::npos) << s.error().message;
    // Nested, in flow style: the second `gif` of one expectation.
    s = scenario::load_text("steps:\n  - l1: stgi\n    expect: {gif: true, gif: false}\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().line, 3);
    EXPECT_EQ(s.error().key, "gif");
    // The same key in two mappings is fine.
    s = scenario::load_text("steps:\n  - l1: stgi\n    expect: {gif: true}\n  - l1: clgi\n    expect: {gif: false}\n",
                            "x.yaml");
    EXPECT_TRUE(s) << s.error().to_string();
}

// Found by fuzz_scenario (2026-12-06): an alias inside the collection its
// anchor names makes the node graph a cycle, and the inline VMCB's
// conversion recursed until the stack overflowed.
TEST(Hardening, SelfReferringAliasAndDeepNestingAreRefused) {
    auto s = scenario::load_file(fixture("alias-cycle.yaml"));
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().line, 5);
    EXPECT_NE(s.error().message.find("refers to itself"), std::string::npos) << s.error().to_string();
    s = scenario::load_file(std::string(NSVM_SOURCE_DIR) + "/fuzz/corpus/scenario/self-referencing-alias.yaml");
    ASSERT_FALSE(s);
    // 65 levels of flow sequences, and 40 + 40 levels through an alias.
    s = scenario::load_text("l1: " + std::string(65, '[') + std::string(65, ']') + "\nsteps: []\n", "deep.yaml");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("nested deeper than 64"), std::string::npos) << s.error().to_string();
    const std::string forty = std::string(40, '[') + std::string(40, ']');
    s = scenario::load_text("a: &d " + forty + "\nl1: " + std::string(40, '[') + "*d" + std::string(40, ']') +
                                "\nsteps: []\n",
                            "alias-deep.yaml");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("counting what aliases bring in"), std::string::npos) << s.error().to_string();
    // 64 levels are fine as far as nesting goes ('l1' must be a mapping).
    s = scenario::load_text("l1: " + std::string(63, '[') + std::string(63, ']') + "\nsteps: []\n", "ok.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().message.find("nested deeper"), std::string::npos) << s.error().to_string();
}

TEST(Hardening, AliasBombIsRefusedBeforeItExpands) {
    auto s = scenario::load_file(fixture("alias-bomb.yaml"));
    ASSERT_FALSE(s);
    EXPECT_GE(s.error().line, 9);  // an alias line inside the inline vmcb
    EXPECT_LE(s.error().line, 14);
    EXPECT_NE(s.error().message.find("more than 200000 YAML nodes"), std::string::npos) << s.error().to_string();
    // A flat mapping of many keys costs one look-up per key, not a scan.
    std::string many = "l1:\n";
    for (int i = 0; i < 20000; ++i) many += "  k" + std::to_string(i) + ": 1\n";
    s = scenario::load_text(many + "steps: []\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "l1.k0");  // unknown, found only after the duplicate-key pass
    // A few aliases are fine.
    s = scenario::load_text("x: &n 0x20000\nl1: {rax: *n}\nsteps:\n  - l1: vmrun\n", "x.yaml");
    ASSERT_FALSE(s);  // (only because 'x' is not a scenario key)
    EXPECT_EQ(s.error().key, "x");
}

TEST(Hardening, InputFilesAreBounded) {
    auto s = scenario::load_file("/dev/zero");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("not a regular file"), std::string::npos) << s.error().to_string();
    s = scenario::load_text("memory:\n  - gpa: 0x20000\n    vmcb: /dev/zero\nsteps:\n  - l1: vmrun\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "memory.vmcb");
    EXPECT_NE(s.error().message.find("not a regular file"), std::string::npos) << s.error().to_string();
}

TEST(Hardening, AnL1StepWhileL2RunsIsAScenarioError) {
    auto s = scenario::load_text(with_valid_vmcb("l1: {rax: 0x20000}\nsteps:\n  - l1: vmrun\n  - l1: vmmcall\n"),
                                 examples_dir() + "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    const auto r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.steps_run, 1U);
    EXPECT_NE(r.message.find("x.yaml:7: step 2: an L1 instruction (vmmcall) while L2 runs"), std::string::npos)
        << r.message;
}

TEST(Hardening, L2DebugRegisterWriteWithUpperBitsKeepsVmcb02Legal) {
    auto s = scenario::load_text(with_valid_vmcb("l1: {rax: 0x20000}\nsteps:\n  - l1: vmrun\n"
                                                 "  - l2: {event: dr_write, dr: 7, value: 0x100000400}\n"
                                                 "    expect: {outcome: exception, vector: 13, vmcb02.save.dr7: 0x400}\n"),
                                 examples_dir() + "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    const auto r = scenario::run(*s, {.check_invariants = true}, out);
    EXPECT_EQ(r.status, 0) << r.message << "\n" << out.str();
}
