// `nsvm decode` and `nsvm exit-code` decoders: exact decoded words for
// known values (APM layouts cited in src/formats/decode.cpp, exit_info.cpp).
#include <gtest/gtest.h>

#include <algorithm>

#include "helpers.hpp"
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/formats/decode.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using arch::FieldId;

namespace {

const DecodedField* entry(const std::vector<DecodedField>& v, const std::string& name) {
    for (const auto& d : v) {
        if (d.name == name) return &d;
    }
    return nullptr;
}

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::string part(const DecodedField& d, const std::string& k) {
    for (const auto& [key, val] : d.parts) {
        if (key == k) return val;
    }
    return "<none>";
}

std::string part(const std::vector<std::pair<std::string, std::string>>& parts, const std::string& k) {
    for (const auto& [key, val] : parts) {
        if (key == k) return val;
    }
    return "<none>";
}

}  // namespace

TEST(Decode, FieldsFlagsAndParts) {
    arch::Vmcb v;
    v.set_intercept(arch::intercept::VMRUN);
    v.set_intercept(arch::intercept::VMMCALL);
    v.set_intercept(arch::intercept::exception(14));
    v.set(FieldId::intercepts5, 0x80000001);  // INVLPGB + a reserved bit
    v.set(FieldId::efer, arch::efer::SVME | arch::efer::LME | arch::efer::LMA | arch::bit(40));
    v.set(FieldId::cr0, 0x80050033);
    v.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING | 0x5 | (3U << 16));
    v.set(FieldId::event_inj, 0x80000b0e);
    v.set(FieldId::event_inj_err, 0x2);
    v.set(FieldId::exit_int_info, 0x80000720);
    v.set(FieldId::exit_code, arch::exit_code::INVALID);
    v.set(FieldId::tlb_ctl, 3);
    v.set(FieldId::clean, 0x11);
    v.set(FieldId::misc_ctl, 1);
    v.set(FieldId::g_pat, 0x0007040600070406ULL);
    v.set_segment(arch::Seg::cs, {0x8, 0xa9b, 0xffffffff, 0});
    v.set_segment(arch::Seg::tr, {0x40, 0x8b, 0x67, 0x5000});
    v.page()[0x20] = 0x5a;
    const auto f = decode_fields(v);

    const auto* w4 = entry(f, "control.intercepts[4]");
    ASSERT_NE(w4, nullptr);
    EXPECT_EQ(w4->offset, 0x10);
    EXPECT_EQ(w4->value, "0x3");
    EXPECT_EQ(w4->flags, (std::vector<std::string>{"VMRUN", "VMMCALL"}));
    const auto* w5 = entry(f, "control.intercepts[5]");
    ASSERT_NE(w5, nullptr);
    EXPECT_TRUE(has(w5->flags, "INVLPGB"));
    ASSERT_EQ(w5->notes.size(), 1U);
    EXPECT_NE(w5->notes[0].find("0x80000000"), std::string::npos);
    EXPECT_TRUE(has(entry(f, "control.intercepts[2]")->flags, "EXCEPTION_14"));

    const auto* efer = entry(f, "save.efer");
    ASSERT_NE(efer, nullptr);
    EXPECT_EQ(efer->offset, 0x4d0);
    EXPECT_EQ(efer->flags, (std::vector<std::string>{"LME", "LMA", "SVME"}));
    EXPECT_NE(efer->notes.at(0).find("0x10000000000"), std::string::npos);
    EXPECT_EQ(entry(f, "save.cr0")->flags, (std::vector<std::string>{"PE", "MP", "ET", "NE", "WP", "AM", "PG"}));

    const auto* ic = entry(f, "control.int_ctl");
    EXPECT_EQ(part(*ic, "V_TPR"), "5");
    EXPECT_EQ(part(*ic, "V_INTR_PRIO"), "3");
    EXPECT_TRUE(has(ic->flags, "V_INTR_MASKING"));

    const auto* ev = entry(f, "control.event_inj");
    EXPECT_TRUE(has(ev->flags, "V"));
    EXPECT_TRUE(has(ev->flags, "EV"));
    EXPECT_EQ(part(*ev, "type"), "3 (EXCEPTION)");
    EXPECT_EQ(part(*ev, "vector"), "14 (#PF)");
    EXPECT_EQ(part(*ev, "error_code"), "0x2");
    EXPECT_EQ(part(*entry(f, "control.exit_int_info"), "type"), "7 (RESERVED)");

    const auto* ec = entry(f, "control.exit_code");
    EXPECT_EQ(part(*ec, "name"), arch::exit_code::describe(arch::exit_code::INVALID).name);
    EXPECT_EQ(part(*entry(f, "control.tlb_ctl"), "TLB_CONTROL"), "FLUSH_GUEST_ASID");
    EXPECT_EQ(entry(f, "control.clean")->flags, (std::vector<std::string>{"I", "NP"}));
    EXPECT_EQ(entry(f, "control.misc_ctl")->flags, (std::vector<std::string>{"NP_ENABLE"}));
    EXPECT_EQ(part(*entry(f, "save.g_pat"), "PA0"), "WB");
    EXPECT_EQ(part(*entry(f, "save.g_pat"), "PA3"), "UC");

    const auto* cs = entry(f, "save.cs");
    ASSERT_NE(cs, nullptr);
    EXPECT_EQ(cs->offset, 0x410);
    EXPECT_EQ(part(*cs, "type"), "0xb (code, readable, accessed)");
    EXPECT_EQ(part(*cs, "dpl"), "0");
    EXPECT_EQ(cs->flags, (std::vector<std::string>{"S", "P", "L", "G"}));
    EXPECT_EQ(part(*entry(f, "save.tr"), "type"), "0xb (TSS (busy))");

    const auto* res = entry(f, "reserved");
    ASSERT_NE(res, nullptr);
    EXPECT_EQ(res->offset, 0x20);
    EXPECT_EQ(res->value, "5a");
    // Zero fields are left out.
    EXPECT_EQ(entry(f, "save.cr4"), nullptr);

    const auto text = decode_text(v, false);
    EXPECT_NE(text.find("control.event_inj"), std::string::npos);
    EXPECT_NE(text.find("vector=14 (#PF)"), std::string::npos);
    EXPECT_EQ(text.find("\x1b["), std::string::npos);
    EXPECT_NE(decode_text(v, true).find("\x1b["), std::string::npos);
    const auto j = decode_json(v);
    bool found = false;
    for (const auto& e : j["fields"]) {
        if (e["name"] == "save.efer") {
            found = true;
            EXPECT_EQ(e["offset"], "0x4d0");
            EXPECT_EQ(e["flags"], nlohmann::json({"LME", "LMA", "SVME"}));
        }
    }
    EXPECT_TRUE(found);
}

