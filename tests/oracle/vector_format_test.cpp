// Vector and result formats: good input, bad input (errors name file, line
// and field), round trips and the MSRPM/IOPM patch encoding.
#include <gtest/gtest.h>

#include "nsvm/arch/intercepts.hpp"
#include "nsvm/arch/le.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/runner.hpp"
#include "nsvm/oracle/vector.hpp"

namespace nsvm::oracle {
namespace {

using arch::FieldId;

constexpr std::string_view kGood =
    R"({"id": "a", "vmcb": {"control": {"intercepts": ["VMRUN", "VMMCALL"], "asid": 1}, "save": {"efer": "0x1500"}}, "l2": {"program": "cpuid", "regs": {"rcx": "0x7", "r15": 3}}, "msrpm": [{"msr": "0xc0000081", "access": "r"}, "0x10"], "iopm": ["0x80", 1016], "host": {"gif": 0, "vmrun_rax": "0x1000"}, "checks": ["asid.zero"], "note": "hi"})"
    "\n# a comment\n\n"
    R"({"id": "b", "vmcb": {"save": {"rip": "0x200050"}}})"
    "\n";

TEST(VectorFormat, ParsesJsonLines) {
    auto r = parse_vectors(kGood, "v.jsonl");
    ASSERT_TRUE(r.has_value()) << formats::to_string(r.error());
    ASSERT_EQ(r->size(), 2U);
    const auto& a = (*r)[0];
    EXPECT_EQ(a.id, "a");
    EXPECT_EQ(a.line, 1);
    EXPECT_EQ(a.program, Program::cpuid);
    EXPECT_EQ(a.regs[1], 0x7U);
    EXPECT_EQ(a.regs[15], 3U);
    EXPECT_EQ(a.vmcb.get(FieldId::asid), 1U);
    EXPECT_EQ(a.vmcb.get(FieldId::efer), 0x1500U);
    // No save.rip given: L2 starts at the program's entry.
    EXPECT_EQ(a.vmcb.get(FieldId::rip), program_entry(Program::cpuid));
    ASSERT_EQ(a.msrpm.size(), 2U);
    EXPECT_EQ(a.msrpm[0], (MsrIntercept{0xC0000081, true, false}));
    EXPECT_EQ(a.msrpm[1], (MsrIntercept{0x10, true, true}));
    EXPECT_EQ(a.iopm, (std::vector<std::uint16_t>{0x80, 1016}));
    EXPECT_FALSE(a.host.gif);
    EXPECT_EQ(a.host.vmrun_rax, std::optional<std::uint64_t>(0x1000));
    EXPECT_EQ(a.checks, std::vector<std::string>{"asid.zero"});
    const auto& b = (*r)[1];
    EXPECT_EQ(b.line, 4);  // a, comment, blank, b
    EXPECT_EQ(b.program, Program::vmmcall);
    // An explicit rip is kept (inside the image's program menu: elsewhere
    // the vector would be refused, docs/oracle.md "Isolation between vectors").
    EXPECT_EQ(b.vmcb.get(FieldId::rip), 0x200050U);
}

TEST(VectorFormat, ParsesJsonArray) {
    auto r = parse_vectors(R"([{"id": "x", "vmcb": {}}, {"id": "y", "vmcb": {}, "l2": {"program": "hlt"}}])", "a.json");
    ASSERT_TRUE(r.has_value()) << formats::to_string(r.error());
    ASSERT_EQ(r->size(), 2U);
    EXPECT_EQ((*r)[1].program, Program::hlt);
}

struct Bad {
    std::string_view text;
    int line;
    std::string_view field;
    std::string_view message_part;
};

TEST(VectorFormat, ErrorsNameFileLineAndField) {
    const Bad cases[] = {
        {"{\"id\": \"a\", \"vmcb\": {}, \"hots\": {}}", 1, "hots", "did you mean \"host\""},
        {"\n{\"id\": \"a\", \"vmcb\": {}, \"l2\": {\"program\": \"vmcal\"}}", 2, "l2.program", "vmmcall"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"l2\": {\"regs\": {\"rax\": 1}}}", 1, "l2.regs.rax", "save.rax"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"l2\": {\"regs\": {\"rcx\": \"0xzz\"}}}", 1, "l2.regs.rcx", "not a number"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"msrpm\": [\"0x40000000\"]}", 1, "msrpm[0]", "outside"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"iopm\": [70000]}", 1, "iopm[0]", "16 bits"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"host\": {\"gif\": 2}}", 1, "host.gif", "0 or 1"},
        // Paging patches (docs/oracle.md "Paging patches"): only the entries the
        // host never translates through, each its own size, pointing only into
        // the window or the spare pages.
        {"{\"id\": \"a\", \"vmcb\": {}, \"paging\": [{\"pa\": \"0x300000\", \"value\": 0}]}", 1, "paging[0].pa",
         "not a patchable page-table entry"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"paging\": [{\"pa\": \"0x302ff4\", \"value\": 0}]}", 1, "paging[0].pa",
         "not aligned"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"paging\": [{\"pa\": \"0x3073f8\", \"value\": 0}]}", 1, "paging[0].pa",
         "whose entries are 4 bytes"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"paging\": [{\"pa\": \"0x302ff8\", \"value\": 0, \"size\": 2}]}", 1,
         "paging[0].size", "4 or 8"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"paging\": [{\"pa\": \"0x302ff8\"}]}", 1, "paging[0].value", "missing"},
        {"{\"id\": \"a\", \"vmcb\": {}, \"paging\": [{\"pa\": \"0x302ff8\", \"value\": \"0x100087\"}]}", 1,
         "paging[0].value", "outside the paging window"},
        {"{\"vmcb\": {}}", 1, "id", "missing"},
        {"{\"id\": \"a\"}", 1, "vmcb", "missing"},
        {"{\"id\": \"a\", \"vmcb\": {\"save\": {\"cr9\": 1}}}", 1, "vmcb.save.cr9", ""},
        {"{\"id\": \"a\", \"vmcb\": {}}\n{\"id\": \"a\", \"vmcb\": {}}", 2, "id", "duplicate"},
        {"{\"id\": \"a\", \"vmcb\": {}", 1, "", "not a JSON object"},
    };
    for (const auto& c : cases) {
        auto r = parse_vectors(c.text, "bad.jsonl");
        ASSERT_FALSE(r.has_value()) << c.text;
        EXPECT_EQ(r.error().file, "bad.jsonl") << c.text;
        EXPECT_EQ(r.error().line, c.line) << c.text;
        EXPECT_EQ(r.error().field, c.field) << c.text << " -> " << formats::to_string(r.error());
        EXPECT_NE(r.error().message.find(c.message_part), std::string::npos)
            << c.text << " -> " << formats::to_string(r.error());
    }
}

TEST(VectorFormat, ArrayErrorsNameTheElement) {
    auto r = parse_vectors(R"([{"id": "x", "vmcb": {}}, {"id": "y", "vmcb": {}, "host": {"svme": "x"}}])", "a.json");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().field, "[1].host.svme");
}

TEST(VectorFormat, RoundTripsThroughJsonLine) {
    for (auto mode : {BaseMode::long64, BaseMode::prot32, BaseMode::pae32, BaseMode::legacy32}) {
        Vector v = base_vector(mode, Program::out);
        v.id = "rt";
        v.regs[2] = 0x3F8;
        v.iopm = {0x3F8};
        v.vmcb.set_intercept(arch::intercept::IOIO_PROT);  // uncaught, OUT would reach the host's UART
        v.msrpm = {{0xC0010117, false, true}};
        v.host.gif = false;
        v.host.hsave_pa = 0x5000;
        v.checks = {"cr0.cd_nw", "asid.zero"};
        v.note = "n";
        auto back = parse_vectors(to_json_line(v), "rt");
        ASSERT_TRUE(back.has_value()) << formats::to_string(back.error());
        ASSERT_EQ(back->size(), 1U);
        const auto& w = (*back)[0];
        EXPECT_EQ(w.vmcb, v.vmcb);
        EXPECT_EQ(w.program, v.program);
        EXPECT_EQ(w.regs, v.regs);
        EXPECT_EQ(w.iopm, v.iopm);
        EXPECT_EQ(w.msrpm, v.msrpm);
        EXPECT_EQ(w.host, v.host);
        EXPECT_EQ(w.checks, v.checks);
        EXPECT_EQ(w.note, v.note);
    }
}

TEST(VectorFormat, MapPatchesFollowApmLayout) {
    // APM 15.11: MSR C000_0081 is index 0x81 of the second range (offset 800h):
    // byte 800h + 81h/4 = 820h, read bit 2, write bit 3.
    EXPECT_EQ(msrpm_position(0xC0000081), (std::optional<std::pair<std::uint32_t, unsigned>>({0x820, 2})));
    EXPECT_EQ(msrpm_position(0x0), (std::optional<std::pair<std::uint32_t, unsigned>>({0x0, 0})));
    EXPECT_EQ(msrpm_position(0xC0011FFF), (std::optional<std::pair<std::uint32_t, unsigned>>({0x17FF, 6})));
    EXPECT_FALSE(msrpm_position(0x2000).has_value());
    Vector v;
    v.msrpm = {{0xC0000081, true, true}, {0xC0000080, false, true}};
    v.iopm = {0x80, 0x81, 0x3F8};
    auto p = map_patches(v);
    ASSERT_TRUE(p.has_value());
    // One byte for both MSRs (same byte 0x820): C0000080 write = bit 1, C0000081 r/w = bits 2,3.
    EXPECT_EQ(*p, (std::vector<MapPatch>{{NSVM_OR_MAP_MSRPM, 0x820, 0x0E},
                                         {NSVM_OR_MAP_IOPM, 0x10, 0x03},
                                         {NSVM_OR_MAP_IOPM, 0x7F, 0x01}}));
}

TEST(VectorFormat, PagingPatchesRoundTripAndBecomeDwordPatches) {
    const std::string text =
        R"({"id": "p", "vmcb": {}, "iopm": ["0x80"], "paging": [{"pa": "0x302ff8", "value": "0x600007"}, )"
        R"({"pa": "0x600000", "value": "0x800000003fe00003"}, {"pa": "0x3073fc", "value": "0", "size": 4}]})";
    auto r = parse_vectors(text, "p.jsonl");
    ASSERT_TRUE(r.has_value()) << formats::to_string(r.error());
    const auto& v = (*r)[0];
    EXPECT_EQ(v.paging, (std::vector<TablePatch>{{0x302FF8, 0x600007, 8}, {0x600000, 0x800000003FE00003ULL, 8},
                                                 {0x3073FC, 0, 4}}));
    auto back = parse_vectors(to_json_line(v), "rt");
    ASSERT_TRUE(back.has_value()) << formats::to_string(back.error());
    EXPECT_EQ((*back)[0].paging, v.paging);
    // After the map bytes, each entry as dwords at their physical addresses, low dword first.
    auto p = map_patches(v);
    ASSERT_TRUE(p.has_value()) << p.error();
    EXPECT_EQ(*p, (std::vector<MapPatch>{{NSVM_OR_MAP_IOPM, 0x10, 0x01},
                                         {NSVM_OR_MAP_TABLE, 0x302FF8, 0x600007},
                                         {NSVM_OR_MAP_TABLE, 0x302FFC, 0},
                                         {NSVM_OR_MAP_TABLE, 0x600000, 0x3FE00003},
                                         {NSVM_OR_MAP_TABLE, 0x600004, 0x80000000},
                                         {NSVM_OR_MAP_TABLE, 0x3073FC, 0}}));
    // The host's own tables are refused, and a store into the spare pages is an isolation problem.
    EXPECT_TRUE(paging_entry_problem(NSVM_OR_PML4_PA, 8).has_value());
    EXPECT_TRUE(paging_entry_problem(NSVM_OR_PML4_PA + 0x2000 + 8 * 509, 8).has_value());
    EXPECT_FALSE(paging_entry_problem(NSVM_OR_NPT_PML4_PA + 0x2000 + 8 * 3, 8).has_value());
    Vector s = base_vector(BaseMode::long64, Program::store);
    s.regs[3] = NSVM_OR_SPARE_PT_PA + 0x10;
    EXPECT_TRUE(isolation_problem(s).has_value());
}

TEST(VectorFormat, TheSlotCarriesPagingPatchesAndTheirValuesAfterTheExit) {
    Vector v = base_vector(BaseMode::legacy32, Program::load);
    v.id = "s";
    v.iopm = {0x80};
    v.paging = {{0x302FF8, 0x600007, 8}, {0x3073FC, 0, 4}};
    std::vector<std::uint8_t> slot(NSVM_OR_SLOT_SIZE);
    ASSERT_TRUE(encode_slot(v, slot).has_value());
    auto d = std::span(slot).subspan(NSVM_OR_DESC_OFFSET);
    ASSERT_EQ(arch::load_le(d, NSVM_OR_D_NPATCH, 4), 4U);  // one IOPM byte, three dwords
    EXPECT_EQ(arch::load_le(d, NSVM_OR_D_PATCHES + 8, 4), (std::uint64_t{NSVM_OR_MAP_TABLE} << 24) | 0x302FF8);
    EXPECT_EQ(arch::load_le(d, NSVM_OR_D_PATCHES + 12, 4), 0x600007U);
    // What the image leaves: the dwords as the exit left them, at the patches' indices.
    arch::store_le(d, NSVM_OR_R_MAGIC, 4, NSVM_OR_RES_MAGIC);
    arch::store_le(d, NSVM_OR_R_STATUS, 4, NSVM_OR_ST_VMEXIT);
    arch::store_le(d, NSVM_OR_R_PAGING + 4, 4, 0x600027);
    arch::store_le(d, NSVM_OR_R_PAGING + 8, 4, 0x1);
    arch::store_le(d, NSVM_OR_R_PAGING + 12, 4, 0x2);
    const Result r = decode_slot(v, slot);
    EXPECT_EQ(r.paging_after, (std::vector<TablePatch>{{0x302FF8, 0x100600027ULL, 8}, {0x3073FC, 0x2, 4}}));
}

TEST(ResultFormat, RoundTripAndErrors) {
    Result r;
    r.id = "v1";
    r.backend = "qemu";
    r.cpu_model = "max";
    r.status = Status::vmexit;
    r.vmcb.set(FieldId::exit_code, 0xFFFFFFFFULL);
    r.vmcb.set(FieldId::exit_info_1, 5);
    r.vmcb.set(FieldId::exit_int_info, 0x80000306U);
    r.vmcb.set(FieldId::rip, 0x200003);
    r.gif = false;
    r.probe_ok = true;
    r.vmcb_pa = 0x1000000;
    r.regs[1] = 42;
    r.paging_after = {{0x302FF8, 0x600027, 8}, {0x3073FC, 0x601027, 4}};
    for (bool with_vmcb : {true, false}) {
        auto back = parse_results(to_json_line(r, with_vmcb), "r.jsonl");
        ASSERT_TRUE(back.has_value()) << formats::to_string(back.error());
        ASSERT_EQ(back->size(), 1U);
        const auto& b = (*back)[0];
        EXPECT_EQ(b.status, Status::vmexit);
        EXPECT_EQ(b.exit_code(), 0xFFFFFFFFULL);
        EXPECT_EQ(b.exit_info_1(), 5U);
        EXPECT_EQ(b.exit_int_info(), 0x80000306U);
        EXPECT_EQ(b.vmcb_pa, 0x1000000U);
        EXPECT_EQ(b.paging_after, r.paging_after);
        if (with_vmcb) {
            EXPECT_EQ(b.vmcb, r.vmcb);
            EXPECT_EQ(b.regs[1], 42U);
        }
    }
    Result e;
    e.id = "v2";
    e.status = Status::exception;
    e.exception_vector = 13;
    e.gif = true;
    auto eb = parse_results(to_json_line(e), "r");
    ASSERT_TRUE(eb.has_value());
    EXPECT_EQ((*eb)[0].exception_vector, 13);
    EXPECT_TRUE((*eb)[0].gif);

    auto bad = parse_results("{\"id\": \"x\", \"status\": \"vmexti\"}", "r.jsonl");
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().field, "status");
    EXPECT_NE(bad.error().message.find("vmexit"), std::string::npos);
    auto bad2 = parse_results("\n{\"id\": \"x\", \"status\": \"exception\"}", "r.jsonl");
    ASSERT_FALSE(bad2.has_value());
    EXPECT_EQ(bad2.error().line, 2);
    EXPECT_EQ(bad2.error().field, "exception.vector");
}

}  // namespace
}  // namespace nsvm::oracle
