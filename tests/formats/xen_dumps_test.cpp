// Xen pastes as users have them (issue 11, item 2): the oldest svm_dump_vmcb
// labels and keyed segment lines, tabs inside "(XEN)" lines, every domain and
// vCPU of 'xl debug-keys v' as one dump each (named d1v0 ...), and the reason
// lines of Xen's own validator, svm_vmcb_isvalid(), mapped to nsvm check ids.
#include <gtest/gtest.h>

#include <algorithm>

#include <fmt/format.h>

#include "helpers.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/checks/catalogue.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;
using arch::FieldId;

namespace {

std::vector<DumpRead> read_all(const std::string& text, std::optional<std::size_t> only = std::nullopt) {
    auto r = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), Format::auto_detect,
                        "xen.txt", only);
    EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
    return r ? std::move(*r) : std::vector<DumpRead>{};
}

Diagnostic read_all_error(const std::string& text, std::optional<std::size_t> only = std::nullopt) {
    auto r = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), Format::xen_dump,
                        "xen.txt", only);
    EXPECT_FALSE(r.has_value());
    return r ? Diagnostic{} : r.error();
}

/// 1-based number of the first line holding `needle`.
int line_of(const std::string& text, const std::string& needle) {
    const auto at = text.find(needle);
    EXPECT_NE(at, std::string::npos) << needle;
    return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

}  // namespace

