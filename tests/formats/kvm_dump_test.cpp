// KVM dump_vmcb() reader: every header variant, with and without timestamps
// and prefixes, interleaved lines, the newest GPR/SEV lines, an L2-time dump,
// and every error class. Fixtures: tests/formats/fixtures/kvm-*.txt, written
// from dump_vmcb's printf formats (arch/x86/kvm/svm/svm.c) by make_fixtures.py.
#include <gtest/gtest.h>

#include <algorithm>

#include <fmt/format.h>

#include "helpers.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;
using arch::FieldId;

namespace {

ReadResult read_ok(const std::string& text, Format f = Format::kvm_dump, const char* name = "dump.txt") {
    auto r = read_vmcb(text, f, name);
    EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
    return r ? *r : ReadResult{};
}

Diagnostic read_err(const std::string& text, Format f = Format::kvm_dump) {
    auto r = read_vmcb(text, f, "bad.txt");
    EXPECT_FALSE(r.has_value());
    return r ? Diagnostic{} : r.error();
}

/// The values every KVM fixture shares (make_fixtures.py GUEST).
void expect_common_guest(const arch::Vmcb& v) {
    EXPECT_EQ(v.intercept_word(0), 0x01110011U);  // cr_write 0111 << 16 | cr_read 0011
    EXPECT_EQ(v.intercept_word(1), 0x00800000U);  // dr_write 0080
    EXPECT_EQ(v.intercept_word(2), 0x00060082U);
    EXPECT_EQ(v.intercept_word(3), 0xbdcc800fU);
    EXPECT_TRUE(v.intercept(arch::intercept::SHUTDOWN));
    EXPECT_EQ(v.get(FieldId::pause_filter_count), 3000U);
    EXPECT_EQ(v.get(FieldId::pause_filter_thresh), 128U);
    EXPECT_EQ(v.get(FieldId::iopm_base_pa), 0x000000010a3c0000ULL);
    EXPECT_EQ(v.get(FieldId::msrpm_base_pa), 0x000000010a3b4000ULL);
    EXPECT_EQ(v.get(FieldId::tsc_offset), 0xfffffc0a1b2c3d4eULL);
    EXPECT_EQ(v.get(FieldId::int_ctl), 0x01000000U);
    EXPECT_EQ(v.get(FieldId::misc_ctl), 1U);
    EXPECT_EQ(v.get(FieldId::nested_cr3), 0x0000000112a07000ULL);
    EXPECT_EQ(v.get(FieldId::misc_ctl2), 2U);
    EXPECT_EQ(v.segment(arch::Seg::ss), (arch::Segment{0x18, 0xc93, 0xffffffff, 0}));
    EXPECT_EQ(v.segment(arch::Seg::fs), (arch::Segment{0, 0, 0, 0x00007f3a1c5e8740ULL}));
    EXPECT_EQ(v.segment(arch::Seg::gdtr), (arch::Segment{0, 0, 0x7f, 0xfffffe0000001000ULL}));
    EXPECT_EQ(v.segment(arch::Seg::ldtr), (arch::Segment{0, 0x82, 0xffff, 0}));
    EXPECT_EQ(v.segment(arch::Seg::tr), (arch::Segment{0x40, 0x8b, 0x4087, 0xfffffe0000003000ULL}));
    EXPECT_EQ(v.get(FieldId::cr2), 0x00007f3a1c2b1000ULL);
    EXPECT_EQ(v.get(FieldId::cr4), 0x3506f0U);
    EXPECT_EQ(v.get(FieldId::dr6), 0xffff0ff0U);
    EXPECT_EQ(v.get(FieldId::dr7), 0x400U);
    EXPECT_EQ(v.get(FieldId::star), 0x0023001000000000ULL);
    EXPECT_EQ(v.get(FieldId::lstar), 0xffffffff82000080ULL);
    EXPECT_EQ(v.get(FieldId::cstar), 0xffffffff820001c0ULL);
    EXPECT_EQ(v.get(FieldId::sfmask), 0x257fd5U);
    EXPECT_EQ(v.get(FieldId::sysenter_cs), 0x10U);
    EXPECT_EQ(v.get(FieldId::sysenter_esp), 0xfffffe0000003000ULL);
    EXPECT_EQ(v.get(FieldId::sysenter_eip), 0xffffffff820015d0ULL);
    EXPECT_EQ(v.get(FieldId::g_pat), 0x0007040600070406ULL);
}

}  // namespace