TEST(ExitInfo, Ioio) {
    // OUT DX, AL to 0x3f8: port 0x3f8, SZ8, A64 (APM 15.10.2).
    const auto d = decode_exit_info_parts(arch::exit_code::IOIO, 0x03f80210, 0xffffffff81000010ULL);
    EXPECT_EQ(part(d.info1, "port"), "0x3f8");
    EXPECT_EQ(part(d.info1, "direction"), "OUT");
    EXPECT_EQ(part(d.info1, "size"), "8-bit");
    EXPECT_EQ(part(d.info1, "address_size"), "64-bit");
    EXPECT_EQ(part(d.info1, "rep"), "no");
    EXPECT_EQ(part(d.info2, "next_rip"), "0xffffffff81000010");
    // REP INSW from port 0x60, 32-bit addresses, ES.
    const auto s = decode_exit_info_parts(arch::exit_code::IOIO, 0x0060012d, 0);
    EXPECT_EQ(part(s.info1, "direction"), "IN");
    EXPECT_EQ(part(s.info1, "string"), "yes (INS/OUTS)");
    EXPECT_EQ(part(s.info1, "rep"), "yes");
    EXPECT_EQ(part(s.info1, "size"), "16-bit");
    EXPECT_EQ(part(s.info1, "address_size"), "32-bit");
    EXPECT_EQ(part(s.info1, "segment").substr(0, 2), "ES");
}