// Xen 4.0/4.1: "address", exitintinfo, np_enable / guest_asid, no event_inj,
// no table header, and "CS: sel=0x0010, attr=0x0a9b, limit=..., base=...".
TEST(XenDumpOlder, KeyedSegmentsAndOldestLabels) {
    auto r = read_vmcb(fixture("xen-4.1.txt"), Format::auto_detect, "x.txt");
    ASSERT_TRUE(r.has_value()) << to_string(r.error());
    const auto old = read_vmcb(fixture("xen-old.txt"), Format::xen_dump, "o.txt");
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(r->format, Format::xen_dump);
    EXPECT_EQ(r->vmcb.get(FieldId::exit_code), arch::exit_code::INVALID);
    for (auto s : {arch::Seg::es, arch::Seg::cs, arch::Seg::ss, arch::Seg::ds, arch::Seg::fs, arch::Seg::gs,
                   arch::Seg::gdtr, arch::Seg::ldtr, arch::Seg::idtr, arch::Seg::tr})
        EXPECT_EQ(r->vmcb.segment(s), old->vmcb.segment(s));
    for (auto f : {FieldId::asid, FieldId::misc_ctl, FieldId::efer, FieldId::cr0, FieldId::cr3, FieldId::cr4,
                   FieldId::nested_cr3, FieldId::iopm_base_pa, FieldId::int_ctl, FieldId::exit_info_2, FieldId::g_pat,
                   FieldId::intercepts4})
        EXPECT_EQ(r->vmcb.get(f), old->vmcb.get(f)) << arch::info(f).name;
    // It prints no event_inj: said, not guessed.
    const auto* m = find_warning(*r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(contains(m->message, "control.event_inj")) << m->message;
    EXPECT_FALSE(contains(m->message, "save.cs")) << m->message;
    EXPECT_FALSE(contains(m->message, "control.exit_int_info")) << m->message;
}

TEST(XenDumpOlder, KeyedSegmentErrorsNameLineAndField) {
    auto t = fixture("xen-4.1.txt");
    t.replace(t.find("limit=0xffffffff"), 16, "limit=0xfffffgff");
    auto e = read_error(t, Format::xen_dump, "x.txt");
    EXPECT_EQ(e.field, "save.cs.limit");
    EXPECT_EQ(e.line, line_of(t, "CS: sel="));
    t = fixture("xen-4.1.txt");
    t.replace(t.find(", base=0x0000000000000000\n(XEN) DS"), 25, "\n(XEN) DS");
    e = read_error(t, Format::xen_dump, "x.txt");
    EXPECT_EQ(e.field, "save.cs");
    EXPECT_EQ(e.line, line_of(t, "CS: sel="));
}

// A literal tab anywhere in a "(XEN)" line (the key handler's "\tVCPU 0",
// consoles that keep tabs between fields) reads as a blank.
TEST(XenDumpOlder, TabsInsideXenLines) {
    const auto text = fixture("xen-new.txt");
    std::string tabbed = text;
    for (const char* from : {"] cr_intercepts = 0x1110011 dr", "CR0 = 0x0000000080050033 CR2", "  CS:   0010 0a9b"}) {
        const auto at = tabbed.find(from);
        ASSERT_NE(at, std::string::npos) << from;
        std::string to(from);
        std::replace(to.begin(), to.end(), ' ', '\t');
        tabbed.replace(at, to.size(), to);
    }
    const auto a = read_vmcb(text, Format::xen_dump, "a.txt");
    const auto b = read_vmcb(tabbed, Format::auto_detect, "b.txt");
    ASSERT_TRUE(a && b) << (b ? "" : to_string(b.error()));
    EXPECT_TRUE(a->vmcb == b->vmcb);
}

// ---------------------------------------------------- xl debug-keys v

TEST(XenDebugKeys, EveryDomainAndVcpuIsADumpNamedByBoth) {
    const auto text = fixture("xen-debug-keys-v.txt");
    const auto d = read_all(text);
    ASSERT_EQ(d.size(), 3U);  // d2v1 is "not initialized": no dump
    const std::array<std::pair<std::uint32_t, std::uint32_t>, 3> who = {{{1, 0}, {1, 1}, {2, 0}}};
    for (std::size_t k = 0; k < d.size(); ++k) {
        const auto& o = d[k].origin;
        EXPECT_EQ(o.index, k + 1);
        EXPECT_EQ(o.count, 3U);
        ASSERT_TRUE(o.domain && o.vcpu);
        EXPECT_EQ(*o.domain, who[k].first);
        EXPECT_EQ(*o.vcpu, who[k].second);
        EXPECT_EQ(o.header, fmt::format("d{}v{}, dumped at key_handler", who[k].first, who[k].second));
        EXPECT_EQ(d[k].result.format, Format::xen_dump);
    }
    // The dumps' own lines: the "Dumping ..." line after each "\tVCPU n".
    EXPECT_EQ(d[0].origin.line, 6);
    EXPECT_GT(d[1].origin.line, d[0].origin.line + 30);
    EXPECT_EQ(d[0].result.vmcb.get(FieldId::exit_code), 0x400U);
    EXPECT_EQ(d[1].result.vmcb.get(FieldId::cr0), 0xa0050033U);
    EXPECT_EQ(d[1].result.vmcb.get(FieldId::exit_code), arch::exit_code::INVALID);
    EXPECT_EQ(d[2].result.vmcb.get(FieldId::asid), 2U);
    EXPECT_EQ(d[0].result.vmcb.get(FieldId::asid), 1U);
    for (const auto& x : d) EXPECT_EQ(find_warning(x.result, "more than one"), nullptr) << all_warnings(x.result);
}

TEST(XenDebugKeys, DumpNPicksOneAndReadVmcbReadsTheFirst) {
    const auto text = fixture("xen-debug-keys-v.txt");
    const auto all = read_all(text);
    ASSERT_EQ(all.size(), 3U);
    const auto two = read_all(text, 2);
    ASSERT_EQ(two.size(), 1U);
    EXPECT_EQ(two[0].origin.index, 2U);
    EXPECT_EQ(two[0].origin.count, 3U);
    EXPECT_TRUE(two[0].result.vmcb == all[1].result.vmcb);
    const auto e = read_all_error(text, 4);
    EXPECT_TRUE(contains(e.message, "there is no dump 4: the input holds 3 dumps")) << e.message;

    const auto first = read_vmcb(text, Format::auto_detect, "x.txt");
    ASSERT_TRUE(first.has_value());
    EXPECT_TRUE(first->vmcb == all[0].result.vmcb);
    const auto* w = find_warning(*first, "more than one VMCB dump (2 more");
    ASSERT_NE(w, nullptr) << all_warnings(*first);
    EXPECT_EQ(w->line, all[1].origin.line);  // the second dump begins at its "Dumping ..." line
}

TEST(XenDebugKeys, InterleavedDumpsAreRefusedAtTheSecondStart) {
    auto t = fixture("xen-debug-keys-v.txt");
    // d1v1's dump begins before d1v0's guest state: its lines are mixed in.
    const auto cut = t.find("(XEN) CR0 = ");
    const auto second = t.find("(XEN) Dumping guest's current state", cut);
    const auto second_ctl = t.find("(XEN) cr_intercepts", second);
    const auto block = t.substr(second, second_ctl - second);
    t.insert(cut, block);
    const auto e = read_all_error(t);
    EXPECT_EQ(e.line, line_of(t, "(XEN) CR0 = ") - 2);
    EXPECT_TRUE(contains(e.message, "interleaved")) << e.message;
}

// ------------------------------------------------------ svm_vmcb_isvalid()

struct ReasonCase {
    const char* line;
    std::vector<std::string> checks;
    const char* vcpu;
    const char* from;
    const char* field;
    std::optional<std::uint64_t> value;
};

// Every wording svm_vmcb_isvalid() has printed (and hvm_efer_valid()'s
// reasons behind "EFER: %s"), with each prefix form.
TEST(XenIsvalid, EveryReasonMapsToCatalogueChecks) {
    const std::vector<ReasonCase> cases = {
        {"d1v0[nsvm_vmcb_prepare4vmrun]: EFER: SVME bit not set (0x500)", {"efer.svme"}, "d1v0",
         "nsvm_vmcb_prepare4vmrun", "save.efer", 0x500},
        {"d2v3[nsvm_vmcb_prepare4vmrun]: CR0: CD bit is zero and NW bit set (0xa0050033)", {"cr0.cd_nw"}, "d2v3",
         "nsvm_vmcb_prepare4vmrun", "save.cr0", 0xa0050033},
        {"d1v0[x]: CR0: bits [63:32] are not zero (0x100000011)", {"cr0.upper"}, "d1v0", "x", "save.cr0",
         0x100000011},
        {"d1v0[x]: CR3: MBZ bits are set (0x1007)", {"cr3.mbz"}, "d1v0", "x", "save.cr3", 0x1007},
        {"d1v0[nsvm_vmcb_prepare4vmrun]: CR4: invalid value 0x20020 (valid 0x750fff, rejected 0x20000)",
         {"cr4.mbz"}, "d1v0", "nsvm_vmcb_prepare4vmrun", "save.cr4", 0x20020},
        {"d1v0[x]: CR4: invalid value: 0x20020 (valid: 0x750fff, rejected: 0x20000)", {"cr4.mbz"}, "d1v0", "x",
         "save.cr4", 0x20020},
        {"d1v0[x]: CR4: invalid bits are set (0x20020, valid: 0x750fff)", {"cr4.mbz"}, "d1v0", "x", "save.cr4",
         0x20020},
        {"nsvm_vmcb_prepare4vmrun: CR4: bits [63:19] are not zero (0x800000)", {"cr4.mbz"}, "",
         "nsvm_vmcb_prepare4vmrun", "save.cr4", 0x800000},
        {"nsvm_vmcb_prepare4vmrun: CR4: bits [17:11] are not zero (0x8000)", {"cr4.mbz"}, "",
         "nsvm_vmcb_prepare4vmrun", "save.cr4", 0x8000},
        {"d1v0[x]: DR6: bits [63:32] are not zero (0x1ffff0ff0)", {"dr6.upper"}, "d1v0", "x", "save.dr6",
         0x1ffff0ff0},
        {"d1v0[x]: DR7: bits [63:32] are not zero (0x100000400)", {"dr7.upper"}, "d1v0", "x", "save.dr7",
         0x100000400},
        {"d1v0[x]: EFER: unknown bits are not zero (0x10001d00)", {"efer.mbz"}, "d1v0", "x", "save.efer",
         0x10001d00},
        {"x: EFER: bits [63:15] are not zero (0x10001d00)", {"efer.mbz"}, "", "x", "save.efer", 0x10001d00},
        {"d1v0[x]: EFER: Unknown bits set (10001d00)", {"efer.mbz"}, "d1v0", "x", "save.efer", 0x10001d00},
        {"d1v0[x]: EFER: SCE without feature (1d01)", {"efer.mbz"}, "d1v0", "x", "save.efer", 0x1d01},
        {"d1v0[x]: EFER: NX without feature (1d00)", {"efer.mbz"}, "d1v0", "x", "save.efer", 0x1d00},
        {"d1v0[x]: EFER: FFXSE without feature (5d00)", {"efer.mbz"}, "d1v0", "x", "save.efer", 0x5d00},
        {"d1v0[x]: EFER: TCE without feature (9d00)", {"efer.mbz"}, "d1v0", "x", "save.efer", 0x9d00},
        {"d1v0[x]: EFER: AutoIBRS without feature (201d00)", {"efer.mbz"}, "d1v0", "x", "save.efer", 0x201d00},
        {"d1v0[x]: EFER: LME/LMA without feature (1500)", {"efer.lm_unsupported"}, "d1v0", "x", "save.efer",
         0x1500},
        {"d1v0[x]: EFER: LMA/LME/CR0.PG inconsistency (1400)", {"efer.lma_without_lme"}, "d1v0", "x",
         "save.efer", 0x1400},
        {"d1v0[x]: EFER: SVME without nested virt (1d00)", {}, "d1v0", "x", "save.efer", 0x1d00},
        {"d1v0[x]: EFER_LME and CR0.PG are both set and CR4.PAE is zero", {"long_mode.pae"}, "d1v0", "x", "",
         std::nullopt},
        {"x: EFER_LME and CR0.PG are both set and CR0.PE is zero.", {"long_mode.pe"}, "", "x", "", std::nullopt},
        {"d1v0[x]: EFER_LME, CR0.PG, CR4.PAE, CS.L and CS.D are all non-zero", {"long_mode.cs_l_d"}, "d1v0", "x",
         "", std::nullopt},
        {"d1v0[x]: GENERAL2_INTERCEPT: VMRUN intercept bit is clear (0x6e7e)", {"intercept.vmrun"}, "d1v0", "x",
         "control.intercepts[4]", 0x6e7e},
        {"d1v0[x]: eventinj: MBZ bits are set (0x80001b0e)", {"event_inj.reserved"}, "d1v0", "x", "",
         std::nullopt},
        {"d1v0[x]: eventinj: Invalid Injected Event Type: (0x7)", {"event_inj.type"}, "d1v0", "x", "",
         std::nullopt},
        {"d1v0[x]: eventinj: Invalid Injected Event. Exception type: (0x3), with a vector: (0x2) does not belong "
         "to an exception",
         {"event_inj.vector"}, "d1v0", "x", "", std::nullopt},
        {"nsvm_vmcb_prepare4vmrun: nested paging enabled but host cr3 is 0", {}, "", "nsvm_vmcb_prepare4vmrun", "",
         std::nullopt},
        {"CR0: CD bit is zero and NW bit set (0x60000011)", {"cr0.cd_nw"}, "", "", "save.cr0", 0x60000011},
    };
    for (const auto& c : cases) {
        const auto r = xen_isvalid_line(c.line);
        ASSERT_TRUE(r.has_value()) << c.line;
        EXPECT_EQ(r->checks, c.checks) << c.line;
        EXPECT_EQ(r->vcpu, c.vcpu) << c.line;
        EXPECT_EQ(r->from, c.from) << c.line;
        EXPECT_EQ(r->field, c.field) << c.line;
        EXPECT_EQ(r->value, c.value) << c.line;
        EXPECT_EQ(r->line, 0);
        for (const auto& id : r->checks) EXPECT_NE(checks::find_check(id), nullptr) << id;
        if (r->checks.empty()) {
            EXPECT_FALSE(r->note.empty()) << c.line;  // says why no check decides it
        }
    }
    // Every id the table names is a catalogue check.
    const auto ids = xen_isvalid_checks();
    EXPECT_GE(ids.size(), 14U);
    for (auto id : ids) EXPECT_NE(checks::find_check(id), nullptr) << id;
}

TEST(XenIsvalid, OtherLinesAreNoReasons) {
    for (const char* l : {"arch/x86/hvm/svm/nestedsvm.c:554:d1v0 hvm_set_cr4 failed, rc: 2",
                          "arch/x86/hvm/svm/nestedsvm.c:658:d1v0 virtual vmcb invalid",
                          "CR0 = 0x0000000080050033 CR2 = 0x00007f3a1c2b1000",
                          "cr0: 0000000080050033   cr4: 00000000003506f0",
                          "some words: CR4: invalid value 0x20",  // a prefix that is no function name
                          "d1v0 [x]: EFER: SVME bit not set (0x500)", "dXv0[x]: EFER: SVME bit not set (0x500)",
                          "Invalid Injected Event. Exception type: (0x3)"}) {
        EXPECT_FALSE(xen_isvalid_line(l).has_value()) << l;
    }
}

TEST(XenIsvalid, ReasonsTravelWithTheDumpOfTheirVcpu) {
    const auto text = fixture("xen-isvalid-nested.txt");
    const auto d = read_all(text);
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].origin.domain, 1U);
    EXPECT_EQ(d[0].origin.vcpu, 0U);
    const auto& x = d[0].result.xen_isvalid;
    ASSERT_EQ(x.size(), 2U);
    EXPECT_EQ(x[0].line, 2);
    EXPECT_EQ(x[0].checks, std::vector<std::string>{"efer.svme"});
    EXPECT_EQ(x[1].line, 3);
    EXPECT_EQ(x[1].reason, "CR4: invalid value 0x20020 (valid 0x750fff, rejected 0x20000)");
    EXPECT_EQ(d[0].result.vmcb.get(FieldId::cr4), 0x20020U);
    EXPECT_EQ(d[0].result.vmcb.get(FieldId::efer), 0x500U);

    // About a vCPU the paste has no dump of: a warning, compared with nothing.
    auto t = fixture("xen-debug-keys-v.txt");
    t += "(XEN) d3v0[nsvm_vmcb_prepare4vmrun]: EFER: SVME bit not set (0x500)\n";
    t += "(XEN) d1v1[nsvm_vmcb_prepare4vmrun]: CR0: CD bit is zero and NW bit set (0xa0050033)\n";
    const auto all = read_all(t);
    ASSERT_EQ(all.size(), 3U);
    EXPECT_TRUE(all[0].result.xen_isvalid.empty());
    ASSERT_EQ(all[1].result.xen_isvalid.size(), 1U);
    EXPECT_EQ(all[1].result.xen_isvalid[0].checks, std::vector<std::string>{"cr0.cd_nw"});
    EXPECT_TRUE(all[2].result.xen_isvalid.empty());
    const auto* w = find_warning(all[0].result, "is about d3v0, of which the input holds no dump");
    ASSERT_NE(w, nullptr) << all_warnings(all[0].result);
    EXPECT_EQ(w->line, line_of(t, "d3v0["));
}