TEST(KvmDump, NewestKernelWithTimestampsGprsAndSevLines) {
    const auto r = read_ok(fixture("kvm-newest.txt"));
    EXPECT_EQ(r.format, Format::kvm_dump);
    const auto& v = r.vmcb;
    expect_common_guest(v);
    EXPECT_EQ(v.intercept_word(4), 0x00006e7fU);
    EXPECT_EQ(v.get(FieldId::asid), 1U);
    EXPECT_EQ(v.segment(arch::Seg::cs), (arch::Segment{0x10, 0xa9b, 0xffffffff, 0}));
    EXPECT_EQ(v.get(FieldId::efer), 0x1d01U);
    EXPECT_EQ(v.get(FieldId::cr0), 0x80050033U);
    EXPECT_EQ(v.get(FieldId::cr3), 0x0000000103a4e000ULL);
    EXPECT_EQ(v.get(FieldId::rip), 0xffffffff81e2f1a4ULL);
    EXPECT_EQ(v.get(FieldId::rflags), 0x246U);
    EXPECT_EQ(v.get(FieldId::rsp), 0xffffc90000013e58ULL);
    // rax: the VMCB's (0), not the GPR block's 0x1234 (gotcha 6), with a warning.
    EXPECT_EQ(v.get(FieldId::rax), 0U);
    EXPECT_NE(find_warning(r, "GPR block's rax (0x1234"), nullptr) << all_warnings(r);
    EXPECT_NE(find_warning(r, "not VMCB fields"), nullptr);
    EXPECT_NE(find_warning(r, "rbx"), nullptr);
    // Gotcha 2: ffffffff is VMEXIT_INVALID, stored 64-bit.
    EXPECT_EQ(v.get(FieldId::exit_code), arch::exit_code::INVALID);
    const auto* w = find_warning(r, "exit_code is truncated to 32 bits by dump_vmcb; ffffffff means VMEXIT_INVALID");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->line, 19);
    EXPECT_EQ(w->field, "control.exit_code");
    // Gotcha 1, the vmcb01 fields: nothing here suggests L2 ran (a 64-bit
    // kernel at an upper-half RIP, as L1's LSTAR), so nothing is said.
    EXPECT_EQ(find_warning(r, "mixes L1 and L2 state"), nullptr) << all_warnings(r);
    // Fields dump_vmcb never prints: one warning naming them.
    int missing = 0;
    for (const auto& x : r.warnings) missing += x.message.find("read as zero") != std::string::npos;
    EXPECT_EQ(missing, 1);
    const auto* m = find_warning(r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_NE(m->message.find("control.clean"), std::string::npos);
    EXPECT_NE(m->message.find("control.insn_bytes"), std::string::npos);
    EXPECT_NE(m->message.find("save.spec_ctrl"), std::string::npos);
    EXPECT_EQ(m->message.find("save.cr0,"), std::string::npos);
    EXPECT_EQ(m->message.find("control.allowed_sev_features"), std::string::npos);
}

TEST(KvmDump, Header2024WithoutTimestamps) {
    const auto r = read_ok(fixture("kvm-2024.txt"));
    const auto& v = r.vmcb;
    expect_common_guest(v);
    EXPECT_EQ(v.get(FieldId::asid), 14U);
    EXPECT_EQ(v.get(FieldId::tlb_ctl), 3U);
    EXPECT_EQ(v.get(FieldId::exit_code), 0x400U);  // NPF: not a truncation case
    EXPECT_EQ(find_warning(r, "truncated"), nullptr);
    EXPECT_EQ(v.get(FieldId::exit_info_1), 0x100000006ULL);
    EXPECT_EQ(v.get(FieldId::exit_info_2), 0xfee00000U);
    EXPECT_EQ(v.get(FieldId::next_rip), 0xffffffff81e2f1aaULL);
    EXPECT_EQ(v.get(FieldId::efer), 0x1d01U);
    // This kernel prints neither s_cet/ssp/isst_addr nor the SEV features.
    const auto* m = find_warning(r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_NE(m->message.find("save.s_cet"), std::string::npos);
    EXPECT_NE(m->message.find("control.allowed_sev_features"), std::string::npos);
}

TEST(KvmDump, OldHeaderNoPrefixInterleavedLines) {
    const auto r = read_ok(fixture("kvm-old-interleaved.txt"));
    const auto& v = r.vmcb;
    expect_common_guest(v);
    EXPECT_EQ(v.get(FieldId::cpl), 0U);
    EXPECT_EQ(v.get(FieldId::efer), 0x1d01U);
    EXPECT_EQ(v.get(FieldId::exit_code), arch::exit_code::INVALID);
    // Unrelated lines neither fail nor warn.
    EXPECT_EQ(find_warning(r, "usb 1-1"), nullptr);
    EXPECT_EQ(find_warning(r, "'perf:'"), nullptr);
    EXPECT_EQ(find_warning(r, "zapping"), nullptr);
    const auto* m = find_warning(r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_NE(m->message.find("control.vmsa_pa"), std::string::npos);
    EXPECT_NE(m->message.find("save.vmpl"), std::string::npos);
}

TEST(KvmDump, DumpTakenWhileL2RanWithSyslogPrefix) {
    const auto r = read_ok(fixture("kvm-l2.txt"));
    const auto& v = r.vmcb;
    EXPECT_EQ(v.get(FieldId::asid), 2U);
    EXPECT_EQ(v.get(FieldId::cr3), 0x4a31000U);
    EXPECT_EQ(v.get(FieldId::rip), 0x401000U);
    EXPECT_EQ(v.get(FieldId::efer), 0x1500U);
    EXPECT_EQ(v.segment(arch::Seg::cs), (arch::Segment{0x8, 0xa9b, 0xffffffff, 0}));
    // L1's kernel GS base and LSTAR are in there: the reader must say so.
    EXPECT_EQ(v.segment(arch::Seg::gs).base, 0xffff9a2b3fc00000ULL);
    // CPL-0 code at RIP 0x401000 while L1's LSTAR is an upper-half kernel's.
    const auto* w = find_warning(r, "mixes L1 and L2 state");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->id, "input.vmcb01_fields");
    EXPECT_NE(w->message.find("CPL-0 code at RIP 0x401000"), std::string::npos) << w->message;
    for (const char* f : {"fs", "gs", "ldtr", "tr", "star", "lstar", "cstar", "sfmask", "kernel_gs_base",
                          "sysenter_cs", "sysenter_esp", "sysenter_eip"}) {
        EXPECT_NE(w->message.find(f), std::string::npos) << f;
        EXPECT_NE(std::find(w->fields.begin(), w->fields.end(), std::string("save.") + f), w->fields.end()) << f;
    }
}

TEST(KvmDump, Vmcb01MixWhenTheCurrentStateIsOutsideLongModeUnderA64BitL1) {
    std::string text = fixture("kvm-newest.txt");
    const auto at = text.find("0000000000001d01");  // EFER: LMA set
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 16, "0000000000001101");  // LMA clear, L1's LSTAR still a 64-bit kernel's
    const auto r = read_ok(text);
    const auto* w = find_warning(r, "mixes L1 and L2 state");
    ASSERT_NE(w, nullptr) << all_warnings(r);
    EXPECT_NE(w->message.find("not in long mode"), std::string::npos) << w->message;
    // Real mode too (CR0.PE = 0) is no sign: KVM's SMM entry looks so under any L1.
    const auto cr0 = text.find("0000000080050033");
    ASSERT_NE(cr0, std::string::npos);
    text.replace(cr0, 16, "0000000000000010");
    EXPECT_EQ(find_warning(read_ok(text), "mixes L1 and L2 state"), nullptr);
}

