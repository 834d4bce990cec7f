// QEMU's register dump after "KVM: entry failed, hardware error 0x...": the
// 64-bit layout (a fixture in the shape of a WSL2/Hyper-V SMM report) and the
// 32-bit layout (the output of QEMU 7.2's `info registers` at reset).
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "nsvm/arch/bits.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;
using arch::FieldId;

namespace {

ReadResult read_ok(const std::string& text, Format f = Format::auto_detect) {
    auto r = read_vmcb(text, f, "qemu.txt");
    EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
    return r ? *r : ReadResult{};
}

bool given(const ReadResult& r, FieldId f) {
    const auto i = static_cast<std::size_t>(f);
    return i < r.given.size() && r.given[i];
}

TEST(QemuDump, EntryFailureIn64BitLayoutIsTheGuestStateKvmRan) {
    const auto r = read_ok(fixture("qemu-entry-failed-smm.txt"));
    EXPECT_EQ(r.format, Format::qemu_dump);
    EXPECT_TRUE(r.partial);
    const auto& v = r.vmcb;
    EXPECT_EQ(v.get(FieldId::exit_code), 0xffffffffULL);  // the hardware error KVM reported
    EXPECT_EQ(v.get(FieldId::cr0), 0x50032U);
    EXPECT_EQ(v.get(FieldId::cr3), 0x11a2c4805ULL);
    EXPECT_EQ(v.get(FieldId::cr4), 0U);
    EXPECT_EQ(v.get(FieldId::cr2), 0x7f3c1d0a2000ULL);
    EXPECT_EQ(v.get(FieldId::efer), arch::efer::SVME);  // QEMU printed 0: KVM's VMCB has SVME
    EXPECT_EQ(v.get(FieldId::rip), 0x8000U);
    EXPECT_EQ(v.get(FieldId::rsp), 0x7ff1cff0U);
    EXPECT_EQ(v.get(FieldId::rflags), 2U);
    EXPECT_EQ(v.get(FieldId::dr6), 0xffff0ff0U);
    EXPECT_EQ(v.get(FieldId::dr7), 0x400U);
    // "CS =3000 0000000000030000 ffffffff 00809b00": flags bits 8-15 and
    // 20-23 packed into the 12-bit attrib.
    EXPECT_EQ(v.get(FieldId::cs_selector), 0x3000U);
    EXPECT_EQ(v.get(FieldId::cs_base), 0x30000U);
    EXPECT_EQ(v.get(FieldId::cs_limit), 0xffffffffU);
    EXPECT_EQ(v.get(FieldId::cs_attrib), 0x89bU);
    EXPECT_EQ(v.get(FieldId::tr_base), 0xfffffe0000003000ULL);
    EXPECT_EQ(v.get(FieldId::tr_attrib), 0x08bU);
    EXPECT_EQ(v.get(FieldId::gdtr_base), 0xfffffe0000001000ULL);
    EXPECT_EQ(v.get(FieldId::gdtr_limit), 0x7fU);
    // Given: the save-area fields QEMU prints; not given: the control area.
    EXPECT_TRUE(given(r, FieldId::cr3));
    EXPECT_TRUE(given(r, FieldId::ss_attrib));
    EXPECT_FALSE(given(r, FieldId::intercepts3));
    EXPECT_FALSE(given(r, FieldId::asid));
    EXPECT_FALSE(given(r, FieldId::g_pat));
    EXPECT_NE(find_warning(r, "SMM=1"), nullptr) << all_warnings(r);
    EXPECT_NE(find_warning(r, "no control area"), nullptr) << all_warnings(r);
}

TEST(QemuDump, InfoRegistersIn32BitLayout) {
    const auto r = read_ok(fixture("qemu-info-registers-reset.txt"));
    EXPECT_EQ(r.format, Format::qemu_dump);
    EXPECT_EQ(r.vmcb.get(FieldId::rip), 0xfff0U);
    EXPECT_EQ(r.vmcb.get(FieldId::cs_selector), 0xf000U);
    EXPECT_EQ(r.vmcb.get(FieldId::cs_base), 0xffff0000U);
    EXPECT_EQ(r.vmcb.get(FieldId::cs_attrib), 0x09bU);
    EXPECT_EQ(r.vmcb.get(FieldId::cr0), 0x60000010U);
    EXPECT_EQ(r.vmcb.get(FieldId::idtr_limit), 0xffffU);
    EXPECT_EQ(find_warning(r, "SMM=1"), nullptr);
    EXPECT_FALSE(given(r, FieldId::exit_code));  // no "entry failed" line
}

TEST(QemuDump, LogPrefixesAndTabsAreTolerated) {
    std::string text;
    for (const auto& l : {"Dec 06 host qemu-system-x86_64[4242]: KVM: entry failed, hardware error 0xffffffff",
                          "Dec 06 host qemu-system-x86_64[4242]: CR0=80050033 CR2=0\tCR3=0000000000001000 CR4=00000020",
                          "Dec 06 host qemu-system-x86_64[4242]: CS =0010 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]",
                          "Dec 06 host qemu-system-x86_64[4242]: EFER=0000000000000d01"})
        text += std::string(l) + "\n";
    const auto r = read_ok(text);
    EXPECT_EQ(r.format, Format::qemu_dump);
    EXPECT_EQ(r.vmcb.get(FieldId::cr3), 0x1000U);
    EXPECT_EQ(r.vmcb.get(FieldId::cs_attrib), 0xa9bU);
    EXPECT_EQ(r.vmcb.get(FieldId::efer), 0x1d01U);
}

TEST(QemuDump, BadInputNamesLineAndField) {
    auto e = read_vmcb(std::string("CR0=zz CR3=0\nEFER=0\n"), Format::qemu_dump, "q.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().line, 1);
    EXPECT_EQ(e.error().field, "save.cr0");
    e = read_vmcb(std::string("CS =0010 0 ffffffff 1234567 DPL=0\nEFER=0 CR0=1\n"), Format::qemu_dump, "q.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().field, "save.cs.attrib");
    e = read_vmcb(std::string("CS =0010 0 ffffffff\nEFER=0 CR0=1\n"), Format::qemu_dump, "q.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().field, "save.cs.selector");
    // Two vCPUs' dumps in one file: an error at the second, never a mix.
    const auto two = fixture("qemu-entry-failed-smm.txt") + fixture("qemu-entry-failed-smm.txt");
    e = read_vmcb(two, Format::auto_detect, "q.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_NE(e.error().message.find("more than one register dump"), std::string::npos) << e.error().message;
    EXPECT_GT(e.error().line, 20);
    e = read_vmcb(std::string("nothing to see here\n"), Format::qemu_dump, "q.txt");
    ASSERT_FALSE(e.has_value());
    EXPECT_NE(e.error().message.find("no QEMU register dump"), std::string::npos);
}

TEST(QemuDump, DetectionDoesNotTakeKvmOrXenDumps) {
    const auto kvm = fixture("kvm-newest.txt");
    EXPECT_EQ(detect_format(std::span(reinterpret_cast<const std::uint8_t*>(kvm.data()), kvm.size())),
              Format::kvm_dump);
    const auto xen = fixture("xen-new.txt");
    EXPECT_EQ(detect_format(std::span(reinterpret_cast<const std::uint8_t*>(xen.data()), xen.size())),
              Format::xen_dump);
    EXPECT_EQ(parse_format("qemu-dump"), Format::qemu_dump);
    EXPECT_EQ(parse_format("qemu"), Format::qemu_dump);
    EXPECT_EQ(format_name(Format::qemu_dump), "qemu-dump");
}

}  // namespace
