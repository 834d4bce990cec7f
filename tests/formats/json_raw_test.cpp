// JSON (docs/formats.md "VMCB as JSON") and raw readers/writers: the contract example,
// every number form, aliases, host state, the lossless round trip over random
// pages, and every error class naming its member, line or size.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "helpers.hpp"
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;
using arch::FieldId;

namespace {

ReadResult json_ok(const std::string& text) {
    auto r = read_vmcb(text, Format::json, "v.json");
    EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
    return r ? *r : ReadResult{};
}

Diagnostic json_err(const std::string& text) {
    auto r = read_vmcb(text, Format::json, "v.json");
    EXPECT_FALSE(r.has_value()) << text;
    return r ? Diagnostic{} : r.error();
}

arch::Vmcb random_page(std::uint32_t seed, int density) {
    std::mt19937 rng(seed);
    arch::Vmcb v;
    for (auto& b : v.page()) {
        if (static_cast<int>(rng() % 100) < density) b = static_cast<std::uint8_t>(rng());
    }
    return v;
}

}  // namespace

TEST(Json, InterfacesExample) {
    const auto r = json_ok(R"({
      "control": {
        "intercepts": ["VMRUN", "VMMCALL"],
        "asid": 1,
        "iopm_base_pa": "0x10000", "msrpm_base_pa": "0x14000"
      },
      "save": {
        "cs": {"selector": "0x8", "attrib": "0xa9b", "limit": "0xffffffff", "base": 0},
        "ss": {"selector": "0x10", "attrib": "0xc93", "limit": "0xffffffff", "base": 0},
        "efer": "0x1d00", "cr0": "0x80050033", "cr4": "0x6f8", "cr3": "0x1000",
        "dr6": "0xffff0ff0", "dr7": "0x400", "rflags": "0x2", "rip": "0x400000", "g_pat": "0x7040600070406"
      }
    })");
    const auto& v = r.vmcb;
    EXPECT_EQ(r.format, Format::json);
    EXPECT_EQ(v.intercept_word(4), 3U);
    EXPECT_EQ(v.get(FieldId::asid), 1U);
    EXPECT_EQ(v.get(FieldId::iopm_base_pa), 0x10000U);
    EXPECT_EQ(v.get(FieldId::msrpm_base_pa), 0x14000U);
    EXPECT_EQ(v.segment(arch::Seg::cs), (arch::Segment{8, 0xa9b, 0xffffffff, 0}));
    EXPECT_EQ(v.segment(arch::Seg::ss), (arch::Segment{0x10, 0xc93, 0xffffffff, 0}));
    EXPECT_EQ(v.get(FieldId::efer), 0x1d00U);
    EXPECT_EQ(v.get(FieldId::cr0), 0x80050033U);
    EXPECT_EQ(v.get(FieldId::g_pat), 0x7040600070406ULL);
    EXPECT_TRUE(r.warnings.empty());
    EXPECT_FALSE(r.host.has_value());
}

TEST(Json, ExampleFileIsValidAndComplete) {
    const auto text = load("examples/valid-vmcb.json");
    const auto r = read_vmcb(text, Format::auto_detect, "valid-vmcb.json");
    ASSERT_TRUE(r.has_value()) << to_string(r.error());
    EXPECT_EQ(r->format, Format::json);
    EXPECT_EQ(r->vmcb.segment(arch::Seg::ds), (arch::Segment{0x10, 0xc93, 0xffffffff, 0}));
    EXPECT_EQ(r->vmcb.segment(arch::Seg::gdtr), (arch::Segment{0, 0, 0x27, 0x2000}));
    EXPECT_EQ(r->vmcb.segment(arch::Seg::idtr), (arch::Segment{0, 0, 0xfff, 0x3000}));
}