TEST(KvmDump, MissingFieldsWarningCarriesItsIdAndEveryField) {
    const auto r = read_ok(fixture("kvm-2024.txt"));
    const auto* m = find_warning(r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->id, "input.missing_fields");
    EXPECT_EQ(m->fields.size(), 45U);
    for (const auto& f : m->fields) EXPECT_NE(m->message.find(f), std::string::npos) << f;
}

TEST(KvmDump, PairsOnOneLineAndOverflowingLabels) {
    const std::string text =
        "VMCB Control Area:\n"
        "cr_read:            0011            cr_write:           0111\n"
        "intercepts:         00000000 00000001 0000007f\n"
        "pause filter count: 3000            pause filter threshold:128\n"
        "asid:               -2147483647     tlb_ctl:            7\n"
        "int_ctl:            01000000        int_vector:         00000020    int_state: 00000001\n"
        "nested_ctl:         -1\n"
        "allowed_sev_features:8000000000000003        guest_sev_features: 0000000000000001\n"
        "VMCB State Save Area:\n"
        "cs:   s: 0008 a: 0a9b l: ffffffff b: 0000000000000000\n"
        "cpl:            3                efer:         0000000000001d00\n";
    const auto r = read_ok(text);
    const auto& v = r.vmcb;
    EXPECT_EQ(v.intercept_word(0), 0x01110011U);
    EXPECT_EQ(v.intercept_word(4), 1U);
    EXPECT_EQ(v.intercept_word(5), 0x7fU);  // a third word when printed
    EXPECT_EQ(v.get(FieldId::pause_filter_count), 3000U);
    EXPECT_EQ(v.get(FieldId::pause_filter_thresh), 128U);
    EXPECT_EQ(v.get(FieldId::asid), 0x80000001U);  // %d of a u32 above 2^31
    EXPECT_EQ(v.get(FieldId::tlb_ctl), 7U);
    EXPECT_EQ(v.get(FieldId::int_vector), 0x20U);
    EXPECT_EQ(v.get(FieldId::int_state), 1U);
    EXPECT_EQ(v.get(FieldId::misc_ctl), ~std::uint64_t{0});  // %lld of all ones
    EXPECT_EQ(v.get(FieldId::allowed_sev_features), 0x8000000000000003ULL);
    EXPECT_EQ(v.get(FieldId::guest_sev_features), 1U);
    EXPECT_EQ(v.get(FieldId::cpl), 3U);
    EXPECT_EQ(v.get(FieldId::efer), 0x1d00U);
}

TEST(KvmDump, SeveralDumpsReadTheFirstAndWarn) {
    const auto one = fixture("kvm-2024.txt");
    const auto r = read_ok(one + fixture("kvm-newest.txt"));
    EXPECT_EQ(r.vmcb, read_ok(one).vmcb);
    const auto* w = find_warning(r, "more than one dump");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->line, 60);  // the second header
}