TEST(XenIsvalid, ReasonsWithoutADumpAreAnErrorSayingWhatXenFound) {
    const std::string t =
        "(XEN) arch/x86/hvm/svm/nestedsvm.c:554:d1v0 hvm_set_cr4 failed, rc: 2\n"
        "(XEN) d1v0[nsvm_vmcb_prepare4vmrun]: CR4: invalid value 0x20020 (valid\n"
        "0x750fff, rejected 0x20000)\n"
        "(XEN) arch/x86/hvm/svm/nestedsvm.c:658:d1v0 virtual vmcb invalid\n";
    const auto e = read_error(t, Format::auto_detect, "x.txt");
    EXPECT_EQ(e.line, 2);
    EXPECT_TRUE(contains(e.message, "no svm_vmcb_dump()")) << e.message;
    EXPECT_TRUE(contains(e.message, "nsvm cr4.mbz")) << e.message;
}

// A log of endless validator lines keeps the first 1024 (each keeps its
// text) and says how many it ignored; without a dump the error lists ten.
TEST(XenIsvalid, ValidatorLinesAreBounded) {
    std::string lines;
    for (int i = 0; i < 1030; ++i) lines += "(XEN) d1v0[nsvm_vmcb_prepare4vmrun]: EFER: SVME bit not set (0x500)\n";
    const auto d = read_all(lines + fixture("xen-isvalid-nested.txt"));
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].result.xen_isvalid.size(), 1024U);
    const auto* w = find_warning(d[0].result, "8 more svm_vmcb_isvalid() lines ignored: only the first 1024");
    EXPECT_NE(w, nullptr) << all_warnings(d[0].result);
    const auto e = read_error(lines, Format::xen_dump, "x.txt");
    EXPECT_EQ(e.line, 1);
    EXPECT_TRUE(contains(e.message, "; and 1020 more.")) << e.message.substr(0, 300);
    EXPECT_LT(e.message.size(), 2000U);
}