TEST(Json, NumberFormsAliasesBytesAndHost) {
    const auto r = json_ok(R"({
      "control": {"asid": "0b101", "tlb_ctl": "3", "nested_ctl": 1, "virt_ext": "0x2",
                  "intercepts": ["vmrun", "PF", "#GP", "exception_1", "CR0_READ", "dr7_write", "IOIO"],
                  "intercept_words": ["0x10", 0, 0, 0, "0x1", "0x80"],
                  "insn_len": 3, "insn_bytes": "0f 01 d8", "exitcode": "0xffffffffffffffff"},
      "save": {"gpat": "0x0606060606060606", "excp_from": 5},
      "host": {"efer": "0x1d00", "cr0": "0x80050033", "cr4": "0x6f8", "rflags": 2, "cpl": 0,
               "rax": "0x7000", "address_size": 64}
    })");
    const auto& v = r.vmcb;
    EXPECT_EQ(v.get(FieldId::asid), 5U);
    EXPECT_EQ(v.get(FieldId::tlb_ctl), 3U);
    EXPECT_EQ(v.get(FieldId::misc_ctl), 1U);
    EXPECT_EQ(v.get(FieldId::misc_ctl2), 2U);
    EXPECT_TRUE(v.intercept(arch::intercept::VMRUN));
    EXPECT_TRUE(v.intercept(arch::intercept::exception(14)));
    EXPECT_TRUE(v.intercept(arch::intercept::exception(13)));
    EXPECT_TRUE(v.intercept(arch::intercept::exception(1)));
    EXPECT_TRUE(v.intercept(arch::intercept::cr_read(0)));
    EXPECT_TRUE(v.intercept(arch::intercept::dr_write(7)));
    EXPECT_TRUE(v.intercept(arch::intercept::IOIO_PROT));
    EXPECT_EQ(v.intercept_word(0), 0x11U);  // CR0_READ | 0x10 from the words, ORed
    EXPECT_EQ(v.intercept_word(4), 0x1U);
    EXPECT_EQ(v.intercept_word(5), 0x80U);
    EXPECT_EQ(v.bytes(FieldId::insn_bytes)[0], 0x0f);
    EXPECT_EQ(v.bytes(FieldId::insn_bytes)[2], 0xd8);
    EXPECT_EQ(v.bytes(FieldId::insn_bytes)[3], 0x00);
    EXPECT_EQ(v.get(FieldId::exit_code), ~std::uint64_t{0});
    EXPECT_EQ(v.get(FieldId::g_pat), 0x0606060606060606ULL);
    EXPECT_EQ(v.get(FieldId::last_excp_from), 5U);
    ASSERT_TRUE(r.host.has_value());
    EXPECT_EQ(r.host->efer, 0x1d00U);
    EXPECT_EQ(r.host->cr0, 0x80050033U);
    EXPECT_EQ(r.host->rax, 0x7000U);
    EXPECT_EQ(r.host->address_size, 64U);
}

TEST(Json, CommentsAreAllowedEmptyObjectIsAZeroVmcb) {
    EXPECT_EQ(json_ok("{}").vmcb, arch::Vmcb{});
    EXPECT_EQ(json_ok("// a comment\n{\"control\": {\"asid\": 1 /* guest */}}").vmcb.get(FieldId::asid), 1U);
}

TEST(JsonErrors, UnknownMemberNamesPathAndSuggestion) {
    auto e = json_err(R"({"save": {"cr00": "0x11"}})");
    EXPECT_EQ(e.file, "v.json");
    EXPECT_EQ(e.field, "save.cr00");
    EXPECT_NE(e.message.find("did you mean \"save.cr0\""), std::string::npos) << e.message;
    e = json_err(R"({"control": {"nested_cr": "0x1000"}})");
    EXPECT_EQ(e.field, "control.nested_cr");
    EXPECT_NE(e.message.find("did you mean \"control.nested_c"), std::string::npos) << e.message;
    e = json_err(R"({"save": {"cs": {"selctor": 8}}})");
    EXPECT_EQ(e.field, "save.cs.selctor");
    EXPECT_NE(e.message.find("save.cs.selector"), std::string::npos);
    e = json_err(R"({"contrl": {}})");
    EXPECT_EQ(e.field, "contrl");
    EXPECT_NE(e.message.find("\"control\""), std::string::npos);
    e = json_err(R"({"host": {"cr3": 1}})");
    EXPECT_EQ(e.field, "host.cr3");
    e = json_err(R"({"control": {"intercepts": ["VMRUNN"]}})");
    EXPECT_EQ(e.field, "control.intercepts[0]");
    EXPECT_NE(e.message.find("did you mean \"VMRUN\""), std::string::npos) << e.message;
    // Field names only exist in their own area.
    e = json_err(R"({"control": {"cr0": 1}})");
    EXPECT_EQ(e.field, "control.cr0");
}

TEST(JsonErrors, TooWideNegativeFloatBool) {
    auto e = json_err(R"({"control": {"asid": "0x100000000"}})");
    EXPECT_EQ(e.field, "control.asid");
    EXPECT_NE(e.message.find("too wide"), std::string::npos);
    e = json_err(R"({"save": {"cs": {"selector": "0x10000"}}})");
    EXPECT_EQ(e.field, "save.cs.selector");
    e = json_err(R"({"control": {"tlb_ctl": 256}})");
    EXPECT_EQ(e.field, "control.tlb_ctl");
    e = json_err(R"({"control": {"asid": -1}})");
    EXPECT_EQ(e.field, "control.asid");
    EXPECT_NE(e.message.find("negative"), std::string::npos);
    e = json_err(R"({"save": {"rip": 1.5}})");
    EXPECT_EQ(e.field, "save.rip");
    e = json_err(R"({"save": {"rip": 18446744073709551616}})");
    EXPECT_EQ(e.field, "save.rip");
    e = json_err(R"({"save": {"rip": true}})");
    EXPECT_EQ(e.field, "save.rip");
    EXPECT_NE(e.message.find("boolean"), std::string::npos);
    e = json_err(R"({"save": {"rip": "0x1_0000_0000_0000_0000"}})");
    EXPECT_EQ(e.field, "save.rip");
    e = json_err(R"({"control": {"insn_bytes": "0f01d80f01d80f01d80f01d80f01d800"}})");
    EXPECT_EQ(e.field, "control.insn_bytes");
    e = json_err(R"({"control": {"intercept_words": ["0x100000000"]}})");
    EXPECT_EQ(e.field, "control.intercept_words[0]");
    e = json_err(R"({"host": {"cpl": 4}})");
    EXPECT_EQ(e.field, "host.cpl");
}