TEST(KvmDump, ReadDumpsGivesEachDumpWithItsHeader) {
    const auto text = fixture("kvm-multi-vcpu.txt");
    const auto all = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
                                Format::auto_detect, "log.txt");
    ASSERT_TRUE(all.has_value()) << to_string(all.error());
    ASSERT_EQ(all->size(), 3U);
    const auto& d1 = (*all)[0];
    EXPECT_EQ(d1.origin.index, 1U);
    EXPECT_EQ(d1.origin.count, 3U);
    EXPECT_EQ(d1.origin.line, 1);
    EXPECT_EQ(d1.origin.type, "SVM");
    EXPECT_EQ(d1.origin.vcpu, 0U);
    EXPECT_EQ(d1.origin.vmcb, "00000000c7fcd4f6");
    EXPECT_EQ(d1.origin.cpu, 5U);
    EXPECT_EQ(d1.result.vmcb.get(FieldId::exit_code), 0x400U);
    EXPECT_EQ(d1.result.vmcb.get(FieldId::efer), 0x1d01U);
    const auto& d2 = (*all)[1];
    EXPECT_EQ(d2.origin.line, 73);
    EXPECT_EQ(d2.origin.vcpu, 3U);
    EXPECT_EQ(d2.origin.vmcb, "000000001f2e3d4c");
    EXPECT_EQ(d2.origin.cpu, 2U);
    EXPECT_EQ(d2.result.vmcb.get(FieldId::efer), 0x0d01U);
    EXPECT_EQ(d2.result.vmcb.get(FieldId::exit_code), arch::exit_code::INVALID);
    // Each dump's warnings carry the log's line numbers.
    const auto* w = find_warning(d2.result, "exit_code is truncated");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->line, 73 + 18);
    const auto& d3 = (*all)[2];
    EXPECT_EQ(d3.origin.type, "SEV-ES");
    EXPECT_EQ(d3.origin.vcpu, 1U);
    EXPECT_EQ(d3.origin.cpu, 7U);
    EXPECT_EQ(d3.result.vmcb.get(FieldId::asid), 0U);
    EXPECT_EQ(d3.result.vmcb.get(FieldId::efer), 0x1d01U);
    for (const auto& d : *all) EXPECT_EQ(find_warning(d.result, "more than one dump"), nullptr);
    // One picked out: the same dump, the same origin.
    const auto two = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
                                Format::kvm_dump, "log.txt", 2);
    ASSERT_TRUE(two.has_value());
    ASSERT_EQ(two->size(), 1U);
    EXPECT_TRUE(two->front().result.vmcb == d2.result.vmcb);
    EXPECT_EQ(two->front().origin.line, 73);
    EXPECT_EQ(two->front().origin.count, 3U);
    const auto four = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
                                 Format::kvm_dump, "log.txt", 4);
    ASSERT_FALSE(four.has_value());
    EXPECT_NE(four.error().message.find("there is no dump 4: the input holds 3 dumps"), std::string::npos);
    // read_vmcb keeps its contract: the first dump, and a warning.
    const auto first = read_ok(text);
    EXPECT_TRUE(first.vmcb == d1.result.vmcb);
    const auto* more = find_warning(first, "more than one dump (2 more from this line on)");
    ASSERT_NE(more, nullptr) << all_warnings(first);
    EXPECT_EQ(more->line, 73);
}

TEST(KvmDump, ABrokenLaterDumpFailsTheWholeLog) {
    auto text = fixture("kvm-multi-vcpu.txt");
    const auto at = text.find("0000000000000d01");  // dump 2's EFER
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 16, "00000000000q0d01");
    const auto all = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
                                Format::kvm_dump, "log.txt");
    ASSERT_FALSE(all.has_value());
    EXPECT_EQ(all.error().field, "save.efer");
    EXPECT_GT(all.error().line, 73);
    // Asking for another dump reads only that one.
    EXPECT_TRUE(read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
                           Format::kvm_dump, "log.txt", 3)
                    .has_value());
}

TEST(KvmDump, OneDumpIsOneEntryOfEveryFormat) {
    for (const char* f : {"kvm-2024.txt", "xen-new.txt", "qemu-entry-failed-smm.txt", "vmcb-invalid.od.txt"}) {
        const auto t = fixture(f);
        const auto all = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(t.data()), t.size()),
                                    Format::auto_detect, f);
        ASSERT_TRUE(all.has_value()) << f;
        ASSERT_EQ(all->size(), 1U) << f;
        EXPECT_EQ(all->front().origin.count, 1U);
        EXPECT_TRUE(all->front().result.vmcb == read_ok(t, Format::auto_detect).vmcb) << f;
    }
}

TEST(KvmDump, AutoDetected) {
    for (const char* f : {"kvm-newest.txt", "kvm-2024.txt", "kvm-old-interleaved.txt", "kvm-l2.txt"}) {
        const auto t = fixture(f);
        EXPECT_EQ(detect_format(std::span(reinterpret_cast<const std::uint8_t*>(t.data()), t.size())),
                  Format::kvm_dump)
            << f;
        const auto r = read_ok(t, Format::auto_detect);
        EXPECT_EQ(r.format, Format::kvm_dump);
    }
}

TEST(KvmDumpErrors, NoControlArea) {
    const auto e = read_err("[ 1.0] kvm_amd: cr0:   0000000080050033 cr2:  0000000000000000\n");
    EXPECT_EQ(e.file, "bad.txt");
    EXPECT_NE(e.message.find("VMCB Control Area"), std::string::npos);
}

TEST(KvmDumpErrors, CutOffBeforeSaveArea) {
    auto t = fixture("kvm-2024.txt");
    t = t.substr(0, t.find("kvm_amd: VMCB State Save Area:"));
    const auto e = read_err(t);
    EXPECT_NE(e.message.find("VMCB State Save Area"), std::string::npos);
}

TEST(KvmDumpErrors, GarbledHexNamesLineAndField) {
    auto t = fixture("kvm-2024.txt");
    const auto at = t.find("0000000080050033");
    t.replace(at, 16, "00000000800z0033");
    const auto e = read_err(t);
    EXPECT_EQ(e.field, "save.cr0");
    EXPECT_EQ(e.line, 48);
    EXPECT_NE(e.message.find("800z0033"), std::string::npos);
    EXPECT_EQ(to_string(e).rfind("bad.txt:48: save.cr0: ", 0), 0U) << to_string(e);
}