TEST(ExitInfo, MsrNpfPfCrDrSmiInvalid) {
    EXPECT_EQ(part(decode_exit_info_parts(arch::exit_code::MSR, 0, 0).info1, "access").substr(0, 5), "RDMSR");
    EXPECT_EQ(part(decode_exit_info_parts(arch::exit_code::MSR, 1, 0).info1, "access").substr(0, 5), "WRMSR");
    EXPECT_NE(part(decode_exit_info_parts(arch::exit_code::MSR, 2, 0).info1, "access").find("invalid"),
              std::string::npos);

    const auto npf = decode_exit_info_parts(arch::exit_code::NPF, 0x100000007ULL, 0xfee00000);
    EXPECT_EQ(part(npf.info1, "error_code"), "P(protection) write user");
    EXPECT_NE(part(npf.info1, "stage").find("final guest-physical"), std::string::npos);
    EXPECT_EQ(part(npf.info2, "gpa"), "0xfee00000");
    const auto walk = decode_exit_info_parts(arch::exit_code::NPF, 0x200000014ULL, 0x1000);
    EXPECT_EQ(part(walk.info1, "error_code"), "not-present read user ID(instruction fetch)");
    EXPECT_NE(part(walk.info1, "stage").find("page-table walk"), std::string::npos);

    const auto pf = decode_exit_info_parts(arch::exit_code::EXCP_BASE + 14, 0x6, 0x7f0000001000ULL);
    EXPECT_EQ(part(pf.info1, "error_code"), "0x6 (not-present write user)");
    EXPECT_EQ(part(pf.info2, "cr2").substr(0, 14), "0x7f0000001000");

    const auto crw = decode_exit_info_parts(arch::exit_code::CR0_WRITE + 3, (1ULL << 63) | 5, 0);
    EXPECT_EQ(part(crw.info1, "instruction"), "MOV CR3, reg");
    EXPECT_EQ(part(crw.info1, "gpr"), "rbp");
    const auto lmsw = decode_exit_info_parts(arch::exit_code::CR0_WRITE, 0, 0);
    EXPECT_NE(part(lmsw.info1, "instruction").find("LMSW"), std::string::npos);
    EXPECT_EQ(part(decode_exit_info_parts(arch::exit_code::DR0_READ + 7, 9, 0).info1, "gpr"), "r9");

    EXPECT_EQ(part(decode_exit_info_parts(arch::exit_code::SMI, 1, 0).info1, "source"), "I/O-trap SMI");

    const auto inv = decode_exit_info_parts(arch::exit_code::INVALID, 0, 0);
    ASSERT_FALSE(inv.notes.empty());
    EXPECT_NE(inv.notes[0].find("nsvm check"), std::string::npos);
    const auto inv32 = decode_exit_info_parts(0xffffffff, 0, 0);
    EXPECT_EQ(inv32.notes.size(), 2U);

    const auto text = decode_exit_info(arch::exit_code::IOIO, 0x03f80210, 0x10);
    EXPECT_NE(text.find("EXITINFO1 = 0x3f80210"), std::string::npos);
    EXPECT_NE(text.find("port"), std::string::npos);
    const auto j = decode_exit_info_json(arch::exit_code::NPF, 0x100000007ULL, 0xfee00000);
    EXPECT_EQ(j["exit_code"], "0x400");
    EXPECT_EQ(j["info2"][0]["name"], "gpa");
    EXPECT_EQ(j["info2"][0]["value"], "0xfee00000");
}

TEST(Decode, KvmInvalidExampleDecodes) {
    const auto r = read_vmcb(test::load("examples/kvm-dump-invalid.txt"), Format::auto_detect, "kvm-dump-invalid.txt");
    ASSERT_TRUE(r.has_value()) << to_string(r.error());
    const auto& v = r->vmcb;
    // The failures the demo relies on are really in the page.
    EXPECT_EQ(v.get(FieldId::efer) & arch::efer::SVME, 0U);
    EXPECT_EQ(v.get(FieldId::cr0) & (arch::cr0::CD | arch::cr0::NW), arch::cr0::NW);
    EXPECT_EQ(v.get(FieldId::asid), 0U);
    EXPECT_FALSE(v.intercept(arch::intercept::VMRUN));
    EXPECT_EQ(arch::event::type_of(static_cast<std::uint32_t>(v.get(FieldId::event_inj))), 7U);
    EXPECT_EQ(v.get(FieldId::exit_code), arch::exit_code::INVALID);
    const auto f = decode_fields(v);
    EXPECT_EQ(part(*entry(f, "control.event_inj"), "type"), "7 (RESERVED)");
}
