// Hostile dump logs: unknown labels on every line (warnings capped), two
// dumps interleaved (named as such, not "cut off"), megabytes of lines (read
// one at a time, not as a table of every line).
#include <gtest/gtest.h>

#include "helpers.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;

// ---------------------------------------------------------------- finding 3: dumps

TEST(DumpHardening, UnknownLabelWarningsAreCapped) {
    std::string text = "VMCB Control Area:\nasid: 1\n";
    for (int i = 0; i < 5000; ++i) text += "new_field_" + std::to_string(i) + ": 0000000000000005\n";
    text += "VMCB State Save Area:\n";
    const auto r = read_vmcb(text, Format::kvm_dump, "dump.txt");
    ASSERT_TRUE(r.has_value()) << to_string(r.error());
    EXPECT_LE(r->warnings.size(), 13U) << all_warnings(*r);
    const auto* more = find_warning(*r, "and 4990 more lines with labels nsvm does not know");
    EXPECT_NE(more, nullptr) << all_warnings(*r);
    EXPECT_NE(find_warning(*r, "new_field_9:"), nullptr);
    EXPECT_EQ(find_warning(*r, "new_field_10:"), nullptr);
}

TEST(DumpHardening, XenUnknownLabelWarningsAreCapped) {
    std::string text = "cr_intercepts = 0x0";
    for (int i = 0; i < 3000; ++i) text += " unknown_" + std::to_string(i) + " = 0x2";
    text += "\nCR0 = 0x80050033\n";
    const auto r = read_vmcb(text, Format::xen_dump, "xen.txt");
    ASSERT_TRUE(r.has_value()) << to_string(r.error());
    EXPECT_LE(r->warnings.size(), 13U) << all_warnings(*r);
    EXPECT_NE(find_warning(*r, "and 2990 more lines with labels"), nullptr) << all_warnings(*r);
}

TEST(DumpHardening, InterleavedKvmDumpsAreNamedAsSuch) {
    const std::string text =
        "kvm_amd: VMCB Control Area:\n"
        "kvm_amd: cr_read:            0011\n"
        "kvm_amd: VMCB Control Area:\n"
        "kvm_amd: cr_read:            0013\n"
        "kvm_amd: VMCB State Save Area:\n"
        "kvm_amd: VMCB State Save Area:\n";
    const auto e = read_error(text, Format::kvm_dump, "mixed.log");
    EXPECT_EQ(e.file, "mixed.log");
    EXPECT_EQ(e.line, 3);
    EXPECT_TRUE(contains(e.message, "interleaved")) << e.message;
    EXPECT_TRUE(contains(e.message, "line 1")) << e.message;
}

TEST(DumpHardening, InterleavedXenDumpsAreNamedAsSuch) {
    const std::string text =
        "(XEN) cr_intercepts = 0x0 dr_intercepts = 0x0\n"
        "(XEN) cr_intercepts = 0x1 dr_intercepts = 0x0\n"
        "(XEN) CR0 = 0x80050033\n";
    const auto e = read_error(text, Format::xen_dump, "mixed.log");
    EXPECT_EQ(e.line, 2);
    EXPECT_TRUE(contains(e.message, "interleaved")) << e.message;
}

TEST(DumpHardening, AHugeLogOfBlankLinesIsReadInBoundedMemory) {
    // 8 MiB of newlines was 190 MiB of line table; now one line at a time.
    const std::string text = std::string(8u << 20, '\n') + "kvm_amd: VMCB Control Area:\n";
    const auto e = read_error(text, Format::kvm_dump, "big.log");
    EXPECT_TRUE(contains(e.message, "VMCB State Save Area")) << e.message;
}