TEST(KvmDumpErrors, GarbledDecimalAndTooWide) {
    const std::string head = "VMCB Control Area:\n";
    const std::string tail = "VMCB State Save Area:\n";
    auto e = read_err(head + "asid:               1x\n" + tail);
    EXPECT_EQ(e.field, "control.asid");
    EXPECT_EQ(e.line, 2);
    e = read_err(head + "asid:               4294967296\n" + tail);
    EXPECT_EQ(e.field, "control.asid");
    e = read_err(head + "cr_read:            10000\n" + tail);
    EXPECT_EQ(e.field, "control.intercepts[0]");
    EXPECT_NE(e.message.find("too wide"), std::string::npos);
    e = read_err(head + tail + "cs:   s: 10008 a: 0a9b l: ffffffff b: 0000000000000000\n");
    EXPECT_EQ(e.field, "save.cs.selector");
    EXPECT_EQ(e.line, 3);
}

TEST(KvmDumpErrors, MissingValueAndStrayText) {
    const std::string head = "VMCB Control Area:\n";
    auto e = read_err(head + "asid:\nVMCB State Save Area:\n");
    EXPECT_EQ(e.field, "control.asid");
    e = read_err(head + "VMCB State Save Area:\ncr0:   0000000080050033 cr2 0000000000000000\n");
    EXPECT_EQ(e.field, "save.cr0");
    EXPECT_NE(e.message.find("unexpected text 'cr2 0000000000000000'"), std::string::npos);
}

TEST(KvmDumpErrors, FieldTwiceIsAnErrorNotAGuess) {
    const auto e = read_err("VMCB Control Area:\nasid: 1\nasid: 2\nVMCB State Save Area:\n");
    EXPECT_EQ(e.line, 3);
    EXPECT_NE(e.message.find("first on line 2"), std::string::npos);
}

TEST(KvmDumpErrors, BinaryJunk) {
    std::string junk(5000, '\0');
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 131) ^ (i >> 3));
    const auto e = read_err(junk);
    EXPECT_EQ(e.file, "bad.txt");
    EXPECT_FALSE(e.message.empty());
    // And auto-detection refuses it with a clear message, not a guess.
    const auto a = read_vmcb(junk, Format::auto_detect, "junk.bin");
    ASSERT_FALSE(a.has_value());
    EXPECT_NE(a.error().message.find("cannot tell the format"), std::string::npos);
}

TEST(KvmDump, UnknownLabelInsideDumpWarns) {
    const auto r = read_ok("VMCB Control Area:\nasid: 1\nbus_lock_counter:   0000000000000005\nVMCB State Save Area:\n");
    EXPECT_NE(find_warning(r, "bus_lock_counter"), nullptr) << all_warnings(r);
}

// Newer kernels print an SEV-ES guest's decrypted VMSA (sev_decrypt_vmsa):
// sev_features (no colon: "%-15s %016llx"), pl0..3_ssp, u_cet, xcr0, xss.
// Read into ReadResult::vmsa, not warned about as values nsvm ignores.
TEST(KvmDump, SevEsDecryptedVmsaLinesAreRead) {
    const std::string text =
        "kvm_amd: SEV-ES vCPU0 VMCB 00000000c7fcd4f6, last attempted VMRUN on CPU 5\n"
        "kvm_amd: VMCB Control Area:\n"
        "kvm_amd: nested_ctl:         7\n"
        "kvm_amd: vmsa_pa:            0000000123456000\n"
        "kvm_amd: VMCB State Save Area:\n"
        "kvm_amd: sev_features    0000000000000021\n"
        "kvm_amd: pl0_ssp:        0000000000000010 pl1_ssp:      0000000000000011\n"
        "kvm_amd: pl2_ssp:        0000000000000012 pl3_ssp:      0000000000000013\n"
        "kvm_amd: u_cet:          0000000000000004\n"
        "kvm_amd: xcr0:           0000000000000007 xss:          0000000000000800\n";
    const auto r = read_ok(text);
    EXPECT_EQ(r.vmcb.get(FieldId::misc_ctl), 7U);
    EXPECT_EQ(r.vmcb.get(FieldId::vmsa_pa), 0x123456000ULL);
    ASSERT_TRUE(r.vmsa.has_value());
    EXPECT_EQ(r.vmsa->sev_features, 0x21U);
    EXPECT_EQ(r.vmsa->pl0_ssp, 0x10U);
    EXPECT_EQ(r.vmsa->pl1_ssp, 0x11U);
    EXPECT_EQ(r.vmsa->pl2_ssp, 0x12U);
    EXPECT_EQ(r.vmsa->pl3_ssp, 0x13U);
    EXPECT_EQ(r.vmsa->u_cet, 4U);
    EXPECT_EQ(r.vmsa->xcr0, 7U);
    EXPECT_EQ(r.vmsa->xss, 0x800U);
    EXPECT_EQ(find_warning(r, "not VMCB fields"), nullptr) << all_warnings(r);
    // With a colon, as an older reading of the format had it, too.
    const auto c = read_ok("VMCB Control Area:\nasid: 1\nVMCB State Save Area:\nsev_features:   0000000000000001\n");
    ASSERT_TRUE(c.vmsa.has_value());
    EXPECT_EQ(c.vmsa->sev_features, 1U);
    EXPECT_FALSE(c.vmsa->xcr0.has_value());
}

TEST(KvmDump, NoVmsaLinesNoVmsa) {
    EXPECT_FALSE(read_ok(fixture("kvm-newest.txt")).vmsa.has_value());
}

TEST(KvmDump, VmsaValueErrors) {
    const std::string head = "VMCB Control Area:\nasid: 1\nVMCB State Save Area:\n";
    auto e = read_err(head + "sev_features    00000000000000zz\n");
    EXPECT_EQ(e.field, "vmsa.sev_features");
    EXPECT_EQ(e.line, 4);
    e = read_err(head + "sev_features    0000000000000001\nsev_features    0000000000000001\n");
    EXPECT_EQ(e.field, "vmsa.sev_features");
}

