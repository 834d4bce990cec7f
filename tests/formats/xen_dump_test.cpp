// Xen svm_vmcb_dump() reader (xen/arch/x86/hvm/svm/vmcb.c): new and old variants,
// "(XEN)" prefix with and without console timestamps, "%#x" zero as "0".
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "nsvm/arch/exit_codes.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;
using arch::FieldId;

namespace {

ReadResult read_ok(const std::string& text) {
    auto r = read_vmcb(text, Format::xen_dump, "xen.txt");
    EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
    return r ? *r : ReadResult{};
}

void expect_guest(const arch::Vmcb& v) {
    EXPECT_EQ(v.intercept_word(0), 0x1110011U);
    EXPECT_EQ(v.intercept_word(1), 0x800000U);
    EXPECT_EQ(v.intercept_word(2), 0x60082U);
    EXPECT_EQ(v.intercept_word(3), 0xbdcc800fU);
    EXPECT_EQ(v.intercept_word(4), 0x6e7fU);
    EXPECT_EQ(v.get(FieldId::iopm_base_pa), 0x10a3c0000ULL);
    EXPECT_EQ(v.get(FieldId::msrpm_base_pa), 0x10a3b4000ULL);
    EXPECT_EQ(v.get(FieldId::tsc_offset), 0xfffffc0a1b2c3d4eULL);
    EXPECT_EQ(v.get(FieldId::tlb_ctl), 0U);
    EXPECT_EQ(v.get(FieldId::int_ctl), 0x1000000U);  // vintr low half
    EXPECT_EQ(v.get(FieldId::int_vector), 0U);
    EXPECT_EQ(v.get(FieldId::asid), 1U);
    EXPECT_EQ(v.get(FieldId::misc_ctl), 1U);
    EXPECT_EQ(v.get(FieldId::cpl), 0U);
    EXPECT_EQ(v.get(FieldId::efer), 0x1d01U);
    EXPECT_EQ(v.get(FieldId::star), 0x23001000000000ULL);
    EXPECT_EQ(v.get(FieldId::lstar), 0xffffffff82000080ULL);
    EXPECT_EQ(v.get(FieldId::cr0), 0x80050033U);
    EXPECT_EQ(v.get(FieldId::cr2), 0x7f3a1c2b1000ULL);
    EXPECT_EQ(v.get(FieldId::cr3), 0x103a4e000ULL);
    EXPECT_EQ(v.get(FieldId::cr4), 0x3506f0U);
    EXPECT_EQ(v.get(FieldId::rsp), 0xffffc90000013e58ULL);
    EXPECT_EQ(v.get(FieldId::rip), 0xffffffff81e2f1a4ULL);
    EXPECT_EQ(v.get(FieldId::rflags), 0x246U);
    EXPECT_EQ(v.get(FieldId::dr6), 0xffff0ff0U);
    EXPECT_EQ(v.get(FieldId::dr7), 0x400U);
    EXPECT_EQ(v.get(FieldId::cstar), 0xffffffff820001c0ULL);
    EXPECT_EQ(v.get(FieldId::sfmask), 0x257fd5U);
    EXPECT_EQ(v.get(FieldId::g_pat), 0x0007040600070406ULL);
    EXPECT_EQ(v.get(FieldId::nested_cr3), 0x112a07000ULL);
    EXPECT_EQ(v.segment(arch::Seg::cs), (arch::Segment{0x10, 0xa9b, 0xffffffff, 0}));
    EXPECT_EQ(v.segment(arch::Seg::ss), (arch::Segment{0x18, 0xc93, 0xffffffff, 0}));
    EXPECT_EQ(v.segment(arch::Seg::gs), (arch::Segment{0, 0, 0, 0xffff9a2b3fc00000ULL}));
    EXPECT_EQ(v.segment(arch::Seg::tr), (arch::Segment{0x40, 0x8b, 0x4087, 0xfffffe0000003000ULL}));
    EXPECT_EQ(v.segment(arch::Seg::idtr), (arch::Segment{0, 0, 0xfff, 0xfffffe0000000000ULL}));
}

}  // namespace

