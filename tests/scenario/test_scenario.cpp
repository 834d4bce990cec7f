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

// --- L2's paging: linear accesses, page_tables, expect mem ----------------------

namespace {
/// The load error of `text`, or a failure when it loads.
scenario::Error load_error(const std::string& text) {
    auto s = scenario::load_text(text, "x.yaml");
    EXPECT_FALSE(s) << text;
    return s ? scenario::Error{} : s.error();
}
/// A scenario whose only memory item is `page_tables` at `root` with `format` and one `map` item.
std::string one_mapping(const std::string& format, const std::string& item, const std::string& root = "0x80000") {
    return "memory:\n  - gpa: " + root + "\n    page_tables:\n      format: " + format + "\n      map:\n        - " + item +
           "\nsteps:\n  - expect: {mode: l1}\n";
}
std::uint64_t read_u64(const scenario::Scenario& s, std::uint64_t at) {
    std::uint64_t v = 0;
    EXPECT_TRUE(s.memory.read_u64(at, v));
    return v;
}
}  // namespace

TEST(ScenarioPaging, LinearMemoryEventsAreLinearAndRefuseAGpaOrAUserFlag) {
    auto s = scenario::load_text("steps:\n  - l2: {event: memory, linear: 0x400000, write: true, fetch: false}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_TRUE(s->steps[0].event.linear);
    EXPECT_EQ(s->steps[0].event.value, 0x400000U);
    EXPECT_TRUE(s->steps[0].event.access.write);
    auto e = load_error("steps:\n  - l2: {event: memory, linear: 0x400000,\n          gpa: 0x1000}\n");
    EXPECT_EQ(e.key, "l2.gpa");
    EXPECT_EQ(e.line, 3);
    EXPECT_EQ(load_error("steps:\n  - l2: {event: memory, address: 0x1000, linear: 0x400000}\n").key, "l2.address");
    e = load_error("steps:\n  - l2: {event: memory, linear: 0x400000, user: true}\n");
    EXPECT_EQ(e.key, "l2.user");
    EXPECT_NE(e.message.find("CPL"), std::string::npos) << e.message;
    EXPECT_EQ(load_error("steps:\n  - l2: {event: cpuid, linear: 0x400000}\n").key, "l2.linear");
}

TEST(ScenarioPaging, EntriesAreWrittenAsTheArchitectureDefinesThem) {
    // legacy 4 MiB page at PA 0x1_0040_0000: PDE bits 31:22 and 20:13 (PA 39:32), PS, P RW US.
    auto s = scenario::load_text(one_mapping("legacy", "{la: 0x400000, gpa: 0x100400000, size: 4m}"), "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(read_u64(*s, 0x80000 + 4) & 0xFFFFFFFF, 0x00402087U);
    // legacy 4 KiB: a PDE P RW US to the next page, a PTE with A and D asked for.
    s = scenario::load_text(one_mapping("legacy", "{la: 0x401000, gpa: 0x5000, write: false, accessed: true, dirty: true}"),
                            "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(read_u64(*s, 0x80000 + 4) & 0xFFFFFFFF, 0x81007U);
    EXPECT_EQ(read_u64(*s, 0x81000 + 4) & 0xFFFFFFFF, 0x5065U);
    // pae, root 32-byte aligned inside its page: the PDPTE has only P (bits 2:1 reserved).
    s = scenario::load_text(one_mapping("pae", "{la: 0xC0200000, gpa: 0x400000, size: 2m, nx: true, user: false}",
                                        "0x80020"),
                            "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(read_u64(*s, 0x80020 + 8 * 3), 0x81001U);
    EXPECT_EQ(read_u64(*s, 0x81000 + 8 * 1), 0x8000000000400083ULL);
    // 5-level: PML5 -> PML4 -> PDPT, a 1 GiB page, `reserved` OR-ed in.
    s = scenario::load_text(one_mapping("5-level", "{la: 0x1000040000000, gpa: 0x80000000, size: 1g, reserved: 0x100}"),
                            "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(read_u64(*s, 0x80000 + 8), 0x81007U);
    EXPECT_EQ(read_u64(*s, 0x81000), 0x82007U);
    EXPECT_EQ(read_u64(*s, 0x82000 + 8), 0x80000187U);
}

TEST(ScenarioPaging, SizesAndBitsAFormatCannotMapAreRefused) {
    const std::string size_key = "memory.page_tables.map[].size";
    EXPECT_EQ(load_error(one_mapping("pae", "{la: 0x400000, gpa: 0x400000, size: 4m}")).key, size_key);
    EXPECT_EQ(load_error(one_mapping("4-level", "{la: 0x400000, gpa: 0x400000, size: 4m}")).key, size_key);
    EXPECT_EQ(load_error(one_mapping("legacy", "{la: 0x400000, gpa: 0x400000, size: 2m}")).key, size_key);
    EXPECT_EQ(load_error(one_mapping("pae", "{la: 0x40000000, gpa: 0x40000000, size: 1g}")).key, size_key);
    EXPECT_EQ(load_error(one_mapping("legacy", "{la: 0x400000, gpa: 0x400000, size: 1g}")).key, size_key);
    auto e = load_error(one_mapping("legacy", "{la: 0x400000, gpa: 0x5000, nx: true}"));
    EXPECT_EQ(e.key, "memory.page_tables.map[].nx");
    EXPECT_EQ(e.line, 6);
    e = load_error(one_mapping("4-levle", "{la: 0x400000, gpa: 0x5000}"));
    EXPECT_EQ(e.key, "memory.page_tables.format");
    EXPECT_NE(e.message.find("did you mean '4-level'"), std::string::npos) << e.message;
    EXPECT_EQ(load_error(one_mapping("4-level", "{la: 0x400000, gpa: 0x5000}", "0x80008")).key, "memory.gpa");
    EXPECT_EQ(load_error(one_mapping("pae", "{la: 0x400000, gpa: 0x5000}", "0x80010")).key, "memory.gpa");
    EXPECT_EQ(load_error(one_mapping("4-level", "{la: 0x400800, gpa: 0x5000}")).key, "memory.page_tables.map[].la");
    EXPECT_EQ(load_error(one_mapping("4-level", "{la: 0x400000, gpa: 0x5800}")).key, "memory.page_tables.map[].gpa");
    // A legacy 4 KiB frame is 32 bits.
    EXPECT_EQ(load_error(one_mapping("legacy", "{la: 0x400000, gpa: 0x100000000}")).key, "memory.page_tables.map[].gpa");
    // Twice the same page, and a page inside a large page mapped before.
    const std::string twice = "memory:\n  - gpa: 0x80000\n    page_tables:\n      format: 4-level\n      map:\n"
                              "        - {la: 0x400000, gpa: 0x5000}\n        - {la: 0x400000, gpa: 0x6000}\n"
                              "steps:\n  - expect: {mode: l1}\n";
    e = load_error(twice);
    EXPECT_EQ(e.key, "memory.page_tables.map[].la");
    EXPECT_EQ(e.line, 7);
    const std::string inside = "memory:\n  - gpa: 0x80000\n    page_tables:\n      format: 4-level\n      map:\n"
                               "        - {la: 0x400000, gpa: 0x400000, size: 2m}\n        - {la: 0x401000, gpa: 0x6000}\n"
                               "steps:\n  - expect: {mode: l1}\n";
    EXPECT_EQ(load_error(inside).key, "memory.page_tables.map[].la");
}

TEST(ScenarioPaging, LinearAddressesBeyondTheFormatsRangeAreRefusedAtTheBoundary) {
    const std::string la_key = "memory.page_tables.map[].la";
    for (const char* f : {"legacy", "pae"}) {
        EXPECT_TRUE(scenario::load_text(one_mapping(f, "{la: 0xFFFFF000, gpa: 0x5000}"), "x.yaml")) << f;
        EXPECT_EQ(load_error(one_mapping(f, "{la: 0x100000000, gpa: 0x5000}")).key, la_key) << f;
    }
    // 4-level: canonical at 48 bits; 5-level at 57.
    EXPECT_TRUE(scenario::load_text(one_mapping("4-level", "{la: 0x7FFFFFFFF000, gpa: 0x5000}"), "x.yaml"));
    EXPECT_TRUE(scenario::load_text(one_mapping("4-level", "{la: 0xFFFF800000000000, gpa: 0x5000}"), "x.yaml"));
    EXPECT_EQ(load_error(one_mapping("4-level", "{la: 0x800000000000, gpa: 0x5000}")).key, la_key);
    EXPECT_TRUE(scenario::load_text(one_mapping("5-level", "{la: 0x800000000000, gpa: 0x5000}"), "x.yaml"));
    EXPECT_TRUE(scenario::load_text(one_mapping("5-level", "{la: 0xFF00000000000000, gpa: 0x5000}"), "x.yaml"));
    EXPECT_EQ(load_error(one_mapping("5-level", "{la: 0x100000000000000, gpa: 0x5000}")).key, la_key);
}

TEST(ScenarioPaging, ExpectMemReadsGuestMemoryUnderAMask) {
    const std::string base = "memory:\n  - {gpa: 0x5000, size: 0x1000}\nsteps:\n  - write: {gpa: 0x5008, u64: 0x1234567}\n"
                             "  - expect: {mem: ";
    auto s = scenario::load_text(base + "{gpa: 0x5008, u64: 0x1234567}}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    std::ostringstream out;
    EXPECT_EQ(scenario::run(*s, {}, out).status, 0) << out.str();
    s = scenario::load_text(base + "{gpa: 0x5009, u16: 0x2445, mask: 0xF0FF}}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    EXPECT_EQ(scenario::run(*s, {}, out).status, 0) << out.str();
    s = scenario::load_text(base + "{gpa: 0x5008, u8: 0x66}}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    auto r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.message.find("x.yaml:5: expect mem: wanted u8 at 0x5008 = 0x66, got 0x67"), std::string::npos) << r.message;
    s = scenario::load_text(base + "{gpa: 0x9000, u8: 0}}\n", "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    r = scenario::run(*s, {}, out);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.message.find("not backed"), std::string::npos) << r.message;
    EXPECT_EQ(load_error(base + "{gpa: 0x5008}}\n").key, "expect.mem");
    EXPECT_EQ(load_error(base + "{gpa: 0x5008, u8: 1, u16: 1}}\n").key, "expect.mem");
    EXPECT_EQ(load_error(base + "{gpa: 0x5008, u8: 0x100}}\n").key, "expect.mem.u8");
    EXPECT_EQ(load_error(base + "{gpa: 0x5008, u8: 1, mask: 0x1FF}}\n").key, "expect.mem.mask");
    EXPECT_EQ(load_error(base + "{u8: 1}}\n").key, "expect.mem.gpa");
    EXPECT_EQ(load_error(base + "{gpa: 0x5008, u8: 1, mak: 1}}\n").key, "expect.mem.mak");
}

// L0's vmcb01 follows the CPU model (KVM's init_vmcb with vgif and vls on);
// `l0: {vgif, vls}` turn them off as KVM's module parameters do.
TEST(ScenarioL0, VgifAndVlsFollowTheCpuModelUnlessTurnedOff) {
    const std::string steps =
        "steps:\n  - l1: clgi\n    expect: {outcome: OUT, owner: OWNER, vmcb01.control.int_ctl: {value: IC, mask: 0x2000200}}\n";
    auto with = [&](std::string head, const char* out, const char* owner, const char* ic) {
        std::string t = head + steps;
        t.replace(t.find("OUT"), 3, out);
        t.replace(t.find("OWNER"), 5, owner);
        t.replace(t.find("IC"), 2, ic);
        return t;
    };
    for (const auto& [text, why] : {
             std::pair{with("", "l1_continues", "none", "0x2000000"), "zen4: vGIF, STGI/CLGI not intercepted"},
             std::pair{with("l0: {vgif: false}\n", "handled_by_l0", "l0", "0x0"), "vgif off: L0's CLGI exit"},
             std::pair{with("cpu: zen4\nfeatures: \"-vgif\"\n", "handled_by_l0", "l0", "0x0"), "a CPU without vGIF"},
         }) {
        auto s = scenario::load_text(text, "x.yaml");
        ASSERT_TRUE(s) << why << ": " << s.error().to_string();
        std::ostringstream out;
        const auto r = scenario::run(*s, {.json = false, .check_invariants = true}, out);
        EXPECT_EQ(r.status, 0) << why << ": " << r.message << "\n" << out.str();
    }
    auto s = scenario::load_text("l0: {vls: sometimes}\nsteps:\n  - l1: vmsave\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "l0.vls");
    EXPECT_EQ(s.error().line, 1);
    s = scenario::load_text("l0: {vgf: false}\nsteps:\n  - l1: clgi\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("vgif"), std::string::npos) << s.error().message;
}

// `l0: {vnmi}` is KVM's module parameter: with it (zen4's default) L1's NMI
// is taken by the processor from vmcb01 without an exit, without it L0
// injects it and intercepts IRET; `l1: iret` ends the blocking either way.
TEST(ScenarioL0, VnmiFollowsTheCpuModelUnlessTurnedOffAndIretEndsTheBlocking) {
    const std::string steps =
        "steps:\n  - external: nmi\n    expect: {outcome: OUT, vmcb01.control.int_ctl: {value: IC, mask: 0x4001000}}\n"
        "  - l1: iret\n    expect: {owner: OWNER, vmcb01.control.int_ctl: {value: 0x0, mask: 0x1000}}\n";
    auto with = [&](std::string head, const char* out, const char* ic, const char* owner) {
        std::string t = head + steps;
        t.replace(t.find("OUT"), 3, out);
        t.replace(t.find("IC"), 2, ic);
        t.replace(t.find("OWNER"), 5, owner);
        return t;
    };
    for (const auto& [text, why] : {
             std::pair{with("", "interrupt", "0x4001000", "none"), "zen4: vNMI, V_NMI_BLOCKING until IRET"},
             std::pair{with("l0: {vnmi: false}\n", "handled_by_l0", "0x0", "l0"), "vnmi off: L0's IRET intercept"},
             std::pair{with("l0: {vgif: false}\n", "handled_by_l0", "0x0", "l0"), "vnmi needs vgif"},
             std::pair{with("features: \"-vnmi\"\n", "handled_by_l0", "0x0", "l0"), "a CPU without vNMI"},
         }) {
        auto s = scenario::load_text(text, "x.yaml");
        ASSERT_TRUE(s) << why << ": " << s.error().to_string();
        std::ostringstream out;
        const auto r = scenario::run(*s, {.json = false, .check_invariants = true}, out);
        EXPECT_EQ(r.status, 0) << why << ": " << r.message << "\n" << out.str();
    }
    auto s = scenario::load_text("l0: {vnmi: 2}\nsteps:\n  - l1: iret\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "l0.vnmi");
    EXPECT_EQ(s.error().line, 1);
    s = scenario::load_text("steps:\n  - l1: irte\n", "x.yaml");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().key, "l1");
    EXPECT_NE(s.error().message.find("did you mean 'iret'"), std::string::npos) << s.error().message;
}

// --- One descent for npt and page_tables: an entry an earlier mapping wrote is never overwritten ---

namespace {
/// A scenario whose only memory item is nested tables at 0x60000 with the mappings `items` (one a line).
std::string npt_items(std::initializer_list<std::string> items) {
    std::string t = "memory:\n  - gpa: 0x60000\n    npt:\n";
    for (const auto& i : items) t += "      - " + i + "\n";
    return t + "steps:\n  - expect: {mode: l1}\n";
}
/// The same with L2's own tables of `format` at 0x80000.
std::string page_table_items(const std::string& format, std::initializer_list<std::string> items) {
    std::string t = "memory:\n  - gpa: 0x80000\n    page_tables:\n      format: " + format + "\n      map:\n";
    for (const auto& i : items) t += "        - " + i + "\n";
    return t + "steps:\n  - expect: {mode: l1}\n";
}
}  // namespace

TEST(ScenarioPaging, NptRefusesA4kPageInsideAnEarlier2mPageAtItsLastPage) {
    // Before, the 4 KiB entry was written into the 2 MiB page's frame (0x200000 + 0x1FF * 8).
    const auto e = load_error(npt_items({"{gpa: 0x400000, hpa: 0x200000, size: 2m}", "{gpa: 0x5FF000, hpa: 0x300000}"}));
    EXPECT_EQ(e.key, "memory.npt[].gpa");
    EXPECT_EQ(e.line, 5);
    EXPECT_EQ(e.to_string().rfind("x.yaml:5: memory.npt[].gpa: 0x5ff000 lies in the 2 MiB page an earlier item maps at 0x400000", 0), 0U)
        << e.to_string();
}

TEST(ScenarioPaging, NptAcceptsA4kPageJustPastAnEarlier2mPageInItsOwnTable) {
    auto s = scenario::load_text(npt_items({"{gpa: 0x400000, hpa: 0x200000, size: 2m}", "{gpa: 0x600000, hpa: 0x300000}"}),
                                 "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    // PML4 0x60000 -> PDPT 0x61000 -> PD 0x62000: PD[2] the 2 MiB page (P RW US PS), PD[3] a new PT 0x63000.
    EXPECT_EQ(read_u64(*s, 0x60000), 0x61007U);
    EXPECT_EQ(read_u64(*s, 0x61000), 0x62007U);
    EXPECT_EQ(read_u64(*s, 0x62000 + 8 * 2), 0x200087U);
    EXPECT_EQ(read_u64(*s, 0x62000 + 8 * 3), 0x63007U);
    EXPECT_EQ(read_u64(*s, 0x63000), 0x300007U);
}

TEST(ScenarioPaging, NptRefusesPagesInsideAnEarlier1gPageAndANotPresentLargePage) {
    EXPECT_EQ(load_error(npt_items({"{gpa: 0x40000000, hpa: 0x80000000, size: 1g}", "{gpa: 0x7FFFF000, hpa: 0x300000}"})).key,
              "memory.npt[].gpa");
    EXPECT_EQ(load_error(npt_items({"{gpa: 0x40000000, hpa: 0x80000000, size: 1g}",
                                    "{gpa: 0x7FE00000, hpa: 0x300000, size: 2m}"}))
                  .key,
              "memory.npt[].gpa");
    EXPECT_TRUE(scenario::load_text(
        npt_items({"{gpa: 0x40000000, hpa: 0x80000000, size: 1g}", "{gpa: 0x80000000, hpa: 0x300000}"}), "x.yaml"));
    // A large page left not present is still an earlier item's entry: no table is made over it.
    const auto e = load_error(
        npt_items({"{gpa: 0x400000, hpa: 0x200000, size: 2m, present: false}", "{gpa: 0x400000, hpa: 0x300000}"}));
    EXPECT_EQ(e.key, "memory.npt[].gpa");
    EXPECT_NE(e.message.find("lies in the 2 MiB page"), std::string::npos) << e.message;
}

TEST(ScenarioPaging, NptRefusesA2mPageOverAnEarlier4kPagesTable) {
    const auto e = load_error(npt_items({"{gpa: 0x5FF000, hpa: 0x300000}", "{gpa: 0x400000, hpa: 0x200000, size: 2m}"}));
    EXPECT_EQ(e.key, "memory.npt[].gpa");
    EXPECT_EQ(e.line, 5);
    EXPECT_NE(e.message.find("would replace the table"), std::string::npos) << e.message;
    // The next 2 MiB region has no table: accepted.
    EXPECT_TRUE(scenario::load_text(
        npt_items({"{gpa: 0x5FF000, hpa: 0x300000}", "{gpa: 0x600000, hpa: 0x200000, size: 2m}"}), "x.yaml"));
    // The same GPA twice.
    EXPECT_NE(load_error(npt_items({"{gpa: 0x400000, hpa: 0x300000}", "{gpa: 0x400000, hpa: 0x301000}"}))
                  .message.find("already mapped"),
              std::string::npos);
}

TEST(ScenarioPaging, PageTablesRefuseA4kPageInsideAnEarlierLargePageAtItsLastPage) {
    for (const char* f : {"pae", "4-level", "5-level"}) {
        const auto e = load_error(
            page_table_items(f, {"{la: 0x400000, gpa: 0x400000, size: 2m}", "{la: 0x5FF000, gpa: 0x6000}"}));
        EXPECT_EQ(e.key, "memory.page_tables.map[].la") << f;
        EXPECT_EQ(e.line, 7) << f;
        EXPECT_NE(e.message.find("0x5ff000 lies in the 2 MiB page an earlier item maps at 0x400000"), std::string::npos)
            << e.message;
        EXPECT_TRUE(scenario::load_text(
            page_table_items(f, {"{la: 0x400000, gpa: 0x400000, size: 2m}", "{la: 0x600000, gpa: 0x6000}"}), "x.yaml"))
            << f;
    }
    // legacy: inside a 4 MiB page (PSE), and just past it.
    const auto e = load_error(
        page_table_items("legacy", {"{la: 0x400000, gpa: 0x400000, size: 4m}", "{la: 0x7FF000, gpa: 0x6000}"}));
    EXPECT_NE(e.message.find("lies in the 4 MiB page"), std::string::npos) << e.message;
    EXPECT_TRUE(scenario::load_text(
        page_table_items("legacy", {"{la: 0x400000, gpa: 0x400000, size: 4m}", "{la: 0x800000, gpa: 0x6000}"}),
        "x.yaml"));
    // 4-level: a 2 MiB page inside a 1 GiB one.
    EXPECT_NE(load_error(page_table_items("4-level", {"{la: 0x40000000, gpa: 0x40000000, size: 1g}",
                                                      "{la: 0x7FE00000, gpa: 0x200000, size: 2m}"}))
                  .message.find("lies in the 1 GiB page"),
              std::string::npos);
}

TEST(ScenarioPaging, PageTablesRefuseALargePageOverAnEarlier4kPagesTable) {
    for (const char* f : {"pae", "4-level"}) {
        const auto e = load_error(
            page_table_items(f, {"{la: 0x5FF000, gpa: 0x6000}", "{la: 0x400000, gpa: 0x400000, size: 2m}"}));
        EXPECT_EQ(e.key, "memory.page_tables.map[].la") << f;
        EXPECT_EQ(e.line, 7) << f;
        EXPECT_NE(e.message.find("a 2 MiB page at 0x400000 would replace the table"), std::string::npos) << e.message;
    }
    EXPECT_NE(load_error(page_table_items("legacy", {"{la: 0x400000, gpa: 0x6000}",
                                                     "{la: 0x400000, gpa: 0x400000, size: 4m}"}))
                  .message.find("a 4 MiB page at 0x400000 would replace the table"),
              std::string::npos);
    // A 4 KiB page first, then a 2 MiB page in the next region: accepted, each entry where it belongs.
    auto s = scenario::load_text(
        page_table_items("4-level", {"{la: 0x5FF000, gpa: 0x6000}", "{la: 0x600000, gpa: 0x400000, size: 2m}"}), "x.yaml");
    ASSERT_TRUE(s) << s.error().to_string();
    // PML4 0x80000 -> PDPT 0x81000 -> PD 0x82000: PD[2] the PT 0x83000, PD[3] the 2 MiB page.
    EXPECT_EQ(read_u64(*s, 0x82000 + 8 * 2), 0x83007U);
    EXPECT_EQ(read_u64(*s, 0x83000 + 8 * 0x1FF), 0x6007U);
    EXPECT_EQ(read_u64(*s, 0x82000 + 8 * 3), 0x400087U);
}