// The fixture: a whole SEV-ES dump with the decrypted VMSA (make_fixtures.py #8).
TEST(KvmDump, SevEsVmsaFixture) {
    const auto r = read_ok(fixture("kvm-sev-es-vmsa.txt"));
    EXPECT_EQ(r.vmcb.get(FieldId::misc_ctl), 7U);
    EXPECT_EQ(r.vmcb.get(FieldId::misc_ctl2), 1U);
    EXPECT_EQ(r.vmcb.get(FieldId::vmsa_pa), 0x000000010b7e5000ULL);
    EXPECT_EQ(r.vmcb.get(FieldId::allowed_sev_features), 0x8000000000000020ULL);
    EXPECT_EQ(r.vmcb.get(FieldId::guest_sev_features), 0U);
    ASSERT_TRUE(r.vmsa.has_value());
    EXPECT_EQ(r.vmsa->sev_features, 0x60U);
    EXPECT_EQ(r.vmsa->xcr0, 7U);
    EXPECT_EQ(r.vmsa->xss, 0U);
    EXPECT_EQ(r.vmsa->u_cet, 0U);
    // Only the GPR block is left over as values that are not VMCB fields.
    const auto* w = find_warning(r, "not VMCB fields");
    ASSERT_NE(w, nullptr) << all_warnings(r);
    for (const char* v : {"sev_features", "pl0_ssp", "u_cet", "xcr0", "xss"})
        EXPECT_EQ(w->message.find(v), std::string::npos) << w->message;
    // The VMSA's GPRs are its save area's: no register-cache disagreement.
    EXPECT_EQ(find_warning(r, "differs from the VMCB"), nullptr) << all_warnings(r);
}

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
    return s;
}

/// The text as a list archive stores a quoted-printable mail: '=' as =3D,
/// spaces as =20, lines cut at 40 characters with a soft break.
std::string as_quoted_printable(const std::string& text) {
    std::string out;
    std::size_t col = 0;
    for (char c : text) {
        std::string piece = c == '=' ? "=3D" : c == ' ' ? "=20" : std::string(1, c);
        if (c == '\n') {
            out += '\n';
            col = 0;
            continue;
        }
        if (col + piece.size() > 40) {
            out += "=\n";
            col = 0;
        }
        out += piece;
        col += piece.size();
    }
    return out;
}

}  // namespace

// Kernels around 5.x printed dump_vmcb() with the "SVM: " pr_fmt prefix.
TEST(KvmDump, SvmPrefixOfKernelsAround5x) {
    const auto text = fixture("kvm-2024.txt");
    const auto want = read_vmcb(text, Format::auto_detect, "a.txt");
    ASSERT_TRUE(want.has_value());
    const auto svm = read_vmcb(replace_all(text, "kvm_amd: ", "[ 4711.000001] SVM: "), Format::auto_detect, "b.txt");
    ASSERT_TRUE(svm.has_value()) << to_string(svm.error());
    EXPECT_EQ(svm->format, Format::kvm_dump);
    EXPECT_TRUE(svm->vmcb == want->vmcb);
}

// A dump in a mail that a list archive stores as quoted-printable.
TEST(KvmDump, QuotedPrintableMailIsDecoded) {
    const auto text = fixture("kvm-2024.txt");
    const auto want = read_vmcb(text, Format::auto_detect, "a.txt");
    ASSERT_TRUE(want.has_value());
    const auto qp = as_quoted_printable(text);
    ASSERT_NE(qp.find("=20"), std::string::npos);
    ASSERT_NE(qp.find("=\n"), std::string::npos);
    for (const auto f : {Format::auto_detect, Format::kvm_dump}) {
        const auto r = read_vmcb(qp, f, "mail.txt");
        ASSERT_TRUE(r.has_value()) << to_string(r.error());
        EXPECT_EQ(r->format, Format::kvm_dump);
        EXPECT_TRUE(r->vmcb == want->vmcb);
        EXPECT_NE(find_warning(*r, "quoted-printable"), nullptr) << all_warnings(*r);
    }
    // A QEMU register dump is full of "=XX" and is not decoded as one.
    const auto q = read_vmcb(fixture("qemu-entry-failed-smm.txt"), Format::auto_detect, "q.txt");
    ASSERT_TRUE(q.has_value());
    EXPECT_EQ(find_warning(*q, "quoted-printable"), nullptr);
}

// Kernels before 5.10 printed "intercepts:" as one %016llx of the u64 at
// 0x00C (commit c62e2e94b9d4 split it): low half word 3, high half word 4.
TEST(KvmDump, Pre510SixtyFourBitInterceptsAreWordsThreeAndFour) {
    const auto r = read_ok(fixture("kvm-5.4-u64-intercepts.txt"), Format::auto_detect);
    EXPECT_EQ(r.format, Format::kvm_dump);
    const auto& v = r.vmcb;
    EXPECT_EQ(v.intercept_word(3), 0xbdcc800fU);
    EXPECT_EQ(v.intercept_word(4), 0x00006e7eU);
    EXPECT_FALSE(v.intercept(arch::intercept::VMRUN));  // bit 32 of the 64-bit value
    EXPECT_TRUE(v.intercept(arch::intercept::VMMCALL));
    EXPECT_TRUE(v.intercept(arch::intercept::SHUTDOWN));
    EXPECT_EQ(v.get(FieldId::asid), 3U);
    EXPECT_EQ(v.get(FieldId::efer), 0x1d01U);
    EXPECT_EQ(v.get(FieldId::cr0), 0x80050033U);
    EXPECT_EQ(v.get(FieldId::exit_code), arch::exit_code::INVALID);
    EXPECT_EQ(find_warning(r, "too wide"), nullptr) << all_warnings(r);
    // Words 3 and 4 were given; word 5 was not (the warning names it).
    const auto* m = find_warning(r, "read as zero");
    ASSERT_NE(m, nullptr);
    EXPECT_NE(m->message.find("control.intercepts[5]"), std::string::npos);
    EXPECT_EQ(m->message.find("control.intercepts[4]"), std::string::npos);
    EXPECT_EQ(m->message.find("control.intercepts[3]"), std::string::npos);
}