TEST(XenDump, NewVariantWithTimestamps) {
    const auto r = read_ok(fixture("xen-new.txt"));
    EXPECT_EQ(r.format, Format::xen_dump);
    expect_guest(r.vmcb);
    EXPECT_EQ(r.vmcb.get(FieldId::exit_code), 0x400U);
    EXPECT_EQ(r.vmcb.get(FieldId::exit_info_1), 0x100000006ULL);
    EXPECT_EQ(r.vmcb.get(FieldId::exit_info_2), 0xfee00000U);
    EXPECT_EQ(r.vmcb.get(FieldId::misc_ctl2), 2U);
    EXPECT_EQ(r.vmcb.get(FieldId::clean), 0x1ffU);
    EXPECT_EQ(r.vmcb.get(FieldId::event_inj), 0U);
    EXPECT_EQ(find_warning(r, "does not match"), nullptr) << all_warnings(r);
    const auto* m = find_warning(r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_NE(m->message.find("control.next_rip"), std::string::npos);
    EXPECT_NE(m->message.find("save.sysenter_cs"), std::string::npos);
    EXPECT_EQ(m->message.find("save.cr0,"), std::string::npos);
    EXPECT_EQ(m->message.find("control.int_ctl"), std::string::npos);
}

TEST(XenDump, OldVariantNoTimestamps) {
    const auto r = read_ok(fixture("xen-old.txt"));
    expect_guest(r.vmcb);
    EXPECT_EQ(r.vmcb.get(FieldId::exit_code), 0x7bU);
    EXPECT_EQ(r.vmcb.get(FieldId::exit_info_1), 0x3f80010U);
    EXPECT_EQ(r.vmcb.get(FieldId::event_inj), 0x80000b0eU);
    EXPECT_EQ(r.vmcb.get(FieldId::event_inj_err), 2U);
    EXPECT_EQ(r.vmcb.get(FieldId::misc_ctl2), 0U);
    const auto* m = find_warning(r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_NE(m->message.find("save.ssp"), std::string::npos);
    EXPECT_NE(m->message.find("control.misc_ctl2"), std::string::npos);
}

TEST(XenDump, ExampleWithFailuresAndSixtyFourBitExitCode) {
    const auto r = read_vmcb(load("examples/xen-dump.txt"), Format::auto_detect, "xen-dump.txt");
    ASSERT_TRUE(r.has_value()) << to_string(r.error());
    EXPECT_EQ(r->format, Format::xen_dump);
    EXPECT_EQ(r->vmcb.get(FieldId::exit_code), arch::exit_code::INVALID);
    EXPECT_EQ(r->vmcb.get(FieldId::cr4), 0x3506f0U | (1U << 15));
    EXPECT_EQ(r->vmcb.get(FieldId::dr6), 0x1ffff0ff0ULL);
}

TEST(XenDump, ZeroPrintsAsBareZeroAndEventInjCrossCheck) {
    const std::string t =
        "(XEN) cr_intercepts = 0 dr_intercepts = 0 exception_intercepts = 0\n"
        "(XEN) event_inj 0000000080000b0e, valid? 0, ec? 1, type 3, vector 0xe\n"
        "(XEN) CR0 = 0x0000000000000011 CR2 = 0x0000000000000000\n";
    const auto r = read_ok(t);
    EXPECT_EQ(r.vmcb.intercept_word(0), 0U);
    EXPECT_EQ(r.vmcb.get(FieldId::cr0), 0x11U);
    EXPECT_EQ(r.vmcb.get(FieldId::event_inj), 0x80000b0eU);
    const auto* w = find_warning(r, "'valid? 0' does not match");
    ASSERT_NE(w, nullptr) << all_warnings(r);
    EXPECT_EQ(w->line, 2);
}

TEST(XenDump, SeveralDumpsReadTheFirst) {
    const auto a = fixture("xen-new.txt");
    const auto r = read_ok(a + fixture("xen-old.txt"));
    EXPECT_EQ(r.vmcb, read_ok(a).vmcb);
    const auto* w = find_warning(r, "more than one VMCB dump");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->line, 33);
}

TEST(XenDumpErrors, MissingAndGarbled) {
    auto e = read_vmcb(std::string("(XEN) CR0 = 0x11 CR2 = 0\n"), Format::xen_dump, "x.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_NE(e.error().message.find("cr_intercepts"), std::string::npos);

    auto t = fixture("xen-old.txt");
    t = t.substr(0, t.find("(XEN) CR0"));
    e = read_vmcb(t, Format::xen_dump, "x.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_NE(e.error().message.find("CR0"), std::string::npos);

    t = fixture("xen-old.txt");
    t.replace(t.find("efer = 0x1d01"), 13, "efer = 0x1g01");
    e = read_vmcb(t, Format::xen_dump, "x.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().field, "save.efer");
    EXPECT_EQ(e.error().line, 11);
    EXPECT_EQ(to_string(e.error()), "x.txt:11: save.efer: '0x1g01' is not a hexadecimal number");

    t = fixture("xen-old.txt");
    t.replace(t.find("  CS: "), 6, "  CS: 0010 ");
    e = read_vmcb(t, Format::xen_dump, "x.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().field, "save.cs");

    e = read_vmcb(std::string("(XEN) cr_intercepts = 0x100000000\n(XEN) CR0 = 0x11\n"), Format::xen_dump, "x.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().field, "control.intercepts[0]");
    EXPECT_EQ(e.error().line, 1);
}

// Xen versions that print np_ctrl's flags as words after a colon
// ("np_ctrl = 0x1: NP", "0x5: NP SEV_ES"), as users paste them.
TEST(XenDump, NpCtrlFlagWordsAfterAColon) {
    const auto text = fixture("xen-new.txt");
    const auto want = read_vmcb(text, Format::xen_dump, "a.txt");
    ASSERT_TRUE(want.has_value());
    const std::string from = "np_ctrl = 0x1:[ NP]";
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos);
    for (const char* words : {"np_ctrl = 0x1: NP", "np_ctrl = 0x1: NP SEV"}) {
        std::string t = text;
        t.replace(at, from.size(), words);
        const auto r = read_vmcb(t, Format::auto_detect, "b.txt");
        ASSERT_TRUE(r.has_value()) << words << ": " << to_string(r.error());
        EXPECT_EQ(r->vmcb.get(FieldId::misc_ctl), 1U) << words;
        EXPECT_TRUE(r->vmcb == want->vmcb) << words;
    }
}