TEST(JsonErrors, GivenTwice) {
    // An old and a new KVM name for one field: the error names one and the
    // message the other (members are read in sorted order, not document order).
    auto e = json_err(R"({"control": {"nested_ctl": 1, "misc_ctl": 1}})");
    const bool misc_first = e.field == "control.misc_ctl";
    EXPECT_TRUE(misc_first || e.field == "control.nested_ctl") << e.field;
    EXPECT_NE(e.message.find(misc_first ? "control.nested_ctl" : "control.misc_ctl"), std::string::npos) << e.message;
    e = json_err("{\"save\": {\"cr0\": 1,\n \"cr0\": 2}}");
    EXPECT_EQ(e.field, "save.cr0");
}

TEST(JsonErrors, MalformedJsonGivesLineAndColumn) {
    auto e = json_err("{\n  \"control\": {\n    \"asid\": 1,\n  }\n}");
    EXPECT_EQ(e.line, 4);
    EXPECT_NE(e.message.find("malformed JSON at column 3"), std::string::npos) << e.message;
    EXPECT_EQ(to_string(e).rfind("v.json:4: malformed JSON", 0), 0U) << to_string(e);
    e = json_err("{\"save\": {\"rip\": 0x10}}");
    EXPECT_EQ(e.line, 1);
    e = json_err("[1, 2]");
    EXPECT_NE(e.message.find("top level"), std::string::npos);
    e = json_err("{\"save\": \"\xff\xfe\"}");
    EXPECT_EQ(e.line, 1);
    EXPECT_EQ(e.message.find('\xff'), std::string::npos);  // printable, JSON-safe
}

TEST(JsonErrors, ReservedBytesMayNotShadowFields) {
    auto e = json_err(R"({"reserved_bytes": {"0x058": "01"}})");
    EXPECT_EQ(e.field, "reserved_bytes.0x058");
    EXPECT_NE(e.message.find("control.asid"), std::string::npos);
    e = json_err(R"({"reserved_bytes": {"0xffe": "010203"}})");
    EXPECT_NE(e.message.find("past the end"), std::string::npos);
}

TEST(RoundTrip, RawJsonRawIsIdenticalForRandomPages) {
    for (std::uint32_t seed = 1; seed <= 300; ++seed) {
        const auto v = random_page(seed, static_cast<int>(seed % 100) + 1);
        const auto json = write_json(v);
        const auto back = read_vmcb(json, Format::json, "rt.json");
        ASSERT_TRUE(back.has_value()) << "seed " << seed << ": " << to_string(back.error());
        ASSERT_EQ(back->vmcb, v) << "seed " << seed << "\n" << json;
        const auto raw = write_raw(back->vmcb);
        ASSERT_EQ(raw.size(), 4096U);
        ASSERT_TRUE(std::equal(raw.begin(), raw.end(), v.page().begin()));
    }
}

TEST(RoundTrip, WriteJsonShapeAndDumpsSurviveIt) {
    arch::Vmcb v;
    v.set_intercept(arch::intercept::VMRUN);
    v.set_intercept(arch::intercept::IDLE_HLT + 5);  // a bit with no name
    v.set(FieldId::asid, 1);
    v.set_segment(arch::Seg::cs, {8, 0xa9b, 0xffffffff, 0});
    v.page()[0x18] = 0xaa;  // reserved
    const auto s = write_json(v);
    const auto j = nlohmann::json::parse(s);
    EXPECT_EQ(j["control"]["intercepts"], nlohmann::json::array({"VMRUN"}));
    EXPECT_EQ(j["control"]["intercept_words"][5], "0x800");
    EXPECT_EQ(j["control"]["asid"], "0x1");
    EXPECT_EQ(j["save"]["cs"]["attrib"], "0xa9b");
    EXPECT_EQ(j["reserved_bytes"]["0x018"], "aa");
    EXPECT_FALSE(j["save"].contains("cr0"));
    for (const char* f : {"kvm-newest.txt", "kvm-l2.txt", "xen-new.txt", "xen-old.txt"}) {
        const auto in = read_vmcb(fixture(f), Format::auto_detect, f);
        ASSERT_TRUE(in.has_value());
        const auto back = read_vmcb(write_json(in->vmcb), Format::json, "x");
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(back->vmcb, in->vmcb) << f;
    }
}