TEST(KvmDump, InterceptLabelsOfThe510PatchSeries) {
    const auto r = read_ok("VMCB Control Area:\n"
                           "intercept1:         bdcc800f\n"
                           "intercept2:         00006e7f\n"
                           "intercepts (extended):00000003\n"
                           "VMCB State Save Area:\n");
    EXPECT_EQ(r.vmcb.intercept_word(3), 0xbdcc800fU);
    EXPECT_EQ(r.vmcb.intercept_word(4), 0x6e7fU);
    EXPECT_EQ(r.vmcb.intercept_word(5), 3U);
    // A short one-word value is still word 3 alone; a 64-bit one is checked.
    const auto one = read_ok("VMCB Control Area:\nintercepts: 0000000f\nVMCB State Save Area:\n");
    EXPECT_EQ(one.vmcb.intercept_word(3), 0xfU);
    EXPECT_EQ(one.vmcb.intercept_word(4), 0U);
    const auto e = read_err("VMCB Control Area:\nintercepts: 00006e7ebdcc80zf\nVMCB State Save Area:\n");
    EXPECT_EQ(e.line, 2);
    EXPECT_EQ(e.field, "control.intercepts[3]");
    EXPECT_NE(e.message.find("before 5.10"), std::string::npos) << to_string(e);
    const auto wide = read_err("VMCB Control Area:\nintercepts: 100006e7ebdcc800f\nVMCB State Save Area:\n");
    EXPECT_EQ(wide.line, 2);
}

// A dump pasted into a mail and wrapped at 72 columns: the second value of a
// two-column line and the segment bases alone on the next line, and
// nested_cr3 cut inside its digits (make_fixtures.py, fixture 7).
TEST(KvmDump, MailWrappedLinesAreJoinedWhereUnambiguous) {
    const auto r = read_ok(fixture("kvm-wrapped-mail.txt"), Format::auto_detect);
    EXPECT_EQ(r.format, Format::kvm_dump);
    const auto& v = r.vmcb;
    expect_common_guest(v);  // segments, cr2/cr4, star..g_pat: all wrapped values
    EXPECT_EQ(v.get(FieldId::efer), 0x0d01U);  // "efer:" on one line, its value on the next
    EXPECT_EQ(v.get(FieldId::nested_cr3), 0x0000000112a07000ULL);  // "00000001" + "12a07000"
    EXPECT_EQ(v.segment(arch::Seg::cs), (arch::Segment{0x10, 0xa9b, 0xffffffff, 0}));
    EXPECT_EQ(v.get(FieldId::cr0), 0x80050033U);
    EXPECT_EQ(v.get(FieldId::rip), 0xffffffff81e2f1a4ULL);
    EXPECT_EQ(v.get(FieldId::rflags), 0x246U);
    EXPECT_EQ(v.intercept_word(4), 0x00006e7fU);
    EXPECT_NE(find_warning(r, "a mail client had wrapped"), nullptr) << all_warnings(r);
    // An unwrapped dump says nothing about wrapping.
    EXPECT_EQ(find_warning(read_ok(fixture("kvm-2024.txt")), "wrapped"), nullptr);
}

TEST(KvmDump, WrappedDecimalAndInterceptValues) {
    const auto r = read_ok("VMCB Control Area:\n"
                           "asid:\n"
                           "14\n"
                           "intercepts:\n"
                           "00006e7ebdcc800f\n"
                           "int_ctl:            01000000        int_vector:\n"
                           "00000020    int_state: 00000001\n"
                           "VMCB State Save Area:\n"
                           "tr:   s: 0040 a: 008b l: 00004087 b: fffffe00\n"
                           "00003000\n");
    EXPECT_EQ(r.vmcb.get(FieldId::asid), 14U);
    EXPECT_EQ(r.vmcb.intercept_word(3), 0xbdcc800fU);
    EXPECT_EQ(r.vmcb.intercept_word(4), 0x6e7eU);
    EXPECT_EQ(r.vmcb.get(FieldId::int_vector), 0x20U);
    EXPECT_EQ(r.vmcb.get(FieldId::int_state), 1U);
    EXPECT_EQ(r.vmcb.segment(arch::Seg::tr).base, 0xfffffe0000003000ULL);
}

TEST(KvmDumpErrors, AmbiguousWrapsAreRefusedWithTheirLine) {
    const std::string head = "VMCB Control Area:\nasid: 1\nVMCB State Save Area:\n";
    // Two numbers where "efer:" takes one.
    auto e = read_err(head + "cpl:            0                efer:\n0000000000001d00 0000000000000001\n");
    EXPECT_EQ(e.line, 5);
    EXPECT_EQ(e.field, "save.efer");
    EXPECT_NE(e.message.find("line 4 ends with 'efer:'"), std::string::npos) << to_string(e);
    EXPECT_EQ(to_string(e).rfind("bad.txt:5: save.efer: ", 0), 0U) << to_string(e);
    // Digits that do not complete the value: cut where?
    EXPECT_TRUE(read_vmcb(head + "cr0:            800 cr2:          0000000000000000\n", Format::kvm_dump, "a.txt")
                    .has_value());  // short but not wrapped: read as is
    e = read_err(head + "cr3:            00000001\n03a4e00\n");
    EXPECT_EQ(e.line, 5);
    EXPECT_EQ(e.field, "save.cr3");
    EXPECT_NE(e.message.find("8 of the 16 hex digits"), std::string::npos) << to_string(e);
    // A segment base cut short.
    e = read_err(head + "cs:   s: 0010 a: 0a9b l: ffffffff b: 00000000\n000\n");
    EXPECT_EQ(e.field, "save.cs.base");
    // "intercepts:" with one word, the next on the next line: u64 or words?
    e = read_err("VMCB Control Area:\nintercepts:         bdcc800f\n00006e7f\nVMCB State Save Area:\n");
    EXPECT_EQ(e.line, 3);
    EXPECT_EQ(e.field, "control.intercepts[3]");
    EXPECT_NE(e.message.find("cannot be told"), std::string::npos) << to_string(e);
    // A bare number after a complete line (a decimal cut in two looks so).
    e = read_err("VMCB Control Area:\nasid:               1\n4\nVMCB State Save Area:\n");
    EXPECT_EQ(e.line, 3);
    EXPECT_EQ(e.field, "control.asid");
    EXPECT_NE(e.message.find("bare number '4'"), std::string::npos) << to_string(e);
    // A chain of continuation lines is not a wrap.
    std::string chain = head + "cr0:";
    for (int i = 0; i < 10; ++i) chain += "\n0000000080050033 cr0:";
    e = read_err(chain + "\n");
    EXPECT_NE(e.message.find("lines continue line 4"), std::string::npos) << to_string(e);
}

TEST(KvmDumpErrors, TooManyDumpsAtOnceAskForDumpN) {
    std::string log;
    for (int i = 0; i < 1100; ++i)
        log += fmt::format("SVM vCPU{} VMCB 00000000c7fcd4f6, last attempted VMRUN on CPU 1\nVMCB Control Area:\n"
                           "asid: {}\nVMCB State Save Area:\n",
                           i, i + 1);
    const auto span = std::span(reinterpret_cast<const std::uint8_t*>(log.data()), log.size());
    const auto all = read_dumps(span, Format::kvm_dump, "many.log");
    ASSERT_FALSE(all.has_value());
    EXPECT_NE(all.error().message.find("the input holds 1100 dumps; nsvm reads at most 1024 at once"),
              std::string::npos)
        << to_string(all.error());
    const auto last = read_dumps(span, Format::kvm_dump, "many.log", 1100);
    ASSERT_TRUE(last.has_value()) << to_string(last.error());
    EXPECT_EQ(last->front().result.vmcb.get(FieldId::asid), 1100U);
    EXPECT_EQ(last->front().origin.vcpu, 1099U);
    EXPECT_EQ(last->front().origin.line, 1099 * 4 + 1);
}

TEST(KvmDump, AHeaderWrappedBeforeItsCpuStillStartsADump) {
    std::string log = fixture("kvm-multi-vcpu.txt");
    const std::string full = "SVM vCPU3 VMCB 000000001f2e3d4c, last attempted VMRUN on CPU 2";
    const auto at = log.find(full);
    ASSERT_NE(at, std::string::npos);
    log.replace(at, full.size(), "SVM vCPU3 VMCB 000000001f2e3d4c, last attempted VMRUN\non CPU 2");
    const auto all = read_dumps(std::span(reinterpret_cast<const std::uint8_t*>(log.data()), log.size()),
                                Format::kvm_dump, "log.txt");
    ASSERT_TRUE(all.has_value()) << to_string(all.error());
    ASSERT_EQ(all->size(), 3U);
    EXPECT_EQ((*all)[1].origin.vcpu, 3U);
    EXPECT_EQ((*all)[1].origin.vmcb, "000000001f2e3d4c");
    EXPECT_FALSE((*all)[1].origin.cpu.has_value());  // on the next line
    EXPECT_EQ((*all)[1].result.vmcb.get(FieldId::efer), 0x0d01U);
}

TEST(KvmDump, MessagesThatBeginWithANumberAreNotWraps) {
    // printk's rate limiter and other messages between dump lines: a log
    // prefix, or words that are no dump labels after the number.
    const auto r = read_ok("[ 1.0] kvm_amd: VMCB Control Area:\n"
                           "[ 1.0] kvm_amd: asid:               1\n"
                           "[ 1.1] kvm_amd: 14 callbacks suppressed\n"
                           "3 callbacks suppressed\n"
                           "[ 1.0] kvm_amd: efer:          0000000000001d00\n"
                           "[ 1.2] 5\n"
                           "[ 1.0] kvm_amd: VMCB State Save Area:\n");
    EXPECT_EQ(r.vmcb.get(FieldId::asid), 1U);
    EXPECT_EQ(r.vmcb.get(FieldId::efer), 0x1d00U);
    EXPECT_EQ(find_warning(r, "wrapped"), nullptr) << all_warnings(r);
}