TEST(Raw, ExactlyOnePage) {
    const auto v = random_page(7, 30);
    const auto raw = write_raw(v);
    const auto r = read_vmcb(std::span(raw), Format::raw, "vmcb.bin");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->vmcb, v);
    EXPECT_EQ(detect_format(std::span(raw)), Format::raw);
    const auto a = read_vmcb(std::span(raw), Format::auto_detect, "vmcb.bin");
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->format, Format::raw);
}

TEST(RawErrors, EmptyTruncatedOversized) {
    const std::vector<std::uint8_t> page(4096, 0);
    struct Case {
        std::size_t size;
        const char* word;
    };
    for (auto c : {Case{0, "empty"}, Case{4095, "truncated"}, Case{4097, "oversized"}, Case{100, "truncated"}}) {
        std::vector<std::uint8_t> d(c.size, 0);
        const auto r = read_vmcb(std::span(d), Format::raw, "vmcb.bin");
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().file, "vmcb.bin");
        EXPECT_NE(r.error().message.find(c.word), std::string::npos) << r.error().message;
        EXPECT_NE(r.error().message.find(std::to_string(c.size) + " bytes"), std::string::npos);
        EXPECT_NE(r.error().message.find("4096"), std::string::npos);
    }
    const auto e = read_vmcb(std::span<const std::uint8_t>(), Format::auto_detect, "empty.bin");
    ASSERT_FALSE(e.has_value());
    EXPECT_NE(e.error().message.find("empty"), std::string::npos);
}

TEST(Formats, NamesAndDiagnosticText) {
    for (auto f : {Format::auto_detect, Format::raw, Format::json, Format::kvm_dump, Format::xen_dump}) {
        EXPECT_EQ(parse_format(format_name(f)), f);
    }
    EXPECT_EQ(parse_format("kvm"), Format::kvm_dump);
    EXPECT_FALSE(parse_format("yaml").has_value());
    EXPECT_EQ(to_string(Diagnostic{"f", 3, "save.cr0", "bad"}), "f:3: save.cr0: bad");
    EXPECT_EQ(to_string(Diagnostic{"f", 0, "", "bad"}), "f: bad");
    EXPECT_EQ(to_string(Diagnostic{"", 0, "control.asid", "bad"}), "control.asid: bad");
    EXPECT_EQ(to_string(Diagnostic{"f", 2, "", "bad"}), "f:2: bad");
}

TEST(Errors, BinaryJunkInEveryFormatIsAClearError) {
    std::string junk(3000, '\0');
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 197) ^ 0x5a);
    for (auto f : {Format::raw, Format::json, Format::kvm_dump, Format::xen_dump, Format::auto_detect}) {
        const auto r = read_vmcb(junk, f, "junk.bin");
        ASSERT_FALSE(r.has_value()) << format_name(f);
        EXPECT_EQ(r.error().file, "junk.bin");
        EXPECT_FALSE(r.error().message.empty());
        // Messages are printable ASCII, safe for terminals and JSON reports.
        for (char c : to_string(r.error())) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << format_name(f);
    }
    const auto j = read_vmcb(junk, Format::json, "junk.bin");
    EXPECT_EQ(j.error().line, 1);
}

TEST(JsonErrors, UnderscoreSeparatedTooWide) {
    const auto e = json_err(R"({"control": {"asid": "0x1_0000_0000"}})");
    EXPECT_EQ(e.field, "control.asid");
    EXPECT_NE(e.message.find("0x100000000"), std::string::npos);
    EXPECT_EQ(json_ok(R"({"control": {"asid": "0xffff_ffff"}})").vmcb.get(FieldId::asid), 0xffffffffU);
}

TEST(JsonErrors, InterceptVectorsOnlyThroughTheirTwoMembers) {
    const auto e = json_err(R"({"control": {"intercepts": ["VMRUN"], "intercepts[4]": "0x2"}})");
    EXPECT_EQ(e.field, "control.intercepts[4]");
    EXPECT_NE(e.message.find("unknown member"), std::string::npos);
}

TEST(Raw, TextOfExactlyOnePageIsReadAsRawWithAWarning) {
    const std::string text(4096, 'a');
    const auto r = read_vmcb(text, Format::auto_detect, "page.txt");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->format, Format::raw);
    EXPECT_EQ(r->vmcb.get(FieldId::asid), 0x61616161U);
    ASSERT_EQ(r->warnings.size(), 1U);
    EXPECT_NE(r->warnings[0].message.find("looks like text"), std::string::npos);
}
